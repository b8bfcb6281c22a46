// A fake ProtocolContext and helpers that drive a ProtocolSession the way the engine's driver does.
import type { ProtocolContext, ProtocolOptions, ProtocolSession, ReleaseQuery } from '@tcpcopy/core';
import { createProtocol } from '../src';

export interface Emitted {
  data: Buffer;
  tag: number;
}

export class FakeContext implements ProtocolContext {
  readonly clientIp = 0xc633640a;
  readonly clientPort = 40000;
  readonly targetIp = 0xc633641e;
  readonly targetPort = 6379;
  readonly emitted: Emitted[] = [];
  readonly logs: string[] = [];
  constructor(readonly sawHandshake = true) {}
  emit(data: Buffer, tag = 0): void {
    this.emitted.push({ data, tag });
  }
  emitNext(data: Buffer, tag = 0): void {
    this.emitted.push({ data, tag });
  }
  alignServerBytes(): void {}
  setReplyPayloadBytes(): void {}
  log(message: string): void {
    this.logs.push(message);
  }
  /** Everything emitted so far, joined. */
  bytes(): Buffer {
    return Buffer.concat(this.emitted.map((e) => e.data));
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
      return s.mayRelease!(tag, query);
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
