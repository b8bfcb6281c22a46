// One live scenario with one build: fresh intercept and tcpcopy, the load from the client host, then the
// target's access log counted until it settles. Loss is counted the same way for every build: requests
// the target's nginx logged vs requests the load sent (both tagged per run, so earlier runs never count).
import * as path from 'node:path';
import { FAKE_CLIENT_NET, sleep, withTimeout } from '../harness';
import { cpuSeconds, peakRssBytes, rssBreakdown, runLiveLoad, TaggedLineCounter } from '../harness/live-load';
import type { LiveTestbed } from './live-testbed';
import { LOAD_MS, type HeldScenario, type LiveScenario, type PacedScenario } from './live-scenarios';
import { describeTargetState, readTargetState } from './target-state';
import { startInterceptOf, startTcpcopyOf, type ReplayPlan, type RunningTool, type ToolBuild } from './tool-flavours';

export interface LiveRunResult {
  scenario: string;
  build: string;
  sent: number;
  /** Answered by the online server (200). */
  ok: number;
  loadErrors: number;
  onlineN: number;
  targetN: number;
  /** 1 - target / sent. */
  loss: number;
  /** Requests/s the load achieved. */
  rate: number;
  tcpcopyCpuPer10k: number;
  interceptCpuPer10k: number;
  /**
   * The same from WARM_UP_MS after the load began, per request served online after then: what a process
   * running for hours pays, without the JIT compiling its code in the first seconds (the C tool has none).
   */
  tcpcopyCpuPer10kAfterWarmUp: number;
  interceptCpuPer10kAfterWarmUp: number;
  tcpcopyPeakRssMiB: number;
  interceptPeakRssMiB: number;
  /** intercept's resident memory once started, before any load. */
  interceptStartRssMiB: number;
  settledMs: number;
  /** Both tools were still running when the load was over. */
  survived: boolean;
  tcpcopyWords: string;
  interceptWords: string;
  loadNote: string;
  /** The target's sockets and conntrack entries before the run (what earlier runs left). */
  targetBefore?: string;
}

const QUIET_MS = 1500;
/** When the steady-state CPU figures start, after the load began. */
export const WARM_UP_MS = 3000;
const SETTLE_MAX_MS = 20_000;
const PORT_FIRST = 10_000;
const PORT_COUNT = 50_000;

export async function runLiveScenario(bed: LiveTestbed, build: ToolBuild, scenario: LiveScenario, runTag: string, interceptBufferMiB?: number): Promise<LiveRunResult> {
  return (await runLive(bed, [{ build, plan: bed.plan }], [{ build, intercept: 0, plan: bed.plan }], scenario, runTag, interceptBufferMiB))[0];
}

/**
 * Both builds' tcpcopy at once on the same capture through one intercept of `builds[0]`: the same load, the
 * same moment, the same noise from the machine, so their CPU per request compares better than in runs one
 * after the other. Each fakes its clients in its own half of the fake client /24 (sharing it, their fake
 * 4-tuples met: at conc10000 about 100 sessions per tcpcopy were reset by the target as stale). The target
 * gets every request twice; each build's loss counts the requests from its own fake clients in the target's
 * log, and intercept's CPU is the shared intercept's.
 */
export async function runPairedScenario(bed: LiveTestbed, builds: readonly [ToolBuild, ToolBuild], scenario: LiveScenario, runTag: string): Promise<LiveRunResult[]> {
  const halves = builds.map((_, i) => laneHalf(bed.plan, i));
  return runLive(bed, [{ build: builds[0], plan: bed.plan }], builds.map((build, i) => ({ build, intercept: 0, plan: halves[i] })), scenario, runTag);
}

/**
 * Two builds side by side, each with its own intercept (for the C tool against ours, whose tcpcopys cannot
 * share one): both tcpcopys capture the same load at the same moment; each fakes its clients in its own half
 * of the fake client /24, and its intercept, listening on its own port, captures only the replies to that half.
 * The target gets every request twice; each build's loss counts the requests from its own fake clients in the
 * target's log, and each build's intercept figures are its own.
 */
