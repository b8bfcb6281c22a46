import {
  byteCountRelease,
  CLOSE_TAG,
  type ProtocolContext,
  type ProtocolSession,
  type ReleaseQuery,
  type TargetDataInfo,
} from '@tcpcopy/core';
import { HEAD_INCOMPLETE, HEAD_TOO_LARGE, HeadReader } from './byte-buf';
import { ChunkedDecoder } from './chunked';
import {
  BODY_CHUNKED,
  BODY_INVALID,
  BODY_NONE,
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

/**
 * Tags we emit with:
 *  - k (1, 2, ...): the k-th request forwarded to the target (dropped
 *    requests take no number), head and body alike;
 *  - CONTINUE_TAG_BASE + k: the body of request k when its head says
 *    `Expect: 100-continue` (it may go once the target said 100 Continue);
 *  - RAW_TAG: client bytes after a protocol switch (101, CONNECT), gated by byte counts.
 */
export const RAW_TAG = 0;
export const CONTINUE_TAG_BASE = 2 ** 30;
/** Internal: bytes consumed but not forwarded (a dropped request, a skipped region). */
const DROP = -2;

const LF = 10;

const F_HEAD = 1;
const F_CONNECT = 2;
const F_UPGRADE = 4;

/** Client side: where we are in the client's byte stream. */
const enum C {
  HEAD,
  /** Skipping to the next request line (mid-stream start, garbage), or deciding what follows an upgrade request. */
  SEEK,
  BODY_SIZED,
  BODY_CHUNKED,
  /** After a protocol switch: bytes go as they come. */
  RAW,
}

/** Target side: where we are in the target's replies. */
const enum R {
  HEAD,
  SIZED,
  CHUNKED,
  /** A body delimited by the connection's close. */
  CLOSE,
  /** After 101 or a 2xx to CONNECT: no more HTTP on this connection. */
  TUNNEL,
  /** Framing lost (bytes we were not shown, or not HTTP): byte counts decide from here on. */
  LOST,
}

/** Reused for the shifted byte-count question after a protocol switch (the engine's query must not be kept or changed). */
const tunnelQuery = { onlineServerBytes: 0, targetServerBytes: 0 };

function anyHeaderMatches(h: Head, f: HeaderFilter): boolean {
  const hs = h.headers;
  for (let i = 0; i + 1 < hs.length; i += 2) if (eqLower(hs[i], f.lower) && f.re.test(hs[i + 1])) return true;
  return false;
}

/**
 * One replayed HTTP/1.x connection. The client side frames the captured bytes
 * into requests and emits them (filtered, rewritten) with their numbers; the
 * target side frames the target's responses and counts the complete ones;
 * mayRelease lets request k go once k-1 responses are complete, so the
 * target never holds more than one request, even from a pipelining client.
 */
export class HttpSession implements ProtocolSession {
  // ---- client side
  private cstate = C.HEAD;
  /** Bytes of the client stream before the current segment. */
  private cpos = 0;
  private readonly req = new HeadReader();
  private readonly reqChunks = new ChunkedDecoder();
  private bodyLeft = 0;
  private bodyTag = DROP;
  private curFlags = 0;
  private curDropped = false;
  /** Requests emitted so far (the last request number). */
  private forwarded = 0;
  /** Flags of forwarded requests still awaiting their response: flagQ[flagHead] is request responsesDone + 1's. */
  private flagQ: number[] = [];
  private flagHead = 0;
  // Seeking: the current line is in req.held (starting at stream position heldAbs) or starts at the scan position.
  private anchored = false;
  private heldAbs = 0;
  private seekFrom = 0;
  private seekWhy = '';
  /** The request that asked for the protocol switch (0: none); its raw follow-up is dropped with it. */
  private upgradeReq = 0;
  private rawDrop = false;
  // The contiguous range of the current segment waiting to be emitted with one tag.
  private seg: Buffer | null = null;
  private pStart = 0;
  private pEnd = 0;
  private pTag = DROP;

  // ---- target side
  private rstate = R.HEAD;
  private readonly res = new HeadReader();
  private readonly resChunks = new ChunkedDecoder();
  private rLeft = 0;
  /** Some bytes of the current response were seen (so a close ends it). */
  private rBegun = false;
  private responsesDone = 0;
  /** Last request that got 100 Continue, and last one whose final response head arrived. */
  private continued = 0;
  private finalHeadFor = 0;
  /** Target payload bytes accounted for (shown or not, gaps included): targetServerBytes without FINs. */
  private targetSeen = 0;
  /** targetSeen where a tunnel began; the byte counts of both sides are compared from there. */
  private tunnelAt = 0;
  private tunnelBase = -1;
  private onlineAtRaw = -1;
  private connects = 0;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly rules: HttpRules,
  ) {
    if (ctx.sawHandshake) this.req.begin(0, 0);
    else this.startSeek(0, 'before the first request line (the capture started mid-stream)', 0, false);
    this.res.begin(0, 0);
  }

  // ==== client bytes ==========================================================================

  onClientData(data: Buffer): void {
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
    if (h.method === 'HEAD') flags |= F_HEAD;
    if (h.method === 'CONNECT') flags |= F_CONNECT | F_UPGRADE;
    else if (this.effective(h, 'upgrade') !== undefined && hasToken(this.effective(h, 'connection'), 'upgrade')) flags |= F_UPGRADE;
    const hasBody = framing === BODY_CHUNKED || framing > 0;
    // A server must not send 100 Continue to an HTTP/1.0 client (RFC 9110 §10.1.1): only 1.1+ bodies wait for it.
    const expect =
      hasBody && h.versionMajor === 1 && h.versionMinor >= 1 && eqLower((this.effective(h, 'expect') ?? '').trim(), '100-continue');
    let tag = DROP;
    if (!drop) {
      tag = ++this.forwarded;
      this.flagQ.push(flags);
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
    if (this.curFlags & F_UPGRADE) {
      if (!this.curDropped) this.upgradeReq = this.forwarded;
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

  // ==== target bytes ==========================================================================

  onTargetData(data: Buffer, length: number, info?: TargetDataInfo): void {
    // Bytes before these that no reply brought us (older engines do not say).
    const gap = info?.gap ?? 0;
    if (gap > 0) {
      if (this.skipUnseen(gap) > 0) this.lose(`${gap} target bytes never reached us (a reply intercept missed)`);
      this.targetSeen += gap;
    }
    const seen = Math.min(data.length, length);
    let i = 0;
    while (i < seen) {
      switch (this.rstate) {
        case R.HEAD:
          i = this.readResponseHead(data, i, seen);
          break;
        case R.SIZED: {
          const n = Math.min(seen - i, this.rLeft);
          i += n;
          this.rLeft -= n;
          if (this.rLeft === 0) this.responseDone(i);
          break;
        }
        case R.CHUNKED:
          i = this.resChunks.feed(data, i, seen);
          if (this.resChunks.failed) this.lose(`a bad chunked response body (${this.resChunks.error})`);
          else if (this.resChunks.done) this.responseDone(i);
          break;
        default:
          i = seen; // CLOSE, TUNNEL, LOST: nothing to look at
      }
    }
    // The rest of the reply, which intercept did not return.
    if (length > seen && this.skipUnseen(length - seen) > 0) {
      this.lose(`intercept returned ${seen} of a ${length}-byte reply and the rest is needed (raise reply-bytes)`);
    }
    this.targetSeen += length;
    this.res.rebase();
  }

  /** Accounts for n target bytes we were not shown, where a count is all we need; returns how many needed their bytes. */
  private skipUnseen(n: number): number {
    if (this.rstate === R.SIZED) {
      const k = Math.min(n, this.rLeft);
      this.rLeft -= k;
      n -= k;
      if (this.rLeft === 0) this.responseDone(0);
    } else if (this.rstate === R.CHUNKED) n -= this.resChunks.skip(n);
    return this.rstate === R.HEAD || this.rstate === R.SIZED || this.rstate === R.CHUNKED ? n : 0;
  }

  private readResponseHead(d: Buffer, i: number, end: number): number {
    this.rBegun = true;
    const j = this.res.feed(d, i, end);
    if (j === HEAD_INCOMPLETE) return end;
    if (j === HEAD_TOO_LARGE) {
      this.lose('a response head larger than 64 KiB');
      return end;
    }
    this.onResponseHead(j);
    return j;
  }

  private onResponseHead(next: number): void {
    const h = parseHead('RESPONSE', this.res.buf, this.res.s, this.res.e);
    if (typeof h === 'string') {
      this.lose(`an unparseable response head (${h})`);
      return;
    }
    const n = this.responsesDone + 1;
    const outstanding = n <= this.forwarded;
    const flags = outstanding ? this.flagQ[this.flagHead] : 0;
    const status = h.statusCode;
    if (status === 101) {
      this.responseDone(next);
      this.startTunnel(next);
      return;
    }
    if (status < 200) {
      // Interim (100 Continue, 103 Early Hints): the final response follows.
      if (status === 100 && outstanding) this.continued = n;
      this.res.begin(next, 0);
      this.rBegun = false;
      return;
    }
    if (outstanding) this.finalHeadFor = n;
    if (flags & F_CONNECT && status < 300) {
      this.responseDone(next);
      this.startTunnel(next);
      return;
    }
    if (flags & F_HEAD || status === 204 || status === 304) {
      this.responseDone(next);
      return;
    }
    const framing = bodyFraming(h);
    if (framing === BODY_CHUNKED) {
      this.resChunks.reset();
      this.rstate = R.CHUNKED;
    } else if (framing === BODY_NONE || framing === BODY_OTHER_CODING) {
      this.rstate = R.CLOSE;
    } else if (framing === BODY_INVALID) {
      this.lose('a response with a bad Content-Length');
    } else if (framing === 0) {
      this.responseDone(next);
    } else {
      this.rLeft = framing;
      this.rstate = R.SIZED;
    }
  }

  /** The current response is complete; the next one starts at `next` in the current reply. */
  private responseDone(next: number): void {
    // A response nobody asked for (a 408 before closing, say) completes nothing.
    if (this.responsesDone < this.forwarded) {
      this.responsesDone++;
      this.flagHead++;
      if (this.flagHead > 1024 && this.flagHead * 2 > this.flagQ.length) {
        this.flagQ = this.flagQ.slice(this.flagHead);
        this.flagHead = 0;
      }
    }
    this.rstate = R.HEAD;
    this.rBegun = false;
    this.res.begin(next, 0);
  }

  private startTunnel(next: number): void {
    this.rstate = R.TUNNEL;
    this.tunnelAt = this.targetSeen + next;
  }

  private lose(why: string): void {
    if (this.rstate === R.LOST) return;
    this.rstate = R.LOST;
    this.ctx.log(`cannot follow the target's responses any more: ${why}; requests now go by the online byte counts`);
  }

  /**
   * The target's FIN comes after all its data, so it completes a close-delimited response; a reset ends
   * it too, as nothing more comes on this connection. (Not inferred from targetServerBytes: the idle
   * fallback raises that count while the response is still coming.)
   */
  onTargetClose(): void {
    if (this.rstate === R.CLOSE) this.responseDone(0);
  }

  onConnect(): boolean {
    if (this.connects++ > 0 && this.rstate !== R.LOST) {
      // The target closed or reset the last connection: a response under way ended with it (a
      // close-delimited one already did, in onTargetClose). One not begun yet will come on the new connection.
      if (this.rBegun && this.rstate !== R.TUNNEL) this.responseDone(0);
      this.rstate = R.HEAD;
      this.rBegun = false;
      this.res.begin(0, 0);
    }
    return true;
  }

  // ==== release ===============================================================================

  mayRelease(tag: number, q: ReleaseQuery): boolean {
    if (this.rstate === R.LOST) return byteCountRelease(q);
    if (tag === CLOSE_TAG) {
      if (this.rstate === R.TUNNEL && this.onlineAtRaw >= 0) return this.tunnelRelease(q);
      return this.responsesDone >= this.forwarded;
    }
    if (tag === RAW_TAG) {
      if (this.responsesDone < this.upgradeReq) return false; // the answer to the switch is not in yet
      // Declined by the target: the client's bytes go anyway, as the client did send them.
      return this.rstate === R.TUNNEL ? this.tunnelRelease(q) : true;
    }
    if (tag > CONTINUE_TAG_BASE) {
      const k = tag - CONTINUE_TAG_BASE;
      return this.continued >= k || this.finalHeadFor >= k || this.responsesDone >= k;
    }
    return this.responsesDone >= tag - 1;
  }

  /** The byte-count rule, counted from the protocol switch on both sides (their HTTP parts may differ in size). */
  private tunnelRelease(q: ReleaseQuery): boolean {
    if (this.onlineAtRaw < 0) {
      this.onlineAtRaw = q.onlineServerBytes;
      this.tunnelBase = q.targetServerBytes - (this.targetSeen - this.tunnelAt);
    }
    tunnelQuery.onlineServerBytes = q.onlineServerBytes - this.onlineAtRaw;
    tunnelQuery.targetServerBytes = q.targetServerBytes - this.tunnelBase;
    return byteCountRelease(tunnelQuery);
  }

  onClose(): void {
    if (this.cstate === C.SEEK && !this.anchored) {
      const skipped = this.cpos - this.seekFrom;
      if (skipped > 0) this.ctx.log(`skipped ${skipped} client bytes ${this.seekWhy}; no request line followed`);
    }
  }
}
