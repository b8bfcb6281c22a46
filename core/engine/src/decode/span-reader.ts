import { Buffer } from 'node:buffer';

const NO_BYTES = new ArrayBuffer(0);

/**
 * Reads spans of one long-lived buffer (a capture buffer: each captured payload is summed and copied where it
 * lies) with what that needs made once per buffer, not once per span: a DataView for 32-bit reads, and the
 * ArrayBuffer and offset under the Buffer for views of it. A sum reads 32 bits at a time (about half the time
 * of sumBytes' byte loads for 300 B); a copy is TypedArray#set from a view (Buffer#copy asks C++ for the
 * ArrayBuffer on each call, and its method lookup stayed a generic LoadIC in the engine's optimized code).
 * Another buffer costs a view and that C++ call first, so for a buffer read once the plain functions are cheaper.
 */
export class SpanReader {
  private buf: Buffer | null = null;
  private view: DataView<ArrayBufferLike> = new DataView(NO_BYTES);
  private bytes: ArrayBufferLike = NO_BYTES;
  private offset = 0;

  /** Ones-complement partial sum of buf[start, end), not folded: sumBytes' result. */
  sum(buf: Buffer, start: number, end: number): number {
    if (buf !== this.buf) this.take(buf);
    const v = this.view;
    // The high and the low halves of the 32-bit reads are summed apart: each stays a small integer.
    let hi = 0;
    let lo = 0;
    let i = start;
    const octEnd = start + ((end - start) & ~7);
    for (; i < octEnd; i += 8) {
      const a = v.getUint32(i);
      const b = v.getUint32(i + 4);
      hi += (a >>> 16) + (b >>> 16);
      lo += (a & 0xffff) + (b & 0xffff);
    }
    if (end - i >= 4) {
      const a = v.getUint32(i);
      hi += a >>> 16;
      lo += a & 0xffff;
      i += 4;
    }
    let sum = hi + lo;
    if (end - i >= 2) {
      sum += (buf[i] << 8) | buf[i + 1];
      i += 2;
    }
    if (i < end) sum += buf[i] << 8;
    return sum > 0x3fffffff ? (sum & 0xffff) + Math.floor(sum / 0x10000) : sum;
  }

  /** A new Buffer holding a copy of buf[start, end). */
  copy(buf: Buffer, start: number, end: number): Buffer {
    if (buf !== this.buf) this.take(buf);
    const out = Buffer.allocUnsafe(end - start);
    out.set(new Uint8Array(this.bytes, this.offset + start, end - start));
    return out;
  }

  private take(buf: Buffer): void {
    this.buf = buf;
    this.bytes = buf.buffer;
    this.offset = buf.byteOffset;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
}
