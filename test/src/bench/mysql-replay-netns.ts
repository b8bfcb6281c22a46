// Scenario `mysql`: offline replay of a captured MariaDB workload with the real parts. mariadb-slap
// (concurrency 8, a new connection per iteration), the mariadb CLI and two Node drivers executing prepared
// statements many times work against MariaDB on the online host under tcpdump; the capture is replayed by
// the real tcpcopy CLI (-a 1000) through the real intercept to a fresh MariaDB on the target, twice:
//  - protocol: `--protocol mysql --mysql-user ...` to a target whose users have OTHER passwords (logins
//    recomputed for the target's salt, commands gated on complete replies, statement ids mapped);
//  - raw: the default protocol to a target started with --skip-grant-tables, the only way captured logins
//    get through (the target's greeting has a new salt); commands wait only for "some reply".
// The target's general log says what it executed (Query + Execute entries); tcpcopy's CPU time and peak RSS
// come from /usr/bin/time around it (or, without that program, from /proc sampled while it runs).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ONLINE_PASSWORDS,
  TARGET_PASSWORDS,
  mysqlUserArgs,
  createTopology,
  diffDumps,
  ID_BASE,
  logConnections,
  netnsUnavailableReason,
  prepareShop,
  runCliSession,
  runMariadbConnectorClient,
  runMysql2Client,
  runSlap,
  SHOP_SCHEMA,
  sleep,
  startIntercept,
  startMariadb,
  startTcpdump,
  sumParts,
  TCPCOPY_BIN,
  type GeneralLogEntry,
  type MariadbHandle,
  type PartResult,
  type TableDump,
  type Topology,
} from '../harness';
import { clockTicksPerSecond, cpuSeconds, peakRssBytes } from '../harness/live-load';
import type { Figures } from './figures';

const SCENARIO = 'mysql replay across namespaces';
const PORT = 3306;
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
/** -a: the capture's own pacing does not count, the replay runs as fast as the target answers. */
const SPEED = 1000;
/** --tail-timeout: a replay that stalls costs this long, not the default 30 s (a normal one ends in about a second). */
const TAIL_TIMEOUT_S = 10;
const CAPTURE_ATTEMPTS = 3;
const TIME_BIN = '/usr/bin/time';
/** The workload logs in only as the native-password users app and app2 (edu is created, never used): an
 *  ed25519 login goes through an auth switch, which a --skip-grant-tables target skips, so the raw run
 *  would lose those connections for a reason unrelated to what is measured. */
const ONLINE_PW = ONLINE_PASSWORDS;
const TARGET_PW = TARGET_PASSWORDS;
/**
 * mariadb-slap: 8 clients × 150 iterations, a connection per iteration (1,200 logins, 4,800 statements);
 * mysql2 and MariaDB's connector: 4 × 500 executions of prepared statements each (4,000), a change of
 * user each; one CLI session (about 45 statements). Under a second online, about a second replayed.
 */
const SLAP = { concurrency: 8, iterations: 150 };
const EXECUTIONS = 500;
/** The replay opens slap's 1,200 connections nearly at once (-a 1000): more than the harness's 500. */
const SERVER_ARGS = ['--max-connections=2000'];
const REQUIRED = ['tcpdump', 'mariadbd', 'mariadb-install-db', 'mariadb', 'mariadb-admin', 'mariadb-dump', 'mariadb-slap'];

interface Capture {
  pcap: string;
  dump: TableDump;
  statements: number;
  sent: PartResult;
  packets: number;
  workloadMs: number;
}

interface ReplayResult {
  /** Process start to exit. */
  wallSeconds: number;
  /** The summary's seconds: engine start to the end of the replay. */
  seconds: number;
  cpuSeconds: number;
  peakRssBytes: number;
  /** How CPU and RSS were measured. */
  measuredBy: string;
  summary: any;
  statements: number;
  logins: number;
  deniedLogins: number;
  dump: TableDump;
  stderr: string;
}

