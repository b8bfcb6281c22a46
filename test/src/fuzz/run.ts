// `npm run fuzz [-- TIME] [--only ID[,ID]] [--jobs N] [--hang TIME] [--verbose]`: the fuzz properties of every decoder
// (the `*.fuzz.js` modules in core/, protocols/ and plugins/, the same ones their specs run with a fixed
// seed) for TIME (90, 90s, 5m, 1h; default 2m) with random seeds, and a report per decoder: inputs tried,
// failures, time. Each suite runs in a child process, watched: one that stops reporting (a hang) or dies
// (a crash) is reported with the seed it was on. Exit status 1 when anything failed.
//
// `npm run fuzz -- --replay SUITE/PROPERTY --seed S [--path P] [--runs N]` replays one failure in-process,
// with fast-check's full report (the command is printed with every failure).
import fc from 'fast-check';
import { fork } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FuzzProperty, FuzzSuite } from '@tcpcopy/core/fuzz';

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const DEFAULT_MS = 120_000;
/** Runs per seed: a failure is replayed from its seed and path, a hang from its seed and this count. */
const BATCH = 1000;
/** A child that reports nothing for this long is hung (one input should take milliseconds); `--hang S`. */
let silenceMs = 60_000;
/** Failures reported per property at most (the same bug tends to be found again and again). */
const MAX_FAILURES = 3;

// ---- discovery ----------------------------------------------------------------------------

/** Every compiled fuzz module: `<package>/dist/test/**\/*.fuzz.js` under core/, protocols/, plugins/. */
function fuzzModules(): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.fuzz.js')) found.push(p);
    }
  };
  for (const group of ['core', 'protocols', 'plugins']) {
    const g = path.join(ROOT, group);
    if (!fs.existsSync(g)) continue;
    for (const pkg of fs.readdirSync(g)) {
      const t = path.join(g, pkg, 'dist', 'test');
      if (fs.existsSync(t)) walk(t);
    }
  }
  return found.sort();
}

function load(file: string): FuzzSuite {
  const m = require(file) as { suite?: FuzzSuite };
  if (!m.suite || !Array.isArray(m.suite.properties)) throw new Error(`${file} exports no fuzz suite (export const suite: FuzzSuite)`);
  return m.suite;
}

// ---- command line -------------------------------------------------------------------------

function option(argv: string[], name: string): string | undefined {
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  if (argv[i + 1] === undefined || argv[i + 1].startsWith('--')) throw new UsageError(`--${name} needs a value`);
  return argv[i + 1];
}

/** 90, 90s, 5m, 1h → ms. */
function duration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${text}: expected a time budget such as 90, 90s, 5m or 1h`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 's' | 'm' | 'h'];
}

function positional(argv: string[]): string | undefined {
  const withValue = new Set(['--only', '--jobs', '--hang', '--replay', '--seed', '--path', '--runs']);
  for (let i = 0; i < argv.length; i++) {
    if (withValue.has(argv[i])) i++;
    else if (!argv[i].startsWith('--')) return argv[i];
  }
  return undefined;
}

// ---- one suite, in a child process --------------------------------------------------------

type FromChild =
  | { kind: 'batch'; property: string; seed: number }
  | { kind: 'progress'; property: string; runs: number; ms: number; rss: number }
  | { kind: 'failure'; property: string; seed: number; path: string | null; runs: number; counterexample: string; error: string }
  | { kind: 'done' };

/** Runs `ids` of the suite in `file`, `msEach` ms each, reporting to the parent. */
async function child(file: string, msEach: number, ids: readonly string[]): Promise<void> {
  const send = (m: FromChild): Promise<void> => new Promise((r) => process.send!(m, () => r()));
  const suite = load(file);
  for (const p of suite.properties.filter((x) => ids.includes(x.id))) {
    const end = performance.now() + msEach;
    let failures = 0;
    // At least one batch each, however short the slice.
    do {
      const seed = randomInt(0, 2 ** 31 - 1);
      await send({ kind: 'batch', property: p.id, seed });
      const t0 = performance.now();
      const left = Math.max(1, end - t0);
      const d = await fc.check(p.property(), { seed, numRuns: BATCH, plugins: [fc.interruptAfterTimeLimit(left)] });
      // Let what the inputs left behind run (timers, callbacks) before the next batch: an exception
      // thrown there is a crash, and it must show here, with this batch's seed.
      await new Promise((r) => setImmediate(r));
      await send({ kind: 'progress', property: p.id, runs: d.numRuns, ms: performance.now() - t0, rss: process.memoryUsage.rss() });
      if (d.failed) {
        failures++;
        const err = d.errorInstance as Error | null;
        await send({
          kind: 'failure', property: p.id, seed: d.seed, path: d.counterexamplePath, runs: d.numRuns,
          counterexample: d.counterexample === null ? '(none)' : fc.stringify(d.counterexample).slice(0, 4000),
          error: (err?.message ?? String(d.errorInstance)).split('\n').slice(0, 6).join('\n'),
        });
      }
    } while (performance.now() < end && failures < MAX_FAILURES);
  }
  await send({ kind: 'done' });
}

// ---- the report ---------------------------------------------------------------------------

interface PropertyStats {
  id: string;
  inputs: number;
  batches: number;
  failures: number;
  ms: number;
}

interface SuiteReport {
  suite: FuzzSuite;
  file: string;
  props: Map<string, PropertyStats>;
  failures: string[];
  /** Hangs and crashes of its children. */
  broken: string[];
  ms: number;
  peakRss: number;
}

const mb = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MB`;
const replayCommand = (suite: string, property: string, seed: number, p: string | null, runs: number): string =>
  `npm run fuzz -- --replay ${suite}/${property} --seed ${seed} ${p ? `--path "${p}"` : `--runs ${runs}`}`;

