// `npm run bench`: prints one figure per line ("name = value unit"); `--json FILE` also writes them as JSON;
// `--only NAME[,NAME]` runs only those scenarios (engine, offline, live, mysql, online).
import * as fs from 'node:fs';
import * as os from 'node:os';
import { engineThroughput } from './engine-throughput';
import { Figures } from './figures';
import { liveReplayNetns } from './live-replay-netns';
import { mysqlReplayNetns } from './mysql-replay-netns';
import { offlineReplayNetns } from './offline-replay-netns';
import { onlineImpact } from './online-impact';

const SCENARIOS = [
  { key: 'engine', name: 'engine throughput', run: engineThroughput },
  { key: 'offline', name: 'offline replay across namespaces', run: offlineReplayNetns },
  { key: 'live', name: 'live replay across namespaces', run: liveReplayNetns },
  { key: 'mysql', name: 'mysql replay across namespaces', run: mysqlReplayNetns },
  { key: 'online', name: 'online side with and without tcpcopy', run: onlineImpact },
] as const;

/** The value after `--name` (or from `--name=value`), undefined when the option is absent. */
function option(argv: string[], name: string): string | undefined {
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  if (!argv[i + 1] || argv[i + 1].startsWith('--')) throw new Error(`--${name} needs a value`);
  return argv[i + 1];
}

function selected(argv: string[]): typeof SCENARIOS[number][] {
  const only = option(argv, 'only');
  if (only === undefined) return [...SCENARIOS];
  const keys = only.split(',').map((k) => k.trim()).filter(Boolean);
  const unknown = keys.filter((k) => !SCENARIOS.some((s) => s.key === k));
  if (unknown.length || !keys.length) {
    throw new Error(`--only ${only}: expected one or more of ${SCENARIOS.map((s) => s.key).join(', ')}, comma-separated`);
  }
  return SCENARIOS.filter((s) => keys.includes(s.key));
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const json = option(argv, 'json');
  const scenarios = selected(argv);
  const cpus = os.cpus();
  const machine = { cpu: cpus[0]?.model ?? 'unknown', cpus: cpus.length, node: process.version, platform: `${os.platform()} ${os.release()}` };
  console.log(`# machine: ${machine.cpu}, ${machine.cpus} CPUs, node ${machine.node}, ${machine.platform}`);
  const figures = new Figures();
  const failures: string[] = [];
  const started = performance.now();
  // A failed scenario is reported and the others still run: one broken part should not hide the rest.
  for (const { name, run } of scenarios) {
    try {
      await run(figures);
    } catch (err) {
      failures.push(name);
      console.error(`!!!!! bench scenario "${name}" failed: ${(err as Error)?.stack ?? err}`);
    }
  }
  console.log(`# bench took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (json) {
    const out = { machine, figures: figures.list, details: figures.details, skipped: figures.skipped, failures };
    fs.writeFileSync(json, JSON.stringify(out, null, 2) + '\n');
  }
  // Exit now rather than when the event loop drains: a harness timer (runTcpcopy's 2-minute bound) would
  // otherwise keep the process alive after the work is done.
  process.exit(failures.length ? 1 : 0);
}

// Only a bad command line (or an unwritable --json file) gets here: scenario failures are caught above.
main().catch((err) => {
  console.error(`bench: ${(err as Error)?.message ?? err}`);
  process.exit(1);
});
