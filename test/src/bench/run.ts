// `npm run bench`: prints one figure per line ("name = value unit"); `--json FILE` also writes them as JSON;
// `--only NAME[,NAME]` runs only those scenarios (engine, offline, live, mysql, online; intercept-buffer, restart
// and wakeup only when named).
// Live comparison: `--compare-with DIR` (another build's tcpcopy and intercept: the C tool's, or ours
// behind wrapper scripts; `--compare-flavour c|ours` when `DIR/tcpcopy -v` cannot tell, `--compare-label`
// names it), `--repeat N` runs per scenario and build, `--live-scenarios a,b` some of them, `--markdown`
// prints the table as Markdown too; `--paired` runs both builds' tcpcopys at once on the same load (two builds of
// ours share one intercept; against the C tool each has its own), `--side-by-side` too, each with its own intercept.
// Engine comparison: `--engine-against TREE` (another checkout of this project, built): its engine replays the
// engine scenario's capture too, pass for pass alternating with this one's in the same process.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { engineThroughput } from './engine-throughput';
import { Figures } from './figures';
import { interceptBuffer } from './intercept-buffer';
import { liveReplayNetns, type LiveOptions } from './live-replay-netns';
import { pickScenarios } from './live-scenarios';
import { mysqlReplayNetns } from './mysql-replay-netns';
import { offlineReplayNetns } from './offline-replay-netns';
import { onlineImpact } from './online-impact';
import { targetRestart } from './target-restart';
import { wakeupCost } from './wakeup-cost';
import { buildIn, type FlavourKind } from './tool-flavours';

interface BenchOptions extends LiveOptions {
  /** Another checkout whose engine the engine scenario runs beside this one's. */
  engineAgainst?: string;
}

const SCENARIOS: ReadonlyArray<{ key: string; name: string; run: (f: Figures, opts: BenchOptions) => Promise<void> }> = [
  { key: 'engine', name: 'engine throughput', run: engineThroughput },
  { key: 'offline', name: 'offline replay across namespaces', run: offlineReplayNetns },
  { key: 'live', name: 'live replay across namespaces', run: liveReplayNetns },
  { key: 'mysql', name: 'mysql replay across namespaces', run: mysqlReplayNetns },
  { key: 'online', name: 'online side with and without tcpcopy', run: onlineImpact },
  // Not in the default run (about 4 minutes): what intercept's -B costs in memory and saves in replies.
  { key: 'intercept-buffer', name: "intercept's capture buffer (-B) against lost replies", run: interceptBuffer },
  // Not in the default run (about 1 minute, 2 with --compare-with): the target's nginx restarted under load.
  { key: 'restart', name: 'target restart under load', run: targetRestart },
  // Not in the default run (half a minute; needs cc): what a wake-up costs a C and a node process doing nothing.
  { key: 'wakeup', name: 'wake-up cost, C against node', run: wakeupCost },
];
const DEFAULT_KEYS = ['engine', 'offline', 'live', 'mysql', 'online'];

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
  if (only === undefined) return SCENARIOS.filter((s) => DEFAULT_KEYS.includes(s.key));
  const keys = only.split(',').map((k) => k.trim()).filter(Boolean);
  const unknown = keys.filter((k) => !SCENARIOS.some((s) => s.key === k));
  if (unknown.length || !keys.length) {
    throw new Error(`--only ${only}: expected one or more of ${SCENARIOS.map((s) => s.key).join(', ')}, comma-separated`);
  }
  return SCENARIOS.filter((s) => keys.includes(s.key));
}

/** The live comparison's options from the command line; throws one line on a bad one. */
function liveOptions(argv: string[], scenarios: typeof SCENARIOS[number][]): LiveOptions {
  const dir = option(argv, 'compare-with');
  const flavour = option(argv, 'compare-flavour');
  if (flavour !== undefined && flavour !== 'c' && flavour !== 'ours') throw new Error(`--compare-flavour ${flavour}: expected c or ours`);
  const repeatText = option(argv, 'repeat') ?? '1';
  const repeat = Number(repeatText);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 10) throw new Error(`--repeat ${repeatText}: expected a whole number of runs from 1 to 10`);
  if (dir !== undefined && !scenarios.some((s) => s.key === 'live' || s.key === 'restart')) throw new Error('--compare-with compares the live scenarios: run them too (--only live or restart)');
  if ((argv.includes('--paired') || argv.includes('--side-by-side')) && dir === undefined) {
    throw new Error('--paired and --side-by-side run two builds at once: give --compare-with DIR too');
  }
  return {
    scenarios: pickScenarios(option(argv, 'live-scenarios') ?? process.env.TCPE_BENCH_LIVE_SHAPES),
    other: dir === undefined ? undefined : buildIn(dir, flavour as FlavourKind | undefined, option(argv, 'compare-label')),
    repeat,
    markdown: argv.includes('--markdown'),
    paired: argv.includes('--paired') || argv.includes('--side-by-side'),
    ownIntercepts: argv.includes('--side-by-side'),
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const json = option(argv, 'json');
  const scenarios = selected(argv);
  const engineAgainst = option(argv, 'engine-against');
  if (engineAgainst !== undefined) {
    if (!scenarios.some((s) => s.key === 'engine')) throw new Error('--engine-against compares the engine scenario: run it too (--only engine)');
    const built = path.join(engineAgainst, 'core', 'engine', 'dist', 'src', 'index.js');
    if (!fs.existsSync(built)) throw new Error(`--engine-against ${engineAgainst}: no built engine there (${built}): give a checkout of this project built with npx tsc -b`);
  }
  const opts: BenchOptions = { ...liveOptions(argv, scenarios), engineAgainst };
  const cpus = os.cpus();
  const machine = { cpu: cpus[0]?.model ?? 'unknown', cpus: cpus.length, node: process.version, platform: `${os.platform()} ${os.release()}` };
  console.log(`# machine: ${machine.cpu}, ${machine.cpus} CPUs, node ${machine.node}, ${machine.platform}`);
  const figures = new Figures();
  const failures: string[] = [];
  const started = performance.now();
  // A failed scenario is reported and the others still run: one broken part should not hide the rest.
  for (const { name, run } of scenarios) {
    try {
      await run(figures, opts);
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
