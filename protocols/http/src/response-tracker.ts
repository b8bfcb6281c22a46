import type { ProtocolContext, TargetDataInfo } from '@tcpcopy/core';
import { HEAD_INCOMPLETE, HEAD_TOO_LARGE, HeadReader } from './byte-buf';
import { ChunkedDecoder } from './chunked';
import { BODY_CHUNKED, BODY_INVALID, BODY_NONE, BODY_OTHER_CODING, bodyFraming, parseHead } from './head';
import { REQ_CONNECT, REQ_HEAD } from './request-tags';

/** Where we are in the target's replies. */
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

/**
 * The target side of an HTTP/1.x connection: frames the target's responses
 * and counts the complete ones, close-delimited ones included (they end on
 * the target's FIN or reset). Each response answers the oldest forwarded
 * request still unanswered; that request's flags say how its response is framed.
 */
export class ResponseTracker {
  private rstate = R.HEAD;
  private readonly res = new HeadReader();
  private readonly resChunks = new ChunkedDecoder();
  private rLeft = 0;
  /** Some bytes of the current response were seen (so a close ends it). */
  private rBegun = false;
  private done = 0;
  /** Requests forwarded so far. */
  private requested = 0;
  /** Flags of forwarded requests still awaiting their response: flagQ[flagHead] is request done + 1's. */
  private flagQ: number[] = [];
  private flagHead = 0;
  private lastContinued = 0;
  private lastFinalHead = 0;
  /** Target payload bytes accounted for (shown or not, gaps included): targetServerBytes without FINs. */
  private targetSeen = 0;
  /** targetSeen where a tunnel began. */
  private tunnelAt = 0;
  private connects = 0;
  /** Status of the current response's final head (0: not read yet). */
  private status = 0;

  /**
   * `side` says whose responses these are (the target's, or the online server's as captured);
   * `onResponse` gets each complete response to a request: its number and status (0: its head
   * never came whole).
   */
  constructor(
    private readonly ctx: ProtocolContext,
    private readonly side: 'target' | 'online' = 'target',
    private readonly onResponse?: (request: number, status: number) => void,
  ) {
    this.res.begin(0, 0);
  }

  /** Complete responses to forwarded requests. */
  get completed(): number {
    return this.done;
  }

  /** The last request that got 100 Continue. */
  get continued(): number {
    return this.lastContinued;
  }

  /** The last request whose final response head arrived. */
  get finalHeadFor(): number {
    return this.lastFinalHead;
  }

  /** Framing is lost: only byte counts can say when a request may go. */
  get lost(): boolean {
    return this.rstate === R.LOST;
  }

  /** The connection switched protocols (101, or a 2xx to CONNECT). */
  get tunnel(): boolean {
    return this.rstate === R.TUNNEL;
  }

  /** Target payload bytes since the tunnel began. */
  get tunnelBytes(): number {
    return this.targetSeen - this.tunnelAt;
  }

  /** A request with these flags was forwarded: the next unclaimed response answers it. */
  requestSent(flags: number): void {
    this.requested++;
    this.flagQ.push(flags);
  }

  onTargetData(data: Buffer, length: number, info: TargetDataInfo): void {
    // Bytes before these that no reply brought us (a reply intercept missed).
    const gap = info.gap;
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

  /**
   * The target's FIN comes after all its data, so it completes a close-delimited response; a reset ends
   * it too, as nothing more comes on this connection. (Not inferred from targetServerBytes: the idle
   * fallback raises that count while the response is still coming.)
   */
  onTargetClose(): void {
    if (this.rstate === R.CLOSE) this.responseDone(0);
  }

  /** A connection to the target opens. */
  onConnect(): void {
    if (this.connects++ > 0 && this.rstate !== R.LOST) {
      // The target closed or reset the last connection: a response under way ended with it (a
      // close-delimited one already did, in onTargetClose). One not begun yet will come on the new connection.
      if (this.rBegun && this.rstate !== R.TUNNEL) this.responseDone(0);
      this.rstate = R.HEAD;
      this.rBegun = false;
      this.res.begin(0, 0);
    }
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
    const n = this.done + 1;
    const outstanding = n <= this.requested;
    const flags = outstanding ? this.flagQ[this.flagHead] : 0;
    const status = h.statusCode;
    if (status === 101) {
      this.status = status;
      this.responseDone(next);
      this.startTunnel(next);
      return;
    }
    if (status < 200) {
      // Interim (100 Continue, 103 Early Hints): the final response follows.
      if (status === 100 && outstanding) this.lastContinued = n;
      this.res.begin(next, 0);
      this.rBegun = false;
      return;
    }
    if (outstanding) this.lastFinalHead = n;
    this.status = status;
    if (flags & REQ_CONNECT && status < 300) {
      this.responseDone(next);
      this.startTunnel(next);
      return;
    }
    if (flags & REQ_HEAD || status === 204 || status === 304) {
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
    if (this.done < this.requested) {
      this.done++;
      this.flagHead++;
      if (this.flagHead > 1024 && this.flagHead * 2 > this.flagQ.length) {
        this.flagQ = this.flagQ.slice(this.flagHead);
        this.flagHead = 0;
      }
      this.onResponse?.(this.done, this.status);
    }
    this.status = 0;
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
    if (this.side === 'online') this.ctx.log(`cannot follow the online server's responses in the capture any more: ${why}; they are not counted from here`);
    else this.ctx.log(`cannot follow the target's responses any more: ${why}; requests now go by the online byte counts`);
  }
}
