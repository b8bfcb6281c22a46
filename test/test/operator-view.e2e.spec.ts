// The operator's view of a live replay, end to end: real load from the client host against nginx on the online
// host, tcpcopy capturing there, nginx on the target, intercept on the assistant (as live-replay.e2e.spec.ts).
//
//  - --metrics: tcpcopy's and intercept's Prometheus endpoints scraped over HTTP (from inside their namespaces)
//    while the load runs: tcpcopy_sessions_total grows to the number of connections the load made, sessions_active
//    goes back to 0, intercept_replies_total > 0; the endpoint is gone once tcpcopy exited; a port in use is one
//    line and exit 2; with --protocol http, tcpcopy_requests_total{side="target"} reaches the requests of the load;
//  - the status line where stderr is not a terminal: one line per --stats-interval whose figures match the load;
//    -q prints none;
//  - on a terminal (a pty from `script`): redrawn in place, log lines written above it, never glued to it;
//  - --log-format json: every line tcpcopy and intercept log is a JSON object with level, time and msg.
import { expect } from 'chai';
import * as fs from 'node:fs';
import {
  createTopology,
  pacedLoad,
  requireRoot,
  requireTools,
  settledCount,
  startIntercept,
  startLiveTcpcopy,
  startNginx,
  INTERCEPT_BIN,
  TCPCOPY_BIN,
  withTimeout,
  type InterceptHandle,
  type NginxHandle,
  type Topology,
} from '../src/harness';
import type { HostName } from '../src/harness/netns';

const TARGET = '198.51.100.30';
const URL = 'http://198.51.100.20/blob/1k';
const REPLAY = ['-x', `80-${TARGET}:80`, '-c', '203.0.113.x'];
const TCPCOPY_METRICS = '127.0.0.1:9464';
const INTERCEPT_METRICS = '127.0.0.1:9465';
/** tcpcopy's status line (non-terminal): "12.0 s; sessions 340: 3 active, 335 closed, 2 reset; sent 9000 packets, ..." */
const STATUS = /(\d+\.\d) s; sessions (\d+): (\d+) active, (\d+) closed(?: \([^)]*\))?, (\d+) reset(?: \([^)]*\))?; sent (\d+) packets, (\d+) send errors; replies (\d+) packets; [\d.]+ packets\/s; captured (\d+) packets, (?:\d+ dropped, )?\d+ holes; RSS (\d+) MiB/;

/** GET http://ADDR/metrics from inside a host's namespace: the body, or null when nothing answers. */
async function scrape(topo: Topology, host: HostName, addr: string): Promise<string | null> {
  const script = `require('http').get('http://${addr}/metrics', { timeout: 3000 }, (r) => { let b = ''; r.on('data', (c) => b += c); ` +
    `r.on('end', () => { process.stdout.write(b); process.exit(r.statusCode === 200 ? 0 : 3); }); }).on('error', (e) => { process.stderr.write(e.code || e.message); process.exit(4); });`;
  const r = await topo.exec(host, process.execPath, ['-e', script], { check: false, timeoutMs: 8000 });
  return r.code === 0 ? r.stdout : null;
}

