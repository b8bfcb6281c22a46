// tcpcopy --report end to end: a workload whose true counts are known by construction runs against the
// online server under tcpdump; the capture is replayed with the real tcpcopy and intercept to the target,
// and the report's figures are checked against that truth, against what the target's own logs and a
// capture on the target host show, and against the published JSON Schema (ajv).
//  - HTTP (nginx on both sides): keep-alive and short connections whose requests get 200, 301 and 404
//    in known numbers.
//  - MySQL (MariaDB on both sides): one session whose statements succeed or fail in known numbers.
import Ajv2020 from 'ajv/dist/2020';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  countPackets,
  createTopology,
  mysqlUserArgs,
  ONLINE_PASSWORDS,
  prepareShop,
  requireRoot,
  requireTools,
  sleep,
  startIntercept,
  startMariadb,
  startNginx,
  startTcpdump,
  TARGET_PASSWORDS,
  TCPCOPY_BIN,
  type Topology,
} from '../src/harness';

const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const REPO = path.resolve(__dirname, '..', '..', '..');
const validate = new Ajv2020({ allErrors: true }).compile(JSON.parse(fs.readFileSync(path.join(REPO, 'docs', 'report.schema.json'), 'utf8')));

/** Each keep-alive connection asks these, in order: 4 × 200, 2 × 404, 1 × 301 (a directory without its slash). */
const KEEP_ALIVE_PATHS = ['/', '/blob/1k', '/missing', '/blob', '/', '/no/such/file', '/blob/100k'];
const KEEP_ALIVE_CONNS = 3;
/** Connections with one request each (Connection: close): 200. */
const SHORT_CONNS = 4;
const HTTP_STATUS = { 200: KEEP_ALIVE_CONNS * 4 + SHORT_CONNS, 301: KEEP_ALIVE_CONNS, 404: KEEP_ALIVE_CONNS * 2 };
const HTTP_REQUESTS = KEEP_ALIVE_CONNS * KEEP_ALIVE_PATHS.length + SHORT_CONNS;
const HTTP_CONNS = KEEP_ALIVE_CONNS + SHORT_CONNS;

/** The HTTP workload, run with node in the client namespace: every response read whole before the next request. */
const HTTP_CLIENT = `
const http = require('node:http');
const [host, paths, conns, shorts] = JSON.parse(process.argv[1]);
const get = (agent, p, close) => new Promise((resolve, reject) => {
  const req = http.get({ host, port: 80, path: p, agent, headers: close ? { Connection: 'close' } : {} }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode));
  });
  req.on('error', reject);
  req.setTimeout(10000, () => req.destroy(new Error('timeout ' + p)));
});
const keepAlive = async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const codes = [];
  for (const p of paths) codes.push(await get(agent, p, false));
  agent.destroy();
  return codes;
};
Promise.all([
  ...Array.from({ length: conns }, keepAlive),
  ...Array.from({ length: shorts }, () => get(false, '/', true).then((c) => [c])),
]).then((all) => { console.log(JSON.stringify(all.flat())); }, (e) => { console.error(e.message); process.exit(1); });
`;

/** MySQL: statements that succeed, and ones that fail (no such table, a duplicate key, bad syntax). */
const MYSQL_OK = [
  'INSERT INTO orders (id, customer_id, product_id, qty, note, source) VALUES (9001, 1, 2, 3, \'report\', \'report\')',
  'UPDATE products SET stock = stock - 1 WHERE id = 2',
  'SELECT COUNT(*) FROM orders',
  'SELECT id, name FROM customers WHERE id < 4',
  'UPDATE customers SET visits = visits + 1 WHERE id = 1',
  'SELECT 1',
];
const MYSQL_ERR = [
  'SELECT * FROM no_such_table',
  'INSERT INTO orders (id, customer_id, product_id, qty, note, source) VALUES (9001, 1, 2, 3, \'again\', \'report\')',
  'SELEKT 1',
];
/** Interleaved, so errors fall between successes. */
const MYSQL_SCRIPT = [...MYSQL_OK.slice(0, 2), MYSQL_ERR[0], ...MYSQL_OK.slice(2, 4), MYSQL_ERR[1], ...MYSQL_OK.slice(4), MYSQL_ERR[2]];

interface Replay {
  code: number | null;
  stderr: string;
  stdout: string;
  report: any;
}