export async function runSideBySideScenario(bed: LiveTestbed, builds: readonly [ToolBuild, ToolBuild], scenario: LiveScenario, runTag: string): Promise<LiveRunResult[]> {
  const plans = builds.map((_, i) => sideBySidePlan(bed.plan, i));
  return runLive(bed, builds.map((build, i) => ({ build, plan: plans[i] })), builds.map((build, i) => ({ build, intercept: i, plan: plans[i] })), scenario, runTag);
}

/** Lane i's half of the fake client /24 (.1-.126 or .129-.254, as a list both tools read). */
function laneHalf(plan: ReplayPlan, lane: number): ReplayPlan {
  const prefix = FAKE_CLIENT_NET.split('.').slice(0, 3).join('.');
  const first = lane === 0 ? 1 : 129;
  const hosts = Array.from({ length: 126 }, (_, k) => `${prefix}.${first + k}`);
  return { ...plan, fakeClients: hosts.join(','), fakeNet: `${prefix}.${lane === 0 ? 0 : 128}/25` };
}

/** Lane i's half of the fake client /24, and its own intercept port. */
export function sideBySidePlan(plan: ReplayPlan, lane: number): ReplayPlan {
  return { ...laneHalf(plan, lane), interceptPort: 36524 + 10 + lane };
}

/** Whether dotted `ip` is in `net` (a.b.c.d/bits). */
export function inNet(ip: string, net: string): boolean {
  const [addr, bits] = net.split('/');
  const value = (a: string) => a.split('.').reduce((v, o) => v * 256 + Number(o), 0);
  const span = 2 ** (32 - Number(bits));
  return Math.floor(value(ip) / span) === Math.floor(value(addr) / span);
}

/** An intercept to start, and the plan it captures for. */
interface InterceptLane {
  build: ToolBuild;
  plan: ReplayPlan;
}

/** A tcpcopy to start: its build, which intercept (index) it talks to, and its fake clients and intercept port. */
interface TcpcopyLane {
  build: ToolBuild;
  intercept: number;
  plan: ReplayPlan;
}

