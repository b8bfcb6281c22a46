import type { ProtocolContext } from '@tcpcopy/core';
import { HEAD_INCOMPLETE, HEAD_TOO_LARGE, HeadReader } from './byte-buf';
import { ChunkedDecoder } from './chunked';
import {
  BODY_CHUNKED,
  BODY_INVALID,
  BODY_OTHER_CODING,
  bodyFraming,
  eqLower,
  hasToken,
  type Head,
  headerValue,
  MAX_REQUEST_LINE,
  parseHead,
  requestLineStart,
  rewriteHead,
} from './head';
import type { HeaderFilter, HttpRules } from './options';
import { CONTINUE_TAG_BASE, RAW_TAG, REQ_CONNECT, REQ_HEAD, REQ_UPGRADE } from './request-tags';

/** Internal: bytes consumed but not forwarded (a dropped request, a skipped region). */
const DROP = -2;

const LF = 10;

/** Where we are in the client's byte stream. */
const enum C {
  HEAD,
  /** Skipping to the next request line (mid-stream start, garbage), or deciding what follows an upgrade request. */
  SEEK,
  BODY_SIZED,
  BODY_CHUNKED,
  /** After a protocol switch: bytes go as they come. */
  RAW,
}

function anyHeaderMatches(h: Head, f: HeaderFilter): boolean {
  const hs = h.headers;
  for (let i = 0; i + 1 < hs.length; i += 2) if (eqLower(hs[i], f.lower) && f.re.test(hs[i + 1])) return true;
  return false;
}

/**
 * The client side of an HTTP/1.x connection: cuts the captured client bytes
 * into requests, drops those the filters reject, rewrites heads, and emits
 * the rest with their tags (see request-tags.ts). Resynchronises on the next
 * request line after bytes it cannot frame, and forwards the client's bytes
 * raw after a request asking for a protocol switch.
 */
export class RequestFramer {
  /** Requests emitted so far (the last request number). */
  forwarded = 0;
  /** The request that asked for the protocol switch (0: none); its raw follow-up is dropped with it. */
  upgradeRequest = 0;

  private cstate = C.HEAD;
  /** Bytes of the client stream before the current segment. */
  private cpos = 0;
  private readonly req = new HeadReader();
  private readonly reqChunks = new ChunkedDecoder();
  private bodyLeft = 0;
  private bodyTag = DROP;
  private curFlags = 0;
  private curDropped = false;
  // Seeking: the current line is in req.held (starting at stream position heldAbs) or starts at the scan position.
  private anchored = false;
  private heldAbs = 0;
  private seekFrom = 0;
  private seekWhy = '';
  private rawDrop = false;
  // The contiguous range of the current segment waiting to be emitted with one tag.
  private seg: Buffer | null = null;
  private pStart = 0;
  private pEnd = 0;
  private pTag = DROP;

  /**
   * `onForward` gets each forwarded request's flags, before any of its bytes are emitted;
   * `onRequest` every request's, forwarded or dropped by the filters (the online server answered them all).
   */
  constructor(
    private readonly ctx: ProtocolContext,
    private readonly rules: HttpRules,
    private readonly onForward: (flags: number) => void,
    private readonly onRequest?: (flags: number) => void,
  ) {
    if (ctx.sawHandshake) this.req.begin(0, 0);
    else this.startSeek(0, 'before the first request line (the capture started mid-stream)', 0, false);
  }

  /** The next captured client bytes, in order. */
  feed(data: Buffer): void {
    this.seg = data;
    this.pStart = this.pEnd = 0;
    const end = data.length;
    let i = 0;
    while (i < end) {
      switch (this.cstate) {
        case C.HEAD:
          i = this.readRequestHead(data, i, end);
          break;
        case C.SEEK:
          i = this.anchored ? this.afterUpgrade(data, i, end) : this.seek(data, i, end);
          break;
        case C.BODY_SIZED: {
          const n = Math.min(end - i, this.bodyLeft);
          this.out(i, i + n, this.bodyTag);
          i += n;
          this.bodyLeft -= n;
          if (this.bodyLeft === 0) this.requestDone(i);
          break;
        }
        case C.BODY_CHUNKED: {
          const j = this.reqChunks.feed(data, i, end);
          this.out(i, j, this.bodyTag);
          if (this.reqChunks.failed) this.startSeek(j, `after a bad chunked request body (${this.reqChunks.error})`, this.cpos + j, false);
          else if (this.reqChunks.done) this.requestDone(j);
          i = j;
          break;
        }
        case C.RAW:
          this.out(i, end, this.rawDrop ? DROP : RAW_TAG);
          i = end;
          break;
      }
    }
    this.flush();
    this.seg = null;
    this.req.rebase();
    this.cpos += end;
  }