/** The real tcpcopy on the online host, to its end (bounded), with --report and the human summary (no --summary json). */
async function replayWithReport(topo: Topology, args: string[], reportFile: string): Promise<Replay> {
  const proc = topo.spawn('online', process.execPath, [TCPCOPY_BIN, ...args, '--report', reportFile]);
  const status = await Promise.race([proc.exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), 90_000))]);
  if (status === null) {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw new Error(`tcpcopy did not finish in 90 s\n${proc.stderr()}`);
  }
  const report = fs.existsSync(reportFile) ? JSON.parse(fs.readFileSync(reportFile, 'utf8')) : null;
  return { code: proc.exitStatus()?.code ?? null, stderr: proc.stderr(), stdout: proc.stdout(), report };
}

function expectSchemaValid(report: unknown): void {
  expect(validate(report), JSON.stringify(validate.errors, null, 2)).to.equal(true);
}

function expectSaneLatency(l: { count: number; min: number; p50: number; p90: number; p99: number; max: number }, count: number, what: string): void {
  expect(l.count, what).to.equal(count);
  expect(l.p50, what).to.be.greaterThan(0);
  expect(l.min, what).to.be.at.most(l.p50);
  expect(l.p50, what).to.be.at.most(l.p90);
  expect(l.p90, what).to.be.at.most(l.p99);
  expect(l.p99, what).to.be.at.most(l.max);
  // Loose: a shared machine, but nothing here takes seconds.
  expect(l.max, what).to.be.below(5000);
}