/**
 * Runs a suite's properties in a child process, `ms` in all. A child that hangs (reports nothing for
 * `--hang`) is killed; one that hangs or dies has that counted against the property it was on, and a
 * new child goes on with the properties after it.
 */
async function runSuite(file: string, suite: FuzzSuite, ms: number, verbose: boolean): Promise<SuiteReport> {
  const report: SuiteReport = {
    suite, file, props: new Map(), failures: [], broken: [], ms: 0, peakRss: 0,
  };
  for (const p of suite.properties) report.props.set(p.id, { id: p.id, inputs: 0, batches: 0, failures: 0, ms: 0 });
  const t0 = performance.now();
  const msEach = ms / suite.properties.length;
  let todo = suite.properties.map((p) => p.id);
  while (todo.length > 0) {
    const stoppedOn = await runChild(file, suite, msEach, todo, report, verbose);
    if (stoppedOn === null) break;
    todo = todo.slice(todo.indexOf(stoppedOn) + 1);
  }
  report.ms = performance.now() - t0;
  return report;
}

/** One child for `ids`; resolves with the property it hung or died on, or null when it finished. */
function runChild(file: string, suite: FuzzSuite, msEach: number, ids: string[], report: SuiteReport, verbose: boolean): Promise<string | null> {
  return new Promise((resolve) => {
    const c = fork(__filename, ['--child', file, String(msEach), ids.join(',')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let last: { property: string; seed: number } | null = null;
    let done = false;
    let hung = false;
    let watchdog: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        hung = true;
        c.kill('SIGKILL');
      }, silenceMs);
    };
    arm();
    c.on('message', (m: FromChild) => {
      arm();
      if (m.kind === 'batch') {
        last = { property: m.property, seed: m.seed };
        report.props.get(m.property)!.batches++;
        if (verbose) console.log(`  ${suite.id}/${m.property}: seed ${m.seed}`);
      } else if (m.kind === 'progress') {
        const p = report.props.get(m.property)!;
        p.inputs += m.runs;
        p.ms += m.ms;
        report.peakRss = Math.max(report.peakRss, m.rss);
      } else if (m.kind === 'failure') {
        report.props.get(m.property)!.failures++;
        const text = `FAILURE in ${suite.id}/${m.property} (seed ${m.seed}, path ${m.path}):\n` +
          `    ${m.error.replace(/\n/g, '\n    ')}\n    counterexample: ${m.counterexample}\n` +
          `    replay: ${replayCommand(suite.id, m.property, m.seed, m.path, m.runs)}`;
        report.failures.push(text);
        console.log(text);
      } else if (m.kind === 'done') {
        done = true;
      }
    });
    c.on('exit', (code, signal) => {
      clearTimeout(watchdog);
      if (done) {
        resolve(null);
        return;
      }
      const on = last?.property ?? ids[0];
      const what = hung ? `HANG in ${suite.id}/${on}: no progress for ${silenceMs / 1000} s` : `CRASH in ${suite.id}/${on}: the child exited (${signal ?? `code ${code}`})`;
      const text = `${what}; replay: ${last ? replayCommand(suite.id, last.property, last.seed, null, BATCH) : '(before its first input)'}`;
      report.props.get(on)!.failures++;
      report.broken.push(text);
      console.log(text);
      resolve(on);
    });
  });
}

