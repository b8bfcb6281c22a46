const EMPTY = Buffer.alloc(0);
/** A buffer that grew for one huge head is given back rather than kept for the connection's life. */
const KEEP_BYTES = 16 * 1024;

/** A growable byte buffer for the few bytes that must wait for the next segment (a split head or line). */
export class ByteBuf {
  buf: Buffer = EMPTY;
  len = 0;

  append(src: Buffer, s: number, e: number): void {
    const need = this.len + (e - s);
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2, 256));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    src.copy(this.buf, this.len, s, e);
    this.len = need;
  }

  /** Drops the first n bytes. */
  shift(n: number): void {
    this.buf.copyWithin(0, n, this.len);
    this.len -= n;
  }

  clear(): void {
    this.len = 0;
    if (this.buf.length > KEEP_BYTES) this.buf = EMPTY;
  }
}

const CR = 13;
const LF = 10;

/** Heads longer than this are not HTTP we can replay (nginx's default limit is 32 KiB). */
export const MAX_HEAD = 64 * 1024;

export const HEAD_INCOMPLETE = -1;
export const HEAD_TOO_LARGE = -2;

/**
 * Finds the end of a message head (the blank line; bare LFs are accepted as
 * http-parser-js does) across segments. A head that lies inside one segment is
 * used in place; only a head split across segments is copied (into `held`).
 */
export class HeadReader {
  readonly held = new ByteBuf();
  /** Where the head starts in the current segment, or -1 when its start is in `held`. */
  start = 0;
  /** Stream position of the head's first byte. */
  abs = 0;
  /** Still in empty lines before the start line (RFC 9112 §2.2 lets a server skip them). */
  private lead = true;
  /** The last byte of interest was an LF (CRs between are ignored). */
  private lf = false;
  /** Head bytes before the scan position. */
  private size = 0;
  /** Where feed() stopped scanning when it gave up on a head too large. */
  pos = 0;
  /** The complete head, once feed() found its end: buf[s, e). */
  buf: Buffer = EMPTY;
  s = 0;
  e = 0;

  begin(i: number, abs: number): void {
    this.start = i;
    this.abs = abs;
    this.lead = true;
    this.lf = false;
    this.size = 0;
    this.held.clear();
  }

  /** Continues a head whose first, unfinished line is already in `held`. */
  beginHeld(abs: number): void {
    this.start = -1;
    this.abs = abs;
    this.lead = false;
    this.lf = false;
    this.size = this.held.len;
  }

  /**
   * Scans d[i, end). Returns the index after the head (then buf/s/e hold it),
   * HEAD_INCOMPLETE (all of it kept for the next segment) or HEAD_TOO_LARGE.
   */
  feed(d: Buffer, i: number, end: number): number {
    const from = this.start >= 0 ? this.start : i;
    const limit = Math.min(end, i + (MAX_HEAD - this.size));
    let lead = this.lead;
    let lf = this.lf;
    let j = i;
    let found = false;
    while (j < limit) {
      const b = d[j++];
      if (lead) {
        if (b === CR || b === LF) continue;
        lead = false;
      }
      if (b === LF) {
        if (lf) {
          found = true;
          break;
        }
        lf = true;
      } else if (b !== CR) lf = false;
    }
    this.lead = lead;
    this.lf = lf;
    if (!found) {
      this.size += j - i;
      if (this.size >= MAX_HEAD) {
        this.held.clear();
        this.pos = j;
        return HEAD_TOO_LARGE;
      }
      this.held.append(d, from, j);
      this.start = -1;
      return HEAD_INCOMPLETE;
    }
    if (this.start >= 0) {
      this.buf = d;
      this.s = from;
      this.e = j;
    } else {
      this.held.append(d, from, j);
      this.buf = this.held.buf;
      this.s = 0;
      this.e = this.held.len;
    }
    return j;
  }

  /** Called at the end of each segment: a head begun at its very end starts at the next one's first byte. */
  rebase(): void {
    if (this.start > 0) this.start = 0;
  }
}