  /** The client stream ended: says what was skipped looking for a request line that never came. */
  finish(): void {
    if (this.cstate === C.SEEK && !this.anchored) {
      const skipped = this.cpos - this.seekFrom;
      if (skipped > 0) this.ctx.log(`skipped ${skipped} client bytes ${this.seekWhy}; no request line followed`);
    }
  }

  /** Queues data[s, e) for the target with `tag`, merged with the range before it when contiguous. */
  private out(s: number, e: number, tag: number): void {
    if (e <= s || tag === DROP) return;
    if (tag === this.pTag && s === this.pEnd && this.pEnd > this.pStart) {
      this.pEnd = e;
      return;
    }
    this.flush();
    this.pStart = s;
    this.pEnd = e;
    this.pTag = tag;
  }

  private flush(): void {
    const d = this.seg;
    if (d && this.pEnd > this.pStart) {
      // The whole segment as is: no view to make, and the engine reuses its checksum sum.
      this.ctx.emit(this.pStart === 0 && this.pEnd === d.length ? d : d.subarray(this.pStart, this.pEnd), this.pTag);
    }
    this.pStart = this.pEnd = 0;
  }

  /** Emits bytes that are not a range of the current segment (a copy, a rewritten head), in order. */
  private emitOwn(data: Buffer, tag: number): void {
    if (tag === DROP) return;
    this.flush();
    this.ctx.emit(data, tag);
  }

  private readRequestHead(d: Buffer, i: number, end: number): number {
    const j = this.req.feed(d, i, end);
    if (j === HEAD_INCOMPLETE) return end;
    if (j === HEAD_TOO_LARGE) {
      this.startSeek(this.req.pos, 'in a request head larger than 64 KiB', this.req.abs, false);
      return this.req.pos;
    }
    this.onRequestHead(this.req.buf, this.req.s, this.req.e, j);
    return j;
  }

  private onRequestHead(hb: Buffer, hs: number, he: number, next: number): void {
    const h = parseHead('REQUEST', hb, hs, he);
    if (typeof h === 'string') {
      this.startSeek(next, `in an unparseable request head (${h})`, this.req.abs, false);
      return;
    }
    const framing = bodyFraming(h);
    if (framing === BODY_INVALID || framing === BODY_OTHER_CODING) {
      const why = framing === BODY_INVALID ? 'a bad Content-Length' : 'a Transfer-Encoding other than chunked';
      this.startSeek(next, `in a request with ${why}`, this.req.abs, false);
      return;
    }
    const drop = this.rules.filters && !this.accepts(h);
    let flags = 0;
    if (h.method === 'HEAD') flags |= REQ_HEAD;
    if (h.method === 'CONNECT') flags |= REQ_CONNECT | REQ_UPGRADE;
    else if (this.effective(h, 'upgrade') !== undefined && hasToken(this.effective(h, 'connection'), 'upgrade')) flags |= REQ_UPGRADE;
    const hasBody = framing === BODY_CHUNKED || framing > 0;
    // A server must not send 100 Continue to an HTTP/1.0 client (RFC 9110 §10.1.1): only 1.1+ bodies wait for it.
    const expect =
      hasBody && h.versionMajor === 1 && h.versionMinor >= 1 && eqLower((this.effective(h, 'expect') ?? '').trim(), '100-continue');
    this.onRequest?.(flags);
    let tag = DROP;
    if (!drop) {
      tag = ++this.forwarded;
      this.onForward(flags);
      if (this.rules.rewrites) this.emitOwn(rewriteHead(hb, hs, he, this.rules), tag);
      else if (hb === this.seg) this.out(hs, he, tag);
      else this.emitOwn(Buffer.from(hb.subarray(hs, he)), tag); // `held` is reused; the engine keeps what we emit
    }
    this.curFlags = flags;
    this.curDropped = drop;
    this.bodyTag = drop ? DROP : expect ? CONTINUE_TAG_BASE + tag : tag;
    if (framing === BODY_CHUNKED) {
      this.reqChunks.reset();
      this.cstate = C.BODY_CHUNKED;
    } else if (framing > 0) {
      this.bodyLeft = framing;
      this.cstate = C.BODY_SIZED;
    } else this.requestDone(next);
  }

  /** Filters, on the request as captured. */
  private accepts(h: Head): boolean {
    const r = this.rules;
    if (r.allowMethods && !r.allowMethods.has(h.method)) return false;
    if (r.allowUrl.length > 0 && !r.allowUrl.some((re) => re.test(h.url))) return false;
    if (r.denyUrl.some((re) => re.test(h.url))) return false;
    for (const f of r.allowHeader) if (!anyHeaderMatches(h, f)) return false;
    for (const f of r.denyHeader) if (anyHeaderMatches(h, f)) return false;
    return true;
  }