export async function mysqlReplayNetns(figures: Figures): Promise<void> {
  const reason = netnsUnavailableReason();
  if (reason) return figures.skip(SCENARIO, `${reason}; it needs root and 'ip netns'`);
  const missing = REQUIRED.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length) return figures.skip(SCENARIO, `missing programs: ${missing.join(', ')} (scripts/setup.sh installs them)`);

  const topo = await createTopology();
  try {
    const cap = await captureWorkload(topo);
    figures.note(`mysql: ${cap.statements} statements (Query + Execute) and ${loginsOf(cap.sent)} logins captured in ${(cap.workloadMs / 1000).toFixed(1)} s (${cap.packets} packets); replayed with -a ${SPEED}`);
    figures.add('mysql.online.statements', cap.statements, 'statements');
    figures.add('mysql.online.logins', loginsOf(cap.sent), 'logins');

    const users = mysqlUserArgs(TARGET_PW);
    const proto = await replay(topo, cap.pcap, ['--protocol', 'mysql', ...users], async (t) => prepareShop(t, TARGET_PW), []);
    report(figures, 'protocol', proto, cap, true);

    // --skip-grant-tables: every login is let in without looking at its scramble, and no CREATE USER is possible.
    const raw = await replay(topo, cap.pcap, [], async (t) => t.setup(SHOP_SCHEMA), ['--skip-grant-tables']);
    report(figures, 'raw', raw, cap, false);
  } finally {
    await topo.destroy();
  }
}

function loginsOf(p: PartResult): number {
  return Object.values(p.logins).reduce((a, b) => a + b, 0);
}

/** Query + Execute entries of TCP connections (root's setup and dumps come over the unix socket). */
function statementsOverTcp(window: GeneralLogEntry[], all: GeneralLogEntry[]): { statements: number; logins: number; denied: number } {
  const conns = logConnections(all);
  let statements = 0;
  let logins = 0;
  let denied = 0;
  for (const e of window) {
    const c = conns.get(e.connectionId);
    if (c?.via === 'Socket') continue;
    if (e.command === 'Query' || e.command === 'Execute') statements++;
    else if (e.command === 'Connect') {
      if (/^Access denied/.test(e.argument)) denied++;
      else logins++;
    }
  }
  return { statements, logins: logins - denied, denied };
}

/**
 * The workload against a fresh online MariaDB under tcpdump. A capture with a hole would be replayed with a
 * hole: when tcpdump dropped packets, the whole thing is done again on a fresh server (the ids are fixed).
 */
async function captureWorkload(topo: Topology): Promise<Capture> {
  for (let attempt = 1; ; attempt++) {
    const online = await startMariadb(topo, 'online', { extraArgs: SERVER_ARGS });
    try {
      await prepareShop(online, ONLINE_PW);
      const mark = online.generalLog().length;
      const pcap = path.join(topo.mkdir('pcap'), `mysql-${attempt}.pcap`);
      const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, `tcp port ${PORT}`, { bufferKiB: 65536 });
      const t0 = performance.now();
      let parts: PartResult[];
      try {
        parts = await Promise.all([
          runSlap(topo, online, { user: 'app', password: ONLINE_PW.app, ...SLAP }),
          runMysql2Client(topo, online, { user: 'app', password: ONLINE_PW.app, user2: 'app2', password2: ONLINE_PW.app2, idBase: ID_BASE.mysql2, n: EXECUTIONS }),
          runMariadbConnectorClient(topo, online, { user: 'app2', password: ONLINE_PW.app2, user2: 'app', password2: ONLINE_PW.app, idBase: ID_BASE.mariadb, n: EXECUTIONS }),
          runCliSession(topo, online, { user: 'app', password: ONLINE_PW.app, idBase: ID_BASE.cliApp, source: 'cli-app', inserts: 20 }),
        ]);
      } catch (err) {
        await cap.stop().catch(() => undefined);
        throw err;
      }
      const stats = await cap.stop();
      const workloadMs = performance.now() - t0;
      const all = online.generalLog();
      const { statements } = statementsOverTcp(all.slice(mark), all);
      if (stats.droppedByKernel === 0) {
        const dump = await online.tableDump('shop');
        return { pcap, dump, statements, sent: sumParts(parts), packets: stats.captured, workloadMs };
      }
      const again = attempt < CAPTURE_ATTEMPTS;
      console.error(`# mysql: tcpdump dropped ${stats.droppedByKernel} packets${again ? ', capturing again' : ''}`);
      if (!again) throw new Error(`tcpdump dropped packets in ${CAPTURE_ATTEMPTS} captures: no complete capture to replay`);
    } finally {
      await online.stop();
    }
  }
}

