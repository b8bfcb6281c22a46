// Scenario "intercept-buffer" (`--only intercept-buffer`): what intercept's -B (the receive buffer of its
// capture sockets, kernel memory) costs in memory and what a smaller one loses. For each -B, our tcpcopy
// and intercept replay the live scenarios that stress intercept most (keep-alive unthrottled, short
// connections at 4,000/s); replies lost by intercept = the target's replies that reached the assistant
// (an nftables counter there, ahead of nothing: it only counts) minus the packets intercept's capture saw.
import { spawnSync } from 'node:child_process';
import { netnsUnavailableReason, type Topology } from '../harness';
import type { Figures } from './figures';
import { runLiveScenario, type LiveRunResult } from './live-run';
import { median } from './live-report';
import type { LiveOptions } from './live-replay-netns';
import { pickScenarios } from './live-scenarios';
import { createLiveTestbed } from './live-testbed';
import { textTable } from './text-table';
import { thisTree } from './tool-flavours';

const SCENARIO = "intercept's capture buffer";
const SIZES_MIB = [2, 4, 8, 16, 64];
const SHAPES = 'keepalive10_max,short_4000';
const TABLE = 'tcpe_bench';

interface Row {
  bufferMiB: number;
  run: LiveRunResult;
  arrived: number;
  seen: number;
}

export async function interceptBuffer(figures: Figures, opts: LiveOptions): Promise<void> {
  const reason = netnsUnavailableReason();
  if (reason) return figures.skip(SCENARIO, `${reason}; it needs root and 'ip netns'`);
  for (const tool of ['nginx', 'nft']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return figures.skip(SCENARIO, `missing program: ${tool}`);
  }
  const sizes = (process.env.TCPE_BENCH_INTERCEPT_BUFFERS ?? '').split(',').filter(Boolean).map(Number);
  const buffers = sizes.length ? sizes : SIZES_MIB;
  const shapes = pickScenarios(SHAPES);
  const build = thisTree();
  const bed = await createLiveTestbed();
  const rows: Row[] = [];
  try {
    await countArrivals(bed.topo, bed.plan.port);
    for (let rep = 0; rep < opts.repeat; rep++) {
      for (const shape of shapes) {
        for (const b of rep % 2 ? [...buffers].reverse() : buffers) {
          const arrivedBefore = arrivals(bed.topo);
          const run = await runLiveScenario(bed, build, shape, `b${b}r${rep}_${shape.name}`, b);
          const arrived = arrivals(bed.topo) - arrivedBefore;
          const seen = Number(/capture saw (\d+)/.exec(run.interceptWords)?.[1] ?? NaN);
          rows.push({ bufferMiB: b, run, arrived, seen });
          figures.note(
            `intercept -B ${b} ${shape.name} #${rep + 1}: replies at the assistant ${arrived}, intercept saw ${seen} (lost ${arrived - seen}); ` +
              `loss at the target ${(run.loss * 100).toFixed(2)} %; intercept RSS at start ${run.interceptStartRssMiB.toFixed(0)} MiB, peak ` +
              `${run.interceptPeakRssMiB.toFixed(0)} MiB; tcpcopy ${run.tcpcopyWords}`,
            `intercept_buffer.b${b}.${shape.name}.run${rep + 1}`,
            { bufferMiB: b, arrived, seen, ...run },
          );
        }
      }
    }
  } finally {
    await bed.close();
  }

  const header = ['-B MiB', 'scenario', 'runs', 'replies lost by intercept (max)', 'loss at target (max)', 'intercept RSS at start MiB', 'intercept peak RSS MiB'];
  const table: string[][] = [];
  for (const b of buffers) {
    for (const shape of shapes) {
      const mine = rows.filter((r) => r.bufferMiB === b && r.run.scenario === shape.name);
      if (!mine.length) continue;
      const lost = Math.max(...mine.map((r) => r.arrived - r.seen));
      const loss = Math.max(...mine.map((r) => r.run.loss));
      const startRss = median(mine.map((r) => r.run.interceptStartRssMiB));
      const peakRss = median(mine.map((r) => r.run.interceptPeakRssMiB));
      const n = `intercept_buffer.b${b}.${shape.name}`;
      figures.add(`${n}.replies_lost`, lost, 'packets');
      figures.add(`${n}.target_loss`, loss, 'ratio', 3);
      figures.add(`${n}.peak_rss`, peakRss, 'MiB');
      table.push([String(b), shape.name, String(mine.length), String(lost), `${(loss * 100).toFixed(2)} %`, startRss.toFixed(0), peakRss.toFixed(0)]);
    }
  }
  console.log(`\n# intercept -B: replies lost = packets from the target's port at the assistant - packets intercept's capture saw\n${textTable(header, table, opts.markdown)}\n`);
}

/** An nftables counter in the assistant's namespace of the target's replies (what intercept's filter takes). */
async function countArrivals(topo: Topology, port: number): Promise<void> {
  const rules = `table ip ${TABLE} {\n  chain in {\n    type filter hook prerouting priority -400; policy accept;\n    tcp sport ${port} counter\n  }\n}\n`;
  await topo.exec('assistant', 'nft', ['-f', '-'], { input: rules });
}

function arrivals(topo: Topology): number {
  const r = spawnSync('ip', ['netns', 'exec', topo.hosts.assistant.netns, 'nft', 'list', 'table', 'ip', TABLE], { encoding: 'utf8', timeout: 10_000 });
  const m = /counter packets (\d+)/.exec(r.stdout ?? '');
  if (!m) throw new Error(`no nftables counter in the assistant: ${r.stderr}`);
  return Number(m[1]);
}
