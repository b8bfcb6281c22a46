// What the CLI specs share to run commands: a command that must succeed, a skip that says why,
// a process stopped by PID, a run's outcome, and a string made safe for a RegExp.
import { spawnSync, type ChildProcess } from 'node:child_process';

/** How a tcpcopy or intercept run ended. */
export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a set-up command (bounded); throws with its stderr when it fails. */
export function sh(...argv: string[]): void {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr || r.error}`);
}

/** Skips, saying so loudly: a skip must never pass for a test that ran. */
export function loudSkip(ctx: Mocha.Context, why: string): void {
  process.stderr.write(`\n      !!! SKIPPED: ${why} !!!\n`);
  ctx.skip();
}

/** Sends `signal` to the process by its PID, if it still runs. */
export function killPid(p: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (p?.pid && p.exitCode === null && p.signalCode === null) {
    try {
      process.kill(p.pid, signal);
    } catch {
      // gone
    }
  }
}

export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
