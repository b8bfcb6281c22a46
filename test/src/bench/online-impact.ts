// Scenario `online`: the online side is never hurt. nginx's own throughput on the online host, measured by
// `ab` (apache2-utils) from the client host: without tcpcopy, with tcpcopy replaying everything ab sends
// (full load: ab as fast as it goes), and right after tcpcopy is killed (SIGKILL) in the middle of a run.
//
// Per configuration, two ab runs:
//  1. `without`: ab for RUN_S seconds, no tcpcopy;
//  2. tcpcopy (defaults plus -c 203.0.113.x, replaying to nginx on the target through intercept on the
//     assistant) is started, ab runs for 2 × RUN_S seconds, and tcpcopy gets SIGKILL RUN_S seconds in.
//     `with_tcpcopy` is the rate over the whole seconds before the kill, `after_kill` over those after it.
// Rates come from ab's per-request log (-g: each request's start, to the second), so the seconds cut by the
// start, the kill and the end are left out of the means.
//
// Configurations: keep-alive (ab -k -c 50) and short connections (ab -c 50), everything sharing the two
// cores; and keep-alive `pinned`: online nginx and ab on CPU 0, tcpcopy, intercept and the target's nginx on
// CPU 1 — what the online host pays besides tcpcopy's own CPU (the kernel's copy of every packet to
// tcpcopy's raw socket, the replayed packets leaving the host).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  createTopology,
  netnsUnavailableReason,
  sleep,
  startIntercept,
  startLiveTcpcopy,
  startNginx,
  withTimeout,
  type NginxHandle,
  type Topology,
} from '../harness';
import { cpuSeconds, TaggedLineCounter } from '../harness/live-load';
import type { Figures } from './figures';

const SCENARIO = 'online side with and without tcpcopy';
const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const PORT = 80;
const PATH = '/blob/1k';
/** Seconds of each measured part: the run without tcpcopy, and each half of the run with it (TCPE_BENCH_ONLINE_SECONDS). */
const RUN_S = Math.max(3, Number(process.env.TCPE_BENCH_ONLINE_SECONDS) || 8);
const CONCURRENCY = 50;

interface Config {
  name: string;
  what: string;
  keepAlive: boolean;
  pinned: boolean;
}

const CONFIGS: Config[] = [
  { name: 'keepalive', what: `keep-alive, ab -k -c ${CONCURRENCY}, everything on both cores`, keepAlive: true, pinned: false },
  { name: 'short', what: `short connections, ab -c ${CONCURRENCY}, everything on both cores`, keepAlive: false, pinned: false },
  { name: 'keepalive_pinned', what: `keep-alive, ab -k -c ${CONCURRENCY}; online nginx and ab on CPU 0, tcpcopy, intercept and the target on CPU 1`, keepAlive: true, pinned: true },
];

interface AbRun {
  /** Requests started per whole second (epoch second → count). */
  perSecond: Map<number, number>;
  complete: number;
  failed: number;
  non2xx: number;
  stdout: string;
}

/** ab from the client host for `seconds`, with its per-request log; `onStart` runs once ab is spawned. */
async function runAb(topo: Topology, cfg: Config, tag: string, seconds: number): Promise<AbRun> {
  const gfile = path.join(topo.workdir, `ab-${tag}.tsv`);
  const args = [...(cfg.keepAlive ? ['-k'] : []), '-c', String(CONCURRENCY), '-t', String(seconds), '-n', '100000000', '-g', gfile, '-q', `http://${ONLINE}:${PORT}${PATH}?${tag}=1`];
  const [cmd, cmdArgs] = cfg.pinned ? ['taskset', ['-c', '0', 'ab', ...args]] : ['ab', args];
  const proc = topo.spawn('client', cmd, cmdArgs);
  const st = await withTimeout(proc.exited, (seconds + 30) * 1000, `ab ${tag}`).catch(async (e) => {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw e;
  });
  const out = proc.stdout();
  if (st.code !== 0) throw new Error(`ab ${tag} failed (${st.code ?? st.signal}): ${proc.stderr().slice(-500)}`);
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const perSecond = new Map<number, number>();
  const text = fs.readFileSync(gfile, 'latin1');
  for (const line of text.split('\n').slice(1)) {
    const sec = Number(line.split('\t')[1]);
    if (Number.isInteger(sec) && sec > 0) perSecond.set(sec, (perSecond.get(sec) ?? 0) + 1);
  }
  return { perSecond, complete: num(/Complete requests:\s+(\d+)/), failed: num(/Failed requests:\s+(\d+)/), non2xx: num(/Non-2xx responses:\s+(\d+)/), stdout: out };
}