/** The value of the sample `series` ("name" or "name{labels}") in Prometheus text; NaN when absent. */
function value(text: string | null, series: string): number {
  const line = (text ?? '').split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

/** Polls until `cond` holds (every 100 ms, at most `ms`); false if it never did. */
async function eventually(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

describe('the operator\'s view: metrics, status line, JSON logs (live replay in namespaces)', function () {
  this.timeout(120_000);
  let topo: Topology;
  let online: NginxHandle;
  let target: NginxHandle;
  let intercept: InterceptHandle;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['nginx', 'script']);
    topo = await createTopology();
    online = await startNginx(topo, 'online');
    target = await startNginx(topo, 'target');
    intercept = await startIntercept(topo, [80], ['--metrics', INTERCEPT_METRICS, '--stats-interval', '1', '--log-format', 'json']);
  });
  after(async () => {
    await intercept?.stop();
    await topo?.destroy();
  });

  const count = (log: NginxHandle, tag: string) => log.accessLog().filter((e) => e.uri.includes(`?${tag}=`)).length;
  const statusLines = (stderr: string) => stderr.split('\n').filter((l) => STATUS.test(l));

  it('--metrics: counters scraped during the replay grow to the load\'s connections; the status line says the same', async () => {
    const REQUESTS = 900;
    const tcpcopy = await startLiveTcpcopy(topo, [...REPLAY, '--metrics', TCPCOPY_METRICS, '--stats-interval', '1']);
    const scrapes: number[] = [];
    let loadDone = false;
    let last: string | null = null;
    let stopped;
    try {
      const load = pacedLoad(topo, { url: URL, tag: 'metrics', requests: REQUESTS, rate: 300, conns: 10 }).finally(() => (loadDone = true));
      while (!loadDone) {
        last = await scrape(topo, 'online', TCPCOPY_METRICS);
        scrapes.push(value(last, 'tcpcopy_sessions_total'));
      }
      expect((await load).code, 'load').to.equal(0);
      await settledCount(() => count(target, 'metrics'));
      // Every connection ended at the target and in tcpcopy: nothing active any more.
      const settled = await eventually(async () => {
        last = await scrape(topo, 'online', TCPCOPY_METRICS);
        return value(last, 'tcpcopy_sessions_total') === REQUESTS && value(last, 'tcpcopy_sessions_active') === 0;
      }, 15_000);
      expect(settled, `sessions ${value(last, 'tcpcopy_sessions_total')}, active ${value(last, 'tcpcopy_sessions_active')}`).to.equal(true);
      // The status line printed after that says the same.
      expect(await eventually(() => {
        const m = STATUS.exec(statusLines(tcpcopy.proc.stderr()).pop() ?? '');
        return m !== null && Number(m[2]) === REQUESTS && Number(m[3]) === 0;
      }, 5000), `last status line: ${statusLines(tcpcopy.proc.stderr()).pop()}`).to.equal(true);
    } finally {
      stopped = await tcpcopy.stop();
    }
    expect(stopped.code, stopped.stderr).to.equal(0);
    expect(count(online, 'metrics')).to.equal(REQUESTS);
    expect(count(target, 'metrics'), 'requests at the target').to.equal(REQUESTS);

    // Scraped while the load ran: seen below the end figure, never going back.
    const during = scrapes.filter((n) => !Number.isNaN(n));
    expect(during.length, `scrapes during the load: ${scrapes.join(',')}`).to.be.at.least(2);
    expect(during[0], 'the first scrape, early in the load').to.be.below(REQUESTS);
    expect(during.every((n, i) => i === 0 || n >= during[i - 1]), `sessions_total over the load: ${during.join(',')}`).to.equal(true);

    const e = stopped.summary.engine;
    expect(value(last, 'tcpcopy_packets_sent_total')).to.be.greaterThan(0).and.at.most(e.packetsSent);
    expect(value(last, 'tcpcopy_replies_total')).to.be.greaterThan(0).and.at.most(e.repliesReceived);
    expect(value(last, 'tcpcopy_send_errors_total')).to.equal(0);
    expect(value(last, 'tcpcopy_sessions_closed_total') + value(last, 'tcpcopy_sessions_reset_total')).to.equal(REQUESTS);
    expect(value(last, 'tcpcopy_intercept_channels_connected')).to.equal(2);
    expect(value(last, 'tcpcopy_process_resident_memory_bytes')).to.be.greaterThan(10 * 2 ** 20);

    // The status lines (stderr is a pipe here: one plain line a second) agree with the summary at the end.
    const lines = statusLines(stopped.stderr);
    expect(lines.length, 'status lines').to.be.at.least(3);
    const final = STATUS.exec(lines[lines.length - 1])!;
    expect(Number(final[2]), 'sessions').to.equal(e.sessionsCreated).and.to.equal(REQUESTS);
    expect(Number(final[4]) + Number(final[5]), 'closed + reset').to.equal(e.sessionsCompleted + e.sessionsAborted);
    expect(Number(final[6]), 'packets sent').to.equal(e.packetsSent);
    expect(Number(final[7]), 'send errors').to.equal(0);
    expect(Number(final[9]), 'captured packets').to.equal(stopped.summary.capture.tcpPackets);
    expect(Number(final[10]), 'RSS MiB').to.be.within(10, 1024);

    const ic = await scrape(topo, 'assistant', INTERCEPT_METRICS);
    expect(value(ic, 'intercept_replies_total'), 'intercept_replies_total').to.be.greaterThan(0);
    expect(value(ic, 'intercept_replies_routed_total')).to.be.at.least(stopped.summary.intercept.repliesReceived);
    expect(value(ic, 'intercept_replies_unmatched_total')).to.equal(0);
    expect(value(ic, 'intercept_process_resident_memory_bytes')).to.be.greaterThan(0);

    // tcpcopy's endpoint went with it.
    expect(await scrape(topo, 'online', TCPCOPY_METRICS), 'metrics after tcpcopy exited').to.equal(null);
  });

  it('--protocol http: tcpcopy_requests_total and the status line count the requests the target answered', async () => {
    const REQUESTS = 300;
    const tcpcopy = await startLiveTcpcopy(topo, [...REPLAY, '--protocol', 'http', '--metrics', TCPCOPY_METRICS, '--stats-interval', '1']);
    let last: string | null = null;
    let stopped;
    try {
      expect((await pacedLoad(topo, { url: URL, tag: 'requests', requests: REQUESTS, rate: 300, conns: 6, keepAlive: true })).code).to.equal(0);
      await settledCount(() => count(target, 'requests'));
      const answered = await eventually(async () => {
        last = await scrape(topo, 'online', TCPCOPY_METRICS);
        return value(last, 'tcpcopy_requests_total{side="target"}') === REQUESTS;
      }, 10_000);
      expect(answered, `tcpcopy_requests_total{side="target"} ${value(last, 'tcpcopy_requests_total{side="target"}')}`).to.equal(true);
      expect(await eventually(() => new RegExp(`; requests answered ${REQUESTS}; `).test(tcpcopy.proc.stderr()), 5000),
        tcpcopy.proc.stderr().slice(-600)).to.equal(true);
    } finally {
      stopped = await tcpcopy.stop();
    }
    expect(stopped.code, stopped.stderr).to.equal(0);
    expect(count(target, 'requests'), 'requests at the target').to.equal(REQUESTS);
    expect(value(last, 'tcpcopy_request_statuses_total{side="target",status="200"}')).to.equal(REQUESTS);
    expect(value(last, 'tcpcopy_request_latency_seconds{side="target",quantile="0.5"}')).to.be.greaterThan(0).and.below(1);
  });

  it('--log-format json: every line tcpcopy and intercept log is JSON with level, time and msg; -q: no status line', async () => {
    const json = await startLiveTcpcopy(topo, [...REPLAY, '--log-format', 'json', '--stats-interval', '1']);
    const quiet = await startLiveTcpcopy(topo, [...REPLAY, '-f', '1', '-q', '--stats-interval', '1']);
    let j, q;
    try {
      expect((await pacedLoad(topo, { url: URL, tag: 'json', requests: 100, rate: 200, conns: 4 })).code).to.equal(0);
      await settledCount(() => count(target, 'json'));
      const statusOf = (line: string) => (JSON.parse(line) as { status?: { sessions: { total: number; active: number } } }).status;
      // A status line that counts every connection of the load (the -q tcpcopy replays them too: it runs as long).
      expect(await eventually(() => json.proc.stderr().trim().split('\n').some((l) => {
        const s = statusOf(l);
        return s?.sessions.total === 100 && s.sessions.active === 0;
      }), 5000), json.proc.stderr().slice(-2000)).to.equal(true);
    } finally {
      [j, q] = [await json.stop(), await quiet.stop()];
    }
    expect(j.code, j.stderr).to.equal(0);
    const lines = j.stderr.trim().split('\n');
    for (const line of lines) {
      const o = JSON.parse(line);
      expect(o, line).to.include.keys('level', 'time', 'msg');
      expect(['info', 'warn', 'debug']).to.include(o.level);
      expect(Number.isNaN(Date.parse(o.time)), line).to.equal(false);
      expect(o.name).to.equal('tcpcopy');
    }
    expect(lines.some((l) => JSON.parse(l).msg.startsWith('replaying ')), 'the start-up line').to.equal(true);

    const interceptLines = intercept.proc.stderr().trim().split('\n');
    expect(interceptLines.length).to.be.at.least(2);
    for (const line of interceptLines) expect(JSON.parse(line), line).to.include.keys('level', 'time', 'msg');
    expect(interceptLines.some((l) => JSON.parse(l).status?.replies?.captured > 0), 'intercept\'s status lines').to.equal(true);

    expect(q.code, q.stderr).to.equal(0);
    expect(q.summary.engine.sessionsCreated, 'the -q tcpcopy replayed the load').to.equal(100);
    expect(statusLines(q.stderr), `-q printed: ${q.stderr}`).to.deep.equal([]);
    expect(q.stderr).to.match(/^tcpcopy: replaying /m);
  });

  it('on a terminal: the status line is redrawn in place and log lines are written above it', async () => {
    // script gives tcpcopy a pty; exec makes tcpcopy script's child, so its PID is known and SIGTERM reaches it alone.
    const command = `exec ${process.execPath} ${TCPCOPY_BIN} -i ${topo.hosts.online.iface} -s 198.51.100.40 -x 80-${TARGET}:80,8080-${TARGET}:81 -c 203.0.113.x -f 2 --stats-interval 0.2 --summary json --syn-retries 1`;
    const term = topo.spawn('online', 'script', ['-qfec', command, '/dev/null'], { env: { COLUMNS: '300', TERM: 'xterm' } });
    try {
      await term.waitFor(/replaying /, { timeoutMs: 10_000 });
      expect((await pacedLoad(topo, { url: URL, tag: 'tty', requests: 60, rate: 100, conns: 3 })).code).to.equal(0);
      await settledCount(() => count(target, 'tty'));
      expect(await eventually(() => /\r\x1b\[2K[\d.]+ s; sessions 60: 0 active/.test(term.stdout()), 5000), JSON.stringify(term.stdout().slice(-500))).to.equal(true);
      // A warning while the line is shown: one connection to a port nothing listens on at the target (81), whose RSTs
      // intercept (-F src port 80) does not return: no handshake for 3 s (--syn-retries 1). The client's SYN is refused online too, but
      // the raw socket captured it.
      await topo.exec('client', process.execPath, ['-e', `require('net').connect(8080, '198.51.100.20').on('error', () => undefined)`]);
      await term.waitFor(/no handshake with the target .*\r\n[\d.]+ s; sessions 61:/, { timeoutMs: 15_000 });
      expect(term.stdout(), 'the warning: on a cleared line, then the status line again').to.match(
        /\r\x1b\[2Ktcpcopy: no handshake with the target [^\r\n]*\r\n[\d.]+ s; sessions 61: [^\r\n]* MiB(\r|$)/);
      await term.waitFor(/\r\x1b\[2K[\d.]+ s; sessions 61: 0 active, 60 closed, 1 reset \(handshake timeout 1\)/, { timeoutMs: 5000 });
    } finally {
      // tcpcopy ends on SIGTERM, then script with it (and its exit code).
      const pid = childOf(term.pid);
      if (pid) process.kill(pid, 'SIGTERM');
      await withTimeout(term.exited, 10_000, 'tcpcopy under script to end').catch(() => term.stop('SIGKILL', 5000));
    }
    expect(term.exitStatus()?.code, term.stdout().slice(-500)).to.equal(0);
    const out = term.stdout();
    expect(out, 'a status line is never ended by a newline on a terminal').not.to.match(/RSS \d+ MiB\r?\n/);
    // Every log line after the first status line starts on a cleared line, and no status text runs into it.
    const afterStart = out.slice(out.indexOf('\r\x1b[2K'));
    const logLines = afterStart.split('\r\x1b[2K').map((chunk) => chunk.split('\n').slice(0, -1)).flat();
    for (const l of logLines) expect(l, `a log line glued to the status line: ${JSON.stringify(l)}`).not.to.match(/RSS \d+ MiB[^\r\n]/);
    expect(logLines.some((l) => l.includes('passes') || l.startsWith('{')), `the end of the run: ${JSON.stringify(out.slice(-300))}`).to.equal(true);
  });

  it('a --metrics port in use: one line, exit 2 (intercept)', async () => {
    const second = topo.spawn('assistant', process.execPath, [
      INTERCEPT_BIN, '-i', topo.hosts.assistant.iface, '-p', '36530', '--metrics', INTERCEPT_METRICS,
    ]);
    const status = await withTimeout(second.exited, 15_000, 'the second intercept');
    expect(status.code, second.stderr()).to.equal(2);
    expect(second.stderr()).to.equal(`intercept: cannot serve metrics on ${INTERCEPT_METRICS}: the port is in use (stop what listens there, or give --metrics another port)\n`);
  });
});

/** The first child of a process (script's tcpcopy), from /proc. */
function childOf(pid: number): number | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text ? Number(text.split(' ')[0]) : null;
  } catch {
    return null;
  }
}
