// Scenario "live": the issue's live load shapes (live-scenarios.ts) replayed by this tree's tcpcopy and
// intercept and, with --compare-with DIR, by another build too: both on the same testbed (four hosts over
// a bridge, nginx online and on the target, 64 client addresses), alternating run by run so that neither
// build always goes first. Per scenario and build: loss, CPU of tcpcopy and of intercept per 10,000
// requests, their peak RSS; then a table with the ratios and the issue's goals.
import { spawnSync } from 'node:child_process';
import { netnsUnavailableReason, sleep, type Topology } from '../harness';
import { cpuSeconds, rssBreakdown } from '../harness/live-load';
import type { Figures } from './figures';
import { runLiveScenario, runPairedScenario, runSideBySideScenario, type LiveRunResult } from './live-run';
import { comparisonTable, goalLines, medianOf } from './live-report';
import type { LiveScenario } from './live-scenarios';
import { createLiveTestbed } from './live-testbed';
import { startInterceptOf, startTcpcopyOf, thisTree, type ReplayPlan, type ToolBuild } from './tool-flavours';

const SCENARIO = 'live replay across namespaces';
/** How long the idle cost of tcpcopy and intercept is measured. */
const IDLE_MS = 2000;

export interface LiveOptions {
  scenarios: LiveScenario[];
  /** The other build, when comparing. */
  other?: ToolBuild;
  /** Runs per scenario and build. */
  repeat: number;
  /** Print the table as Markdown too (for docs/benchmarks.md). */
  markdown: boolean;
  /** Both builds' tcpcopy at once on the same load: runPairedScenario for two builds of ours, runSideBySideScenario with the C tool. */
  paired?: boolean;
  /** Paired, each build with its own intercept (always so with the C tool): intercepts compare too. */
  ownIntercepts?: boolean;
}

export async function liveReplayNetns(figures: Figures, opts: LiveOptions): Promise<void> {
  const reason = netnsUnavailableReason();
  if (reason) return figures.skip(SCENARIO, `${reason}; it needs root and 'ip netns'`);
  if (spawnSync('sh', ['-c', 'command -v nginx']).status !== 0) return figures.skip(SCENARIO, 'missing program: nginx');

  const builds = [thisTree(), ...(opts.other ? [opts.other] : [])];
  if (builds.length === 2 && builds[1].label === builds[0].label) builds[1] = { ...builds[1], label: `${builds[1].label}2` };
  for (const b of builds) figures.note(`live build ${b.label}: ${b.kind} flavour, ${b.tcpcopy ? `${b.tcpcopy} and ${b.intercept}` : 'this tree (core/cli/bin)'}`);
  if (process.env.TCPE_BENCH_LIVE_TCPCOPY_ARGS) figures.note(`live: our tcpcopy also gets ${process.env.TCPE_BENCH_LIVE_TCPCOPY_ARGS} (TCPE_BENCH_LIVE_TCPCOPY_ARGS)`);

  const bed = await createLiveTestbed();
  const results: LiveRunResult[] = [];
  const failed: string[] = [];
  try {
    for (const b of builds) await idleCost(figures, bed.topo, bed.plan, b);
    for (let rep = 0; rep < opts.repeat; rep++) {
      for (const [i, scenario] of opts.scenarios.entries()) {
        // Alternate which build goes first, by scenario and by repetition.
        const order = (rep + i) % 2 === 0 ? builds : [...builds].reverse();
        if (opts.paired && order.length === 2) {
          try {
            const pair: [ToolBuild, ToolBuild] = [order[0], order[1]];
            const run = opts.ownIntercepts || pair.some((b) => b.kind === 'c') ? runSideBySideScenario : runPairedScenario;
            const rs = await run(bed, pair, scenario, `r${rep}paired_${scenario.name}`);
            for (const r of rs) {
              results.push(r);
              noteRun(figures, r, rep);
            }
          } catch (err) {
            failed.push(`${scenario.name}/paired#${rep + 1}`);
            console.error(`!!!!! live ${scenario.name} paired #${rep + 1} failed: ${(err as Error)?.stack ?? err}`);
          }
          continue;
        }
        for (const build of order) {
          const label = `${scenario.name}/${build.label}#${rep + 1}`;
          try {
            const r = await runLiveScenario(bed, build, scenario, `r${rep}${build.label.replace(/\W/g, '')}_${scenario.name}`);
            results.push(r);
            noteRun(figures, r, rep);
          } catch (err) {
            failed.push(label);
            console.error(`!!!!! live ${label} failed: ${(err as Error)?.stack ?? err}`);
          }
        }
      }
    }
  } finally {
    await bed.close();
  }

  const names = opts.scenarios.map((s) => s.name);
  const labels = builds.map((b) => b.label);
  for (const s of names) {
    for (const b of labels) {
      const n = `live.${s}.${b}`;
      if (!results.some((r) => r.scenario === s && r.build === b)) continue;
      figures.add(`${n}.rate`, medianOf(results, s, b, 'rate'), 'requests/s');
      figures.add(`${n}.loss`, medianOf(results, s, b, 'loss'), 'ratio', 3);
      figures.add(`${n}.tcpcopy_cpu`, medianOf(results, s, b, 'tcpcopyCpuPer10k'), 's per 10k requests');
      figures.add(`${n}.intercept_cpu`, medianOf(results, s, b, 'interceptCpuPer10k'), 's per 10k requests');
      figures.add(`${n}.tcpcopy_cpu_from_3s`, medianOf(results, s, b, 'tcpcopyCpuPer10kAfterWarmUp'), 's per 10k requests');
      figures.add(`${n}.intercept_cpu_from_3s`, medianOf(results, s, b, 'interceptCpuPer10kAfterWarmUp'), 's per 10k requests');
      figures.add(`${n}.tcpcopy_peak_rss`, medianOf(results, s, b, 'tcpcopyPeakRssMiB'), 'MiB');
      figures.add(`${n}.intercept_peak_rss`, medianOf(results, s, b, 'interceptPeakRssMiB'), 'MiB');
    }
  }
  const table = comparisonTable(results, names, labels);
  console.log(`\n# live: medians over ${opts.repeat} run(s) per scenario and build (loss: median (min-max))\n${table}\n`);
  if (opts.markdown) console.log(`${comparisonTable(results, names, labels, true)}\n`);
  for (const line of goalLines(results, names, labels[0], labels[1])) figures.note(`live goals: ${line}`);
  if (failed.length) throw new Error(`live runs failed: ${failed.join(', ')}`);
}

