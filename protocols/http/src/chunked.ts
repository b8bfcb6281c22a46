/**
 * Framing of a `Transfer-Encoding: chunked` body (RFC 9112 §7.1), for request
 * and response bodies alike. Our own small state machine rather than
 * http-parser-js's: it never buffers or slices (chunk data is skipped by
 * count, so a streamed upload costs nothing per segment), it keeps its place
 * across any split of the input, and it can skip bytes it was never shown
 * (reply payload that intercept did not return) while inside chunk data.
 */

const CR = 13;
const LF = 10;
/** Longest chunk-size line extension or trailer line we accept: beyond it the body is garbage. */
const MAX_LINE = 8192;
/** Chunk sizes beyond this are not real (and would lose precision). */
const MAX_CHUNK = 2 ** 40;

export const enum ChunkState {
  SIZE_START,
  SIZE,
  EXT,
  SIZE_LF,
  DATA,
  DATA_CR,
  DATA_LF,
  TRAILER_START,
  TRAILER,
  END_LF,
  DONE,
  ERROR,
}

/** Hex digit value, or -1. */
function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  const l = b | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

export class ChunkedDecoder {
  state = ChunkState.SIZE_START;
  /** Chunk bytes still to come (DATA), or the size being read (SIZE). */
  private left = 0;
  private lineBytes = 0;
  /** Why the body was rejected (state ERROR). */
  error = '';

  reset(): void {
    this.state = ChunkState.SIZE_START;
    this.left = 0;
    this.lineBytes = 0;
    this.error = '';
  }

  get done(): boolean {
    return this.state === ChunkState.DONE;
  }

  get failed(): boolean {
    return this.state === ChunkState.ERROR;
  }

  /**
   * Consumes buf[i, end) up to the end of the body at most. Returns the index
   * after the last byte consumed: `end`, the byte after the body's final LF
   * (DONE), or the offending byte (ERROR).
   */
  feed(buf: Buffer, i: number, end: number): number {
    while (i < end) {
      switch (this.state) {
        case ChunkState.DATA: {
          const n = Math.min(end - i, this.left);
          i += n;
          this.left -= n;
          if (this.left === 0) this.state = ChunkState.DATA_CR;
          continue;
        }
        case ChunkState.DONE:
        case ChunkState.ERROR:
          return i;
      }
      const b = buf[i];
      switch (this.state) {
        case ChunkState.SIZE_START: {
          const v = hexValue(b);
          if (v < 0) return this.fail(i, 'chunk size expected');
          this.left = v;
          this.state = ChunkState.SIZE;
          break;
        }
        case ChunkState.SIZE: {
          const v = hexValue(b);
          if (v >= 0) {
            this.left = this.left * 16 + v;
            if (this.left > MAX_CHUNK) return this.fail(i, 'chunk size too large');
          } else if (b === CR) this.state = ChunkState.SIZE_LF;
          else if (b === LF) this.sizeLineDone();
          else if (b === 0x3b /* ; */ || b === 0x20 || b === 0x09) {
            this.state = ChunkState.EXT;
            this.lineBytes = 0;
          } else return this.fail(i, 'bad chunk size');
          break;
        }
        case ChunkState.EXT:
          if (b === CR) this.state = ChunkState.SIZE_LF;
          else if (b === LF) this.sizeLineDone();
          else if (++this.lineBytes > MAX_LINE) return this.fail(i, 'chunk extension too long');
          break;
        case ChunkState.SIZE_LF:
          if (b !== LF) return this.fail(i, 'LF expected after chunk size');
          this.sizeLineDone();
          break;
        case ChunkState.DATA_CR:
          // A bare LF is tolerated, as most servers do.
          if (b === CR) this.state = ChunkState.DATA_LF;
          else if (b === LF) this.state = ChunkState.SIZE_START;
          else return this.fail(i, 'CRLF expected after chunk data');
          break;
        case ChunkState.DATA_LF:
          if (b !== LF) return this.fail(i, 'LF expected after chunk data');
          this.state = ChunkState.SIZE_START;
          break;
        case ChunkState.TRAILER_START:
          if (b === CR) this.state = ChunkState.END_LF;
          else if (b === LF) {
            this.state = ChunkState.DONE;
            return i + 1;
          } else {
            this.state = ChunkState.TRAILER;
            this.lineBytes = 1;
          }
          break;
        case ChunkState.TRAILER:
          if (b === LF) this.state = ChunkState.TRAILER_START;
          else if (++this.lineBytes > MAX_LINE) return this.fail(i, 'trailer line too long');
          break;
        case ChunkState.END_LF:
          if (b !== LF) return this.fail(i, 'LF expected at the end of the chunked body');
          this.state = ChunkState.DONE;
          return i + 1;
      }
      i++;
    }
    return i;
  }

  /**
   * Accounts for `n` bytes that follow what was fed but were never seen.
   * Only chunk data can be skipped like that; returns how many were (the rest
   * would need the bytes).
   */
  skip(n: number): number {
    if (this.state !== ChunkState.DATA) return 0;
    const k = Math.min(n, this.left);
    this.left -= k;
    if (this.left === 0) this.state = ChunkState.DATA_CR;
    return k;
  }

  private sizeLineDone(): void {
    if (this.left === 0) {
      this.state = ChunkState.TRAILER_START;
      this.lineBytes = 0;
    } else this.state = ChunkState.DATA;
  }

  private fail(i: number, why: string): number {
    this.state = ChunkState.ERROR;
    this.error = why;
    return i;
  }
}
