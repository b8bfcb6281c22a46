// Many short sessions through a live replay: the scenario of `npm run soak -- --sessions 1000000` and of its
// scaled suite test (test/test/million-sessions.e2e.spec.ts).
//
// The rig: the namespace topology with 50 extra client addresses, nginx online and on the target, intercept
// on the assistant (its periodic line every second), the real tcpcopy capturing live on the online host with
// -m and --stats-interval 1 (its session counters every second). The load: test/scripts/live-load.js
// in runs of at most CHUNK_MS, short connections (one request each, "Connection: close") at a fixed rate
// from the 50 addresses, explicit client ports never used twice (50 × 50,000 4-tuples: 2.5 million sessions).
// tcpcopy's VmRSS is sampled every second; the requests are counted and matched in both access logs.
import * as path from 'node:path';
import { addHostAddresses, clientAddressRange, runLiveLoad, type LiveLoadResult } from '../harness/live-load';
import { startLiveTcpcopy, type LiveTcpcopy } from '../harness/live';
import { createTopology, type Topology } from '../harness/netns';
import { sleep } from '../harness/proc';
import { startIntercept, type InterceptHandle } from '../harness/replay';
import { startNginx, type NginxHandle } from '../harness/servers';
import { RssSampler } from './proc-sample';
import { RequestLedger } from './request-ledger';

export const ONLINE = '198.51.100.20';
export const TARGET = '198.51.100.30';
export const ASSISTANT = '198.51.100.40';
const PORT = 80;
const PATH = '/blob/1k';
const CLIENT_ADDRS = clientAddressRange(100, 50);
const PORT_FIRST = 10_000;
const PORT_COUNT = 50_000;
/** live-load.js runs at most 120 s; a run this long leaves room for its start and end. */
const CHUNK_MS = 100_000;

export interface RigOptions {
  /** tcpcopy's -m, MB. */
  memoryLimitMb: number;
  /** More tcpcopy options. */
  tcpcopyArgs?: string[];
}

export interface Rig {
  readonly topo: Topology;
  readonly online: NginxHandle;
  readonly target: NginxHandle;
  readonly intercept: InterceptHandle;
  readonly tcpcopy: LiveTcpcopy;
  /** tcpcopy's VmRSS every second, from its start. */
  readonly rss: RssSampler;
  /**
   * Stops tcpcopy and starts a fresh one with another -m (what it had replayed is over; its summary is
   * returned). `tcpcopy` and `rss` are the new one's afterwards.
   */
  restartTcpcopy(memoryLimitMb: number): Promise<{ summary: any; stderr: string }>;
  readonly ledger: RequestLedger;
  /** Every part stopped (tcpcopy first, with its summary), the namespaces removed. Idempotent. */
  close(): Promise<void>;
}

/** tcpcopy's session counters from its last --stats-interval line (null before the first). */
export interface SessionCounters {
  created: number;
  closed: number;
  reset: number;
  /** Sessions not over yet: created - closed - reset. */
  open: number;
}

export function lastSessionCounters(tcpcopyStderr: string): SessionCounters | null {
  // Two spellings of tcpcopy's periodic line: "sessions N: A active, C closed, R reset" and "sessions N: closed C, reset R".
  const all = [...tcpcopyStderr.matchAll(/sessions (\d+): (?:\d+ active, (\d+) closed, (\d+) reset|closed (\d+), reset (\d+))/g)];
  const m = all[all.length - 1];
  if (!m) return null;
  const [created, closed, reset] = [Number(m[1]), Number(m[2] ?? m[4]), Number(m[3] ?? m[5])];
  return { created, closed, reset, open: created - closed - reset };
}

