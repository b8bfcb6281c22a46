// Many short sessions (issue 9, robustness): "a million short sessions keep tcpcopy's RSS under its -m limit and
// flat over time, with no more retries per unanswered session than TCP would make in that time; new sessions are
// refused near the limit and counted, old ones finish."
//
// The real tcpcopy captures live on the online host (-m, --stats-interval 1), nginx online and on the target,
// intercept on the assistant; the load is short connections (one request each) from 50 client addresses, every
// client 4-tuple new (test/src/soak/short-sessions.ts). A million takes about 7 minutes on the project's 2-core
// machine, so the suite replays 200,000 and `npm run soak -- --sessions 1000000` the full million (docs/soak.md).
//
//  1. 200,000 sessions at 2,500/s with -m 200: every request reaches the target (a missing one is named), tcpcopy's
//     RSS (VmRSS every second) stays under -m and is flat after the warm-up (the first quarter of the load): the
//     highest and the lowest sample of the last quarter within 10 % of those of the second quarter (near -m the RSS
//     is a saw, the guard's collections taking it down from its 85 % line), no session is refused for memory, and
//     afterwards no session is left open;
//  2. the same load while the target's route to the assistant is gone for 15 s (no reply comes back), with a -m
//     set from the load's own working set (its peak RSS over 10 s of the load, × 1.35: the guard's 85 % line then
//     sits 15 % above it, and the unanswered sessions must push past it): the
//     unanswered sessions pile up until tcpcopy refuses new ones near -m (counted), its RSS stays under -m, the
//     sessions it took end by themselves (handshake timeout, --syn-retries 2: 3 SYNs, 1 s then 2 s apart, then 1 RST, from a capture
//     of tcpcopy's output), and once the route is back and those sessions are over every new session is replayed.
import { expect } from 'chai';
import * as path from 'node:path';
import {
  FAKE_CLIENT_NET,
  note,
  readPackets,
  removeRoute,
  requireRoot,
  requireTools,
  sleep,
  startTcpdump,
  synCountsText,
  synRetries,
  type Capture,
} from '../src/harness';
import { mib, MiB } from '../src/soak/proc-sample';
import {
  ASSISTANT,
  lastSessionCounters,
  runShortLoad,
  rssQuarters,
  settleRig,
  startRig,
  TARGET,
  type Rig,
  type RssQuarters,
  type ShortLoadResult,
} from '../src/soak/short-sessions';

