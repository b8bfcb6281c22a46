import type { ProtocolOptions } from '@tcpcopy/core';

/** The environment variable that gives a user's target password: TCPCOPY_MYSQL_PASSWORD_<user>. */
export const PASSWORD_ENV_PREFIX = 'TCPCOPY_MYSQL_PASSWORD_';

export interface MysqlOptions {
  /** Target passwords by user name (`user=name:password`, repeatable; `--mysql-user` on the command line). */
  readonly passwords: ReadonlyMap<string, string>;
  /** Who logs in on a connection captured after its login when no login was seen from that client address. */
  readonly defaultUser: string | null;
  readonly defaultSchema: string | null;
}

const KNOWN = new Set(['user', 'default-user', 'default-schema']);

/**
 * `--protocol-opt` / `--protocol-config` options. `user` holds one `name:password` per line (the
 * first colon splits, so a password may contain colons); a config file may give a list.
 */
export function parseOptions(options: ProtocolOptions): MysqlOptions {
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new Error(`unknown option "${key}" (known: ${[...KNOWN].join(', ')})`);
  }
  const passwords = new Map<string, string>();
  for (const line of (options.user ?? '').split('\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`user=${line.includes(':') ? '' : line}: expected user:password (the password the TARGET knows the user by)`);
    passwords.set(line.slice(0, colon), line.slice(colon + 1));
  }
  const defaultUser = options['default-user'] || null;
  return { passwords, defaultUser, defaultSchema: options['default-schema'] || null };
}

/** The target password of `user`: from the options, else from its environment variable; null when neither gives one. */
export function passwordOf(options: MysqlOptions, user: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const p = options.passwords.get(user);
  if (p !== undefined) return p;
  return env[PASSWORD_ENV_PREFIX + user] ?? null;
}