/** Mean requests/s over the whole seconds in [from, to] (epoch seconds, both included); NaN if none. */
function meanRate(perSecond: Map<number, number>, from: number, to: number): number {
  let n = 0;
  let sum = 0;
  for (let s = from; s <= to; s++) {
    n++;
    sum += perSecond.get(s) ?? 0;
  }
  return n ? sum / n : NaN;
}

/** The first and last second ab started requests in. */
function span(perSecond: Map<number, number>): [number, number] {
  const secs = [...perSecond.keys()];
  return [Math.min(...secs), Math.max(...secs)];
}

/** Pins every thread of `pid` to `cpu`. */
function pin(pid: number, cpu: number): void {
  const r = spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0) throw new Error(`taskset ${pid}: ${r.stderr}`);
}

/** An nginx master and its workers. */
function nginxPids(n: NginxHandle): number[] {
  const r = spawnSync('pgrep', ['-P', String(n.pid)], { encoding: 'utf8', timeout: 5000 });
  return [n.pid, ...(r.stdout ?? '').split(/\s+/).filter(Boolean).map(Number)];
}

export async function onlineImpact(figures: Figures): Promise<void> {
  const reason = netnsUnavailableReason();
  if (reason) return figures.skip(SCENARIO, `${reason}; it needs root and 'ip netns'`);
  const missing = ['nginx', 'ab', 'taskset', 'pgrep'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length) return figures.skip(SCENARIO, `missing programs: ${missing.join(', ')} (ab is in apache2-utils)`);
  // TCPE_BENCH_ONLINE_CONFIGS (comma-separated names) runs only those, to look at one closely.
  const names = process.env.TCPE_BENCH_ONLINE_CONFIGS?.split(',').map((x) => x.trim()).filter(Boolean);
  const unknown = names?.filter((x) => !CONFIGS.some((c) => c.name === x)) ?? [];
  if (unknown.length) throw new Error(`TCPE_BENCH_ONLINE_CONFIGS: unknown ${unknown.join(', ')}; configurations are ${CONFIGS.map((c) => c.name).join(', ')}`);
  const configs = CONFIGS.filter((c) => (!names?.length || names.includes(c.name)) && (!c.pinned || os.cpus().length >= 2));

  const failed: string[] = [];
  for (const cfg of configs) {
    // A topology per configuration: no TIME_WAIT or half-open connection of one run meets the next.
    const topo = await createTopology();
    try {
      await runConfig(figures, topo, cfg);
    } catch (err) {
      failed.push(cfg.name);
      console.error(`!!!!! online ${cfg.name} failed: ${(err as Error)?.stack ?? err}`);
    } finally {
      await topo.destroy();
    }
  }
  if (failed.length) throw new Error(`online configurations failed: ${failed.join(', ')}`);
}