function printReport(reports: SuiteReport[], wallMs: number): number {
  const num = (n: number): string => n.toLocaleString('en-US');
  console.log('');
  console.log('decoder'.padEnd(72) + 'inputs'.padStart(12) + '  failures' + '      time' + '   peak RSS');
  let inputs = 0;
  let failures = 0;
  for (const r of reports) {
    const n = [...r.props.values()].reduce((s, p) => s + p.inputs, 0);
    const f = r.failures.length + r.broken.length;
    inputs += n;
    failures += f;
    console.log(`${r.suite.decoder.slice(0, 70).padEnd(72)}${num(n).padStart(12)}${String(f).padStart(10)}${`${(r.ms / 1000).toFixed(1)} s`.padStart(10)}${mb(r.peakRss).padStart(11)}`);
    for (const p of r.props.values()) {
      console.log(`  ${`${r.suite.id}/${p.id}`.padEnd(70)}${num(p.inputs).padStart(12)}${String(p.failures).padStart(10)}${`${(p.ms / 1000).toFixed(1)} s`.padStart(10)}${`${p.batches} seeds`.padStart(11)}`);
    }
  }
  console.log(`# total: ${num(inputs)} inputs, ${failures} failure(s), hang(s) or crash(es), in ${(wallMs / 1000).toFixed(1)} s`);
  return failures;
}

// ---- main ---------------------------------------------------------------------------------

async function replay(argv: string[], suites: Array<{ file: string; suite: FuzzSuite }>): Promise<number> {
  const [sid, pid] = option(argv, 'replay')!.split('/');
  const found = suites.find((s) => s.suite.id === sid);
  const prop: FuzzProperty | undefined = found?.suite.properties.find((p) => p.id === pid);
  if (!found || !prop) {
    throw new UsageError(`--replay ${sid}/${pid}: no such property; known: ${suites.flatMap((s) => s.suite.properties.map((p) => `${s.suite.id}/${p.id}`)).join(', ')}`);
  }
  const seed = Number(option(argv, 'seed') ?? found.suite.seed);
  const p = option(argv, 'path');
  const runs = Number(option(argv, 'runs') ?? BATCH);
  console.log(`# replaying ${sid}/${pid} with seed ${seed}${p ? `, path ${p}` : ''}, ${runs} runs`);
  try {
    await fc.assert(prop.property(), { seed, numRuns: runs, ...(p ? { path: p, endOnFailure: true } : {}), verbose: argv.includes('--verbose') ? 2 : 1 });
  } catch (err) {
    console.log((err as Error).message);
    return 1;
  }
  console.log('# no failure');
  return 0;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    await child(argv[1], Number(argv[2]), argv[3].split(','));
    return 0;
  }
  let suites = fuzzModules().map((file) => ({ file, suite: load(file) }));
  if (suites.length === 0) throw new UsageError('no fuzz modules found: build first (npm run build)');
  if (option(argv, 'replay') !== undefined) return replay(argv, suites);
  const only = option(argv, 'only');
  if (only !== undefined) {
    const ids = only.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = ids.filter((id) => !suites.some((s) => s.suite.id === id));
    if (unknown.length || ids.length === 0) throw new UsageError(`--only ${only}: expected some of ${suites.map((s) => s.suite.id).join(', ')}`);
    suites = suites.filter((s) => ids.includes(s.suite.id));
  }
  const budget = duration(positional(argv) ?? `${DEFAULT_MS / 1000}`);
  silenceMs = duration(option(argv, 'hang') ?? `${silenceMs / 1000}`);
  const jobsText = option(argv, 'jobs') ?? '1';
  if (!/^[1-9]\d*$/.test(jobsText)) throw new UsageError(`--jobs ${jobsText}: expected a whole number from 1`);
  const jobs = Math.min(suites.length, Number(jobsText));
  // Every suite gets the same share of the budget; `jobs` of them run at a time.
  const perSuite = (budget * jobs) / suites.length;
  const props = suites.reduce((n, s) => n + s.suite.properties.length, 0);
  console.log(`# fuzz: ${suites.length} decoders, ${props} properties, ${(budget / 1000).toFixed(0)} s (${(perSuite / 1000).toFixed(1)} s per decoder), ` +
    `${jobs} at a time; node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} ×${os.cpus().length}; a new random seed every ${BATCH} inputs`);
  const started = performance.now();
  const reports: SuiteReport[] = [];
  const queue = [...suites];
  const verbose = argv.includes('--verbose');
  await Promise.all(Array.from({ length: jobs }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const r = await runSuite(next.file, next.suite, perSuite, verbose);
      console.log(`# ${r.suite.id}: ${[...r.props.values()].reduce((s, p) => s + p.inputs, 0).toLocaleString('en-US')} inputs, ` +
        `${r.failures.length + r.broken.length} failure(s), ${(r.ms / 1000).toFixed(1)} s`);
      reports.push(r);
    }
  }));
  reports.sort((a, b) => suites.findIndex((s) => s.suite === a.suite) - suites.findIndex((s) => s.suite === b.suite));
  return printReport(reports, performance.now() - started) > 0 ? 1 : 0;
}

/** A bad command line: said in one line, without a stack. */
class UsageError extends Error {}

main().then((code) => process.exit(code), (err) => {
  console.error(`fuzz: ${err instanceof UsageError ? err.message : (err as Error)?.stack ?? err}`);
  process.exit(2);
});
