// The live comparison as a table: per scenario one row per build (medians over the repeated runs), and
// with two builds a row of ratios (first build / second); then the issue's goals, met or not.
import type { LiveRunResult } from './live-run';
import { textTable } from './text-table';

type Metric = 'rate' | 'loss' | 'tcpcopyCpuPer10k' | 'interceptCpuPer10k' | 'tcpcopyCpuPer10kAfterWarmUp' | 'interceptCpuPer10kAfterWarmUp'
  | 'tcpcopyPeakRssMiB' | 'interceptPeakRssMiB';

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Median of one metric over a build's runs of a scenario. */
export function medianOf(results: LiveRunResult[], scenario: string, build: string, metric: Metric): number {
  return median(results.filter((r) => r.scenario === scenario && r.build === build).map((r) => r[metric]));
}

const num = (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const pct = (v: number) => (Number.isFinite(v) ? `${(v * 100).toFixed(2)} %` : '-');

export function comparisonTable(results: LiveRunResult[], scenarios: string[], builds: string[], markdown = false): string {
  const header = ['scenario', 'build', 'runs', 'req/s', 'loss', 'tcpcopy CPU s/10k', 'intercept CPU s/10k', 'tcpcopy CPU from 3 s',
    'intercept CPU from 3 s', 'tcpcopy peak RSS MiB', 'intercept peak RSS MiB'];
  const rows: string[][] = [];
  for (const s of scenarios) {
    for (const b of builds) {
      const mine = results.filter((r) => r.scenario === s && r.build === b);
      if (!mine.length) continue;
      const losses = mine.map((r) => r.loss).filter(Number.isFinite);
      const lossText = losses.length > 1 ? `${pct(median(losses))} (${pct(Math.min(...losses))}-${pct(Math.max(...losses))})` : pct(losses[0] ?? NaN);
      const m = (k: Metric) => medianOf(results, s, b, k);
      rows.push([s, b, String(mine.length), num(m('rate'), 0), lossText, num(m('tcpcopyCpuPer10k'), 2), num(m('interceptCpuPer10k'), 2),
        num(m('tcpcopyCpuPer10kAfterWarmUp'), 2), num(m('interceptCpuPer10kAfterWarmUp'), 2), num(m('tcpcopyPeakRssMiB'), 0), num(m('interceptPeakRssMiB'), 0)]);
    }
    if (builds.length === 2) {
      const r = (k: Metric) => num(medianOf(results, s, builds[0], k) / medianOf(results, s, builds[1], k), 2);
      rows.push([s, `${builds[0]}/${builds[1]}`, '', r('rate'), '', r('tcpcopyCpuPer10k'), r('interceptCpuPer10k'), r('tcpcopyCpuPer10kAfterWarmUp'),
        r('interceptCpuPer10kAfterWarmUp'), r('tcpcopyPeakRssMiB'), r('interceptPeakRssMiB')]);
    }
  }
  return textTable(header, rows, markdown);
}

/** The issue's goals for `ours` against `theirs` (CPU per request within 1.5x, RSS within 80 MiB or 200 MiB for 10,000 connections, no loss). */
export function goalLines(results: LiveRunResult[], scenarios: string[], ours: string, theirs: string | undefined): string[] {
  const out: string[] = [];
  for (const s of scenarios) {
    const m = (b: string, k: Metric) => medianOf(results, s, b, k);
    const rssGoal = s === 'conc10000' ? 200 : 80;
    const missed: string[] = [];
    const maxLoss = Math.max(...results.filter((r) => r.scenario === s && r.build === ours).map((r) => r.loss));
    if (!(maxLoss <= 0)) missed.push(`loss up to ${pct(maxLoss)}`);
    if (!(m(ours, 'tcpcopyPeakRssMiB') <= rssGoal)) missed.push(`tcpcopy RSS ${num(m(ours, 'tcpcopyPeakRssMiB'), 0)} > ${rssGoal} MiB`);
    if (!(m(ours, 'interceptPeakRssMiB') <= 80)) missed.push(`intercept RSS ${num(m(ours, 'interceptPeakRssMiB'), 0)} > 80 MiB`);
    if (theirs) {
      const ratio = (k: Metric) => m(ours, k) / m(theirs, k);
      // The goal is over the whole run; the ratio from the 3rd second on is said beside a miss.
      const steady = (k: Metric) => ` (${num(ratio(k), 2)}x from 3 s)`;
      if (!(ratio('tcpcopyCpuPer10k') <= 1.5)) missed.push(`tcpcopy CPU ${num(ratio('tcpcopyCpuPer10k'), 2)}x ${theirs}${steady('tcpcopyCpuPer10kAfterWarmUp')}`);
      if (!(ratio('interceptCpuPer10k') <= 1.5)) missed.push(`intercept CPU ${num(ratio('interceptCpuPer10k'), 2)}x ${theirs}${steady('interceptCpuPer10kAfterWarmUp')}`);
    }
    out.push(`${s}: ${missed.length ? `goals missed: ${missed.join('; ')}` : 'all goals met'}`);
  }
  return out;
}
