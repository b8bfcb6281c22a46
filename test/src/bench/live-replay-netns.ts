// Scenario 3: live replay under load. Real HTTP load from the client host (its connections spread over 50
// extra client addresses) against nginx on the online host, where tcpcopy captures live (default options
// plus -c 203.0.113.x); nginx on the target; intercept on the assistant. Per load shape: the rate the
// load achieved, the loss ratio 1 - target/online from the two access logs once the target has settled,
// the CPU time tcpcopy and intercept spent per 10,000 requests, and tcpcopy's peak RSS.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import {
  createTopology,
  netnsUnavailableReason,
  sleep,
  startIntercept,
  startLiveTcpcopy,
  startNginx,
  type InterceptHandle,
  type LiveTcpcopy,
  type NginxHandle,
  type Topology,
} from '../harness';
import {
  addHostAddresses,
  clientAddressRange,
  cpuSeconds,
  peakRssBytes,
  rssBreakdown,
  runLiveLoad,
  TaggedLineCounter,
  type LiveLoadPlan,
  type LiveLoadResult,
} from '../harness/live-load';
import type { Figures } from './figures';

const SCENARIO = 'live replay across namespaces';
const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const PORT = 80;
/** A 1 KiB static file: one reply segment per request. */
const PATH = '/blob/1k';
/** 198.51.100.100-149 on the client host. */
const CLIENT_ADDRS = clientAddressRange(100, 50);
/** Explicit client ports 10000-59999 per address, moved on between loads: no 4-tuple is used twice in a bench. */
const PORT_FIRST = 10_000;
const PORT_COUNT = 50_000;
/** Load per shape: short enough that the six shapes take under a minute together (about 8 s each with start and settling). */
const DURATION_MS = 6000;
/** The target has settled when its count has not moved for this long (or has caught up with the online one). */
const QUIET_MS = 1500;
const SETTLE_MAX_MS = 20_000;
/** How long the idle cost of tcpcopy and intercept is measured. */
const IDLE_MS = 2000;

interface Shape {
  /** Figure names are live.<name>.* */
  name: string;
  what: string;
  mode: LiveLoadPlan['mode'];
  conns: number;
  /** Requests/s; 0: unthrottled. */
  rate: number;
  maxRequests: number;
}

const SHAPES: Shape[] = [
  { name: 'short_500', what: 'short connections, 50 clients, 500 requests/s', mode: 'short', conns: 50, rate: 500, maxRequests: 500 * 6 },
  { name: 'short_2000', what: 'short connections, 50 clients, 2000 requests/s', mode: 'short', conns: 50, rate: 2000, maxRequests: 2000 * 6 },
  { name: 'short_max', what: 'short connections, 50 clients, unthrottled', mode: 'short', conns: 50, rate: 0, maxRequests: 60_000 },
  { name: 'keepalive50_2000', what: 'keep-alive over 50 connections, 2000 requests/s', mode: 'keepalive', conns: 50, rate: 2000, maxRequests: 2000 * 6 },
  { name: 'keepalive50_max', what: 'keep-alive over 50 connections, unthrottled', mode: 'keepalive', conns: 50, rate: 0, maxRequests: 200_000 },
  { name: 'keepalive10_max', what: 'keep-alive over 10 connections, unthrottled', mode: 'keepalive', conns: 10, rate: 0, maxRequests: 200_000 },
];

/**
 * tcpcopy's options: the defaults plus -c (startLiveTcpcopy adds -i, -s and --summary json). Options in
 * TCPE_BENCH_LIVE_TCPCOPY_ARGS (split at spaces) are added, to see what one changes; the figures then
 * say so in a comment line.
 */
function tcpcopyArgs(): string[] {
  const extra = process.env.TCPE_BENCH_LIVE_TCPCOPY_ARGS?.split(' ').filter(Boolean) ?? [];
  return ['-x', `${PORT}-${TARGET}:${PORT}`, '-c', '203.0.113.x', ...extra];
}

