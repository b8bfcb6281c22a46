// tcpcopy --report: the report object built from replay()'s counters (checked against the published
// docs/report.schema.json with ajv), secrets masked, the file written atomically, a report path in a
// missing directory refused up front (by the real command: exit 2, one line), and the human end summary.
import { RequestStats } from '@tcpcopy/core';
import { FakeProtocolContext } from '@tcpcopy/core/compliance';
import { createProtocol as createHttpProtocol } from '@tcpcopy/protocol-http';
import Ajv2020 from 'ajv/dist/2020';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildFailureReport, buildReport, maskSecrets, saveReport, writeReport, type ReportRun, type TcpcopyReport } from '../src/report';
import { formatEndSummary } from '../src/summary-format';
import { parseTcpcopyArgs } from '../src/tcpcopy-options';
import { runCommand } from './support/commands';
import { summaryWith } from './support/summary';

const ROOT = path.resolve(__dirname, '../../../..');
const SCHEMA = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/report.schema.json'), 'utf8'));
const validate = new Ajv2020({ allErrors: true }).compile(SCHEMA);

function expectValid(report: unknown): void {
  const ok = validate(report);
  expect(ok, JSON.stringify(validate.errors, null, 2)).to.equal(true);
}

const ARGV = ['-i', 'online.pcap', '-x', '80-198.51.100.30:80', '-s', '198.51.100.40', '--protocol', 'http', '-n', '2'];

function runOf(over: Partial<ReportRun> = {}): ReportRun {
  const invocation = parseTcpcopyArgs([...ARGV])!;
  return {
    argv: ARGV,
    replay: invocation.replay,
    offline: true,
    startedAt: new Date('2025-01-02T03:04:05.000Z'),
    endedAt: new Date('2025-01-02T03:04:07.250Z'),
    exitCode: 0,
    ...over,
  };
}

/** An HTTP replay's counters: 7 sessions (-n 2), requests answered with known statuses. */
function httpSummary() {
  const requests = new RequestStats();
  for (const [status, n] of [[200, 16], [404, 6], [301, 3]] as const) {
    for (let i = 0; i < n; i++) {
      requests.online.record(status, 0.2 + i / 10);
      requests.target.record(status, 0.5 + i / 10);
    }
  }
  const summary = summaryWith({
    engine: { sessionsCreated: 14, sessionsCompleted: 13, sessionsAborted: 1, capturedPackets: 300, packetsSent: 250, retransmissions: 2, repliesReceived: 240 },
    protocol: { name: 'http' },
    requests: requests.snapshot(),
  });
  return { ...summary, live: undefined, passes: 1, end: 'finished' as const };
}

