// Scenario `--only restart`: the target server restarted under load, ours and (with --compare-with DIR: the C
// tool's DIR/tcpcopy and DIR/intercept, through tool-flavours.ts) the other build, side by side. Per load shape, in a fresh namespace topology:
// a load from 50 client addresses against nginx on the online host, tcpcopy capturing there, nginx on the target,
// intercept on the assistant; RESTART_AT_MS into the load the target's nginx stops and DOWN_MS after that a new
// nginx starts on the same port. Two kinds of stop: `graceful` (SIGQUIT, as Debian's service stop: it finishes
// the requests in progress and closes idle keep-alive connections with a FIN) and `fast` (SIGTERM, `nginx -s
// stop`: every connection is closed at once, requests in progress with it).
//
// Both nginx log each request with its time ($msec), so every request the online server served is placed
// before the stop, during the downtime (stop sent .. new nginx spawned) or after it, and is lost when the
// target's log lacks it. `resume` is the time from the new nginx's spawn (it listens a few ms later: the figure
// errs on the long side) to the first request the target logged after it.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addHostAddresses, clientAddressRange, runLiveLoad, type LiveLoadPlan, type LiveLoadResult } from '../harness/live-load';
import { createTopology, netnsUnavailableReason, type HostName, type Topology } from '../harness/netns';
import { sleep, withTimeout, type ProcHandle } from '../harness/proc';
import { nginxConfStart, responseBody, runNginx } from '../harness/servers';
import type { Figures } from './figures';
import type { LiveOptions } from './live-replay-netns';
import { startInterceptOf, startTcpcopyOf, thisTree, type RunningTool, type ToolBuild } from './tool-flavours';

const SCENARIO = 'target restart under load';
const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const PORT = 80;
const CLIENT_ADDRS = clientAddressRange(100, 50);
const LOAD_MS = 10_000;
const RESTART_AT_MS = 3000;
/** From the stop signal to the new nginx's spawn. */
const DOWN_MS = 2000;

export interface RestartShape {
  /** Figure names are restart.<tool>.<name>.* */
  name: string;
  what: string;
  mode: LiveLoadPlan['mode'];
  conns: number;
  rate: number;
}

export const RESTART_SHAPES: readonly RestartShape[] = [
  { name: 'keepalive_2000', what: 'keep-alive over 50 connections, 2,000 requests/s', mode: 'keepalive', conns: 50, rate: 2000 },
  { name: 'short_1000', what: 'short connections, 50 clients, 1,000 requests/s', mode: 'short', conns: 50, rate: 1000 },
];

/** How the target's nginx is stopped: SIGQUIT or SIGTERM. */
export type StopKind = 'graceful' | 'fast';
export const STOP_KINDS: readonly StopKind[] = ['graceful', 'fast'];

export interface PhaseCount {
  /** Requests the online server served in the phase. */
  online: number;
  /** Of those, missing at the target. */
  lost: number;
}

export interface RestartResult {
  /** The build's label: ours, c. */
  tool: string;
  shape: string;
  stop: StopKind;
  load: LiveLoadResult;
  before: PhaseCount;
  during: PhaseCount;
  after: PhaseCount;
  /** Spawn of the new nginx to the target's first request after it, ms (NaN: none came). */
  resumeMs: number;
  /** How long the old nginx took to exit after SIGQUIT, and the downtime (stop sent to new spawn), ms. */
  quitMs: number;
  downMs: number;
  /** Our --summary json (null for the C tool). */
  summary: any;
  /** The tools' last words: their counters. */
  counters: string;
}

// ---- nginx that logs each request's time ----------------------------------------------------------------

interface TimedNginx {
  readonly proc: ProcHandle;
  readonly prefix: string;
  readonly logFile: string;
  /** SIGQUIT (graceful, the default) or SIGTERM (fast); waits for the master to exit (bounded). */
  stop(kind?: StopKind): Promise<void>;
}

