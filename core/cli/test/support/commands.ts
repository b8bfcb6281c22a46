// The two commands as the CLI specs run them without root or a network: their scripts, one bounded
// run, and arguments that take each past its option checks.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { Run } from './process';

const ROOT = path.resolve(__dirname, '../../../../..');

export type CommandName = 'tcpcopy' | 'intercept';

export const COMMAND_BIN: Readonly<Record<CommandName, string>> = {
  tcpcopy: path.join(ROOT, 'core/cli/bin/tcpcopy.js'),
  intercept: path.join(ROOT, 'core/cli/bin/intercept.js'),
};

/** A small classic pcap file of the engine's fixtures. */
export const SAMPLE_PCAP = path.join(ROOT, 'core/engine/test/fixtures/eth-us.pcap');

/**
 * Arguments after which a command has taken its options and stops at the first thing that needs
 * more: tcpcopy replays a pcap file to an intercept nothing listens at (exit 2, one line naming
 * 127.0.0.1:9); intercept captures on lo (root only). A bad option added to them is refused first.
 */
export const PAST_OPTIONS: Readonly<Record<CommandName, readonly string[]>> = {
  tcpcopy: ['-i', SAMPLE_PCAP, '-x', '80-198.51.100.30:80', '-s', '127.0.0.1:9'],
  intercept: ['-i', 'lo'],
};

/** Runs `command` with `args` to its end (killed after 20 s). */
export function runCommand(command: CommandName, args: readonly string[]): Run {
  const r = spawnSync(process.execPath, [COMMAND_BIN[command], ...args], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}
