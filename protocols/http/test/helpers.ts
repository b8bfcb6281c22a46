import { CLOSE_TAG, type ProtocolSession } from '@tcpcopy/core';
import { FakeProtocolContext } from '@tcpcopy/core/compliance';
import { HTTPParser } from 'http-parser-js';
import { createProtocol } from '../src';

export interface Emitted {
  /** The very Buffer emitted (not a copy): a protocol must not change what it emitted. */
  data: Buffer;
  tag: number;
  /** onClientData call during which it was emitted (0-based), -1 outside of it. */
  call: number;
}

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A session of createProtocol(options) on the compliance kit's fake context, which records emits and logs; tracks byte counts. */
export class Driver {
  readonly ctx: FakeProtocolContext;
  readonly logs: string[];
  readonly s: ProtocolSession;
  /** Target payload given to onTargetData, plus target FINs. */
  targetBytes = 0;
  /** What the engine's idle release added to targetBytes in release questions. */
  releaseAdjust = 0;
  private calls = 0;
  private readonly seen: Emitted[] = [];

  constructor(options: Record<string, string> = {}, opts: { sawHandshake?: boolean } = {}) {
    this.ctx = new FakeProtocolContext({
      clientIp: '203.0.113.1',
      clientPort: 40000,
      targetIp: '198.51.100.30',
      targetPort: 80,
      sawHandshake: opts.sawHandshake ?? true,
    });
    this.logs = this.ctx.logs;
    this.s = createProtocol(options).createSession(this.ctx);
    this.s.onConnect?.({ resumed: !(opts.sawHandshake ?? true) });
  }

  /** What was emitted (emit and emitNext alike), in order, with the onClientData call it came from. */
  get emits(): readonly Emitted[] {
    const all = this.ctx.emitted;
    for (let i = this.seen.length; i < all.length; i++) this.seen.push({ data: all[i].data, tag: all[i].tag, call: all[i].mark });
    return this.seen;
  }

  client(data: Buffer | string, onlineServerBytes = 0): this {
    this.ctx.mark = this.calls++;
    try {
      // A fresh copy, as the engine hands its own segment copies over.
      this.s.onClientData!(Buffer.from(typeof data === 'string' ? b(data) : data), { onlineServerBytes });
    } finally {
      this.ctx.mark = -1;
    }
    return this;
  }

  /** Feeds `data` in pieces of `size` bytes. */
  clientPieces(data: Buffer | string, size: number): this {
    const buf = typeof data === 'string' ? b(data) : data;
    for (let i = 0; i < buf.length; i += size) this.client(buf.subarray(i, i + size));
    return this;
  }

  /**
   * A target reply of `length` payload bytes of which `data` were returned (all by default),
   * after `gap` bytes that no reply carried.
   */
  target(data: Buffer | string, length?: number, gap = 0): this {
    const buf = typeof data === 'string' ? b(data) : data;
    this.s.onTargetData!(Buffer.from(buf), length ?? buf.length, { gap });
    this.targetBytes += gap + (length ?? buf.length);
    return this;
  }

  targetPieces(data: Buffer | string, size: number): this {
    const buf = typeof data === 'string' ? b(data) : data;
    for (let i = 0; i < buf.length; i += size) this.target(buf.subarray(i, i + size));
    return this;
  }

  /** The target closed: as the engine, its FIN counts as one byte and onTargetClose follows. */
  targetFin(): this {
    this.targetBytes += 1;
    this.s.onTargetClose?.(false);
    return this;
  }

  /**
   * The engine's idle release (--idle-release): the target was quiet while the chunk tagged `tag`, which
   * the client sent after `onlineServerBytes` server bytes, was held; the count is raised to that and
   * the chunk goes without the protocol's yes.
   */
  idleRelease(tag: number, onlineServerBytes: number): this {
    const have = this.targetBytes + this.releaseAdjust;
    if (onlineServerBytes > have) this.releaseAdjust += onlineServerBytes - have;
    this.s.onIdleRelease?.(tag);
    return this;
  }

  may(tag: number, onlineServerBytes = 0): boolean {
    this.ctx.asking = true;
    try {
      return this.s.mayRelease!(tag, { onlineServerBytes, targetServerBytes: this.targetBytes + this.releaseAdjust });
    } finally {
      this.ctx.asking = false;
    }
  }

  mayClose(onlineServerBytes = 0): boolean {
    return this.may(CLOSE_TAG, onlineServerBytes);
  }

  reconnect(): this {
    this.s.onConnect?.({ resumed: true });
    return this;
  }

  /** Everything emitted, concatenated. */
  all(): Buffer {
    return this.ctx.bytes();
  }

  /** The bytes emitted with each tag (as latin1 text), in order of first appearance. */
  byTag(): Map<number, string> {
    return new Map([...this.ctx.byTag()].map(([tag, data]) => [tag, data.toString('latin1')]));
  }

  tags(): number[] {
    return this.ctx.tags();
  }
}