/** All shapes, or those named in TCPE_BENCH_LIVE_SHAPES (comma-separated), to look at one closely. */
function chosenShapes(): Shape[] {
  const names = process.env.TCPE_BENCH_LIVE_SHAPES?.split(',').map((s) => s.trim()).filter(Boolean);
  if (!names?.length) return SHAPES;
  const unknown = names.filter((n) => !SHAPES.some((s) => s.name === n));
  if (unknown.length) throw new Error(`TCPE_BENCH_LIVE_SHAPES: unknown ${unknown.join(', ')}; shapes are ${SHAPES.map((s) => s.name).join(', ')}`);
  return SHAPES.filter((s) => names.includes(s.name));
}

const C_TCPCOPY = [
  'C tcpcopy: short conns lose nothing up to ~4,000 req/s at ~1.0 s CPU per 10,000; keep-alive x50 loses nothing up to ~30,000 req/s at 0.15-0.3 s per 10,000; keep-alive x10 loses 15-78% beyond ~700 req/s per connection',
];

/** tcpcopy summary counters always shown; any other engine counter is shown when not zero. */
const KEY_COUNTERS = ['sessionsCreated', 'sessionsCompleted', 'idleReleases', 'captureGaps', 'retransmissions', 'handshakeTimeouts'];

export async function liveReplayNetns(figures: Figures): Promise<void> {
  const reason = netnsUnavailableReason();
  if (reason) return figures.skip(SCENARIO, `${reason}; it needs root and 'ip netns'`);
  if (spawnSync('sh', ['-c', 'command -v nginx']).status !== 0) return figures.skip(SCENARIO, 'missing program: nginx');

  for (const line of C_TCPCOPY) figures.note(line);
  if (process.env.TCPE_BENCH_LIVE_TCPCOPY_ARGS) figures.note(`live: tcpcopy ${tcpcopyArgs().join(' ')} (TCPE_BENCH_LIVE_TCPCOPY_ARGS)`);
  const topo = await createTopology();
  const failed: string[] = [];
  try {
    await addHostAddresses(topo, 'client', CLIENT_ADDRS);
    const online = await startNginx(topo, 'online', { port: PORT });
    const target = await startNginx(topo, 'target', { port: PORT });
    await idleCost(figures, topo);
    let portOffset = 0;
    for (const shape of chosenShapes()) {
      try {
        const used = await runShape(figures, topo, online, target, shape, portOffset);
        portOffset += Math.ceil(used / CLIENT_ADDRS.length) + 1;
      } catch (err) {
        failed.push(shape.name);
        console.error(`!!!!! live ${shape.name} failed: ${(err as Error)?.stack ?? err}`);
        portOffset += 5000; // whatever the failed load used, the next one starts clear of it
      }
    }
    await Promise.all([online.stop(), target.stop()]);
  } finally {
    await topo.destroy();
  }
  if (failed.length) throw new Error(`live shapes failed: ${failed.join(', ')}`);
}

