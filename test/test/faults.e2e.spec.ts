// Faults planted in the namespaces, each a test (issue 9). Live replay as in live-options.e2e.spec.ts: a paced load
// from the client host against nginx on the online host, tcpcopy capturing there, nginx on the target, intercept on
// the assistant; what reached the target is read from its access log, each run with its own ?tag=.
//
//  1. packet loss (nftables, output chain, `numgen random`) of 1 % and 5 % on the tcpcopy→target path (in the online
//     namespace: tcpcopy's raw packets pass that hook) and on the target→assistant path (in the target namespace),
//     under a short-connection and a keep-alive load at once: nothing is lost, and the drop counters show the loss;
//  2. the tcpcopy↔intercept channel cut (a relay between them resets its connections and refuses new ones for a few
//     seconds) and restored, with -L and handshakes given up after 3 s (--syn-retries 1): what could not finish is
//     counted and named, sessions after the reconnect lose nothing; and the channel stalled (the relay holds every
//     byte for a while): nothing is lost at all;
//  3. the target's route to the assistant removed for 6 s and restored: nothing is lost, the sessions begun in the
//     outage connect at a later SYN (the default --syn-retries 4 tries for 31 s);
//  4. two tcpcopy instances (-f 1, -f 2) on one intercept, their clients on the very same ports; one tcpcopy with two
//     intercepts (-s A,B): nothing is lost.
//
// Loss is 1 - (requests in the target's access log) / (requests in the online one), by phase where a fault has a
// start and an end: before it, during it, after it. A request lost anywhere must belong to a session that tcpcopy's
// summary counts as unfinished (named in `unfinished`, or named in a -v warning when more than 20 gave up).
//
// Found here and changed in the engine: tcpcopy gave a handshake up after 3 SYNs in 5 s, where a client's kernel keeps
// trying: under random loss p of its SYNs a session was lost with probability p³ (at 5 %, one run in 17 of the loss
// runs below lost one), and a route outage or a channel cut lost the sessions begun in its first seconds. SYNs now go
// at 0, 1, 3, 7 and 15 s and the handshake is given up at 31 s (--syn-retries 4, as net.ipv4.tcp_syn_retries).
//
// Found here and fixed in the engine: a session still in its handshake (its SYN-ACK lost on the way back) when the
// client's next connection reused its port (Linux clients reuse ports now and then) was ended and lost; the new
// connection now replays beside it on another port and the old one finishes alone (portReuses), which
// core/engine/test/target-faults.spec.ts checks.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import {
  createTopology,
  FAKE_CLIENT_NET,
  formatLoss,
  lossByPhase,
  nginxConnections,
  pacedLoad,
  plantPacketLoss,
  removeRoute,
  requireRoot,
  requireTools,
  settledCount,
  sleep,
  startIntercept,
  startLiveTcpcopy,
  startNginx,
  startTcpRelay,
  type LiveTcpcopy,
  type NginxHandle,
  type PacedLoadResult,
  type PacketLoss,
  type PhaseLoss,
  type RelayStats,
  type Topology,
} from '../src/harness';
import { runLiveLoad } from '../src/harness/live-load';

const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const REPLAY = ['-x', `80-${TARGET}:80`, '-c', '203.0.113.x'];

/** Whether `nft` is on PATH (the loss tests need it; elsewhere it only counts). */
function hasNft(): boolean {
  return spawnSync('sh', ['-c', 'command -v nft'], { timeout: 5000 }).status === 0;
}

/** Prints a measurement under the test's name (not an assertion). */
function note(text: string): void {
  process.stdout.write(`        · ${text}\n`);
}

/** Polls `cond` every 100 ms until it holds or `maxMs` passed; returns whether it held. */
async function waitUntil(cond: () => boolean, maxMs: number): Promise<boolean> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
}