describe('tcpcopy --report', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-report-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('the report object', () => {
    it('has the issue\'s figures, the --summary json parts, and passes the published schema', () => {
      const r = buildReport(httpSummary(), runOf());
      expectValid(r);
      expect(r.connections).to.deep.equal({ captured: 7, replayed: 14, completed: 13, failed: 1, refused: 0, faked_handshake: 0 });
      expect(r.packets).to.deep.equal({ captured: 300, sent: 250, retransmitted: 2, replies: 240 });
      expect(r.protocol.requests).to.deep.equal({ online: 25, target: 25 });
      expect(r.protocol.status).to.deep.equal({ online: { 200: 16, 404: 6, 301: 3 }, target: { 200: 16, 404: 6, 301: 3 } });
      const t = r.protocol.latency_ms!.target;
      expect(t.count).to.equal(25);
      expect(t.p50!).to.be.greaterThan(0).and.at.most(t.p90!);
      expect(t.p90!).to.be.at.most(t.p99!);
      expect(r.end).to.equal('finished');
      expect(r.duration_s).to.equal(2.25);
      expect(r.started_at).to.equal('2025-01-02T03:04:05.000Z');
      expect(r.options).to.include({ mode: 'offline', file: 'online.pcap', protocol: 'http', transfers: '80-198.51.100.30:80' });
      expect((r.options.engine as { copies: number }).copies).to.equal(2);
      expect(r.engine.sessionsCreated).to.equal(14);
      expect(r.tool.version).to.match(/^\d+\.\d+\.\d+/);
      expect(r.command_line).to.deep.equal(ARGV);
    });

    it('leaves the request keys out for a protocol that does not frame requests, and still passes the schema', () => {
      const summary = { ...summaryWith({ engine: { sessionsCreated: 3, sessionsCompleted: 3 }, protocol: { name: 'raw' } }), end: 'stopped' as const };
      const r = buildReport(summary, runOf({ offline: false, exitCode: 0 }));
      expectValid(r);
      expect(r.protocol).to.deep.equal({ name: 'raw', counters: {} });
      expect(r.end).to.equal('stopped');
      expect(r.passes).to.equal(null);
    });

    it('keeps a protocol\'s own counters apart from its request figures', () => {
      const summary = { ...httpSummary(), protocol: { name: 'mysql', answersOk: 5, answersError: 2 } };
      const r = buildReport(summary, runOf());
      expectValid(r);
      expect(r.protocol.counters).to.deep.equal({ answersOk: 5, answersError: 2 });
    });

    it('is refused by the schema when a required figure is missing or of the wrong kind (the schema checks something)', () => {
      const good = buildReport(httpSummary(), runOf());
      const broken = (f: (r: any) => void) => {
        const copy = JSON.parse(JSON.stringify(good));
        f(copy);
        return validate(copy);
      };
      expect(broken(() => undefined)).to.equal(true);
      expect(broken((r) => delete r.connections.completed)).to.equal(false);
      expect(broken((r) => (r.packets.sent = -1))).to.equal(false);
      expect(broken((r) => (r.protocol.status.target['200'] = 'x'))).to.equal(false);
      expect(broken((r) => delete r.protocol.latency_ms)).to.equal(false);
      expect(broken((r) => (r.end = 'crashed'))).to.equal(false);
      expect(broken((r) => (r.protocol.latency_ms.online.p50 = null))).to.equal(false);
    });

    it('of a replay that could not start: end failed, the error, no counters, and the schema holds it to that', () => {
      const r = buildFailureReport(runOf({ exitCode: 2 }), 'cannot connect to intercept at 127.0.0.1:9: refused (is intercept running?)');
      expectValid(r);
      expect(r).to.include({ end: 'failed', exit_code: 2, report_version: 1, duration_s: 2.25 });
      expect(r.error).to.match(/^cannot connect to intercept/);
      expect(r.options).to.include({ mode: 'offline', protocol: 'http' });
      expect(Object.keys(r)).to.not.include.members(['connections', 'engine']);
      // Counters with end failed, or an error with a replay that ran, are refused.
      expect(validate({ ...r, connections: buildReport(httpSummary(), runOf()).connections })).to.equal(false);
      expect(validate({ ...r, error: undefined })).to.equal(false);
      expect(validate({ ...buildReport(httpSummary(), runOf()), error: 'x' })).to.equal(false);
    });

    it('masks passwords and secrets in the command line and the protocol options', () => {
      expect(maskSecrets(['--mysql-user', 'app:s3cret', '--mysql-user=ro:pw2', '--protocol-opt', 'password=x', '--protocol-opt=user=a:b',
        '--secret', 'k', '--protocol-opt', 'default-user=app', '-i', 'f.pcap'])).to.deep.equal([
        '--mysql-user', 'app:***', '--mysql-user=ro:***', '--protocol-opt', 'password=***', '--protocol-opt=user=a:***',
        '--secret', '***', '--protocol-opt', 'default-user=app', '-i', 'f.pcap']);
      const argv = ['-i', 'x.pcap', '-x', '3306-198.51.100.30:3306', '-s', '198.51.100.40', '--protocol', 'mysql', '--mysql-user', 'app:s3cret'];
      const inv = parseTcpcopyArgs([...argv])!;
      const r = buildReport(httpSummary(), { ...runOf(), argv, replay: inv.replay });
      expect(JSON.stringify(r)).not.to.include('s3cret');
      expect(r.options.protocolOptions).to.deep.equal({ user: 'app:***' });
    });

    it('keeps the channel secret out, from --secret and from TCPCOPY_SECRET alike', () => {
      const argv = ['-i', 'x.pcap', '-x', '80-198.51.100.30:80', '-s', '198.51.100.40', '--secret', 'flag-secret-1'];
      const fromFlag = buildReport(httpSummary(), { ...runOf(), argv, replay: parseTcpcopyArgs([...argv])!.replay });
      expect(JSON.stringify(fromFlag)).not.to.include('flag-secret-1');
      expect(fromFlag.options.interceptSecret).to.equal('***');
      expectValid(fromFlag);
      expect(validate({ ...fromFlag, options: { ...fromFlag.options, interceptSecret: 'flag-secret-1' } }), 'the schema refuses a secret in clear').to.equal(false);
      const saved = process.env.TCPCOPY_SECRET;
      process.env.TCPCOPY_SECRET = 'env-secret-2';
      try {
        const replayOptions = parseTcpcopyArgs([...ARGV])!.replay;
        expect(replayOptions.interceptSecret).to.equal('env-secret-2');
        const fromEnv = buildReport(httpSummary(), { ...runOf(), replay: replayOptions });
        expect(JSON.stringify(fromEnv)).not.to.include('env-secret-2');
        expectValid(fromEnv);
      } finally {
        if (saved === undefined) delete process.env.TCPCOPY_SECRET;
        else process.env.TCPCOPY_SECRET = saved;
      }
    });
  });

  describe('the file', () => {
    it('is written whole, replacing an older report, with no temporary file left', () => {
      const file = path.join(dir, 'report.json');
      fs.writeFileSync(file, 'old');
      const r = buildReport(httpSummary(), runOf());
      writeReport(file, r);
      expect(JSON.parse(fs.readFileSync(file, 'utf8'))).to.deep.equal(JSON.parse(JSON.stringify(r)));
      expect(fs.readdirSync(dir)).to.deep.equal(['report.json']);
    });

    it('a failed write leaves neither a temporary nor a partial file, and says why in one warning', () => {
      const gone = path.join(dir, 'gone');
      fs.mkdirSync(gone);
      const file = path.join(gone, 'report.json');
      fs.rmdirSync(gone); // the directory vanished during the replay
      const warnings: string[] = [];
      expect(saveReport(file, buildReport(httpSummary(), runOf()), (m) => warnings.push(m))).to.equal(false);
      expect(warnings).to.have.length(1);
      expect(warnings[0]).to.match(/cannot write the report to .*gone\/report\.json: ENOENT/);
      expect(fs.readdirSync(dir)).to.deep.equal([]);
    });
  });

  describe('the option', () => {
    const base = ['-i', 'online.pcap', '-x', '80-198.51.100.30:80', '-s', '198.51.100.40'];

    it('takes a path in an existing directory, made absolute, in both modes', () => {
      const rel = path.relative(process.cwd(), path.join(dir, 'r.json'));
      expect(parseTcpcopyArgs([...base, '--report', rel])!.reportFile).to.equal(path.join(dir, 'r.json'));
      expect(parseTcpcopyArgs(['-i', 'eth0', '-x', '80-198.51.100.30:80', '-s', '198.51.100.40', '--report', path.join(dir, 'r.json')])!.reportFile)
        .to.equal(path.join(dir, 'r.json'));
      expect(parseTcpcopyArgs([...base])!.reportFile).to.equal(null);
    });

    it('refuses a path whose directory does not exist, or a directory', () => {
      expect(() => parseTcpcopyArgs([...base, '--report', path.join(dir, 'nope', 'r.json')])).to.throw(/--report .*: directory .*nope does not exist \(create it/);
      expect(() => parseTcpcopyArgs([...base, '--report', dir])).to.throw(/--report .*: that is a directory \(give a file name\)/);
    });

    it('the real command: a replay that cannot start (nothing listens at -s) still writes its report, end failed, exit 2', function () {
      if (typeof process.getuid === 'function' && process.getuid() !== 0) return this.skip(); // the raw send socket needs root
      const file = path.join(dir, 'r.json');
      const pcap = path.join(ROOT, 'core/engine/test/fixtures/eth-us.pcap');
      const r = runCommand('tcpcopy', ['-i', pcap, '-x', '80-198.51.100.30:80', '-s', '127.0.0.1:9', '--report', file]);
      expect(r.code, r.stderr).to.equal(2);
      const lines = r.stderr.split('\n').filter(Boolean);
      expect(lines, r.stderr).to.have.length(1);
      const report = JSON.parse(fs.readFileSync(file, 'utf8'));
      expectValid(report);
      expect(report).to.include({ end: 'failed', exit_code: 2 });
      expect(`tcpcopy: ${report.error}`).to.equal(lines[0]);
      expect(report.error).to.match(/127\.0\.0\.1:9/);
    });

    it('the real command: a missing directory is one line on stderr and exit 2, before anything is opened', () => {
      const missing = path.join(dir, 'nope', 'r.json');
      const r = runCommand('tcpcopy', [...base, '--report', missing]);
      expect(r.code, r.stderr).to.equal(2);
      const lines = r.stderr.split('\n').filter(Boolean);
      expect(lines).to.have.length(1);
      expect(lines[0]).to.match(/^tcpcopy: --report .*nope\/r\.json: directory .*nope does not exist \(create it, or give a path in an existing directory\)$/);
      expect(r.stdout).to.equal('');
    });
  });

  describe('the HTTP protocol\'s figures (what --report shows for --protocol http)', () => {
    const get = (p: string) => Buffer.from(`GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const answer = (status: number) => Buffer.from(`HTTP/1.1 ${status} X\r\nContent-Length: 2\r\n\r\nok`);
    const q = { onlineServerBytes: 0, targetServerBytes: 0 };

    it('times each request online by capture timestamps, counts statuses on both sides, and a filtered request only online', () => {
      const http = createHttpProtocol({ 'deny-url': '^/secret' });
      const s = http.createSession(new FakeProtocolContext({ targetPort: 80 }));
      // Online: three requests and their answers, with capture times 2.5, 4 and 1 ms apart.
      s.onClientData!(get('/a'), { onlineServerBytes: 0, captureTimeMs: 1000 });
      s.onOnlineData!(answer(200), { gap: 0, captureTimeMs: 1002.5 });
      s.onClientData!(get('/secret'), { onlineServerBytes: 0, captureTimeMs: 1010 });
      s.onOnlineData!(answer(403), { gap: 0, captureTimeMs: 1014 });
      s.onClientData!(get('/b'), { onlineServerBytes: 0, captureTimeMs: 1020 });
      s.onOnlineData!(answer(404), { gap: 0, captureTimeMs: 1021 });
      // Target: the two forwarded requests (tags 1 and 2), each released, then answered.
      expect(s.mayRelease!(1, q)).to.equal(true);
      s.onTargetData!(answer(200), answer(200).length, { gap: 0 });
      expect(s.mayRelease!(2, q)).to.equal(true);
      s.onTargetData!(answer(500), answer(500).length, { gap: 0 });
      const r = http.requestStats!();
      expect(r.requests).to.deep.equal({ online: 3, target: 2 });
      expect(r.status).to.deep.equal({ online: { 200: 1, 403: 1, 404: 1 }, target: { 200: 1, 500: 1 } });
      expect(r.latencyMs.online).to.include({ count: 3, min: 1, max: 4 });
      expect(r.latencyMs.target.count).to.equal(2);
      expect(r.latencyMs.target.min!).to.be.at.least(0);
    });

    it('stops waiting for online answers a capture does not have (live): bounded, and nothing counted online', () => {
      const http = createHttpProtocol({});
      const s = http.createSession(new FakeProtocolContext({ targetPort: 80 }));
      for (let i = 1; i <= 500; i++) {
        s.onClientData!(get(`/r${i}`), { onlineServerBytes: 0, captureTimeMs: i });
        expect(s.mayRelease!(i, q)).to.equal(true);
        s.onTargetData!(answer(200), answer(200).length, { gap: 0 });
      }
      const r = http.requestStats!();
      expect(r.requests).to.deep.equal({ online: 0, target: 500 });
      expect(r.latencyMs.online.count).to.equal(0);
    });
  });

  describe('the end summary for people', () => {
    it('is several lines: connections, packets, requests with statuses side by side, latency percentiles, the report path', () => {
      const r: TcpcopyReport = buildReport(httpSummary(), runOf());
      const lines = formatEndSummary(r, '/tmp/r.json');
      const text = lines.join('\n');
      expect(lines[0]).to.equal('replay finished after 2.25 s, 1 pass (exit 0)');
      expect(text).to.match(/connections +7 captured, 14 replayed: 13 completed, 1 failed/);
      expect(text).to.match(/packets +300 captured, 250 sent, 2 retransmitted/);
      expect(text).to.match(/http +25 requests answered online, 25 by the target/);
      expect(text).to.match(/\n +status +online +target\n/);
      expect(text).to.match(/\n +200 +16 +16\n/);
      expect(text).to.match(/\n +301 +3 +3\n/);
      expect(text).to.match(/\n +404 +6 +6\n/);
      expect(text).to.match(/\n +latency ms +p50 +p90 +p99 +max\n +online +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+\n +target /);
      expect(lines[lines.length - 1]).to.match(/report +\/tmp\/r\.json$/);
    });

    it('leaves the request lines out for raw', () => {
      const summary = { ...summaryWith({ engine: { sessionsCreated: 1, sessionsCompleted: 1 } }), end: 'finished' as const };
      const text = formatEndSummary(buildReport(summary, runOf()), null).join('\n');
      expect(text).not.to.match(/requests|status|latency|report/);
    });
  });
});
