/**
 * tcpcopy-protocol-redis: replays Redis (RESP) traffic command by command.
 *
 * A third-party protocol for tcpcopy-ts, built on @tcpcopy/core's public API
 * only. Load it with `tcpcopy --protocol tcpcopy-protocol-redis` and give
 * options with `--protocol-opt key=value` (see README.md).
 */
import type { ProtocolOptions, SessionProtocol } from '@tcpcopy/core';
import { parseOptions } from './options';
import { makeShared, RedisSession } from './session';

export { DEFAULT_REPLY_BYTES, parseOptions, type RedisOptions } from './options';
export { PRELUDE_TAG, RESYNC_HOLD_LIMIT, RedisSession } from './session';
export { ReplyParser, type ReplyListener } from './reply-parser';
export { NEED_MORE, NOT_RESP, RequestParser } from './request-parser';

/** The protocol with `--protocol-opt` options; throws on options it cannot use (the loader reports it). */
export function createProtocol(options: ProtocolOptions = {}): SessionProtocol {
  const shared = makeShared(parseOptions(options));
  return {
    name: 'redis',
    replyPayloadBytes: shared.options.replyBytes,
    createSession: (ctx) => new RedisSession(ctx, shared),
  };
}

/** The protocol without options: no credential rewriting. */
const redisProtocol: SessionProtocol = createProtocol();
export default redisProtocol;
