// The channel's shared secret on the command line (--secret) or in the environment (TCPCOPY_SECRET),
// for tcpcopy and intercept alike. The environment is the safe place: /proc/PID/environ is readable
// by the process's own user and root only, while /proc/PID/cmdline (ps) is readable by everyone.
import { UsageError } from './process-control';

export const SECRET_ENV = 'TCPCOPY_SECRET';

export interface ChannelSecret {
  /** null: no secret, the channel is not authenticated. */
  secret: string | null;
  /** It came from --secret: warn, hide it from the process title, keep it off a daemon's command line. */
  onCommandLine: boolean;
}

/** --secret wins over TCPCOPY_SECRET; an empty variable counts as unset, an empty --secret is an error. */
export function channelSecret(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): ChannelSecret {
  if (flag !== undefined) {
    if (flag === '') throw new UsageError(`--secret is empty (give the secret tcpcopy and intercept share, or set ${SECRET_ENV} instead)`);
    return { secret: flag, onCommandLine: true };
  }
  const fromEnv = env[SECRET_ENV];
  return { secret: fromEnv ? fromEnv : null, onCommandLine: false };
}

export function commandLineSecretWarning(command: string): string {
  return `--secret on the command line can be read by every user of this host (ps, /proc/PID/cmdline) until ${command} ` +
    `has started and hidden it; put the secret in the environment instead: ${SECRET_ENV}=... ${command} ...`;
}

/** argv without --secret and its value (`--secret S` or `--secret=S`). */
export function withoutSecret(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--secret') i++;
    else if (!argv[i].startsWith('--secret=')) out.push(argv[i]);
  }
  return out;
}

/**
 * Overwrites the process title (what ps and /proc/PID/cmdline show) with the command line, the
 * secret masked. Linux lets a process rewrite that memory; what ran before this was visible.
 */
export function hideSecretFromTitle(command: string, argv: readonly string[]): void {
  const shown: string[] = [command];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--secret') {
      shown.push('--secret', '***');
      i++;
    } else {
      shown.push(argv[i].startsWith('--secret=') ? '--secret=***' : argv[i]);
    }
  }
  process.title = shown.join(' ');
}

/**
 * What a daemon's child is started with: the secret moves from the command line to the
 * environment the child inherits, so the child's command line never shows it.
 */
export function daemonArgv(argv: readonly string[], secret: string | Buffer | null | undefined, onCommandLine: boolean): string[] {
  if (!onCommandLine || typeof secret !== 'string') return [...argv];
  process.env[SECRET_ENV] = secret;
  return withoutSecret(argv);
}
