// Helpers that drive a ProtocolSession the way the engine's driver does, on the compliance kit's fake context.
import type { ProtocolOptions, ProtocolSession, ReleaseQuery } from '@tcpcopy/core';
import { FakeProtocolContext } from '@tcpcopy/core/compliance';
import { createProtocol } from '../src';

/** The kit's fake context, addressed as a Redis connection (198.51.100.10:40000 → 198.51.100.30:6379). */
export class FakeContext extends FakeProtocolContext {
  constructor(sawHandshake = true) {
    super({ clientIp: '198.51.100.10', clientPort: 40000, targetIp: '198.51.100.30', targetPort: 6379, sawHandshake });
  }
}

export interface Rig {
  ctx: FakeContext;
  s: ProtocolSession;
  /** Client bytes as the engine hands them over; the buffer is scribbled over afterwards, as the engine may. */
  client(data: Buffer | string, onlineServerBytes?: number): void;
  /** One target packet of `length` payload bytes of which `data` was returned. */
  target(data: Buffer | string, length?: number): void;
  may(tag: number, onlineServerBytes?: number, targetServerBytes?: number): boolean;
}

export function rig(options: ProtocolOptions = {}, sawHandshake = true): Rig {
  const ctx = new FakeContext(sawHandshake);
  const s = createProtocol(options).createSession(ctx);
  const query: ReleaseQuery & { onlineServerBytes: number; targetServerBytes: number } = { onlineServerBytes: 0, targetServerBytes: 0 };
  return {
    ctx,
    s,
    client(data, onlineServerBytes = 0) {
      const buf = Buffer.from(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
      s.onClientData!(buf, { onlineServerBytes });
      buf.fill(0x55); // only lent during the call
    },
    target(data, length) {
      const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
      s.onTargetData!(buf, length ?? buf.length, { gap: 0 });
    },
    may(tag, onlineServerBytes = 0, targetServerBytes = 0) {
      query.onlineServerBytes = onlineServerBytes;
      query.targetServerBytes = targetServerBytes;
      ctx.asking = true;
      try {
        return s.mayRelease!(tag, query);
      } finally {
        ctx.asking = false;
      }
    },
  };
}

/** A command as a RESP array of bulk strings. */
export function cmd(...args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'latin1') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A seeded generator, so a failing case can be reproduced (the compliance kit's). */
export { prng } from '@tcpcopy/core/compliance';
