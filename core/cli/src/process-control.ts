// What the tcpcopy and intercept commands share: one-line errors, the log, the pid file, daemon mode.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createLogger, type Logger, type LogOptions } from './log';

/** Bad input: one line "<command>: <what> (<how to fix>)" on stderr, exit code 2. */
export class UsageError extends Error {}

export type { LogFields, Logger, LogFormat, LogLevel } from './log';

/** Appends log lines to `file` (or writes them to stderr); text or JSON as `opts` says (see log.ts). */
export function openLog(file: string | null, verbose: boolean, opts: LogOptions = {}): Logger {
  let fd = 2;
  if (file) {
    try {
      fd = fs.openSync(file, 'a');
    } catch (err) {
      throw new UsageError(`cannot open log file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} ` +
        '(check the directory exists and is writable, or change -l)');
    }
  }
  return createLogger(fd, verbose, opts);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Refuses to start over the pid file of a running process. */
export function checkPidFile(file: string, command: string): void {
  let old = NaN;
  try {
    old = Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    return; // no pid file: fine
  }
  if (Number.isInteger(old) && old > 0 && old !== process.pid && pidAlive(old)) {
    throw new UsageError(`pid file ${file} names running process ${old} (another ${command}? stop it, or use another -P)`);
  }
}

export function writePidFile(file: string, command: string): void {
  checkPidFile(file, command);
  try {
    fs.writeFileSync(file, `${process.pid}\n`);
  } catch (err) {
    throw new UsageError(`cannot write pid file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (fix -P)`);
  }
}

export function removePidFile(file: string | null): void {
  if (!file) return;
  try {
    if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
  } catch {
    // Already gone.
  }
}

/** Prints the one-line error and exits. */
export function fail(command: string, message: string, code: number): never {
  process.stderr.write(`${command}: ${message}\n`);
  process.exit(code);
}

const DAEMON_START_TIMEOUT_MS = 15_000;

/** Set in the environment of the process a daemonising command starts. */
export function daemonChildEnv(command: string): string {
  return `TCPCOPY_${command.toUpperCase()}_DAEMON_CHILD`;
}

/**
 * Daemon mode, parent side: start this same command detached, with stdout/stderr on the log,
 * wait until it says it runs (or why it could not start), report that and exit.
 * The child reports with process.send({ ready }) or process.send({ error, code }).
 */
export function daemonize(command: string, argv: string[], logFile: string | null, pidFile: string | null): Promise<never> {
  const log = logFile ?? path.resolve(`${command}.log`);
  let fd: number;
  try {
    fd = fs.openSync(log, 'a');
  } catch (err) {
    fail(command, `cannot open log file ${log}: ${(err as NodeJS.ErrnoException).code} (check the directory, or change -l)`, 2);
  }
  const script = process.argv[1];
  // Paths are made absolute: the daemon runs in / so that it does not pin the current directory.
  const args = [...process.execArgv, script, ...argv, '--log', log];
  if (pidFile) args.push('--pid-file', pidFile);
  const child = spawn(process.execPath, args, {
    detached: true,
    cwd: '/',
    stdio: ['ignore', fd, fd, 'ipc'],
    env: { ...process.env, [daemonChildEnv(command)]: '1' },
  });
  return new Promise<never>(() => {
    const timer = setTimeout(() => {
      fail(command, `the daemon (pid ${child.pid}) did not report within ${DAEMON_START_TIMEOUT_MS / 1000} s; see ${log}`, 1);
    }, DAEMON_START_TIMEOUT_MS);
    child.on('message', (m: { ready?: string; error?: string; code?: number }) => {
      clearTimeout(timer);
      if (m.error !== undefined) fail(command, m.error, m.code ?? 2);
      process.stdout.write(`${m.ready}\n${command}: running as a daemon, pid ${child.pid}, log in ${log}\n`);
      child.disconnect();
      child.unref();
      process.exit(0);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      fail(command, `the daemon exited while starting (${signal ?? `exit code ${code}`}); see ${log}`, 1);
    });
  });
}