describe('many short sessions through a live replay (200,000 here; npm run soak -- --sessions 1000000 for the million)', function () {
  describe('200,000 short sessions at 2,500/s, -m 200', function () {
    this.timeout(30_000);
    const SESSIONS = 200_000;
    const RATE = 2500;
    const LIMIT_MB = 200;
    let rig: Rig | undefined;
    const r = {
      load: null as ShortLoadResult | null,
      quarters: null as RssQuarters | null,
      rssBySecond: [] as number[],
      settled: null as Awaited<ReturnType<typeof settleRig>> | null,
      online: 0,
      target: 0,
      strays: 0,
      missing: { count: 0, named: [] as string[] },
      summary: null as any,
      code: null as number | null,
      unfinished: '',
    };

    before(async function () {
      requireRoot(this);
      requireTools(this, ['nginx']);
      this.timeout(240_000);
      rig = await startRig({ memoryLimitMb: LIMIT_MB, tagPrefix: 'ms', maxRate: RATE });
      const from = rig.rss.elapsed();
      r.load = await runShortLoad(rig, { sessions: SESSIONS, rate: RATE, tag: 'ms', portOffset: 0 });
      const to = rig.rss.elapsed();
      r.settled = await settleRig(rig);
      r.quarters = rssQuarters(rig, from, to);
      r.rssBySecond = rig.rss.between(from, to).map((s) => s.rss);
      rig.ledger.update();
      [r.online, r.target, r.strays] = [rig.ledger.online, rig.ledger.target, rig.ledger.strays()];
      const missing = rig.ledger.missing();
      r.missing = { count: missing.count, named: missing.named.map((m) => `${m.tag}=${m.n} from ${m.client}`) };
      const stopped = await rig.tcpcopy.stop();
      [r.summary, r.code] = [stopped.summary, stopped.code];
      r.unfinished = (r.summary?.unfinished?.sessions ?? []).map((u: any) => `${u.connection} (${u.reason})`).join(', ');
      const e = r.summary?.engine ?? {};
      const secs = r.load.runs.reduce((a, x) => a + x.load.elapsedMs, 0) / 1000;
      note(`load: ${r.load.sent} sessions (${r.load.ok} answered online, ${r.load.errors} errors) in ${secs.toFixed(1)} s (${(r.load.ok / secs).toFixed(0)}/s), ${r.load.runs.length} runs`);
      note(`tcpcopy RSS (MiB) every second of the load: ${r.rssBySecond.map((x) => mib(x, 0)).join(' ')}`);
      const q = r.quarters;
      note(`RSS of the second quarter ${mib(q.secondMin)}-${mib(q.secondMax)} MiB, of the last ${mib(q.lastMin)}-${mib(q.lastMax)} MiB, peak ${mib(q.peak)} MiB (-m ${LIMIT_MB})`);
      note(`requests online ${r.online}, at the target ${r.target}, missing ${r.missing.count}${r.missing.count ? ` (${r.missing.named.slice(0, 5).join(', ')})` : ''}`);
      note(`after the load (${r.settled.waitedMs} ms): sessions open ${r.settled.counters?.open}, intercept routes ${r.settled.routes}; ` +
        `tcpcopy: sessions ${e.sessionsCreated}, closed ${e.sessionsCompleted}, reset ${e.sessionsAborted}, refused for memory ${e.capturedRefusedMemory} packets, ` +
        `retransmissions ${e.retransmissions}, idle releases ${e.idleReleases}, capture gaps ${e.captureGaps}`);
    });

    after(async () => {
      await rig?.close();
    });

    it('sends 200,000 short sessions, each answered online', () => {
      expect(r.load?.errorSamples, 'load errors').to.deep.equal([]);
      expect(r.load?.ok, 'sessions answered online').to.equal(SESSIONS);
      expect(r.online, 'requests in the online access log').to.equal(SESSIONS);
    });

    it('replays every session: each request at the target (a missing one named), none made up', () => {
      expect(r.missing.count, `requests missing at the target: ${r.missing.named.join(', ')}; tcpcopy's unfinished: ${r.unfinished || 'none'}`).to.equal(0);
      expect(r.target, 'requests at the target').to.equal(r.online);
      expect(r.strays, 'requests at the target the online server never had').to.equal(0);
    });

    it('keeps tcpcopy\'s RSS under -m and flat after the warm-up: the last quarter within 10 % of the second', () => {
      const q = r.quarters!;
      expect(r.rssBySecond.length, 'RSS samples').to.be.greaterThan(40);
      expect(q.peak / MiB, 'peak VmRSS, MiB').to.be.lessThan(LIMIT_MB);
      expect(q.lastMax, `highest RSS of the last quarter (${mib(q.lastMax)} MiB) against the second's (${mib(q.secondMax)} MiB)`).to.be.at.most(q.secondMax * 1.1);
      expect(q.lastMin, `lowest RSS of the last quarter (${mib(q.lastMin)} MiB) against the second's (${mib(q.secondMin)} MiB)`).to.be.at.most(q.secondMin * 1.1);
    });

    it('refuses nothing for memory, and leaves no session open afterwards', () => {
      const e = r.summary?.engine;
      expect(r.code, 'tcpcopy exit after SIGTERM').to.equal(0);
      expect(e, 'tcpcopy summary').to.be.an('object');
      expect(e.capturedRefusedMemory, 'packets refused for memory').to.equal(0);
      expect(e.sessionsCreated, 'sessions').to.equal(SESSIONS);
      // Every session ended by itself before tcpcopy was stopped: a stop resets (and counts) what is still open.
      expect(r.settled?.counters?.open, 'sessions open after the load (tcpcopy\'s periodic line)').to.equal(0);
      expect(e.sessionsCompleted, 'sessions closed').to.equal(e.sessionsCreated);
      expect(e.sessionsAborted, `sessions reset (${r.unfinished || 'none named'})`).to.equal(0);
    });
  });

  describe('the target\'s replies gone for 15 s under the same load, -m 1.35 × its working set', function () {
    this.timeout(30_000);
    const RATE = 2500;
    /** -m over the peak RSS of the load alone. */
    const LIMIT_OVER_PEAK = 1.35;
    let LIMIT_MB = NaN;
    const PHASE_S = { before: 8, outage: 15, after: 8 };
    let rig: Rig | undefined;
    let cap: Capture | undefined;
    const r = {
      phases: {} as Record<'before' | 'outage' | 'after', { online: number; target: number; sent: number }>,
      peak: NaN,
      rssBySecond: [] as number[],
      refusedAt: NaN,
      admittedAgainAt: NaN,
      exited: null as { code: number | null } | null,
      summary: null as any,
      code: null as number | null,
      packets: [] as string[],
      tcpdumpDrops: NaN,
      unreachable: '',
      stderr: '',
    };

    before(async function () {
      requireRoot(this);
      requireTools(this, ['nginx', 'tcpdump']);
      this.timeout(200_000);
      // --syn-retries 2: the sessions of the outage give up at 7 s, within the run (the default tries for 31 s, longer
      // than this outage: faults.e2e shows those sessions connecting after a route outage; this is the guard's test).
      rig = await startRig({ memoryLimitMb: 1024, tagPrefix: 'mo', maxRate: RATE, tcpcopyArgs: ['--syn-retries', '2'] });
      // The working set of this load on this build and machine: the peak RSS of a first tcpcopy over 10 s of it.
      const warm = await runShortLoad(rig, { sessions: RATE * 10, rate: RATE, tag: 'mowarm', portOffset: 0 });
      const workingSet = rig.rss.max();
      LIMIT_MB = Math.ceil((workingSet / MiB) * LIMIT_OVER_PEAK);
      await rig.restartTcpcopy(LIMIT_MB);
      note(`the load alone: tcpcopy's peak RSS ${mib(workingSet)} MiB over ${warm.sent} sessions; the measured tcpcopy gets -m ${LIMIT_MB}`);
      // tcpcopy's SYNs and RSTs to the target (one SYN per session when all goes well).
      cap = await startTcpdump(rig.topo, 'online', rig.topo.hosts.online.iface, path.join(rig.topo.workdir, 'syn-rst.pcap'),
        `src net ${FAKE_CLIENT_NET} and dst host ${TARGET} and tcp[tcpflags] & (tcp-syn|tcp-rst) != 0`, { bufferKiB: 65536 });
      const stderr = () => rig!.tcpcopy.proc.stderr();
      const t0 = rig.rss.elapsed();
      let portOffset = warm.nextPortOffset;
      const phase = async (name: 'before' | 'outage' | 'after') => {
        const load = await runShortLoad(rig!, { sessions: RATE * PHASE_S[name], rate: RATE, tag: `mo${name}`, portOffset });
        portOffset = load.nextPortOffset;
        return load.sent;
      };
      const sent = { before: await phase('before'), outage: 0, after: 0 };
      // The route goes once the target has every request of the first phase (bounded).
      const beforeDone = () => {
        const c = rig!.ledger.update().countTags((t) => t.startsWith('mobefore'));
        return c.target >= c.online;
      };
      for (const end = Date.now() + 10_000; !beforeDone() && Date.now() < end; ) await sleep(100);
      const outage = await removeRoute(rig.topo, 'target', FAKE_CLIENT_NET, ASSISTANT);
      try {
        const get = await rig.topo.exec('target', 'ip', ['route', 'get', '203.0.113.1'], { check: false });
        r.unreachable = (get.stderr || get.stdout).trim();
        sent.outage = await phase('outage');
      } finally {
        await outage.restore();
      }
      // The sessions of the outage end by their handshake timeout (7 s) and linger (2 s); then memory is
      // collected and tcpcopy admits new sessions again: its periodic line and its guard say so (a barrier, bounded).
      const admitting = () => stderr().lastIndexOf('new connections are replayed') > stderr().lastIndexOf('new connections are not replayed');
      const waitFrom = Date.now();
      while (!(admitting() && lastSessionCounters(stderr())?.open === 0) && Date.now() - waitFrom < 20_000 && !rig.tcpcopy.proc.exitStatus()) await sleep(100);
      r.admittedAgainAt = rig.rss.elapsed() - t0;
      sent.after = await phase('after');
      await settleRig(rig);
      r.exited = rig.tcpcopy.proc.exitStatus();
      r.rssBySecond = rig.rss.between(t0, Infinity).map((s) => s.rss);
      r.peak = Math.max(...r.rssBySecond);
      rig.ledger.update();
      for (const name of ['before', 'outage', 'after'] as const) {
        r.phases[name] = { ...rig.ledger.countTags((t) => t.startsWith(`mo${name}`)), sent: sent[name] };
      }
      const stopped = await rig.tcpcopy.stop();
      [r.summary, r.code, r.stderr] = [stopped.summary, stopped.code, stopped.stderr];
      const capStats = await cap.stop();
      cap = undefined;
      r.tcpdumpDrops = capStats.droppedByKernel;
      r.packets = readPackets(path.join(rig.topo.workdir, 'syn-rst.pcap'), '', ['-S', '-tt']);
      const e = r.summary?.engine ?? {};
      note(`phases (sent / online / at the target): ${Object.entries(r.phases).map(([k, v]) => `${k} ${v.sent} / ${v.online} / ${v.target}`).join('; ')}`);
      note(`tcpcopy RSS (MiB) every second: ${r.rssBySecond.map((x) => mib(x, 0)).join(' ')} (peak ${mib(r.peak)}, -m ${LIMIT_MB})`);
      note(`memory guard: ${r.stderr.split('\n').filter((l) => /-m limit/.test(l)).map((l) => l.replace(/^tcpcopy: /, '')).slice(0, 6).join(' | ') || 'silent'}`);
      note(`tcpcopy: sessions ${e.sessionsCreated}, closed ${e.sessionsCompleted}, reset ${e.sessionsAborted} (handshake timeouts ${e.handshakeTimeouts}, ` +
        `session timeouts ${e.sessionTimeouts}), port reuses ${e.portReuses}, faked handshakes ${e.sessionsFakedHandshake}, ` +
        `refused for memory ${e.capturedRefusedMemory} packets; exit ${r.code}`);
    });

    after(async () => {
      await cap?.stop().catch(() => undefined);
      await rig?.close();
    });

    it('the outage is real: the target has no route to the fake clients', () => {
      expect(r.unreachable, 'ip route get 203.0.113.1 in the target during the outage').to.match(/unreachable/i);
    });

    it('tcpcopy keeps running with its RSS under -m', () => {
      expect(r.exited, 'tcpcopy exited by itself').to.equal(null);
      expect(r.code, 'exit after SIGTERM').to.equal(0);
      expect(r.summary?.end, 'how the replay ended').to.equal('stopped');
      expect(r.peak / MiB, 'peak VmRSS, MiB').to.be.lessThan(LIMIT_MB);
    });

    it('refuses new sessions near -m and counts them; the sessions it took end by themselves', () => {
      const e = r.summary.engine;
      expect(e.capturedRefusedMemory, 'packets of new connections refused for memory').to.be.greaterThan(0);
      expect(r.stderr, 'the guard\'s warning').to.match(/near the -m limit: new connections are not replayed/);
      // Every session given up has its own reason (its handshake or the session timed out); none was cut by the
      // guard or by the stop.
      expect(e.sessionsAborted, 'sessions reset').to.equal(e.handshakeTimeouts + e.sessionTimeouts);
      expect(e.handshakeTimeouts, 'sessions of the outage given up by their handshake timeout').to.be.greaterThan(0);
      // Whatever the outage lost was counted: given up (named in the summary) or refused for memory.
      const lost = r.phases.outage.online - r.phases.outage.target;
      expect(lost, 'requests of the outage missing at the target').to.be.at.most(e.handshakeTimeouts + e.capturedRefusedMemory);
    });

    it('sends no more than TCP would per unanswered session: at most 3 SYNs (1 s, then 2 s apart) and 1 RST', () => {
      // A packet tcpdump dropped can only hide a SYN or an RST, never make one up: the bounds below still hold.
      const { syns, rsts, synCounts } = synRetries(r.packets);
      const early: string[] = [];
      for (const [k, times] of syns) {
        // RFC 6298: 1 s, then 2 s. Loosely: on these two shared cores a SYN can leave up to a few hundred ms after
        // the moment its timer counts from (the output waits for the event loop), which shortens the next gap.
        if ((times.length > 1 && times[1] - times[0] < 0.5) || (times.length > 2 && times[2] - times[1] < 1.5)) {
          early.push(`${k}: SYNs at ${times.map((x) => (x - times[0]).toFixed(2)).join(', ')} s`);
        }
      }
      note(`capture: ${syns.size} sessions; SYNs per session ${synCountsText(synCounts)}; ` +
        `${rsts.size} unanswered sessions reset, at most ${Math.max(0, ...rsts.values())} RST each; tcpdump dropped ${r.tcpdumpDrops}`);
      expect(syns.size, `sessions in the capture (tcpdump dropped ${r.tcpdumpDrops} packets)`).to.be.greaterThan(r.summary.engine.sessionsCreated * 0.9);
      expect(Math.max(...[...syns.values()].map((t) => t.length)), 'most SYNs for one session').to.be.at.most(3);
      expect(synCounts.get(3) ?? 0, 'sessions that sent 3 SYNs (the unanswered ones)').to.be.greaterThan(0);
      expect(early.length, `sessions whose SYN went again too early, e.g. ${early.slice(0, 5).join('; ')}`).to.equal(0);
      expect(Math.max(0, ...rsts.values()), 'most RSTs for one session').to.be.at.most(1);
    });

    it('replays every session before the outage, and every one after it once tcpcopy admits again', () => {
      note(`tcpcopy admitted new sessions again ${r.admittedAgainAt.toFixed(1)} s into the run (outage from ${PHASE_S.before} s to about ${PHASE_S.before + PHASE_S.outage} s)`);
      expect(r.phases.before.online, 'requests before the outage').to.equal(r.phases.before.sent);
      expect(r.phases.before.target, 'requests before the outage at the target').to.equal(r.phases.before.online);
      expect(r.phases.after.online, 'requests after the outage').to.equal(r.phases.after.sent);
      expect(r.phases.after.target, 'requests after the outage at the target').to.equal(r.phases.after.online);
    });
  });
});