/** Replays the capture to a fresh target (prepared by `prepare`), then reads its log and rows. */
async function replay(topo: Topology, pcap: string, extra: string[], prepare: (t: MariadbHandle) => Promise<void>, serverArgs: string[]): Promise<ReplayResult> {
  const target = await startMariadb(topo, 'target', { extraArgs: [...SERVER_ARGS, ...serverArgs] });
  try {
    await prepare(target);
    const mark = target.generalLog().length;
    const intercept = await startIntercept(topo, [PORT]);
    let run: Awaited<ReturnType<typeof timedTcpcopy>>;
    try {
      run = await timedTcpcopy(topo, ['-i', pcap, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', '203.0.113.x', '-a', String(SPEED), '--tail-timeout', String(TAIL_TIMEOUT_S), ...extra]);
    } finally {
      await intercept.stop();
    }
    if (run.code !== 0 || !run.summary) {
      throw new Error(`tcpcopy failed (exit ${run.code}): ${run.stderr.slice(-2000)}\n--- target error log ---\n${target.errorLogTail(2000)}`);
    }
    // mariadbd writes the general log entry before it executes a statement: once tcpcopy has its replies, it is there.
    await sleep(200);
    const all = target.generalLog();
    const seen = statementsOverTcp(all.slice(mark), all);
    const dump = await target.tableDump('shop');
    return { ...run, statements: seen.statements, logins: seen.logins, deniedLogins: seen.denied, dump };
  } finally {
    await target.stop();
  }
}

/**
 * tcpcopy on the online host with --summary json, under /usr/bin/time (user and system CPU, peak RSS of
 * the whole run). Without /usr/bin/time, /proc is sampled every 20 ms while it runs (the last few ms missed).
 */
async function timedTcpcopy(topo: Topology, args: string[], timeoutMs = 120_000) {
  const haveTime = fs.existsSync(TIME_BIN);
  const timeFile = path.join(topo.mkdir('mysql-bench'), `time-${Date.now()}.txt`);
  const cmd = haveTime ? TIME_BIN : process.execPath;
  // TCPE_TCPCOPY_NODE_ARGS: node flags for tcpcopy only (e.g. --cpu-prof), as for the live bench.
  const nodeArgs = (process.env.TCPE_TCPCOPY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const cmdArgs = [...nodeArgs, TCPCOPY_BIN, ...args, '--summary', 'json'];
  const t0 = performance.now();
  const proc = topo.spawn('online', cmd, haveTime ? ['-o', timeFile, '-f', '%U %S %M', process.execPath, ...cmdArgs] : cmdArgs);
  let sampled = { cpu: 0, rss: 0 };
  const sampler = haveTime
    ? undefined
    : setInterval(() => {
        try {
          sampled = { cpu: cpuSeconds(proc.pid), rss: Math.max(sampled.rss, peakRssBytes(proc.pid)) };
        } catch {
          /* gone */
        }
      }, 20);
  let timer: NodeJS.Timeout | undefined;
  const status = await Promise.race([proc.exited, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)))]);
  clearTimeout(timer);
  if (sampler) clearInterval(sampler);
  const wallSeconds = (performance.now() - t0) / 1000;
  if (status === null) {
    // Under /usr/bin/time, tcpcopy is time's child: killed first, by its PID.
    for (const child of childPids(proc.pid)) {
      try {
        process.kill(child, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw new Error(`tcpcopy did not finish in ${timeoutMs} ms\n${proc.stderr().slice(-3000)}`);
  }
  const stdout = proc.stdout();
  const line = stdout.split('\n').find((l) => l.startsWith('{'));
  const summary = line ? JSON.parse(line) : null;
  let cpu = sampled.cpu;
  let rss = sampled.rss;
  let measuredBy = `/proc sampled every 20 ms (${clockTicksPerSecond()} ticks/s)`;
  if (haveTime) {
    const m = /^([\d.]+) ([\d.]+) (\d+)\s*$/m.exec(fs.existsSync(timeFile) ? fs.readFileSync(timeFile, 'utf8') : '');
    if (!m) throw new Error(`${TIME_BIN} wrote no "%U %S %M" line to ${timeFile}: ${proc.stderr().slice(-1000)}`);
    cpu = Number(m[1]) + Number(m[2]);
    rss = Number(m[3]) * 1024;
    measuredBy = `${TIME_BIN} (%U + %S, %M)`;
  }
  return { code: status.code, stderr: proc.stderr(), summary, wallSeconds, seconds: Number(summary?.seconds ?? NaN), cpuSeconds: cpu, peakRssBytes: rss, measuredBy };
}

function childPids(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Engine counters named in the note when not zero (the whole summary goes to --json's details). */
const ENGINE_NOTES = ['sessionsCompleted', 'sessionsAborted', 'sessionsReconstructed', 'idleReleases', 'handshakeTimeouts', 'sessionTimeouts', 'protocolFaults'];

/** Protocol counters always shown; any other numeric one is shown when not zero (all of them go to --json's details). */
const KEY_COUNTERS = ['loginsReplayed', 'loginsRefused', 'commands', 'answersOk', 'answersError', 'resultSets', 'statementsPrepared'];

function report(figures: Figures, name: 'protocol' | 'raw', r: ReplayResult, cap: Capture, mustMatch: boolean): void {
  const n = `mysql.${name}`;
  const rowsMatch = r.dump.text === cap.dump.text;
  figures.add(`${n}.seconds`, r.seconds, 's');
  figures.add(`${n}.process_seconds`, r.wallSeconds, 's');
  figures.add(`${n}.statements`, r.statements, 'statements');
  figures.add(`${n}.statements_missing`, cap.statements - r.statements, 'statements');
  figures.add(`${n}.statements_per_s`, r.statements / r.seconds, 'statements/s');
  figures.add(`${n}.logins`, r.logins, 'logins');
  figures.add(`${n}.tcpcopy_cpu`, r.cpuSeconds, 's');
  figures.add(`${n}.cpu_us_per_statement`, r.statements > 0 ? (r.cpuSeconds / r.statements) * 1e6 : NaN, 'µs');
  figures.add(`${n}.tcpcopy_peak_rss`, r.peakRssBytes / 2 ** 20, 'MiB');
  figures.add(`${n}.sessions`, r.summary.engine?.sessionsCreated ?? NaN, 'sessions');
  figures.add(`${n}.retransmissions`, r.summary.engine?.retransmissions ?? NaN, 'packets');
  const proto: Record<string, unknown> = r.summary.protocol ?? {};
  for (const [k, v] of Object.entries(proto)) if (typeof v === 'number' && (v !== 0 || KEY_COUNTERS.includes(k))) figures.add(`${n}.counters.${k}`, v);
  figures.add(`${n}.rows_match`, rowsMatch);
  const engine: Record<string, number> = r.summary.engine ?? {};
  const counters = ENGINE_NOTES.filter((k) => engine[k]).map((k) => `${k} ${engine[k]}`).join(', ');
  figures.note(`mysql ${name}: CPU and RSS by ${r.measuredBy}; engine: ${counters || 'nothing to note'}`, `mysql.${name}`, {
    summary: r.summary,
    targetRows: r.dump.counts,
    onlineRows: cap.dump.counts,
    deniedLogins: r.deniedLogins,
  });
  if (!rowsMatch) {
    const diff = diffDumps(cap.dump.text, r.dump.text, 5);
    const countsDiffer = JSON.stringify(r.dump.counts) !== JSON.stringify(cap.dump.counts);
    const what = `target rows ${JSON.stringify(r.dump.counts)} vs online ${JSON.stringify(cap.dump.counts)}${countsDiffer ? '' : ' (same counts, other values)'}`;
    if (mustMatch) {
      figures.add(`${n}.WARNING`, `the target's rows differ from the online ones: ${what}`);
      console.error(`# mysql ${name}: rows, online vs target:\n${diff}\n--- tcpcopy stderr ---\n${r.stderr.slice(-2000)}`);
    } else {
      figures.note(`mysql ${name}: ${what}`);
    }
  }
  if (mustMatch && r.statements < cap.statements) {
    figures.add(`${n}.WARNING_statements`, `the target executed ${r.statements} of the ${cap.statements} captured statements`);
  }
  if (mustMatch && r.deniedLogins > 0) figures.add(`${n}.WARNING_logins`, `the target refused ${r.deniedLogins} logins`);
}