async function runLive(bed: LiveTestbed, interceptLanes: readonly InterceptLane[], lanes: readonly TcpcopyLane[], scenario: LiveScenario, runTag: string,
  interceptBufferMiB?: number): Promise<LiveRunResult[]> {
  const onlineCount = new TaggedLineCounter(bed.online.accessLogFile, runTag);
  // Two tcpcopys replay from their own fake client nets: the target's log says whose a request was.
  const ownNets = lanes.length > 1 && lanes.every((l) => l.plan.fakeNet !== undefined);
  const laneOf = ownNets ? (line: string) => Math.max(0, lanes.findIndex((l) => inNet(line.slice(0, line.indexOf(' ')), l.plan.fakeNet!))) : null;
  const targetCount = new TaggedLineCounter(bed.target.accessLogFile, runTag, laneOf, lanes.length);
  const targetBefore = describeTargetState(await readTargetState(bed.topo));
  const intercepts: RunningTool[] = [];
  const tcpcopys: RunningTool[] = [];
  try {
    for (const l of interceptLanes) intercepts.push(await startInterceptOf(l.build, bed.topo, l.plan, interceptBufferMiB));
    const startRss = intercepts.map((i) => rssBreakdown(i.pid));
    for (const l of lanes) tcpcopys.push(await startTcpcopyOf(l.build, bed.topo, l.plan));
    const cpuOf = (tools: RunningTool[]) => tools.map((t) => cpuSeconds(t.pid));
    const before = { tcpcopy: cpuOf(tcpcopys), intercept: cpuOf(intercepts) };
    let warm: { tcpcopy: number[]; intercept: number[]; served: number } | null = null;
    const warmTimer = setTimeout(() => {
      try {
        warm = { tcpcopy: cpuOf(tcpcopys), intercept: cpuOf(intercepts), served: onlineCount.count() };
      } catch {
        // A tool gone under load: the run says so (survived), the steady figures stay unknown.
      }
    }, WARM_UP_MS);
    const load = await (scenario.kind === 'paced' ? pacedLoad(bed, scenario, runTag) : heldLoad(bed, scenario, runTag))
      .finally(() => clearTimeout(warmTimer));
    const started = Date.now();
    await settle(() => targetCount.count(), () => onlineCount.count() * lanes.length);
    const settledMs = Date.now() - started;
    const onlineN = onlineCount.count();
    const targetN = targetCount.count();
    // Read while all still run: a process that died under load has no /proc entry left.
    const survived = [...tcpcopys, ...intercepts].every((t) => !t.proc.exitStatus());
    const read = <T>(f: () => T, fallback: T): T => {
      try {
        return f();
      } catch {
        return fallback;
      }
    };
    const after = {
      tcpcopy: tcpcopys.map((t) => read(() => cpuSeconds(t.pid), NaN)),
      intercept: intercepts.map((t) => read(() => cpuSeconds(t.pid), NaN)),
    };
    const rss = {
      tcpcopy: tcpcopys.map((t) => read(() => peakRssBytes(t.pid), NaN)),
      intercept: intercepts.map((t) => read(() => peakRssBytes(t.pid), NaN)),
    };
    const tcpcopyWords: string[] = [];
    while (tcpcopys.length) tcpcopyWords.push(await tcpcopys.shift()!.stop());
    const interceptWords: string[] = [];
    while (intercepts.length) interceptWords.push(await intercepts.shift()!.stop());
    const per10k = (s: number) => (load.sent > 0 ? (s / load.sent) * 10_000 : NaN);
    const w = warm as { tcpcopy: number[]; intercept: number[]; served: number } | null;
    const afterWarmUp = w && load.sent > w.served ? 10_000 / (load.sent - w.served) : NaN;
    return lanes.map((lane, i) => {
      const k = lane.intercept;
      return {
        scenario: scenario.name,
        build: lane.build.label,
        sent: load.sent,
        ok: load.ok,
        loadErrors: load.errors,
        onlineN,
        targetN,
        loss: load.sent > 0 ? (ownNets ? 1 - targetCount.countIn(i) / load.sent : 1 - targetN / (load.sent * lanes.length)) : NaN,
        rate: load.elapsedMs > 0 ? load.ok / (load.elapsedMs / 1000) : NaN,
        tcpcopyCpuPer10k: per10k(after.tcpcopy[i] - before.tcpcopy[i]),
        interceptCpuPer10k: per10k(after.intercept[k] - before.intercept[k]),
        tcpcopyCpuPer10kAfterWarmUp: w ? (after.tcpcopy[i] - w.tcpcopy[i]) * afterWarmUp : NaN,
        interceptCpuPer10kAfterWarmUp: w ? (after.intercept[k] - w.intercept[k]) * afterWarmUp : NaN,
        tcpcopyPeakRssMiB: rss.tcpcopy[i] / 2 ** 20,
        interceptPeakRssMiB: rss.intercept[k] / 2 ** 20,
        interceptStartRssMiB: (startRss[k].anon + startRss[k].file + startRss[k].shmem) / 2 ** 20,
        settledMs,
        survived,
        tcpcopyWords: tcpcopyWords[i],
        interceptWords: interceptWords[k],
        loadNote: load.note,
        targetBefore,
      };
    });
  } finally {
    for (const t of tcpcopys) await t.stop().catch(() => undefined);
    for (const t of intercepts) await t.stop().catch(() => undefined);
  }
}

interface LoadOutcome {
  sent: number;
  ok: number;
  errors: number;
  elapsedMs: number;
  note: string;
}