  /** A header's value as the target will see it (after set-header and remove-header). */
  private effective(h: Head, lower: string): string | undefined {
    if (this.rules.rewrites) {
      if (this.rules.removeHeaders.some((r) => r.lower === lower)) return undefined;
      const set = this.rules.setHeaders.find((r) => r.lower === lower);
      if (set) return set.value;
    }
    return headerValue(h, lower);
  }

  /** The request ended at `next`. */
  private requestDone(next: number): void {
    if (this.curFlags & REQ_UPGRADE) {
      if (!this.curDropped) this.upgradeRequest = this.forwarded;
      this.rawDrop = this.curDropped;
      this.startSeek(next, '', this.cpos + next, true);
    } else {
      this.cstate = C.HEAD;
      this.req.begin(next, this.cpos + next);
    }
  }

  private startSeek(i: number, why: string, fromAbs: number, anchored: boolean): void {
    this.cstate = C.SEEK;
    this.anchored = anchored;
    this.req.held.clear();
    this.heldAbs = this.cpos + i;
    this.seekFrom = fromAbs;
    this.seekWhy = why;
  }

  /** A request line starts at stream position `abs`: say what was skipped to get there. */
  private seekDone(abs: number): void {
    const skipped = abs - this.seekFrom;
    if (skipped > 0) this.ctx.log(`skipped ${skipped} client bytes ${this.seekWhy}; resumed at a request line`);
  }

  /** Keeps the tail of the current, unfinished line (enough to recognise a request line when its LF comes). */
  private carry(d: Buffer, s: number, e: number): void {
    const held = this.req.held;
    if (held.len === 0) this.heldAbs = this.cpos + s;
    if (e - s >= MAX_REQUEST_LINE) {
      held.clear();
      this.heldAbs = this.cpos + e - MAX_REQUEST_LINE;
      held.append(d, e - MAX_REQUEST_LINE, e);
      return;
    }
    const over = held.len + (e - s) - MAX_REQUEST_LINE;
    if (over > 0) {
      held.shift(over);
      this.heldAbs += over;
    }
    held.append(d, s, e);
  }

  /** Resynchronising: skips to the first line that ends in a request line (METHOD SP target SP HTTP/1.x). */
  private seek(d: Buffer, i: number, end: number): number {
    const held = this.req.held;
    let ls = i;
    for (;;) {
      const lf = d.indexOf(LF, ls);
      if (lf < 0 || lf >= end) {
        this.carry(d, ls, end);
        return end;
      }
      if (held.len > 0) {
        this.carry(d, ls, lf);
        const m = requestLineStart(held.buf, 0, held.len, false);
        if (m >= 0) {
          this.seekDone(this.heldAbs + m);
          held.shift(m);
          this.cstate = C.HEAD;
          this.req.beginHeld(this.heldAbs + m);
          return lf;
        }
        held.clear();
      } else {
        const m = requestLineStart(d, ls, lf, false);
        if (m >= 0) {
          this.seekDone(this.cpos + m);
          this.cstate = C.HEAD;
          this.req.begin(m, this.cpos + m);
          return m;
        }
      }
      ls = lf + 1;
      if (ls >= end) return end;
    }
  }

  /**
   * After a request asking for a protocol switch: if a request line follows
   * at once, the online server had declined and HTTP goes on; anything else is
   * the new protocol's bytes (a WebSocket frame, a TLS hello), forwarded raw.
   */
  private afterUpgrade(d: Buffer, i: number, end: number): number {
    const held = this.req.held;
    if (held.len === 0) {
      const b = d[i];
      if (b < 65 || b > 90) return this.goRaw(i); // every method starts with A-Z
      const lf = d.indexOf(LF, i);
      if (lf < 0 || lf >= end) {
        if (end - i >= MAX_REQUEST_LINE) return this.goRaw(i);
        this.carry(d, i, end);
        return end;
      }
      if (requestLineStart(d, i, lf, true) !== i) return this.goRaw(i);
      this.cstate = C.HEAD;
      this.req.begin(i, this.cpos + i);
      return i;
    }
    // The first line started in an earlier segment (i is 0 here).
    const lf = d.indexOf(LF, i);
    const stop = lf < 0 || lf >= end ? end : lf;
    if (held.len + (stop - i) >= MAX_REQUEST_LINE) return this.goRaw(i);
    held.append(d, i, stop);
    if (stop === end) return end;
    if (requestLineStart(held.buf, 0, held.len, true) === 0) {
      this.cstate = C.HEAD;
      this.req.beginHeld(this.heldAbs);
      return lf;
    }
    return this.goRaw(lf);
  }

  /** From here the client's bytes go as they come (held ones first). */
  private goRaw(i: number): number {
    const held = this.req.held;
    if (held.len > 0 && !this.rawDrop) this.emitOwn(Buffer.from(held.buf.subarray(0, held.len)), RAW_TAG);
    held.clear();
    this.cstate = C.RAW;
    return i;
  }
}
