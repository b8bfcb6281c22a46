import type { ProtocolOptions } from '@tcpcopy/core';

export interface RedisOptions {
  /** Replaces the password of every AUTH / HELLO AUTH, and logs in reconnected or mid-stream connections. */
  readonly password?: string;
  /** ACL user to log in as (needs `password`). */
  readonly user?: string;
  /** Payload bytes intercept returns of each target reply packet (replyPayloadBytes). */
  readonly replyBytes: number;
}

/**
 * 65000, the most the engine allows: replies are parsed, and a reply packet
 * is not always one MTU. With TSO/GRO on the target or intercept's host a
 * captured "packet" is up to 64 KiB, and a cut that falls among small replies
 * (a long LRANGE, a deep pipeline) loses the count. Bulk bodies beyond the
 * returned bytes are skipped by length, so smaller values work where replies
 * are few per packet or mostly large strings.
 */
export const DEFAULT_REPLY_BYTES = 65000;
const MAX_REPLY_BYTES = 65000;

const KNOWN = ['password', 'user', 'replyBytes'];

/** Reads `--protocol-opt` values; throws a message naming the option for anything unusable. */
export function parseOptions(options: ProtocolOptions): RedisOptions {
  for (const key of Object.keys(options)) {
    if (!KNOWN.includes(key)) throw new Error(`unknown option "${key}" (the redis protocol takes: ${KNOWN.join(', ')})`);
  }
  const single = (key: string): string | undefined => {
    const v = options[key];
    if (v === undefined) return undefined;
    // The engine joins a repeated option's values with newlines.
    if (v.includes('\n')) throw new Error(`option ${key} was given more than once`);
    if (v === '') throw new Error(`option ${key} is empty`);
    return v;
  };
  const password = single('password');
  const user = single('user');
  if (user !== undefined && password === undefined) {
    throw new Error('option user needs password too (the target gets AUTH <user> <password>)');
  }
  let replyBytes = DEFAULT_REPLY_BYTES;
  const rb = single('replyBytes');
  if (rb !== undefined) {
    if (!/^[0-9]+$/.test(rb) || Number(rb) < 1 || Number(rb) > MAX_REPLY_BYTES) {
      throw new Error(`option replyBytes must be a whole number from 1 to ${MAX_REPLY_BYTES} (got "${rb}")`);
    }
    replyBytes = Number(rb);
  }
  return { password, user, replyBytes };
}