/** nginx on a host's address serving /blob/1k, logging "$msec $remote_addr:$remote_port "$request" $status". */
async function startTimedNginx(topo: Topology, host: HostName, prefix?: string): Promise<TimedNginx> {
  const dir = prefix ?? topo.mkdir(`timed-nginx-${host}`);
  if (!prefix) {
    for (const d of ['logs', 'tmp', 'html/blob']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    fs.writeFileSync(path.join(dir, 'html', 'blob', '1k'), responseBody(1024), { mode: 0o644 });
    const conf = `${nginxConfStart(dir)}  log_format timed '$msec $remote_addr:$remote_port "$request" $status';
  access_log ${path.join(dir, 'logs', 'access.log')} timed;
  default_type application/octet-stream;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen ${topo.hosts[host].addr}:${PORT} backlog=4096;
    root ${path.join(dir, 'html')};
  }
}
`;
    fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
    for (const d of ['', 'html', 'html/blob', 'logs', 'tmp']) fs.chmodSync(path.join(dir, d), 0o755);
  }
  const { proc } = await runNginx(topo, host, dir);
  return {
    proc,
    prefix: dir,
    logFile: path.join(dir, 'logs', 'access.log'),
    stop: async (kind: StopKind = 'graceful') => void (await proc.stop(kind === 'graceful' ? 'SIGQUIT' : 'SIGTERM', 10_000)),
  };
}

/** Request index → time (ms since the epoch) of the requests of `tag` in a timed log. */
function readTimedLog(file: string, tag: string): Map<number, number> {
  const out = new Map<number, number>();
  if (!fs.existsSync(file)) return out;
  const re = new RegExp(`^(\\d+\\.\\d+) \\S+ "\\S+ [^"]*[?&]${tag}=(\\d+)[ &]`);
  for (const line of fs.readFileSync(file, 'latin1').split('\n')) {
    const m = re.exec(line);
    if (m && !out.has(Number(m[2]))) out.set(Number(m[2]), Number(m[1]) * 1000);
  }
  return out;
}

// ---- one measurement --------------------------------------------------------------------------------------

/** One tool, one load shape, in a topology of its own. */
export async function measureTargetRestart(build: ToolBuild, shape: RestartShape, stop: StopKind): Promise<RestartResult> {
  const topo = await createTopology();
  const running: RunningTool[] = [];
  const servers: TimedNginx[] = [];
  const stopTools = async () => {
    const words: string[] = [];
    for (const t of running.splice(0).reverse()) words.push(await t.stop().catch((e) => `(stop failed: ${(e as Error).message})`));
    return words.join('; intercept: ');
  };
  try {
    await addHostAddresses(topo, 'client', CLIENT_ADDRS);
    const online = await startTimedNginx(topo, 'online');
    servers.push(online);
    let target = await startTimedNginx(topo, 'target');
    servers.push(target);
    const plan = { port: PORT, target: TARGET, assistant: ASSISTANT, fakeClients: '203.0.113.x' };
    running.push(await startInterceptOf(build, topo, plan));
    const tcpcopy = await startTcpcopyOf(build, topo, plan);
    running.push(tcpcopy);

    const tag = `rs_${shape.name}`;
    const loadDone = runLiveLoad(topo, {
      host: ONLINE, port: PORT, path: '/blob/1k', tag, mode: shape.mode, conns: shape.conns, rate: shape.rate,
      durationMs: LOAD_MS, maxRequests: Math.ceil((shape.rate * LOAD_MS) / 1000), localAddrs: CLIENT_ADDRS,
      portFirst: 10_000, portCount: 50_000, portOffset: 0,
    });
    await sleep(RESTART_AT_MS); // the load's own clock: the restart comes this far into it
    const stopAt = Date.now();
    await target.stop(stop);
    const quitMs = Date.now() - stopAt;
    await sleep(Math.max(0, stopAt + DOWN_MS - Date.now())); // the downtime itself
    const backAt = Date.now();
    target = await startTimedNginx(topo, 'target', target.prefix);
    servers.push(target);
    const load = await loadDone;

    // Settle: until the target's log holds every request the online one does, or stops growing (bounded).
    const onlineLog = online.logFile;
    const targetLog = target.logFile;
    let last = -1;
    for (let quietSince = Date.now(), start = Date.now(); Date.now() - start < 20_000; ) {
      const t = readTimedLog(targetLog, tag).size;
      if (t >= readTimedLog(onlineLog, tag).size) break;
      if (t !== last) [last, quietSince] = [t, Date.now()];
      else if (Date.now() - quietSince > 2000) break;
      await sleep(200);
    }
    const counters = await stopTools();
    const summaryLine = build.kind === 'ours' ? tcpcopy.proc.stdout().split('\n').find((l) => l.startsWith('{')) : undefined;

    const sent = readTimedLog(onlineLog, tag);
    const got = readTimedLog(targetLog, tag);
    const phase = (from: number, to: number): PhaseCount => {
      let n = 0;
      let lost = 0;
      for (const [i, t] of sent) {
        if (t < from || t >= to) continue;
        n++;
        if (!got.has(i)) lost++;
      }
      return { online: n, lost };
    };
    let first = Infinity;
    for (const t of got.values()) if (t >= backAt && t < first) first = t;
    return {
      tool: build.label,
      shape: shape.name,
      stop,
      load,
      before: phase(-Infinity, stopAt),
      during: phase(stopAt, backAt),
      after: phase(backAt, Infinity),
      resumeMs: Number.isFinite(first) ? first - backAt : NaN,
      quitMs,
      downMs: backAt - stopAt,
      summary: summaryLine ? JSON.parse(summaryLine) : null,
      counters,
    };
  } finally {
    await stopTools();
    for (const s of servers) await s.stop().catch(() => undefined);
    await topo.destroy();
  }
}

/** "12 of 4,000 (0.3 %)" */
export function formatPhase(p: PhaseCount): string {
  return `${p.lost} of ${p.online}${p.online ? ` (${((100 * p.lost) / p.online).toFixed(1)} %)` : ''}`;
}

// ---- the bench scenario -----------------------------------------------------------------------------------

export async function targetRestart(figures: Figures, live: Pick<LiveOptions, 'other'>): Promise<void> {
  const reason = netnsUnavailableReason();
  if (reason) return figures.skip(SCENARIO, `${reason}; it needs root and 'ip netns'`);
  if (spawnSync('sh', ['-c', 'command -v nginx']).status !== 0) return figures.skip(SCENARIO, 'missing program: nginx');
  const tools = [thisTree(), ...(live.other ? [live.other] : [])];
  figures.note(`restart: the target's nginx stops (graceful: SIGQUIT; fast: SIGTERM) ${RESTART_AT_MS / 1000} s into a ${LOAD_MS / 1000} s load and a new one ` +
    `starts ${DOWN_MS / 1000} s after; lost = served online, missing at the target; resume = new nginx spawned to the first request it logged`);
  for (const stop of STOP_KINDS) for (const shape of RESTART_SHAPES) {
    for (const tool of tools) {
      const r = await withTimeout(measureTargetRestart(tool, shape, stop), LOAD_MS + 90_000, `restart ${tool.label} ${shape.name} ${stop}`);
      const n = `restart.${r.tool}.${r.shape}.${stop}`;
      const all = { online: r.before.online + r.during.online + r.after.online, lost: r.before.lost + r.during.lost + r.after.lost };
      figures.add(`${n}.loss`, all.online ? all.lost / all.online : NaN, 'ratio', 3);
      figures.add(`${n}.loss_during`, r.during.online ? r.during.lost / r.during.online : NaN, 'ratio', 3);
      figures.add(`${n}.loss_after`, r.after.online ? r.after.lost / r.after.online : NaN, 'ratio', 3);
      figures.add(`${n}.resume`, r.resumeMs, 'ms');
      const e = r.summary?.engine;
      figures.note(
        `restart ${r.tool} ${shape.what}, ${stop} stop: lost before the stop ${formatPhase(r.before)}, during the downtime ${formatPhase(r.during)}, ` +
          `after ${formatPhase(r.after)}; nginx quit in ${r.quitMs} ms, down ${r.downMs} ms; load ${r.load.ok} of ${r.load.sent} ok; ` +
          (e ? `tcpcopy: sessions ${e.sessionsCreated}, rebuilt ${e.sessionsReconstructed}, SYNs refused ${e.synsRefused}, ` +
            `handshake timeouts ${e.handshakeTimeouts}, reset ${e.sessionsAborted}, reconnects given up ${e.reconnectsGivenUp}` : `tcpcopy: ${r.counters}`),
        n,
        { ...r, load: { ...r.load, stderr: undefined } },
      );
    }
  }
}
