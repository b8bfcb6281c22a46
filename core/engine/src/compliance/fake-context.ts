import { parseIpv4 } from '../decode/ip-address';
import { MAX_REPLY_PAYLOAD_BYTES, type ProtocolContext } from '../protocol/session-protocol';

/** One call a session made on its {@link FakeProtocolContext}, in the order made. */
export type FakeContextCall =
  | { readonly kind: 'emit' | 'emitNext'; readonly data: Buffer; readonly tag: number; readonly mark: number }
  | { readonly kind: 'alignServerBytes'; readonly onlineServerBytes: number; readonly mark: number }
  | { readonly kind: 'setReplyPayloadBytes'; readonly bytes: number; readonly mark: number }
  | { readonly kind: 'log'; readonly message: string; readonly mark: number };

/** Bytes a session emitted (with emit, or ahead of the queue with emitNext). */
export interface FakeEmit {
  /** The very Buffer emitted, not a copy: a protocol must not change what it emitted. */
  readonly data: Buffer;
  readonly tag: number;
  /** True for emitNext. */
  readonly next: boolean;
  /** {@link FakeProtocolContext.mark} when it was emitted. */
  readonly mark: number;
}

export interface FakeProtocolContextOptions {
  /** Dotted quad or host-order number; defaults 192.0.2.10:40000 → 198.51.100.30:80. */
  clientIp?: string | number;
  clientPort?: number;
  targetIp?: string | number;
  targetPort?: number;
  /** Default true (the client's SYN was captured). */
  sawHandshake?: boolean;
  /** The protocol's replyPayloadBytes, which setReplyPayloadBytes changes (default 0). */
  replyPayloadBytes?: number;
}

const ip = (v: string | number | undefined, fallback: string): number => {
  if (typeof v === 'number') return v >>> 0;
  const n = parseIpv4(v ?? fallback);
  if (n < 0) throw new Error(`not an IPv4 address: ${JSON.stringify(v)}`);
  return n;
};

/**
 * A ProtocolContext for driving a ProtocolSession by hand, without an engine: it records every
 * call the session makes on it (emit and emitNext with their tags, logs, alignServerBytes and
 * setReplyPayloadBytes), in order, and changes nothing else. Unlike the engine, it keeps every log
 * message (the engine passes 5 per connection) and puts emitNext's bytes in the same list as
 * emit's (the `next` flag tells them apart): what goes ahead of what is the engine's business.
 *
 * ```ts
 * const ctx = new FakeProtocolContext({ targetPort: 6379 });
 * const s = protocol.createSession(ctx);
 * s.onClientData!(Buffer.from('PING\r\n'), { onlineServerBytes: 0 });
 * expect(ctx.emitted.map((e) => e.tag)).to.deep.equal([1]);
 * ```
 */
export class FakeProtocolContext implements ProtocolContext {
  readonly clientIp: number;
  readonly clientPort: number;
  readonly targetIp: number;
  readonly targetPort: number;
  readonly sawHandshake: boolean;
  /** Every call, in order. */
  readonly calls: FakeContextCall[] = [];
  /** What emit and emitNext were given, in the order of the calls. */
  readonly emitted: FakeEmit[] = [];
  /** The messages given to log. */
  readonly logs: string[] = [];
  /** The values given to alignServerBytes. */
  readonly alignments: number[] = [];
  /** The values given to setReplyPayloadBytes (as given, not clamped). */
  readonly replyPayloadRequests: number[] = [];
  /** Reply payload bytes intercept would return now: the protocol's, then the last setReplyPayloadBytes, clamped as the engine clamps it. */
  replyPayloadBytes: number;
  /**
   * A label the test sets (say, the number of the hook call under way); every call recorded
   * carries the value it had then. -1 until set.
   */
  mark = -1;
  /**
   * Set it while the test asks mayRelease or beforeSend: emitNext then throws, as the engine's
   * does (the contract forbids it there).
   */
  asking = false;

  constructor(opts: FakeProtocolContextOptions = {}) {
    this.clientIp = ip(opts.clientIp, '192.0.2.10');
    this.clientPort = opts.clientPort ?? 40000;
    this.targetIp = ip(opts.targetIp, '198.51.100.30');
    this.targetPort = opts.targetPort ?? 80;
    this.sawHandshake = opts.sawHandshake ?? true;
    this.replyPayloadBytes = opts.replyPayloadBytes ?? 0;
  }

  emit(data: Buffer, tag = 0): void {
    this.record(data, tag, false);
  }

  emitNext(data: Buffer, tag = 0): void {
    if (this.asking) throw new Error('emitNext is not allowed from mayRelease or beforeSend');
    this.record(data, tag, true);
  }

  alignServerBytes(onlineServerBytes: number): void {
    this.alignments.push(onlineServerBytes);
    this.calls.push({ kind: 'alignServerBytes', onlineServerBytes, mark: this.mark });
  }

  setReplyPayloadBytes(bytes: number): void {
    this.replyPayloadRequests.push(bytes);
    this.replyPayloadBytes = Math.min(MAX_REPLY_PAYLOAD_BYTES, Math.max(0, bytes | 0));
    this.calls.push({ kind: 'setReplyPayloadBytes', bytes, mark: this.mark });
  }

  log(message: string): void {
    this.logs.push(message);
    this.calls.push({ kind: 'log', message, mark: this.mark });
  }

  /** Everything emitted so far, joined. */
  bytes(): Buffer {
    return Buffer.concat(this.emitted.map((e) => e.data));
  }

  /** The tags emitted, each once, in order of first appearance. */
  tags(): number[] {
    return [...new Set(this.emitted.map((e) => e.tag))];
  }

  /** The bytes emitted with each tag, joined, in order of the tags' first appearance. */
  byTag(): Map<number, Buffer> {
    const parts = new Map<number, Buffer[]>();
    for (const e of this.emitted) {
      const list = parts.get(e.tag);
      if (list) list.push(e.data);
      else parts.set(e.tag, [e.data]);
    }
    return new Map([...parts].map(([tag, list]) => [tag, Buffer.concat(list)]));
  }

  private record(data: Buffer, tag: number, next: boolean): void {
    if (!Buffer.isBuffer(data)) throw new TypeError(`${next ? 'emitNext' : 'emit'}: data must be a Buffer`);
    this.emitted.push({ data, tag, next, mark: this.mark });
    this.calls.push({ kind: next ? 'emitNext' : 'emit', data, tag, mark: this.mark });
  }
}
