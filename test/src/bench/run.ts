// `npm run bench`: prints one figure per line ("name = value unit"); `--json FILE` also writes them as JSON.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { engineThroughput } from './engine-throughput';
import { Figures } from './figures';
import { offlineReplayNetns } from './offline-replay-netns';

function jsonPath(argv: string[]): string | undefined {
  const i = argv.indexOf('--json');
  if (i < 0) return undefined;
  if (!argv[i + 1]) throw new Error('--json needs a file name');
  return argv[i + 1];
}

async function main(): Promise<void> {
  const json = jsonPath(process.argv.slice(2));
  const cpus = os.cpus();
  const machine = { cpu: cpus[0]?.model ?? 'unknown', cpus: cpus.length, node: process.version, platform: `${os.platform()} ${os.release()}` };
  console.log(`# machine: ${machine.cpu}, ${machine.cpus} CPUs, node ${machine.node}, ${machine.platform}`);
  const figures = new Figures();
  const failures: string[] = [];
  const started = performance.now();
  // A failed scenario is reported and the others still run: one broken part should not hide the rest.
  for (const [name, scenario] of [['engine throughput', engineThroughput], ['offline replay across namespaces', offlineReplayNetns]] as const) {
    try {
      await scenario(figures);
    } catch (err) {
      failures.push(name);
      console.error(`!!!!! bench scenario "${name}" failed: ${(err as Error)?.stack ?? err}`);
    }
  }
  console.log(`# bench took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (json) fs.writeFileSync(json, JSON.stringify({ machine, figures: figures.list, skipped: figures.skipped, failures }, null, 2) + '\n');
  // Exit now rather than when the event loop drains: a harness timer (runTcpcopy's 2-minute bound) would
  // otherwise keep the process alive after the work is done.
  process.exit(failures.length ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
