// Live replay options end to end, in the harness topology: paced load from the client host against nginx on the
// online host, tcpcopy capturing there, nginx on the target, intercept on the assistant. What reached the target
// is read from its access log, what the clients asked from the online one (each run has its own ?tag=).
//
//  - -o: data-link output through libpcap on the online host's interface, the MACs given in -x;
//  - --capture pcap: libpcap instead of the default IP raw socket;
//  - -d -P -l: a daemon with a pid file and a log, stopped by SIGTERM;
//  - -g: the replayed share ramps up from 1 % (only a few percent in the first seconds);
//  - the target's nginx stopped and started again under keep-alive load: sessions are rebuilt and every request
//    sent once the target is back reaches it (those sent during the outage are counted and reported, not asserted).
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  createTopology,
  isAlive,
  pacedLoad,
  requireRoot,
  settledCount,
  sleep,
  startIntercept,
  startLiveTcpcopy,
  startNginx,
  TCPCOPY_BIN,
  type NginxHandle,
  type Topology,
} from '../src/harness';

const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const URL = 'http://198.51.100.20/blob/1k';

/** Prints a measurement under the test's name (not an assertion). */
function note(text: string): void {
  process.stdout.write(`        · ${text}\n`);
}

describe('live replay options across namespaces (-o, --capture pcap, -d, -g, target restart)', function () {
  this.timeout(60_000);
  let topo: Topology;
  let online: NginxHandle;
  let target: NginxHandle;
  let stopIntercept: () => Promise<void>;

  before(async function () {
    requireRoot(this);
    topo = await createTopology();
    online = await startNginx(topo, 'online');
    target = await startNginx(topo, 'target');
    stopIntercept = (await startIntercept(topo, [80])).stop;
  });
  after(async () => {
    await stopIntercept?.();
    await topo?.destroy();
  });

  const uris = (log: NginxHandle, tag: string) => log.accessLog().filter((e) => e.uri.includes(`?${tag}=`)).map((e) => e.uri);
  const count = (log: NginxHandle, tag: string) => uris(log, tag).length;
  const index = (uri: string) => Number(/=(\d+)$/.exec(uri)?.[1] ?? NaN);

  /** tcpcopy (started with `args`) replays a paced load; returns both counts once the target's log is settled. */
  async function replay(tag: string, args: string[], load: { requests: number; rate: number; conns: number; keepAlive?: boolean }) {
    const tcpcopy = await startLiveTcpcopy(topo, args);
    let result;
    try {
      result = await pacedLoad(topo, { url: URL, tag, ...load });
    } finally {
      await settledCount(() => count(target, tag));
    }
    const stopped = await tcpcopy.stop();
    expect(result.code, 'load').to.equal(0);
    expect(stopped.code, stopped.stderr).to.equal(0);
    return {
      online: count(online, tag),
      target: await settledCount(() => count(target, tag)),
      summary: stopped.summary,
      stderr: tcpcopy.proc.stderr(),
    };
  }

  it('-o <online iface> with MACs in -x: data-link output, every request reaches the target', async () => {
    const { iface, mac } = topo.hosts.online;
    // The online host never sends to the target at the IP layer in this run, so it must never resolve its
    // address: an entry in its neighbour table afterwards would mean the raw IP socket was used after all.
    await topo.exec('online', 'ip', ['neigh', 'flush', 'to', TARGET]);
    const r = await replay('dlink', ['-o', iface, '-x', `80@${mac}-${TARGET}:80@${topo.hosts.target.mac}`, '-c', '203.0.113.x'],
      { requests: 300, rate: 150, conns: 10 });
    expect(r.online).to.equal(300);
    expect(r.target, `loss ratio ${1 - r.target / r.online}`).to.equal(r.online);
    expect(r.summary.output.sent, JSON.stringify(r.summary.output)).to.be.greaterThan(0);
    expect(r.summary.output.failed, JSON.stringify(r.summary.output)).to.equal(0);
    const neigh = await topo.exec('online', 'ip', ['neigh', 'show', 'to', TARGET]);
    expect(neigh.stdout.trim(), 'the online host resolved the target: IP-layer output was used').to.equal('');
    // The target saw the fake clients, not the online host.
    const addrs = new Set(target.accessLog().filter((e) => e.uri.includes('?dlink=')).map((e) => e.remoteAddr));
    expect([...addrs].every((a) => a.startsWith('203.0.113.')), [...addrs].join(',')).to.equal(true);
  });

  it('--capture pcap: libpcap captures (the default is an IP raw socket), nothing is lost at this rate', async () => {
    const r = await replay('rawcap', ['--capture', 'pcap', '-x', `80-${TARGET}:80`, '-c', '203.0.113.x'],
      { requests: 300, rate: 150, conns: 10, keepAlive: true });
    expect(r.stderr).to.match(/replaying .* capturing with libpcap/);
    expect(r.online).to.equal(300);
    expect(r.target, `loss ratio ${1 - r.target / r.online}`).to.equal(r.online);
  });

  it('-d -P -l: daemonises with a pid file and a log, replays, stops on SIGTERM and removes the pid file', async () => {
    const dir = topo.mkdir('daemon');
    const pidFile = path.join(dir, 'tcpcopy.pid');
    const logFile = path.join(dir, 'tcpcopy.log');
    const tag = 'daemon';
    let pid = 0;
    try {
      const started = await topo.exec('online', process.execPath, [TCPCOPY_BIN, '-i', topo.hosts.online.iface, '-s', ASSISTANT,
        '-x', `80-${TARGET}:80`, '-c', '203.0.113.x', '-d', '-P', pidFile, '-l', logFile], { timeoutMs: 20_000, check: false });
      const context = `exit ${started.code ?? started.signal}\nstdout: ${started.stdout}\nstderr: ${started.stderr}`;
      expect(started.code, context).to.equal(0);
      const m = /^tcpcopy: running as a daemon, pid (\d+), log in (\S+)$/m.exec(started.stdout);
      expect(m, context).to.not.equal(null);
      pid = Number(m![1]);
      expect(m![2]).to.equal(logFile);
      expect(started.stdout, context).to.match(/^tcpcopy: replaying 80-198\.51\.100\.30:80 to intercept 198\.51\.100\.40; capturing with an IP raw socket/m);

      // The pid file names a live tcpcopy, in the online host's namespace.
      expect(fs.readFileSync(pidFile, 'utf8').trim()).to.equal(String(pid));
      expect(isAlive(pid), `pid ${pid} alive`).to.equal(true);
      expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).to.include(TCPCOPY_BIN);
      // Detached: it leads a session of its own. /proc/PID/stat: "pid (comm) state ppid pgrp session ...".
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const session = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
      expect(session, stat).to.equal(pid);
      const where = await topo.exec('online', 'ip', ['netns', 'identify', String(pid)]);
      expect(where.stdout.trim()).to.equal(topo.hosts.online.netns);

      const load = await pacedLoad(topo, { url: URL, tag, requests: 200, rate: 100, conns: 8, keepAlive: true });
      expect(load.code, 'load').to.equal(0);
      const replayed = await settledCount(() => count(target, tag));
      expect(count(online, tag)).to.equal(200);
      expect(replayed).to.equal(200);

      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 10_000;
      while (isAlive(pid) && Date.now() < deadline) await sleep(50);
      expect(isAlive(pid), 'the daemon still runs 10 s after SIGTERM').to.equal(false);
      pid = 0;
      expect(fs.existsSync(pidFile), 'pid file removed').to.equal(false);

      const log = fs.readFileSync(logFile, 'utf8');
      // The closing statistics, then the start line (which the daemon reports to its parent, above).
      expect(log, log).to.match(/ info +connections +\d+ captured, \d+ replayed: \d+ completed/);
      expect(log, `${logFile} has no start line:\n${log}`).to.match(/ info replaying 80-198\.51\.100\.30:80 to intercept 198\.51\.100\.40; capturing with an IP raw socket/);
    } finally {
      if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('-g: in the first seconds only a few percent of the connections are replayed', async () => {
    const rate = 500;
    const r = await replay('grad', ['-g', '-x', `80-${TARGET}:80`, '-c', '203.0.113.x'], { requests: 2 * rate, rate, conns: 50 });
    expect(r.online).to.equal(2 * rate);
    // One request per connection; request i left the client about i / rate s after the first.
    const replayed = uris(target, 'grad').map(index);
    const firstSecond = replayed.filter((i) => i < rate).length;
    note(`-g: ${firstSecond} of ${rate} connections replayed in the first second, ${replayed.length - firstSecond} of ${rate} in the second ` +
      `(sampled out: ${r.summary.engine.capturedSampledOut} packets)`);
    expect(firstSecond / rate, 'share replayed in the first second').to.be.lessThan(0.1);
    expect(replayed.length / r.online, 'share replayed in the first two seconds').to.be.lessThan(0.1);
    // At 1 % then 2 %, 1000 connections give about 15; none at all would mean -g replays nothing.
    expect(replayed.length, 'connections replayed in the first two seconds').to.be.greaterThan(0);
    expect(r.summary.engine.capturedSampledOut).to.be.greaterThan(0);
  });

  it('the target restarts under keep-alive load: sessions are rebuilt, every request sent after it is back arrives', async () => {
    const tag = 'restart';
    const requests = 700;
    const rate = 100;
    const tcpcopy = await startLiveTcpcopy(topo, ['-x', `80-${TARGET}:80`, '-c', '203.0.113.x']);
    let backAt = 0;
    let sentBefore = new Set<string>();
    let result;
    let stopped;
    try {
      const load = pacedLoad(topo, { url: URL, tag, requests, rate, conns: 8, keepAlive: true });
      await sleep(2000);
      const t0 = Date.now();
      await target.stop();
      const downAt = Date.now();
      await sleep(1000);
      target = await startNginx(topo, 'target');
      backAt = Date.now();
      // What the clients had sent by the time the target was listening again.
      sentBefore = new Set(uris(online, tag));
      note(`target restart: stop took ${downAt - t0} ms, down ${backAt - downAt} ms; ${sentBefore.size} of ${requests} requests sent by then`);
      result = await load;
    } finally {
      await settledCount(() => count(target, tag), 1500, 20_000);
      stopped = await tcpcopy.stop();
    }
    expect(result.code, 'load').to.equal(0);
    expect(stopped.code, stopped.stderr).to.equal(0);
    const sent = uris(online, tag);
    expect(sent).to.have.length(requests);
    const arrived = new Set(uris(target, tag));
    const after = sent.filter((u) => !sentBefore.has(u));
    const missingAfter = after.filter((u) => !arrived.has(u));
    const lostDuring = [...sentBefore].filter((u) => !arrived.has(u));
    const e = stopped.summary?.engine ?? {};
    note(`target restart: ${lostDuring.length} of ${sentBefore.size} requests sent before the target was back were lost` +
      `${lostDuring.length ? ` (${lostDuring.map(index).sort((a, b) => a - b).join(',')})` : ''}; ` +
      `${after.length - missingAfter.length} of ${after.length} sent after it reached it; ` +
      `sessions rebuilt ${e.sessionsReconstructed}, handshake timeouts ${e.handshakeTimeouts}, aborted ${e.sessionsAborted}`);
    expect(after.length, 'requests sent after the restart').to.be.greaterThan(100);
    expect(missingAfter.map(index).sort((a, b) => a - b), 'requests sent after the target was back, missing there').to.deep.equal([]);
    expect(e.sessionsReconstructed, 'sessions rebuilt').to.be.greaterThan(0);
  });
});