function noteRun(figures: Figures, r: LiveRunResult, rep: number): void {
  const f = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  figures.note(
    `live ${r.scenario} ${r.build} #${rep + 1}: loss ${f(r.loss * 100, 2)} % (${f(r.loss * r.sent, 0)} lost; sent ${r.sent}, online ${r.onlineN}, target ${r.targetN}, ` +
      `settled in ${f(r.settledMs / 1000, 1)} s), ${f(r.rate, 0)} req/s; CPU s/10k tcpcopy ${f(r.tcpcopyCpuPer10k, 2)}, intercept ` +
      `${f(r.interceptCpuPer10k, 2)} (from 3 s: ${f(r.tcpcopyCpuPer10kAfterWarmUp, 2)}, ${f(r.interceptCpuPer10kAfterWarmUp, 2)}); peak RSS tcpcopy ${f(r.tcpcopyPeakRssMiB, 0)} MiB, intercept ${f(r.interceptPeakRssMiB, 0)} MiB` +
      (r.survived ? '' : '; !!! a tool DIED during the run'),
    `live.${r.scenario}.${r.build}.run${rep + 1}`,
    { ...r },
  );
  figures.note(`live ${r.scenario} ${r.build} #${rep + 1}: target before the run: ${r.targetBefore ?? '-'}`);
  figures.note(`live ${r.scenario} ${r.build} #${rep + 1}: load ${r.loadNote}`);
  figures.note(`live ${r.scenario} ${r.build} #${rep + 1}: tcpcopy ${r.tcpcopyWords}`);
  figures.note(`live ${r.scenario} ${r.build} #${rep + 1}: intercept ${r.interceptWords}`);
}

/**
 * What tcpcopy and intercept cost with nothing to copy (timers, capture polling): part of every
 * per-request figure, and most of it at low rates. Also their resident memory then, by kind.
 */
async function idleCost(figures: Figures, topo: Topology, plan: ReplayPlan, build: ToolBuild): Promise<void> {
  const intercept = await startInterceptOf(build, topo, plan);
  try {
    const tcpcopy = await startTcpcopyOf(build, topo, plan);
    try {
      await sleep(500);
      const before = { tcpcopy: cpuSeconds(tcpcopy.pid), intercept: cpuSeconds(intercept.pid), at: performance.now() };
      await sleep(IDLE_MS);
      const seconds = (performance.now() - before.at) / 1000;
      const n = `live.idle.${build.label}`;
      figures.add(`${n}.tcpcopy_cpu`, (cpuSeconds(tcpcopy.pid) - before.tcpcopy) / seconds, 's per s');
      figures.add(`${n}.intercept_cpu`, (cpuSeconds(intercept.pid) - before.intercept) / seconds, 's per s');
      const mib = (b: number) => (b / 2 ** 20).toFixed(0);
      for (const [tool, pid] of [['tcpcopy', tcpcopy.pid], ['intercept', intercept.pid]] as const) {
        const r = rssBreakdown(pid);
        figures.add(`${n}.${tool}_rss`, (r.anon + r.file + r.shmem) / 2 ** 20, 'MiB');
        figures.note(`live idle ${build.label}: ${tool} RSS anon ${mib(r.anon)} MiB, file-backed ${mib(r.file)} MiB (binary, capture ring), shmem ${mib(r.shmem)} MiB`);
      }
    } finally {
      await tcpcopy.stop();
    }
  } finally {
    await intercept.stop();
  }
}
