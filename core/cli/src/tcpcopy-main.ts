// The `tcpcopy` command: argv → replay() → the summary and the exit code. What is replayed how is
// @tcpcopy/core's replay(); the options are tcpcopy-options.ts; this file adds what only a command
// does: the log and its warning budgets, daemon mode, the pid file, signals, the exit code.
import { ReplayError, type ReplayReadyInfo, type ReplaySummary, replay } from '@tcpcopy/core';
import { commandLineSecretWarning, daemonArgv, hideSecretFromTitle } from './channel-secret';
import { dropPrivileges } from './privileges';
import { checkPidFile, daemonChildEnv, daemonize, fail, openLog, removePidFile, UsageError, writePidFile, type Logger } from './process-control';
import type { MetricsServer } from './metrics';
import { RateMeter, replayStatus, startStatusLine, statusIntervalSeconds, TerminalStatus } from './status-line';
import { buildFailureReport, buildReport, saveReport, type TcpcopyReport } from './report';
import { formatEndSummary } from './summary-format';
import { tcpcopyDoctor } from './doctor/tcpcopy-doctor';
import { COMMAND, parseTcpcopyArgs } from './tcpcopy-options';
import { warningBudget } from './warning-budget';

const DAEMON_CHILD_ENV = daemonChildEnv(COMMAND);
/** Exit codes: an intercept lost without -L; bad input; the -m limit; an offline replay interrupted. */
const EXIT_INTERCEPT_LOST = 1;
const EXIT_USAGE = 2;
const EXIT_MEMORY = 3;
const EXIT_INTERRUPTED = 130;

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'doctor') return tcpcopyDoctor(argv.slice(1)); // `tcpcopy doctor`: checks instead of a replay
  const daemonChild = process.env[DAEMON_CHILD_ENV] === '1';
  delete process.env[DAEMON_CHILD_ENV];
  const startupFailure = (message: string, code: number): never => {
    if (daemonChild && process.send && process.connected) {
      process.send({ error: message, code }, () => process.exit(code));
      return undefined as never;
    }
    fail(COMMAND, message, code);
  };
  let log: Logger = (_level, message) => process.stderr.write(`${COMMAND}: ${message}\n`);
  let pidFile: string | null = null;
  // Started once the replay runs (in ready()); typed so that TypeScript does not take it for null for good.
  let status = null as { stop(): void } | null;
  let metrics: MetricsServer | null = null;
  /** Once the arguments parse: where the report goes, and what it says of a replay that fails to start. */
  let reportOnFailure: ((error: string, exitCode: number) => void) | null = null;

  try {
    const args = parseTcpcopyArgs(argv);
    if (!args) process.exit(0); // --help or --version: commander printed it
    const startedAt = new Date();
    if (args.reportFile) {
      const file = args.reportFile;
      reportOnFailure = (error, exitCode) => saveReport(file, buildFailureReport(
        { argv, replay: args.replay, offline: args.offline, startedAt, endedAt: new Date(), exitCode }, error), (message) => log('warn', message));
    }
    if (args.secretOnCommandLine) hideSecretFromTitle(COMMAND, argv);
    if (args.daemon && !daemonChild) {
      if (args.secretOnCommandLine) process.stderr.write(`${COMMAND}: ${commandLineSecretWarning(COMMAND)}\n`);
      // The daemon gets the secret in its environment, never on its command line.
      await daemonize(COMMAND, daemonArgv(argv, args.replay.interceptSecret, args.secretOnCommandLine), args.logFile, args.pidFile);
      return;
    }
    // The status line is redrawn in place on a terminal; elsewhere (a pipe, a file, a daemon) it is a log line.
    const terminal = !args.quiet && !daemonChild && process.stderr.isTTY === true ? new TerminalStatus() : null;
    log = openLog(args.logFile, args.verbose, { format: args.logFormat, name: COMMAND, prefixOnStderr: true, terminal: terminal ?? undefined });
    if (args.pidFile) checkPidFile(args.pidFile, COMMAND);
    if (args.secretOnCommandLine) log('warn', commandLineSecretWarning(COMMAND));
    /** The replay's counters on demand, once it runs. */
    let counters: (() => ReplaySummary) | null = null;
    if (args.metrics) {
      // Loaded only with --metrics: prom-client takes tens of ms to load.
      const { MetricsServer } = require('./metrics') as typeof import('./metrics');
      const { tcpcopyMetrics } = require('./tcpcopy-metrics') as typeof import('./tcpcopy-metrics');
      metrics = await MetricsServer.start(args.metrics, tcpcopyMetrics(() => counters?.() ?? null));
    }

    // A warning budget per source, so that a chatty protocol never crowds out the engine's own warnings.
    let protocolName = String(args.replay.protocol);
    const warn = warningBudget(log, args.verbose, () => 'warnings');
    const protocolLog = warningBudget(log, args.verbose, () => `messages of protocol ${protocolName}`);
    /** The first intercept reported gone: without -L, the one whose loss ended the replay. */
    let lostIntercept: string | null = null;
    const stopper = new AbortController();

    const ready = (info: ReplayReadyInfo): void => {
      protocolName = info.protocol;
      counters = info.stats;
      const rate = new RateMeter();
      status = startStatusLine({
        intervalS: args.quiet ? 0 : statusIntervalSeconds(args.statsIntervalS, terminal !== null),
        terminal,
        log,
        read: () => replayStatus(info.stats(), rate, process.memoryUsage.rss()),
      });
      if (args.pidFile) {
        writePidFile(args.pidFile, COMMAND);
        pidFile = args.pidFile;
      }
      // Everything that needs root is open now (raw sockets, capture, log, pid file): --user drops it.
      if (args.user) {
        dropPrivileges(args.user);
        log('info', `running as user ${args.user.name} (uid ${args.user.uid}, gid ${args.user.gid}) from now on`);
      }
      if (args.offline) {
        let interrupted = false;
        const interrupt = (): void => {
          if (interrupted) process.exit(EXIT_INTERRUPTED);
          interrupted = true;
          log('info', 'interrupted: closing sessions');
          stopper.abort();
        };
        process.once('SIGINT', interrupt);
        process.once('SIGTERM', interrupt);
        return;
      }
      const line = `replaying ${info.transfers} to intercept ${args.intercept}; capturing with ${info.capture}`;
      if (daemonChild && process.send) {
        process.send({ ready: `${COMMAND}: ${line}` });
        process.disconnect?.();
      }
      if (!daemonChild || args.logFile) log('info', line);
      process.on('SIGINT', () => stopper.abort());
      process.on('SIGTERM', () => stopper.abort());
    };

    const summary = await replay({
      ...args.replay,
      warn,
      protocolLog,
      onInterceptError: (message, err) => {
        log('warn', message);
        lostIntercept ??= err.address;
      },
      onReady: ready,
      signal: stopper.signal,
    });

    if (summary.end === 'intercept lost') {
      log('warn', `stopping: intercept at ${lostIntercept} is gone (start it again and rerun, or give -L to keep replaying and reconnect)`);
    }
    status?.stop();
    const code = exitCode(summary, args.offline);
    const endReport = buildReport(summary, { argv, replay: args.replay, offline: args.offline, startedAt, endedAt: new Date(), exitCode: code });
    reportOnFailure = null; // the replay ran: its report is the one below
    if (args.reportFile) saveReport(args.reportFile, endReport, (message) => log('warn', message));
    printEndOfRun(summary, endReport, args.summary, args.reportFile, log);
    if (summary.end === 'memory') log('warn', `stopped at the -m limit of ${args.memoryLimitMb} MB (raise -m, or lower -n)`);
    removePidFile(pidFile);
    await metrics?.close();
    process.exit(code);
  } catch (err) {
    status?.stop();
    await metrics?.close();
    removePidFile(pidFile);
    // Bad input, or an environment that does not allow the replay: one line, exit 2. Anything else is a bug.
    if (err instanceof UsageError || err instanceof ReplayError) {
      reportOnFailure?.(err.message, EXIT_USAGE);
      startupFailure(err.message, EXIT_USAGE);
    }
    reportOnFailure?.(`internal error: ${(err as Error)?.message ?? err}`, 1);
    log('warn', `internal error: ${(err as Error)?.stack ?? err}`);
    process.exit(1);
  }
}

/** The counters at the end: one JSON line on stdout (--summary json), or the report's figures in the log. */
function printEndOfRun(summary: ReplaySummary, endReport: TcpcopyReport, format: 'text' | 'json', reportFile: string | null, log: Logger): void {
  if (format === 'json') process.stdout.write(JSON.stringify(summary) + '\n');
  else {
    // One log line each, so every line carries the log's prefix; the counters go with the first (JSON logs).
    const [first, ...rest] = formatEndSummary(endReport, reportFile);
    log('info', first, { summary });
    for (const line of rest) log('info', line);
  }
}

function exitCode(summary: ReplaySummary, offline: boolean): number {
  switch (summary.end) {
    case 'intercept lost':
      return EXIT_INTERCEPT_LOST;
    case 'memory':
      return EXIT_MEMORY;
    case 'stopped':
      return offline ? EXIT_INTERRUPTED : 0;
    default:
      return 0;
  }
}