/** A deterministic body of n bytes. */
export function body(n: number, seed = 7): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = 97 + ((x >>> 16) % 26);
  }
  return out;
}

export function get(path: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: example.test\r\n${extra}\r\n`;
}

export function post(path: string, content: Buffer | string, extra = ''): Buffer {
  const c = typeof content === 'string' ? b(content) : content;
  return Buffer.concat([b(`POST ${path} HTTP/1.1\r\nHost: example.test\r\nContent-Length: ${c.length}\r\n${extra}\r\n`), c]);
}

export function chunked(parts: Array<Buffer | string>, trailer = ''): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    const c = typeof p === 'string' ? b(p) : p;
    out.push(b(`${c.length.toString(16)}\r\n`), c, b('\r\n'));
  }
  out.push(b(`0\r\n${trailer}\r\n`));
  return Buffer.concat(out);
}

export function ok(content: Buffer | string = 'hello', extra = ''): Buffer {
  const c = typeof content === 'string' ? b(content) : content;
  return Buffer.concat([b(`HTTP/1.1 200 OK\r\nContent-Length: ${c.length}\r\n${extra}\r\n`), c]);
}

// ---- a miniature engine and target ---------------------------------------------------------------

export interface SimEvent {
  kind: 'request-start' | 'response-done';
  /** Request index at the target (1-based, in arrival order). */
  n: number;
}

export interface SimOptions {
  /** Reply packet payload size. */
  mss?: number;
  /** Payload bytes returned per reply (as intercept's payloadBytes). */
  replyBytes?: number;
  /** Response for the n-th request the target parsed. */
  respond?: (req: { method: string; url: string; n: number; headers: string[] }) => Buffer;
  /** The target answers `Expect: 100-continue` with an interim 100 first. */
  sendContinue?: boolean;
}

/**
 * The engine's part, reduced: emitted chunks go to the target in order, each
 * only once mayRelease says yes; the target (http-parser-js, independent of
 * the code under test) answers every complete request; its replies come back
 * one packet at a time, and a request may be sent between any two of them.
 * Records when each request started to arrive and each response finished.
 */
export function simulate(d: Driver, opts: SimOptions = {}): { events: SimEvent[]; received: Buffer; stuck: boolean } {
  const mss = opts.mss ?? 1448;
  const events: SimEvent[] = [];
  const received: Buffer[] = [];
  const replies: Buffer[] = [];
  let requests = 0;
  const parser = new HTTPParser(HTTPParser.REQUEST);
  parser[HTTPParser.kOnHeadersComplete] = ((info: { method: number; url: string; headers: string[] }) => {
    requests++;
    events.push({ kind: 'request-start', n: requests });
    const h = info.headers;
    const expect = h.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'expect' && /100-continue/i.test(h[i + 1]));
    if (expect && opts.sendContinue !== false) queueReply(b('HTTP/1.1 100 Continue\r\n\r\n'), 0);
    current = { method: HTTPParser.methods[info.method], url: info.url, n: requests, headers: h };
    return 0;
  }) as never;
  let current: { method: string; url: string; n: number; headers: string[] } | null = null;
  parser[HTTPParser.kOnMessageComplete] = (() => {
    const r = current!;
    queueReply((opts.respond ?? (() => ok(`response to ${r.url}`)))(r), r.n);
  }) as never;
  function queueReply(resp: Buffer, n: number): void {
    for (let i = 0; i < resp.length; i += mss) replies.push(resp.subarray(i, i + mss));
    if (n > 0) replies.push(Buffer.from(`#done ${n}`));
  }
  let next = 0;
  for (let guard = 0; guard < 1_000_000; guard++) {
    if (next < d.emits.length && d.may(d.emits[next].tag)) {
      const e = d.emits[next++];
      received.push(e.data);
      const r = parser.execute(e.data);
      if (r instanceof Error) throw r;
      continue;
    }
    const p = replies.shift();
    if (!p) break;
    const shown = Math.min(p.length, opts.replyBytes ?? p.length);
    d.s.onTargetData!(Buffer.from(p.subarray(0, shown)), p.length, { gap: 0 });
    d.targetBytes += p.length;
    // The response's last packet is out: the target has finished it.
    for (let m; replies.length > 0 && (m = /^#done (\d+)$/.exec(replies[0].toString('latin1'))); replies.shift()) {
      events.push({ kind: 'response-done', n: Number(m[1]) });
    }
  }
  return { events, received: Buffer.concat(received), stuck: next < d.emits.length };
}

/** Each request after the first started to arrive only after the previous response was complete. */
export function oneAtATime(events: SimEvent[]): string[] {
  const problems: string[] = [];
  const done = new Set<number>();
  for (const e of events) {
    if (e.kind === 'response-done') done.add(e.n);
    else if (e.n > 1 && !done.has(e.n - 1)) problems.push(`request ${e.n} arrived before response ${e.n - 1} was complete`);
  }
  return problems;
}