describe('tcpcopy --report end to end', function () {
  this.timeout(180_000);

  describe('HTTP: known statuses against nginx', () => {
    let topo: Topology;
    let run: Replay;
    let pcapPackets: number;
    let targetStatuses: Record<string, number>;
    let targetSaw: { packets: number; syns: number };
    let pcap: string;
    let dir: string;
    let target: { accessLog(): Array<{ status: number; connectionRequests: number }> };

    before(async function () {
      requireRoot(this);
      requireTools(this, ['nginx', 'tcpdump']);
      // No segmentation offload: every packet tcpcopy sends is one packet in the target's capture.
      topo = await createTopology({ segmentationOffload: false });
      const online = await startNginx(topo, 'online');
      target = await startNginx(topo, 'target');
      dir = topo.mkdir('report-http');
      pcap = path.join(dir, 'online.pcap');
      const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, 'tcp port 80');
      const work = await topo.exec('client', process.execPath, ['-e', HTTP_CLIENT, JSON.stringify([ONLINE, KEEP_ALIVE_PATHS, KEEP_ALIVE_CONNS, SHORT_CONNS])], {
        timeoutMs: 30_000,
        check: false,
      });
      const counts = await cap.stop();
      expect(work.code, work.stderr).to.equal(0);
      expect(counts.droppedByKernel, 'packets tcpdump lost').to.equal(0);
      // The truth, twice: what the client got and what the online server logged.
      const got = JSON.parse(work.stdout) as number[];
      expect(tally(got)).to.deep.equal(tally(Object.entries(HTTP_STATUS).flatMap(([s, n]) => Array(n).fill(Number(s)))));
      expect(tally(online.accessLog().map((e) => e.status))).to.deep.equal(stringKeys(HTTP_STATUS));
      pcapPackets = countPackets(pcap);

      const intercept = await startIntercept(topo, [80]);
      const targetPcap = path.join(dir, 'target.pcap');
      const seen = await startTcpdump(topo, 'target', topo.hosts.target.iface, targetPcap, 'src net 203.0.113.0/24 and tcp dst port 80');
      run = await replayWithReport(topo, ['-i', pcap, '-x', `80-${TARGET}:80`, '-s', ASSISTANT, '-c', '203.0.113.x', '--protocol', 'http'], path.join(dir, 'report.json'));
      await seen.stop();
      await intercept.stop();
      targetSaw = {
        packets: countPackets(targetPcap),
        syns: countPackets(targetPcap, 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn'),
      };
      // nginx logs a request once it is done with it; the replay ended after the last response, so the log is complete.
      targetStatuses = tally(target.accessLog().map((e) => e.status));
    });

    after(async () => {
      await topo?.destroy();
    });

    it('the replay ends normally and the report passes the published schema', () => {
      expect(run.code, run.stderr).to.equal(0);
      expect(run.report, run.stderr).not.to.equal(null);
      expectSchemaValid(run.report);
      expect(run.report.end).to.equal('finished');
      expect(run.report.exit_code).to.equal(0);
      expect(run.report.protocol.name).to.equal('http');
      expect(run.report.command_line).to.include('--protocol');
      expect(Date.parse(run.report.ended_at)).to.be.at.least(Date.parse(run.report.started_at));
    });

    it('counts every request on both sides, with the statuses the workload was built to get', () => {
      const p = run.report.protocol;
      expect(p.requests).to.deep.equal({ online: HTTP_REQUESTS, target: HTTP_REQUESTS });
      expect(p.status.online).to.deep.equal(stringKeys(HTTP_STATUS));
      expect(p.status.target).to.deep.equal(stringKeys(HTTP_STATUS));
      // ... and they are what the target nginx says it answered.
      expect(p.status.target).to.deep.equal(targetStatuses);
    });

    it('gives sane latency percentiles for every request, online and at the target', () => {
      expectSaneLatency(run.report.protocol.latency_ms.online, HTTP_REQUESTS, 'online');
      expectSaneLatency(run.report.protocol.latency_ms.target, HTTP_REQUESTS, 'target');
    });

    it('counts connections and packets as the engine and the target\'s own capture do', () => {
      const r = run.report;
      expect(r.connections).to.deep.equal({ captured: HTTP_CONNS, replayed: HTTP_CONNS, completed: HTTP_CONNS, failed: 0, refused: 0, faked_handshake: 0 });
      expect(targetSaw.syns, 'SYNs at the target').to.be.at.least(HTTP_CONNS);
      expect(r.packets.captured).to.equal(pcapPackets);
      expect(r.packets.sent).to.equal(r.engine.packetsSent);
      expect(r.packets.sent).to.equal(targetSaw.packets);
      expect(r.packets.retransmitted).to.equal(r.engine.retransmissions);
      expect(r.packets.replies).to.equal(r.engine.repliesReceived).and.to.be.greaterThan(0);
      expect(r.output.sent).to.equal(r.packets.sent);
    });

    it('prints the same figures for people at the end, several lines, nothing on stdout', () => {
      expect(run.stdout).to.equal('');
      const text = run.stderr;
      expect(text).to.match(/tcpcopy: replay finished after [\d.]+ s, 1 pass \(exit 0\)\n/);
      // One log line each: every line of stderr carries the prefix.
      for (const line of text.split('\n').filter(Boolean)) expect(line).to.match(/^tcpcopy: /);
      expect(text).to.match(new RegExp(`\\ntcpcopy: +connections +${HTTP_CONNS} captured, ${HTTP_CONNS} replayed: ${HTTP_CONNS} completed, 0 failed`));
      expect(text).to.match(new RegExp(`\\ntcpcopy: +http +${HTTP_REQUESTS} requests answered online, ${HTTP_REQUESTS} by the target\\n`));
      for (const [code, n] of Object.entries(HTTP_STATUS)) expect(text).to.match(new RegExp(`\\ntcpcopy: +${code} +${n} +${n}\\n`));
      expect(text).to.match(/\ntcpcopy: +latency ms +p50 +p90 +p99 +max\ntcpcopy: +online( +[\d.]+){4}\ntcpcopy: +target( +[\d.]+){4}\n/);
      expect(text).to.match(/\ntcpcopy: +report +\/\S+report\.json\n/);
    });

    it('a replay stopped half-way by a signal still writes its report: end stopped, exit 130, the requests answered so far', async () => {
      const intercept = await startIntercept(topo, [80]);
      const file = path.join(dir, 'stopped.json');
      const logged = target.accessLog().length;
      // A second request on a connection goes only once tcpcopy has the answer to the first: one answer is counted.
      const answered = () => target.accessLog().slice(logged).some((e) => e.connectionRequests >= 2);
      // 50 times slower than captured: the replay runs for seconds, and is stopped once the target answered a request.
      const proc = topo.spawn('online', process.execPath, [
        TCPCOPY_BIN, '-i', pcap, '-x', `80-${TARGET}:80`, '-s', ASSISTANT, '-c', '203.0.113.x', '--protocol', 'http', '-a', '0.02', '--report', file,
      ]);
      try {
        for (let i = 0; i < 300 && !answered(); i++) await sleep(50);
        expect(answered(), 'a keep-alive connection\'s second request reached the target').to.equal(true);
        const status = await proc.stop('SIGINT', 20_000);
        expect(status.code, proc.stderr()).to.equal(130);
      } finally {
        await proc.stop('SIGKILL', 2000).catch(() => undefined);
        await intercept.stop();
      }
      const r = JSON.parse(fs.readFileSync(file, 'utf8'));
      expectSchemaValid(r);
      expect(r.end).to.equal('stopped');
      expect(r.exit_code).to.equal(130);
      expect(r.protocol.requests.target).to.be.greaterThan(0).and.below(HTTP_REQUESTS);
      expect(r.connections.replayed).to.be.greaterThan(0);
      expect(proc.stderr()).to.match(/replay stopped after [\d.]+ s, 1 pass \(exit 130\)/);
    });
  });

  describe('MySQL: known OK and ERR answers against MariaDB', () => {
    let topo: Topology;
    let run: Replay;
    let statements: number;

    before(async function () {
      requireRoot(this);
      requireTools(this, ['mariadbd', 'mariadb', 'tcpdump']);
      topo = await createTopology();
      const online = await startMariadb(topo, 'online');
      const target = await startMariadb(topo, 'target');
      await Promise.all([prepareShop(online, ONLINE_PASSWORDS), prepareShop(target, TARGET_PASSWORDS)]);
      const dir = topo.mkdir('report-mysql');
      const pcap = path.join(dir, 'online.pcap');
      const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, 'tcp port 3306');
      const before = online.generalLog().length;
      // --force: the client goes on after a failed statement, as an application would.
      const work = await topo.exec('client', 'mariadb', [
        '--no-defaults', '--batch', '--skip-column-names', '--force', `--host=${ONLINE}`, '--port=3306', '--protocol=tcp', '--skip-ssl',
        '--user=app', `--password=${ONLINE_PASSWORDS.app}`, '--database=shop',
      ], { input: MYSQL_SCRIPT.map((s) => `${s};`).join('\n') + '\n', timeoutMs: 20_000, check: false });
      await cap.stop();
      // The truth: each failing statement said so, and the server logged every statement the client sent.
      expect(work.stderr.match(/^ERROR \d+/gm) ?? [], work.stderr).to.have.length(MYSQL_ERR.length);
      statements = online.generalLog().slice(before).filter((e) => e.command === 'Query').length;
      expect(statements).to.equal(MYSQL_SCRIPT.length);

      const intercept = await startIntercept(topo, [3306]);
      run = await replayWithReport(topo, [
        '-i', pcap, '-x', `3306-${TARGET}:3306`, '-s', ASSISTANT, '-c', '203.0.113.x', '--protocol', 'mysql', ...mysqlUserArgs(),
      ], path.join(dir, 'report.json'));
      await intercept.stop();
    });

    after(async () => {
      await topo?.destroy();
    });

    it('reports as many OK and ERR answers online as at the target, as the workload was built to get, schema-valid', () => {
      expect(run.code, run.stderr).to.equal(0);
      expectSchemaValid(run.report);
      const p = run.report.protocol;
      expect(p.name).to.equal('mysql');
      const want = { OK: MYSQL_OK.length, ERR: MYSQL_ERR.length };
      expect(p.status.online).to.deep.equal(want);
      expect(p.status.target).to.deep.equal(want);
      expect(p.requests).to.deep.equal({ online: statements, target: statements });
      expectSaneLatency(p.latency_ms.online, statements, 'online');
      expectSaneLatency(p.latency_ms.target, statements, 'target');
      // The protocol's own comparison agrees: the same answers on both sides.
      expect(p.counters.answersOk).to.equal(MYSQL_OK.length);
      expect(p.counters.answersError).to.equal(MYSQL_ERR.length);
      expect(p.counters.errorsOnlyOnTarget).to.equal(0);
    });

    it('masks the --mysql-user passwords in the report', () => {
      const text = JSON.stringify(run.report);
      for (const pw of Object.values(TARGET_PASSWORDS)) expect(text).not.to.include(pw);
      expect(run.report.command_line).to.include('app:***');
    });
  });
});

function tally(values: Array<number | string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[String(v)] = (out[String(v)] ?? 0) + 1;
  return out;
}

function stringKeys(o: Record<number, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [String(k), v]));
}