async function runConfig(figures: Figures, topo: Topology, cfg: Config): Promise<void> {
  const online = await startNginx(topo, 'online', { port: PORT });
  const target = await startNginx(topo, 'target', { port: PORT });
  const intercept = await startIntercept(topo, [PORT]);
  try {
    if (cfg.pinned) {
      for (const pid of nginxPids(online)) pin(pid, 0);
      for (const pid of [...nginxPids(target), intercept.proc.pid]) pin(pid, 1);
    }
    const n = `online.${cfg.name}`;
    figures.note(`online ${cfg.name}: ${cfg.what}; ab for ${RUN_S} s without tcpcopy, then ${2 * RUN_S} s with tcpcopy, SIGKILLed after ${RUN_S} s`);

    // 1. Without tcpcopy.
    const without = await runAb(topo, cfg, `${cfg.name}_without`, RUN_S);
    const [w0, w1] = span(without.perSecond);
    const rateWithout = meanRate(without.perSecond, w0 + 1, w1 - 1);

    // 2. With tcpcopy, killed halfway.
    const tag = `${cfg.name}_with`;
    const targetCount = new TaggedLineCounter(path.join(target.prefix, 'logs', 'access.log'), tag);
    const tcpcopy = await startLiveTcpcopy(topo, ['-x', `${PORT}-${TARGET}:${PORT}`, '-c', '203.0.113.x']);
    if (cfg.pinned) pin(tcpcopy.proc.pid, 1);
    await sleep(500);
    const cpu0 = cpuSeconds(tcpcopy.proc.pid);
    const ab = runAb(topo, cfg, tag, 2 * RUN_S);
    const abStarted = Date.now();
    await sleep(RUN_S * 1000);
    const cpuAtKill = cpuSeconds(tcpcopy.proc.pid);
    const killedAt = Date.now();
    process.kill(tcpcopy.proc.pid, 'SIGKILL');
    await tcpcopy.proc.exited;
    const withRun = await ab;
    const killSec = Math.floor(killedAt / 1000);
    const [s0, s1] = span(withRun.perSecond);
    const rateWith = meanRate(withRun.perSecond, s0 + 1, killSec - 1);
    const rateAfter = meanRate(withRun.perSecond, killSec + 1, s1 - 1);
    const firstAfter = withRun.perSecond.get(killSec + 1) ?? 0;
    await sleep(1000);
    const replayed = targetCount.count();
    let beforeKill = 0;
    for (const [s, c] of withRun.perSecond) if (s < killSec) beforeKill += c;

    figures.add(`${n}.without`, rateWithout, 'requests/s');
    figures.add(`${n}.with_tcpcopy`, rateWith, 'requests/s');
    figures.add(`${n}.after_kill`, rateAfter, 'requests/s');
    figures.add(`${n}.with_vs_without`, rateWith / rateWithout, 'ratio', 3);
    figures.add(`${n}.after_kill_vs_without`, rateAfter / rateWithout, 'ratio', 3);
    const errors = without.failed + without.non2xx + withRun.failed + withRun.non2xx;
    figures.note(
      `online ${cfg.name}: first whole second after the kill ${firstAfter} requests; tcpcopy used ${((cpuAtKill - cpu0) / ((killedAt - abStarted) / 1000)).toFixed(2)} CPU s/s ` +
        `and the target had ${replayed} of the ~${beforeKill} requests started before the kill (what tcpcopy still held, or had not ` +
        `captured, when it died is not there: not a loss figure, see the live scenario for those); ` +
        `ab: ${without.complete} + ${withRun.complete} requests, ${errors} failed or not 2xx`,
      n,
      {
        without: Object.fromEntries(without.perSecond),
        with: Object.fromEntries(withRun.perSecond),
        killedAtMs: killedAt,
        tcpcopyCpuPerSecond: (cpuAtKill - cpu0) / ((killedAt - abStarted) / 1000),
        replayed,
        beforeKill,
        errors,
      },
    );
    if (errors) figures.note(`online ${cfg.name}: !!! ab saw ${errors} failed or non-2xx responses`);
  } finally {
    await intercept.stop().catch(() => undefined);
    await Promise.all([online.stop(), target.stop()]).catch(() => undefined);
  }
}
