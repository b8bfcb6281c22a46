// The `tcpcopy` command: argv → replay() → the summary and the exit code. What is replayed how is
// @tcpcopy/core's replay(); the options are tcpcopy-options.ts; this file adds what only a command
// does: the log and its warning budgets, daemon mode, the pid file, signals, the exit code.
import { ReplayError, type ReplayReadyInfo, type ReplaySummary, replay } from '@tcpcopy/core';
import { checkPidFile, daemonChildEnv, daemonize, fail, openLog, removePidFile, UsageError, writePidFile, type Logger } from './process-control';
import { formatSummary } from './summary-format';
import { COMMAND, parseTcpcopyArgs } from './tcpcopy-options';
import { warningBudget } from './warning-budget';

const DAEMON_CHILD_ENV = daemonChildEnv(COMMAND);
/** Exit codes: an intercept lost without -L; bad input; the -m limit; an offline replay interrupted. */
const EXIT_INTERCEPT_LOST = 1;
const EXIT_USAGE = 2;
const EXIT_MEMORY = 3;
const EXIT_INTERRUPTED = 130;

export async function main(argv: string[]): Promise<void> {
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

  try {
    const args = parseTcpcopyArgs(argv);
    if (!args) process.exit(0); // --help or --version: commander printed it
    if (args.daemon && !daemonChild) {
      await daemonize(COMMAND, argv, args.logFile, args.pidFile);
      return;
    }
    if (args.logFile) log = openLog(args.logFile, args.verbose);
    if (args.pidFile) checkPidFile(args.pidFile, COMMAND);

    // A warning budget per source, so that a chatty protocol never crowds out the engine's own warnings.
    let protocolName = String(args.replay.protocol);
    const warn = warningBudget(log, args.verbose, () => 'warnings');
    const protocolLog = warningBudget(log, args.verbose, () => `messages of protocol ${protocolName}`);
    /** The first intercept reported gone: without -L, the one whose loss ended the replay. */
    let lostIntercept: string | null = null;
    const stopper = new AbortController();

    const ready = (info: ReplayReadyInfo): void => {
      protocolName = info.protocol;
      if (args.pidFile) {
        writePidFile(args.pidFile, COMMAND);
        pidFile = args.pidFile;
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
      onStats: (s) => log('info', formatSummary(s)),
      onReady: ready,
      signal: stopper.signal,
    });

    if (summary.end === 'intercept lost') {
      log('warn', `stopping: intercept at ${lostIntercept} is gone (start it again and rerun, or give -L to keep replaying and reconnect)`);
    }
    report(summary, args.summary, log);
    if (summary.end === 'memory') log('warn', `stopped at the -m limit of ${args.memoryLimitMb} MB (raise -m, or lower -n)`);
    removePidFile(pidFile);
    process.exit(exitCode(summary, args.offline));
  } catch (err) {
    removePidFile(pidFile);
    // Bad input, or an environment that does not allow the replay: one line, exit 2. Anything else is a bug.
    if (err instanceof UsageError || err instanceof ReplayError) startupFailure(err.message, EXIT_USAGE);
    log('warn', `internal error: ${(err as Error)?.stack ?? err}`);
    process.exit(1);
  }
}

/** The counters at the end: one JSON line on stdout (--summary json), or a line in the log. */
function report(summary: ReplaySummary, format: 'text' | 'json', log: Logger): void {
  if (format === 'json') process.stdout.write(JSON.stringify(summary) + '\n');
  else log('info', formatSummary(summary));
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