/** The routes in intercept's table from its last periodic line that shows them (NaN when none does). */
export function lastInterceptRoutes(interceptStderr: string): number {
  const all = [...interceptStderr.matchAll(/ routes (\d+)[ ,;(]/g)];
  return all.length ? Number(all[all.length - 1][1]) : NaN;
}

/** Requests per tag at most: the ledger's size, and live-load.js's numbers per run. */
export function maxPerChunk(rate: number): number {
  return Math.ceil((rate * CHUNK_MS) / 1000) + 1;
}

export async function startRig(opts: RigOptions & { tagPrefix: string; maxRate: number }): Promise<Rig> {
  const topo = await createTopology();
  const parts: { online?: NginxHandle; target?: NginxHandle; intercept?: InterceptHandle; tcpcopy?: LiveTcpcopy; rss?: RssSampler } = {};
  const startTcpcopy = (limitMb: number) => startLiveTcpcopy(topo, [
    '-x', `${PORT}-${TARGET}:${PORT}`, '-c', '203.0.113.x', '-m', String(limitMb), '--stats-interval', '1', '-v', ...(opts.tcpcopyArgs ?? []),
  ]);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    parts.rss?.stop();
    await parts.tcpcopy?.stop().catch(() => undefined);
    await parts.intercept?.stop().catch(() => undefined);
    await Promise.all([parts.online?.stop(), parts.target?.stop()].map((p) => p?.catch(() => undefined)));
    await topo.destroy();
  };
  try {
    await addHostAddresses(topo, 'client', CLIENT_ADDRS);
    parts.online = await startNginx(topo, 'online', { port: PORT });
    parts.target = await startNginx(topo, 'target', { port: PORT });
    parts.intercept = await startIntercept(topo, [PORT], ['--stats-interval', '1']);
    parts.tcpcopy = await startTcpcopy(opts.memoryLimitMb);
    parts.rss = new RssSampler(parts.tcpcopy.proc.pid, 1000);
  } catch (e) {
    await close();
    throw e;
  }
  const logOf = (n: NginxHandle) => path.join(n.prefix, 'logs', 'access.log');
  return {
    topo,
    online: parts.online,
    target: parts.target,
    intercept: parts.intercept,
    get tcpcopy() {
      return parts.tcpcopy!;
    },
    get rss() {
      return parts.rss!;
    },
    async restartTcpcopy(limitMb: number) {
      parts.rss!.stop();
      const stopped = await parts.tcpcopy!.stop();
      parts.tcpcopy = undefined;
      parts.tcpcopy = await startTcpcopy(limitMb);
      parts.rss = new RssSampler(parts.tcpcopy.proc.pid, 1000);
      return { summary: stopped.summary, stderr: stopped.stderr };
    },
    ledger: new RequestLedger(logOf(parts.online), logOf(parts.target), opts.tagPrefix, maxPerChunk(opts.maxRate)),
    close,
  };
}

export interface ShortLoadPlan {
  /** Sessions (= requests) to send. */
  sessions: number;
  /** Sessions per second. */
  rate: number;
  /** Tag of the first run; later runs of the same plan append _<k>. */
  tag: string;
  /** Concurrent clients (default 50). */
  conns?: number;
  /** Where the explicit client ports start (per address): move it on between plans of one rig. */
  portOffset: number;
  /** After each run (e.g. to print progress). */
  onRun?: (run: LoadRun) => void;
}

export interface LoadRun {
  tag: string;
  /** Seconds on the rig's RSS clock when the run started / ended. */
  from: number;
  to: number;
  load: LiveLoadResult;
}

export interface ShortLoadResult {
  runs: LoadRun[];
  sent: number;
  ok: number;
  errors: number;
  errorSamples: string[];
  /** Where the next plan's ports start. */
  nextPortOffset: number;
}