async function runShape(figures: Figures, topo: Topology, online: NginxHandle, target: NginxHandle, shape: Shape, portOffset: number): Promise<number> {
  const tag = `live_${shape.name}`;
  const logOf = (n: NginxHandle) => path.join(n.prefix, 'logs', 'access.log');
  const onlineCount = new TaggedLineCounter(logOf(online), tag);
  const targetCount = new TaggedLineCounter(logOf(target), tag);

  const intercept = await startIntercept(topo, [PORT]);
  let tcpcopy: LiveTcpcopy | undefined;
  try {
    tcpcopy = await startLiveTcpcopy(topo, tcpcopyArgs());
    const pids = { tcpcopy: tcpcopy.proc.pid, intercept: intercept.proc.pid };
    const cpuBefore = { tcpcopy: cpuSeconds(pids.tcpcopy), intercept: cpuSeconds(pids.intercept) };

    const load = await runLiveLoad(topo, {
      host: ONLINE,
      port: PORT,
      path: PATH,
      tag,
      mode: shape.mode,
      conns: shape.conns,
      rate: shape.rate,
      durationMs: DURATION_MS,
      maxRequests: shape.maxRequests,
      localAddrs: CLIENT_ADDRS,
      portFirst: PORT_FIRST,
      portCount: PORT_COUNT,
      portOffset,
    });
    const settled = await settle(() => targetCount.count(), () => onlineCount.count());
    const onlineN = onlineCount.count();
    const targetN = targetCount.count();

    // Read while both still run: a process that died under load has no /proc entry left.
    const alive = { tcpcopy: !tcpcopy.proc.exitStatus(), intercept: !intercept.proc.exitStatus() };
    const cpuAfter = {
      tcpcopy: alive.tcpcopy ? cpuSeconds(pids.tcpcopy) : NaN,
      intercept: alive.intercept ? cpuSeconds(pids.intercept) : NaN,
    };
    const peakRss = alive.tcpcopy ? peakRssBytes(pids.tcpcopy) : NaN;
    const rss = alive.tcpcopy ? rssBreakdown(pids.tcpcopy) : null;
    const stopped = await tcpcopy.stop();
    tcpcopy = undefined;
    const interceptStats = await stopIntercept(intercept);

    const per10k = (s: number) => (onlineN > 0 ? (s / onlineN) * 10_000 : NaN);
    const n = `live.${shape.name}`;
    figures.note(`live ${shape.name}: ${shape.what}`);
    figures.add(`${n}.rate`, load.ok / (load.elapsedMs / 1000), 'requests/s');
    figures.add(`${n}.requests`, onlineN, 'requests');
    figures.add(`${n}.loss`, onlineN > 0 ? 1 - targetN / onlineN : NaN, 'ratio', 3);
    figures.add(`${n}.tcpcopy_cpu`, per10k(cpuAfter.tcpcopy - cpuBefore.tcpcopy), 's per 10k requests');
    figures.add(`${n}.intercept_cpu`, per10k(cpuAfter.intercept - cpuBefore.intercept), 's per 10k requests');
    figures.add(`${n}.tcpcopy_peak_rss`, peakRss / 2 ** 20, 'MiB');
    noteDetails(figures, shape, load, { onlineN, targetN, settled, alive, stopped, interceptStats, rss });
    return load.connections;
  } finally {
    await tcpcopy?.stop().catch(() => undefined);
    await intercept.stop().catch(() => undefined);
  }
}

/**
 * What tcpcopy and intercept cost with nothing to copy (timers, capture polling): part of every
 * per-request figure, and most of it at low rates.
 */
async function idleCost(figures: Figures, topo: Topology): Promise<void> {
  const intercept = await startIntercept(topo, [PORT]);
  try {
    const tcpcopy = await startLiveTcpcopy(topo, tcpcopyArgs());
    try {
      await sleep(500);
      const before = { tcpcopy: cpuSeconds(tcpcopy.proc.pid), intercept: cpuSeconds(intercept.proc.pid), at: performance.now() };
      await sleep(IDLE_MS);
      const seconds = (performance.now() - before.at) / 1000;
      figures.add('live.idle.tcpcopy_cpu', (cpuSeconds(tcpcopy.proc.pid) - before.tcpcopy) / seconds, 's per s');
      figures.add('live.idle.intercept_cpu', (cpuSeconds(intercept.proc.pid) - before.intercept) / seconds, 's per s');
    } finally {
      await tcpcopy.stop();
    }
  } finally {
    await intercept.stop();
  }
}

/**
 * Waits for the target's count to settle: caught up with the online count (and still for a moment), or
 * not moving for QUIET_MS, bounded by SETTLE_MAX_MS. Returns how long it took.
 */