async function pacedLoad(bed: LiveTestbed, s: PacedScenario, tag: string): Promise<LoadOutcome> {
  const maxRequests = s.rate > 0 ? Math.ceil((s.rate * LOAD_MS) / 1000) : 2_000_000;
  const load = await runLiveLoad(bed.topo, {
    host: bed.topo.hosts.online.addr,
    port: bed.plan.port,
    path: '/blob/1k',
    tag,
    mode: s.mode,
    conns: s.conns,
    rate: s.rate,
    durationMs: LOAD_MS,
    maxRequests,
    localAddrs: bed.clientAddrs,
    portFirst: PORT_FIRST,
    portCount: PORT_COUNT,
    portOffset: bed.nextPortOffset,
  });
  bed.nextPortOffset = (bed.nextPortOffset + Math.ceil(load.connections / bed.clientAddrs.length) + 1) % PORT_COUNT;
  const errs = load.errors ? `, e.g. ${load.errorSamples.slice(0, 2).join('; ')}` : '';
  return {
    sent: load.sent,
    ok: load.ok,
    errors: load.errors,
    elapsedMs: load.elapsedMs,
    note: `${load.sent} sent, ${load.ok} ok, ${load.errors} errors${errs} in ${(load.elapsedMs / 1000).toFixed(1)} s on ${load.connections} connections`,
  };
}

/** test/src/soak/hold-conns.ts from the client host (its connections on kernel-chosen ports: the client closes first, so no TIME_WAIT at the target). */
async function heldLoad(bed: LiveTestbed, s: HeldScenario, tag: string): Promise<LoadOutcome> {
  const script = path.resolve(__dirname, '..', 'soak', 'hold-conns.js');
  const plan = {
    host: bed.topo.hosts.online.addr,
    port: bed.plan.port,
    path: '/blob/1k',
    tag,
    conns: s.conns,
    openRate: s.openRate,
    requests: s.requests,
    spreadMs: s.spreadMs,
    localAddrs: bed.clientAddrs,
    timeoutMs: 10_000,
  };
  const proc = bed.topo.spawn('client', process.execPath, [script, '--plan', JSON.stringify(plan)]);
  const bound = (s.conns / s.openRate) * 1000 + s.spreadMs + 60_000;
  await withTimeout(proc.exited, bound, 'held connections load').catch(async (e) => {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw e;
  });
  const line = proc.stdout().split('\n').find((l) => l.startsWith('DONE '));
  if (!line) throw new Error(`hold-conns printed no result: ${proc.stderr().slice(-1000)}`);
  const r = JSON.parse(line.slice(5));
  const errs = r.errors ? `, e.g. ${(r.errorSamples ?? []).slice(0, 2).join('; ')}` : '';
  return {
    sent: r.sent ?? 0,
    ok: r.ok ?? 0,
    errors: (r.errors ?? 0) + (r.connectErrors ?? 0),
    elapsedMs: r.elapsedMs ?? 0,
    note: `${r.sent} sent, ${r.ok} ok, ${r.errors} errors${errs}, ${r.connectErrors} connect errors; ${r.peakOpen} open at once (all open in ${((r.openMs ?? 0) / 1000).toFixed(1)} s)`,
  };
}

/**
 * Waits for the target's count to settle: caught up with the online count (and still for a moment), or
 * not moving for QUIET_MS, bounded by SETTLE_MAX_MS.
 */
async function settle(target: () => number, online: () => number): Promise<void> {
  const start = Date.now();
  let last = target();
  let since = start;
  while (Date.now() - start < SETTLE_MAX_MS) {
    await sleep(100);
    const now = target();
    if (now !== last) {
      last = now;
      since = Date.now();
      continue;
    }
    const still = Date.now() - since;
    if ((now >= online() && still >= 300) || still >= QUIET_MS) break;
  }
}
