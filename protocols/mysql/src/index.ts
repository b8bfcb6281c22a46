/**
 * @tcpcopy/protocol-mysql: replays MySQL and MariaDB sessions with real logins.
 *
 * `tcpcopy --protocol mysql --mysql-user app:PASSWORD` (or `--protocol-opt user=app:PASSWORD`,
 * `--protocol-config FILE`, or TCPCOPY_MYSQL_PASSWORD_<user> in the environment) gives the password
 * each user has at the TARGET; logins are recomputed for the target's salt with it.
 */
import type { ProtocolOptions, SessionProtocol } from '@tcpcopy/core';
import { parseOptions } from './options';
import { MysqlSession } from './session';
import { MysqlShared } from './shared';

export { parseOptions, passwordOf, PASSWORD_ENV_PREFIX, type MysqlOptions } from './options';
export { MysqlSession } from './session';
export { MysqlStats } from './shared';
export { computeAuthResponse, SUPPORTED_AUTH_PLUGINS } from './auth/auth-plugins';

/**
 * Target payload bytes intercept returns per reply: whole segments, since a result set's packet
 * headers may sit anywhere in them (a session that gives up asks for none).
 */
export const MYSQL_REPLY_BYTES = 65000;

/** The protocol with `--protocol-opt` options; throws on options it cannot use (the loader reports it). */
export function createProtocol(options: ProtocolOptions = {}): SessionProtocol {
  const shared = new MysqlShared(parseOptions(options));
  return {
    name: 'mysql',
    replyPayloadBytes: MYSQL_REPLY_BYTES,
    createSession: (ctx) => new MysqlSession(ctx, shared),
    stats: () => ({ ...shared.stats }),
    requestStats: () => shared.requests.snapshot(),
  };
}