async function settle(target: () => number, online: () => number): Promise<number> {
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
  return Date.now() - start;
}

/** intercept's last "stats:" line, logged on SIGTERM. */
async function stopIntercept(intercept: InterceptHandle): Promise<string> {
  await intercept.stop();
  const lines = intercept.proc.stderr().split('\n').filter((l) => l.includes(' stats: '));
  return lines.length ? lines[lines.length - 1].replace(/^.* stats: /, '') : '(no stats line)';
}

function noteDetails(
  figures: Figures,
  shape: Shape,
  load: LiveLoadResult,
  r: {
    onlineN: number;
    targetN: number;
    settled: number;
    alive: { tcpcopy: boolean; intercept: boolean };
    stopped: { code: number | null; summary: any; stderr: string };
    interceptStats: string;
    rss: { anon: number; file: number; shmem: number } | null;
  },
): void {
  const engine: Record<string, number> = r.stopped.summary?.engine ?? {};
  const counters = Object.entries(engine).filter(([k, v]) => KEY_COUNTERS.includes(k) || (v !== 0 && k !== 'capturedPackets' && k !== 'packetsSent' && k !== 'bytesSent' && k !== 'repliesReceived'));
  const perConn = shape.mode === 'keepalive' ? `, ${Math.round(load.ok / shape.conns / (load.elapsedMs / 1000))} requests/s per connection` : '';
  figures.note(
    `live ${shape.name}: load ${load.sent} sent, ${load.ok} ok, ${load.errors} errors in ${(load.elapsedMs / 1000).toFixed(2)} s on ` +
      `${load.connections} connections over ${CLIENT_ADDRS.length} addresses${perConn}; online ${r.onlineN}, target ${r.targetN} ` +
      `(settled in ${(r.settled / 1000).toFixed(1)} s)`,
  );
  if (load.errors) figures.note(`live ${shape.name}: load errors, e.g. ${load.errorSamples.slice(0, 3).join('; ')}`);
  if (!r.alive.tcpcopy || !r.alive.intercept || r.stopped.code !== 0) {
    figures.note(`live ${shape.name}: !!! tcpcopy ${r.alive.tcpcopy ? 'ran' : 'DIED'} (exit ${r.stopped.code}), intercept ${r.alive.intercept ? 'ran' : 'DIED'}`);
  }
  // Without -l tcpcopy writes "tcpcopy: <message>" to stderr, its start line aside only warnings.
  const warnings = r.stopped.stderr.split('\n').filter((l) => l && !/^tcpcopy: replaying .* to intercept /.test(l));
  figures.note(
    `live ${shape.name}: tcpcopy ${counters.map(([k, v]) => `${k} ${v}`).join(', ') || '(no summary)'}; ` +
      `capture ${r.stopped.summary?.capture?.tcpPackets ?? '?'} TCP packets; ${warnings.length} warnings` +
      (warnings.length ? ` (first: ${warnings[0].replace(/^tcpcopy: /, '')})` : ''),
    `live.${shape.name}`,
    {
      load: { ...load, stderr: undefined },
      onlineRequests: r.onlineN,
      targetRequests: r.targetN,
      settledMs: r.settled,
      alive: r.alive,
      tcpcopyExit: r.stopped.code,
      tcpcopySummary: r.stopped.summary,
      tcpcopyWarnings: warnings.slice(0, 20),
      interceptStats: r.interceptStats,
      tcpcopyRss: r.rss,
    },
  );
  figures.note(`live ${shape.name}: intercept ${r.interceptStats}`);
  // Most of tcpcopy's RSS is mapped, not heap: the node binary and libpcap's capture ring (RssFile).
  if (r.rss) {
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    figures.note(`live ${shape.name}: tcpcopy RSS at the end: anon ${mib(r.rss.anon)} MiB, file-backed ${mib(r.rss.file)} MiB (capture ring, binary), shmem ${mib(r.rss.shmem)} MiB`);
  }
}