/** Sends `plan.sessions` short sessions at `plan.rate`, in runs of at most CHUNK_MS (bounded by live-load's own bound). */
export async function runShortLoad(rig: Rig, plan: ShortLoadPlan): Promise<ShortLoadResult> {
  const perRun = Math.floor((plan.rate * CHUNK_MS) / 1000);
  const runs: LoadRun[] = [];
  let left = plan.sessions;
  let portOffset = plan.portOffset;
  const errorSamples: string[] = [];
  for (let k = 0; left > 0; k++) {
    const n = Math.min(left, perRun);
    const tag = k === 0 ? plan.tag : `${plan.tag}_${k}`;
    const from = rig.rss.elapsed();
    const load = await runLiveLoad(rig.topo, {
      host: ONLINE,
      port: PORT,
      path: PATH,
      tag,
      mode: 'short',
      conns: plan.conns ?? 50,
      rate: plan.rate,
      // The count ends the run; the time is a bound (a load that falls behind is cut there, and says so).
      durationMs: Math.ceil((n / plan.rate) * 1000 * 1.2) + 1000,
      maxRequests: n,
      localAddrs: CLIENT_ADDRS,
      portFirst: PORT_FIRST,
      portCount: PORT_COUNT,
      portOffset,
    });
    const run = { tag, from, to: rig.rss.elapsed(), load };
    runs.push(run);
    for (const s of load.errorSamples) if (errorSamples.length < 10) errorSamples.push(`${tag}: ${s}`);
    portOffset += Math.ceil(load.connections / CLIENT_ADDRS.length) + 1;
    if (portOffset + perRun / CLIENT_ADDRS.length > PORT_COUNT) throw new Error(`out of client ports after ${runs.length} runs: fewer sessions, or more addresses`);
    left -= load.sent;
    plan.onRun?.(run);
    if (load.sent === 0) throw new Error(`run ${tag} sent nothing: ${load.stderr.slice(-500)}`);
  }
  return {
    runs,
    sent: runs.reduce((a, r) => a + r.load.sent, 0),
    ok: runs.reduce((a, r) => a + r.load.ok, 0),
    errors: runs.reduce((a, r) => a + r.load.errors, 0),
    errorSamples,
    nextPortOffset: portOffset,
  };
}

/**
 * Waits until the target has every request the online server logged, then until tcpcopy says no session is
 * open and intercept's route table is empty (each bounded by `maxMs`; the last counts are returned).
 */
export async function settleRig(rig: Rig, maxMs = 20_000): Promise<{ counters: SessionCounters | null; routes: number; waitedMs: number }> {
  const start = Date.now();
  let last = -1;
  let since = start;
  while (Date.now() - start < maxMs) {
    const { online, target } = rig.ledger.update();
    if (target >= online) break;
    if (target !== last) [last, since] = [target, Date.now()];
    else if (Date.now() - since > 3000) break; // what is missing is not coming
    await sleep(200);
  }
  // Finished sessions linger 2 s; a stats line comes every second.
  const quiet = () => {
    const c = lastSessionCounters(rig.tcpcopy.proc.stderr());
    const routes = lastInterceptRoutes(rig.intercept.proc.stderr());
    return c !== null && c.open === 0 && (routes === 0 || Number.isNaN(routes));
  };
  while (Date.now() - start < maxMs && !quiet()) await sleep(250);
  return {
    counters: lastSessionCounters(rig.tcpcopy.proc.stderr()),
    routes: lastInterceptRoutes(rig.intercept.proc.stderr()),
    waitedMs: Date.now() - start,
  };
}

/**
 * tcpcopy's RSS over a load split in quarters, the first one taken as the warm-up (the heap growing to its
 * working size): the highest and lowest samples of the second and of the last quarter, and the peak. Near -m
 * the RSS is a saw (it climbs to the guard's line and a collection takes it down), so "flat" compares both
 * the tops (what -m allows) and the bottoms (what is really held) of the last quarter with the second's.
 */
export function rssQuarters(rig: Rig, from: number, to: number): RssQuarters {
  const q = (to - from) / 4;
  const low = (a: number, b: number) => Math.min(...rig.rss.between(a, b).map((s) => s.rss));
  return {
    secondMax: rig.rss.max(from + q, from + 2 * q),
    secondMin: low(from + q, from + 2 * q),
    lastMax: rig.rss.max(to - q, to),
    lastMin: low(to - q, to),
    peak: rig.rss.max(from, to),
  };
}

export interface RssQuarters {
  secondMax: number;
  secondMin: number;
  lastMax: number;
  lastMin: number;
  peak: number;
}