describe('lossByPhase (the harness\'s split of requests into before, during and after a fault)', () => {
  it('puts each request in the first phase whose mark holds it, the rest after the last mark', () => {
    const [before, during, after] = lossByPhase(['a', 'b', 'c', 'd', 'e'], [new Set(['a', 'b']), new Set(['a', 'b', 'c'])], new Set(['a', 'c', 'e']));
    expect(before).to.deep.equal({ sent: 2, lost: 1, missing: ['b'] });
    expect(during).to.deep.equal({ sent: 1, lost: 0, missing: [] });
    expect(after).to.deep.equal({ sent: 2, lost: 1, missing: ['d'] });
    expect(formatLoss(before)).to.equal('1 of 2 (50.0 %)');
  });
});

describe('faults planted in the namespaces (loss, channel cut and stall, route outage, several tcpcopys and intercepts)', function () {
  this.timeout(120_000);
  let topo: Topology;
  let online: NginxHandle;
  let online8080: NginxHandle;
  let target: NginxHandle;
  let stopIntercept: () => Promise<void>;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['nginx']);
    topo = await createTopology();
    online = await startNginx(topo, 'online');
    online8080 = await startNginx(topo, 'online', { port: 8080 });
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
  const indices = (list: string[]) => list.map(index).sort((a, b) => a - b).join(',');
  /** The engine's counters of sessions given up, for notes and messages. */
  const gaveUp = (e: any) => `sessions ${e.sessionsCreated}: reset ${e.sessionsAborted} (handshake timeouts ${e.handshakeTimeouts}, ` +
    `session timeouts ${e.sessionTimeouts}, idle timeouts ${e.idleTimeouts}, ` +
    `reconnects given up ${e.reconnectsGivenUp}), port reuses ${e.portReuses}, rebuilt ${e.sessionsReconstructed}, SYNs refused ${e.synsRefused}, stale resets ${e.staleConnectionResets}; ` +
    `retransmissions ${e.retransmissions} (fast ${e.fastRetransmissions})`;

  /** Stops tcpcopy; expects a clean exit with a summary. */
  async function stopTcpcopy(tcpcopy: LiveTcpcopy) {
    const stopped = await tcpcopy.stop();
    expect(stopped.code, stopped.stderr).to.equal(0);
    expect(stopped.summary, stopped.stderr).to.not.equal(null);
    return stopped;
  }

  /**
   * Waits until every request of `tags` the online server logged is at the target (bounded), then until the
   * target's log is quiet: so a slow straggler is waited for, and a lost request costs at most `maxMs`.
   */
  async function settle(tags: Array<{ log: NginxHandle; tag: string }>, maxMs = 20_000): Promise<void> {
    const complete = () => tags.every(({ log, tag }) => count(target, tag) >= count(log, tag));
    if (!(await waitUntil(complete, maxMs))) {
      await settledCount(() => tags.reduce((n, { tag }) => n + count(target, tag), 0), 1500, 5000);
    }
  }

  // ---- 1. packet loss -------------------------------------------------------------------------------------

  /**
   * One run per loss level: the loss planted, tcpcopy started, a short-connection and a keep-alive load at once
   * (8 s), every request checked at the target, the nft counters read and noted.
   */
  async function lossRuns(path: string, plant: (percent: number) => Promise<PacketLoss>) {
    for (const percent of [1, 5]) {
      const short = `${path}${percent}s`;
      const keep = `${path}${percent}k`;
      const loss = await plant(percent);
      let stopped;
      let loads: PacedLoadResult[];
      let counters;
      try {
        const tcpcopy = await startLiveTcpcopy(topo, [...REPLAY, '-v']);
        try {
          loads = await Promise.all([
            pacedLoad(topo, { url: `http://${ONLINE}/blob/1k`, tag: short, requests: 480, rate: 60, conns: 20 }),
            pacedLoad(topo, { url: `http://${ONLINE}/blob/100k`, tag: keep, requests: 320, rate: 40, conns: 8, keepAlive: true }),
          ]);
          await settle([{ log: online, tag: short }, { log: online, tag: keep }]);
        } finally {
          stopped = await stopTcpcopy(tcpcopy);
        }
      } finally {
        counters = await loss.remove();
      }
      const e = stopped.summary.engine;
      const lost = (tag: string) => uris(online, tag).filter((u) => !new Set(uris(target, tag)).has(u));
      note(`${percent} % loss ${path === 'out' ? 'tcpcopy→target (online output)' : 'target→assistant (target output)'}: ` +
        `nft dropped ${counters.dropped} of ${counters.seen} packets (${((100 * counters.dropped) / Math.max(1, counters.seen)).toFixed(2)} %); ` +
        `short: ${count(target, short)} of ${count(online, short)} at the target, keep-alive: ${count(target, keep)} of ${count(online, keep)}; ` +
        `${gaveUp(e)}, idle releases ${e.idleReleases}`);
      for (const [i, l] of loads!.entries()) expect(l.code, `load ${i}: ${JSON.stringify(l)}`).to.equal(0);
      expect(count(online, short)).to.equal(480);
      expect(count(online, keep)).to.equal(320);
      // The loss was real: the rule saw the traffic and dropped about its share of it.
      expect(counters.seen, 'packets the loss rule saw').to.be.greaterThan(1000);
      expect(counters.dropped, `dropped of ${counters.seen}`).to.be.within(Math.floor(counters.seen * percent / 300), Math.ceil(counters.seen * percent / 50));
      // Nothing lost: a session is lost only if all 5 of its SYNs (or their answers) are (p⁵: 3 in 10 million at 5 %).
      const lostConns = connectionLosses([short, keep], []).filter((c) => c.lost.length);
      expectAccounted(lostConns, stopped.summary, stopped.stderr, `${percent} % loss`);
      const given = givenUp(stopped.summary, stopped.stderr);
      expect(given.total, `sessions given up at ${percent} % (${gaveUp(e)}; lost short ${indices(lost(short))}, keep-alive ${indices(lost(keep))})`)
        .to.equal(0);
      expect(lostConns.length, 'connections with requests missing at the target').to.equal(0);
    }
  }

  it('1 % and 5 % loss on the tcpcopy→target path (nft output chain in the online namespace): nothing lost', async function () {
    requireTools(this, ['nft']);
    await lossRuns('out', (percent) => plantPacketLoss(topo, 'online', { match: `ip daddr ${TARGET} tcp dport 80`, percent }));
  });

  it('1 % and 5 % loss on the target→assistant path (nft output chain in the target namespace): nothing lost', async function () {
    requireTools(this, ['nft']);
    await lossRuns('back', (percent) => plantPacketLoss(topo, 'target', { match: `ip daddr ${FAKE_CLIENT_NET} tcp sport 80`, percent }));
  });

  // ---- a fault with a start and an end: loss before, during and after it ----------------------------------

  interface FaultRunResult {
    tags: { short: string; keep: string };
    /** Requests lost by phase (when the online server logged them): before the fault, during it, after it. */
    short: PhaseLoss[];
    keep: PhaseLoss[];
    /** The online connections of both loads, each in the phase of its first request. */
    connections: ConnectionLoss[];
    summary: any;
    stderr: string;
  }

  /**
   * tcpcopy (with `args`) replays a short-connection load (50/s) and a keep-alive load (30/s over up to 6 connections)
   * of `seconds`; 3 s in, `fault` starts the fault, lasts it out and ends it (resolving once recovery is observed).
   * Phases: before (what the online server had logged 250 ms before the fault began: a guard band, so a session
   * still in its handshake when the fault strikes is not taken for one that was done), during (up to the end of
   * `fault`), after.
   */
  async function faultRun(tags: { short: string; keep: string }, args: string[], seconds: number, fault: (tcpcopy: LiveTcpcopy) => Promise<void>): Promise<FaultRunResult> {
    // -v: every session given up is named in a warning (the summary names only the first 20).
    const tcpcopy = await startLiveTcpcopy(topo, [...args, '-v']);
    const marks: Array<Set<string>> = [];
    const sent = () => new Set([...uris(online, tags.short), ...uris(online, tags.keep)]);
    let stopped;
    let loads: PacedLoadResult[];
    try {
      const loading = Promise.all([
        pacedLoad(topo, { url: `http://${ONLINE}/blob/1k`, tag: tags.short, requests: 50 * seconds, rate: 50, conns: 20 }),
        pacedLoad(topo, { url: `http://${ONLINE}/blob/1k`, tag: tags.keep, requests: 30 * seconds, rate: 30, conns: 6, keepAlive: true }),
      ]);
      try {
        await sleep(2750);
        marks.push(sent());
        await sleep(250); // the guard band
        await fault(tcpcopy);
        marks.push(sent());
      } finally {
        loads = await loading;
      }
      // What connections begun before or after the fault sent is expected: wait for it (bounded), then for quiet.
      const expected = () => connectionLosses([tags.short, tags.keep], marks).every((c) => c.phase === 1 || c.lost.length === 0);
      await waitUntil(expected, 20_000);
      await settledCount(() => count(target, tags.short) + count(target, tags.keep), 1500, 10_000);
    } finally {
      stopped = await stopTcpcopy(tcpcopy);
    }
    for (const [i, l] of loads!.entries()) expect(l.code, `load ${i}: ${JSON.stringify(l)}`).to.equal(0);
    expect(count(online, tags.short)).to.equal(50 * seconds);
    expect(count(online, tags.keep)).to.equal(30 * seconds);
    const phases = (tag: string) => lossByPhase(uris(online, tag), marks.map((m) => new Set([...m].filter((u) => u.includes(`?${tag}=`)))), arrived(tag));
    return {
      tags,
      short: phases(tags.short),
      keep: phases(tags.keep),
      connections: connectionLosses([tags.short, tags.keep], marks),
      summary: stopped.summary,
      stderr: stopped.stderr,
    };
  }

  const arrived = (tag: string) => new Set(uris(target, tag));

  interface ConnectionLoss {
    tag: string;
    /** nginx's $connection at the online server, and the client port (as tcpcopy captured it). */
    id: number;
    port: number;
    /** The phase of its first request (0 before, 1 during, 2 after the fault; 0 without marks). */
    phase: number;
    sent: number;
    /** Its requests missing at the target. */
    lost: string[];
  }

  /** The online server's connections that carried requests of `tags`, with what of them is missing at the target. */
  function connectionLosses(tags: string[], marks: Array<Set<string>>): ConnectionLoss[] {
    const out: ConnectionLoss[] = [];
    for (const tag of tags) {
      const here = arrived(tag);
      const entries = online.accessLog().filter((l) => l.uri.includes(`?${tag}=`));
      for (const c of nginxConnections(entries)) {
        const first = c.entries[0].uri;
        const phase = marks.findIndex((m) => m.has(first));
        out.push({
          tag,
          id: c.id,
          port: c.entries[0].remotePort,
          phase: phase < 0 ? marks.length : phase,
          sent: c.entries.length,
          lost: c.entries.map((e) => e.uri).filter((u) => !here.has(u)),
        });
      }
    }
    return out;
  }

  /**
   * The client ports (as captured: the online log's $remote_port) of the sessions tcpcopy gave up: those the summary
   * names unfinished, and, past its first 20, those its -v warnings name (handshake timeouts and refusals).
   */
  function givenUp(summary: any, stderr: string): { ports: Set<number>; total: number } {
    const u = summary.unfinished;
    const ports = new Set<number>(u.sessions.map((s: any) => Number(/^[\d.]+:(\d+)->/.exec(s.connection)?.[1])));
    for (const m of stderr.matchAll(/(?:no handshake with the target for|the target refused) [\d.]+:(\d+)->/g)) ports.add(Number(m[1]));
    return { ports, total: u.sessions.length + u.more };
  }

  /**
   * Every online connection with requests lost is a session tcpcopy counts as unfinished: as many unfinished as such
   * connections, and each one's client port named, in the summary (its first 20) or in a -v warning (handshake
   * timeouts and refusals have one).
   */
  function expectAccounted(lost: ConnectionLoss[], summary: any, stderr: string, what: string): void {
    const given = givenUp(summary, stderr);
    const e = summary.engine;
    const list = (cs: ConnectionLoss[]) => cs.slice(0, 10).map((c) => `port ${c.port} (${c.tag}, ${c.lost.length} of ${c.sent} lost)`).join(', ') +
      (cs.length > 10 ? ` and ${cs.length - 10} more` : '');
    const unnamed = lost.filter((c) => !given.ports.has(c.port));
    expect(given.total, `${what}: unfinished sessions vs ${lost.length} connections with requests lost (${gaveUp(e)}): ${list(lost)}`)
      .to.be.at.least(lost.length);
    expect(unnamed.length, `${what}: connections with requests lost that tcpcopy does not name (${gaveUp(e)}): ${list(unnamed)}`)
      .to.equal(0);
  }

  /** Connections begun before or after the fault lose nothing; those begun during it lose only what tcpcopy counts. */
  function expectPhases(r: FaultRunResult, what: string): void {
    const list = (cs: ConnectionLoss[]) => cs.map((c) => `port ${c.port} (${c.tag}, requests ${indices(c.lost)})`).join(', ');
    const before = r.connections.filter((c) => c.phase === 0);
    const after = r.connections.filter((c) => c.phase === 2);
    expect(after.filter((c) => c.tag === r.tags.short).length, `${what}: short connections begun after it`).to.be.greaterThan(100);
    expect(list(before.filter((c) => c.lost.length)), `${what}: connections begun before it with requests missing at the target`).to.equal('');
    expect(list(after.filter((c) => c.lost.length)), `${what}: connections begun after it with requests missing at the target`).to.equal('');
    expectAccounted(r.connections.filter((c) => c.lost.length), r.summary, r.stderr, what);
  }

  function phaseNote(what: string, r: FaultRunResult): void {
    const [sb, sd, sa] = r.short;
    const [kb, kd, ka] = r.keep;
    const e = r.summary.engine;
    const u = r.summary.unfinished;
    const reasons = new Map<string, number>();
    for (const s of u.sessions) reasons.set(s.reason, (reasons.get(s.reason) ?? 0) + 1);
    const keep = r.connections.filter((c) => c.tag === r.tags.keep);
    const keepPhases = [0, 1, 2].map((ph) => keep.filter((c) => c.phase === ph))
      .map((cs) => `${cs.length}${cs.some((c) => c.lost.length) ? ` (${cs.filter((c) => c.lost.length).length} with losses)` : ''}`);
    note(`${what}, lost: short connections before ${formatLoss(sb)}, during ${formatLoss(sd)}, after ${formatLoss(sa)}; ` +
      `keep-alive requests before ${formatLoss(kb)}, during ${formatLoss(kd)}, after ${formatLoss(ka)}; ` +
      `keep-alive connections begun before/during/after: ${keepPhases.join(' / ')}`);
    note(`${what}, tcpcopy counted: ${gaveUp(e)}; unfinished ${u.sessions.length + u.more} ` +
      `(${[...reasons].map(([k, v]) => `${k} ${v}`).join(', ')}${u.more ? `, ${u.more} not named` : ''})`);
  }

  // ---- 2. the channel cut and restored, or stalled ---------------------------------------------------------

  it('the channel cut for 6 s and restored (relay between tcpcopy and intercept, -L, --syn-retries 1): sessions given up counted and named, nothing lost after the reconnect', async () => {
    const relay = await startTcpRelay(topo, 'online', { listenPort: 36600, connectAddr: ASSISTANT, connectPort: 36524 });
    let info = '';
    let r: FaultRunResult;
    try {
      // --syn-retries 1: handshakes are given up after 3 s, so sessions begun in the cut are lost, as a longer cut
      // would lose them with the default: what this checks is that each is counted and named.
      r = await faultRun({ short: 'cuts', keep: 'cutk' }, [...REPLAY, '-s', relay.address, '-L', '--syn-retries', '1'], 16, async (tcpcopy) => {
        expect(tcpcopy.proc.stderr()).to.include(`to intercept ${relay.address}`);
        const cut = await relay.cut();
        const cutAt = Date.now();
        expect(cut.cut, 'channels the cut reset').to.equal(2);
        await tcpcopy.proc.waitFor(/lost the connection to intercept/, { stream: 'stderr', timeoutMs: 5000 });
        await sleep(6000 - (Date.now() - cutAt)); // the outage
        const restored = await relay.restore();
        // Recovery: tcpcopy tries again 1, 3, 7 s after the loss (doubling backoff), so about 7 s after the cut.
        const m = await tcpcopy.proc.waitFor(/reconnected to intercept [^\n]*/, { stream: 'stderr', timeoutMs: 15_000 });
        info = `relay refused ${restored.refused} connection attempts while cut; tcpcopy back ${Date.now() - cutAt} ms after the cut: "${m[0]}"`;
      });
    } finally {
      await relay.stop();
    }
    const ic = r!.summary.intercept;
    note(`channel cut: ${info}; intercept client: reconnects ${ic.reconnects}, routes registered again ${ic.routesReregistered}, ` +
      `queued routes sent ${ic.routesQueueSent}, dropped ${ic.routesDropped}`);
    phaseNote('channel cut', r!);
    note(`channel cut, tcpcopy's first warning for such a session: "${/no handshake with the target[^\n]*/.exec(r!.stderr)?.[0] ?? '(none)'}"`);
    expect(ic.reconnects, 'channels reconnected').to.equal(2);
    expect(r!.summary.engine.handshakeTimeouts, 'sessions of the cut given up').to.be.greaterThan(0);
    expectPhases(r!, 'channel cut');
  });

  it('the channel delayed by 20 ms each way, then stalled for 3 s (the relay holds every byte, then delivers): nothing lost', async () => {
    const relay = await startTcpRelay(topo, 'online', { listenPort: 36601, connectAddr: ASSISTANT, connectPort: 36524, delayMs: 20 });
    let held: RelayStats;
    let r: FaultRunResult;
    try {
      r = await faultRun({ short: 'stalls', keep: 'stallk' }, [...REPLAY, '-s', relay.address], 9, async () => {
        await relay.stall();
        await sleep(3000); // the stall
        held = await relay.stats();
        await relay.resume();
      });
    } finally {
      await relay.stop();
    }
    note(`channel delayed and stalled: ${held!.queued} bytes held by the relay at the end of the stall`);
    phaseNote('channel stalled', r!);
    expect(held!.queued, 'bytes the relay held during the stall').to.be.greaterThan(0);
    // Nothing lost: a stall of 3 s ends before any handshake gives up (SYNs at 0, 1, 3 s; given up at 5 s), and a
    // client reusing the port of a session that waits replays beside it.
    const lost = r!.connections.filter((c) => c.lost.length);
    const e = r!.summary.engine;
    expect(lost.length, `connections with requests lost (${gaveUp(e)}): ${lost.map((c) => `port ${c.port} (${c.tag}, requests ${indices(c.lost)})`).join(', ')}`)
      .to.equal(0);
    expect(e.handshakeTimeouts + e.sessionTimeouts, 'sessions given up').to.equal(0);
  });

  // ---- 3. the target's route to the assistant removed and restored ------------------------------------------

  it('the target\'s route to the assistant removed for 6 s and restored: nothing lost, the sessions begun in it connect at a later SYN', async () => {
    let unreachable = '';
    const r = await faultRun({ short: 'routes', keep: 'routek' }, REPLAY, 14, async () => {
      const outage = await removeRoute(topo, 'target', FAKE_CLIENT_NET, ASSISTANT);
      try {
        // The fault is real: the target has no way to the fake clients now.
        const get = await topo.exec('target', 'ip', ['route', 'get', '203.0.113.1'], { check: false });
        unreachable = (get.stderr || get.stdout).trim();
        await sleep(6000 - (Date.now() - outage.removedAt)); // the outage
      } finally {
        await outage.restore();
      }
    });
    phaseNote('route outage', r);
    note(`route outage, tcpcopy's first warning for such a session: "${/no handshake with the target[^\n]*/.exec(r.stderr)?.[0] ?? '(none)'}"`);
    expect(unreachable, 'ip route get 203.0.113.1 in the target during the outage').to.match(/unreachable/i);
    // SYNs go at 0, 1, 3, 7 and 15 s: a session begun in the outage has one after the route is back, well before 31 s.
    expect(r.summary.engine.handshakeTimeouts, 'handshake timeouts').to.equal(0);
    expectPhases(r, 'route outage');
    const during = r.connections.filter((c) => c.phase === 1);
    expect(during.filter((c) => c.tag === r.tags.short).length, 'short connections begun in the outage').to.be.greaterThan(100);
    expect(during.filter((c) => c.lost.length).map((c) => `port ${c.port} (${c.tag}, requests ${indices(c.lost)})`).join(', '),
      'connections begun in the outage with requests missing at the target').to.equal('');
  });

  // ---- 4. several tcpcopys, several intercepts --------------------------------------------------------------

  it('two tcpcopy instances (-f 1 and -f 2) share one intercept, their clients on the same ports: nothing lost', async () => {
    const a = await startLiveTcpcopy(topo, ['-x', `80-${TARGET}:80`, '-c', '203.0.113.x', '-f', '1']);
    const b = await startLiveTcpcopy(topo, ['-x', `8080-${TARGET}:80`, '-c', '203.0.113.x', '-f', '2']);
    let sa;
    let sb;
    let loads;
    try {
      // The same client address and the same client ports towards both online ports: both tcpcopys map the client to
      // 203.0.113.1 (their first fake address), so only -f keeps their connections to the target apart.
      const plan = { host: ONLINE, path: '/blob/1k', mode: 'short' as const, conns: 10, rate: 50, durationMs: 8000, maxRequests: 400,
        localAddrs: [topo.hosts.client.addr], portFirst: 30000, portCount: 1000, portOffset: 0 };
      loads = await Promise.all([runLiveLoad(topo, { ...plan, port: 80, tag: 'f1' }), runLiveLoad(topo, { ...plan, port: 8080, tag: 'f2' })]);
      await settle([{ log: online, tag: 'f1' }, { log: online8080, tag: 'f2' }]);
    } finally {
      sa = await stopTcpcopy(a);
      sb = await stopTcpcopy(b);
    }
    for (const l of loads!) expect(l.code, JSON.stringify(l)).to.equal(0);
    const ports = (tag: string) => new Set(target.accessLog().filter((l) => l.uri.includes(`?${tag}=`)).map((l) => `${l.remoteAddr}:${l.remotePort}`));
    const shared = [...ports('f1')].filter((p) => ports('f2').has(p));
    note(`two tcpcopys: -f 1 replayed ${count(target, 'f1')} of ${count(online, 'f1')}, -f 2 ${count(target, 'f2')} of ${count(online8080, 'f2')}; ` +
      `fake client address:port used by both: ${shared.length}; ${gaveUp(sa.summary.engine)} / ${gaveUp(sb.summary.engine)}`);
    expect(count(online, 'f1')).to.equal(400);
    expect(count(online8080, 'f2')).to.equal(400);
    expect(shared, 'fake client tuples both tcpcopys used').to.deep.equal([]);
    // Without -f both would have used 203.0.113.1:30000-30399; -f n moves the ports by n × 2048.
    const outside = (tag: string, first: number) => [...ports(tag)].filter((p) => p !== `203.0.113.1:${Number(p.split(':')[1])}` ||
      Number(p.split(':')[1]) < first || Number(p.split(':')[1]) >= first + 1000);
    expect(outside('f1', 30000 + 2048), 'fake clients of -f 1 outside 203.0.113.1:32048-33047').to.deep.equal([]);
    expect(outside('f2', 30000 + 4096), 'fake clients of -f 2 outside 203.0.113.1:34096-35095').to.deep.equal([]);
    expect(count(target, 'f1'), 'replayed by -f 1').to.equal(400);
    expect(count(target, 'f2'), 'replayed by -f 2').to.equal(400);
  });

  it('one tcpcopy with two intercepts (-s A,B, the second on port 36525): nothing lost', async () => {
    const second = await startIntercept(topo, [80], ['-p', '36525']);
    // A rule that drops nothing counts the target's packets to the fake clients (each intercept captures them all).
    const sentByTarget = hasNft() ? await plantPacketLoss(topo, 'target', { match: `ip daddr ${FAKE_CLIENT_NET} tcp sport 80`, percent: 0, table: 'count' }) : null;
    let stopped;
    let loads: PacedLoadResult[];
    let targetPackets;
    let secondStats = '';
    try {
      const tcpcopy = await startLiveTcpcopy(topo, [...REPLAY, '-s', `${ASSISTANT}:36524,${ASSISTANT}:36525`]);
      try {
        loads = await Promise.all([
          pacedLoad(topo, { url: `http://${ONLINE}/blob/1k`, tag: 'twos', requests: 400, rate: 50, conns: 20 }),
          pacedLoad(topo, { url: `http://${ONLINE}/blob/100k`, tag: 'twok', requests: 240, rate: 30, conns: 6, keepAlive: true }),
        ]);
        await settle([{ log: online, tag: 'twos' }, { log: online, tag: 'twok' }]);
      } finally {
        stopped = await stopTcpcopy(tcpcopy);
      }
    } finally {
      await second.stop();
      secondStats = /stats: [^\n]*/.exec(second.proc.stderr() + second.proc.stdout())?.[0] ?? '(no stats line)';
      targetPackets = (await sentByTarget?.remove()) ?? null;
    }
    const e = stopped.summary.engine;
    const ic = stopped.summary.intercept;
    note(`two intercepts: short ${count(target, 'twos')} of ${count(online, 'twos')}, keep-alive ${count(target, 'twok')} of ${count(online, 'twok')}; ` +
      `the target sent ${targetPackets?.seen ?? '(no nft to count)'} packets to fake clients, tcpcopy received ${ic.repliesReceived} replies` +
      `${targetPackets ? ` (${(ic.repliesReceived / Math.max(1, targetPackets.seen)).toFixed(2)} each)` : ''}, unmatched ${e.repliesUnmatched}; ` +
      `second intercept: ${secondStats}; ${gaveUp(e)}`);
    for (const [i, l] of loads!.entries()) expect(l.code, `load ${i}: ${JSON.stringify(l)}`).to.equal(0);
    expect(ic.intercepts).to.equal(2);
    expect(ic.channels).to.equal(4);
    expect(count(online, 'twos')).to.equal(400);
    expect(count(online, 'twok')).to.equal(240);
    expect(count(target, 'twos'), 'short connections replayed').to.equal(400);
    expect(count(target, 'twok'), 'keep-alive requests replayed').to.equal(240);
    // Both intercepts returned the replies (each captures all of them).
    if (targetPackets) expect(ic.repliesReceived / targetPackets.seen, 'replies received per packet the target sent').to.be.greaterThan(1.5);
    expect(Number(/routed (\d+)/.exec(secondStats)?.[1] ?? 0), `replies the second intercept returned: ${secondStats}`).to.be.greaterThan(0);
  });
});
