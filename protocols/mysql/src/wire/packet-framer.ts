import { MAX_PACKET_PAYLOAD } from './constants';

/** One logical packet: a run of physical packets joined (all but the last are 0xFFFFFF long). */
export interface FramedPacket {
  /** Sequence id of the first physical packet. */
  seq: number;
  /** The joined payload, without headers. */
  payload: Buffer;
  /** The bytes exactly as received, every 4-byte header included. */
  raw: Buffer;
  /** Physical packets it took (1 below 16 MiB); the next sequence id is seq + packets. */
  packets: number;
}

export interface PacketFramerOptions {
  /** Largest logical payload accepted, in bytes (default 64 MiB); beyond it the framer fails. */
  maxPacketSize?: number;
}

export const DEFAULT_MAX_PACKET_SIZE = 64 * 1024 * 1024;

const HEADER_SIZE = 4;
const EMPTY = Buffer.alloc(0);

/**
 * Cuts a byte stream, fed in chunks split anywhere, into logical MySQL packets.
 *
 * Copies as little as it can: a packet that lies wholly inside one fed chunk comes back as views of
 * that chunk (`raw` always, `payload` too when it is one physical packet), so a caller must not
 * modify or reuse a buffer after feeding it. Bytes of a packet split across chunks are copied once
 * into a buffer of the framer's own. Nothing returned is ever written to again.
 *
 * What it holds is what was fed and not yet taken with {@link next}; a logical packet announced
 * larger than the limit puts it in the {@link error} state, where it drops what it holds and
 * ignores further input until {@link reset}.
 */
export class PacketFramer {
  /** Why framing stopped, or null while it works. */
  error: string | null = null;

  private readonly maxPacketSize: number;
  /** Unconsumed bytes are buf[start, end): a view of the last fed chunk, or our own copy. */
  private buf: Buffer = EMPTY;
  private start = 0;
  private end = 0;
  /** buf is ours: bytes past `end` may be written (bytes before `start` may still be viewed). */
  private owned = false;

  constructor(options: PacketFramerOptions = {}) {
    const max = options.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE;
    if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`maxPacketSize must be a non-negative integer, got ${max}`);
    this.maxPacketSize = max;
  }

  /** Bytes fed and not yet returned by {@link next}. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** Appends `data` to the stream. The caller must not modify `data` afterwards. */
  feed(data: Buffer): void {
    if (this.error !== null || data.length === 0) return;
    if (this.start === this.end) {
      this.buf = data;
      this.start = 0;
      this.end = data.length;
      this.owned = false;
      return;
    }
    if (this.owned && this.buf.length - this.end >= data.length) {
      data.copy(this.buf, this.end);
      this.end += data.length;
      return;
    }
    // A new buffer each time it grows: views already handed out keep pointing at the old one.
    const have = this.end - this.start;
    const grown = Buffer.allocUnsafe(Math.max(have + data.length, 2 * have, 4096));
    this.buf.copy(grown, 0, this.start, this.end);
    data.copy(grown, have);
    this.buf = grown;
    this.start = 0;
    this.end = have + data.length;
    this.owned = true;
  }

  /** The next whole logical packet, or null until more bytes arrive (or after an error). */
  next(): FramedPacket | null {
    if (this.error !== null) return null;
    const buf = this.buf;
    let pos = this.start;
    let total = 0;
    let parts = 0;
    let seq = 0;
    for (;;) {
      if (this.end - pos < HEADER_SIZE) return null;
      const length = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16);
      if (parts === 0) seq = buf[pos + 3];
      total += length;
      if (total > this.maxPacketSize) {
        this.fail(`logical packet of at least ${total} bytes exceeds the limit of ${this.maxPacketSize}`);
        return null;
      }
      pos += HEADER_SIZE + length;
      parts++;
      if (length < MAX_PACKET_PAYLOAD) break;
    }
    if (pos > this.end) return null;

    const raw = buf.subarray(this.start, pos);
    const payload = parts === 1 ? raw.subarray(HEADER_SIZE) : joinPayloads(raw, total);
    this.start = pos;
    if (this.start === this.end) this.release();
    return { seq, payload, raw, packets: parts };
  }

  /** Forgets everything (a new stream): buffered bytes and the error state. */
  reset(): void {
    this.error = null;
    this.release();
  }

  private fail(reason: string): void {
    this.error = reason;
    this.release();
  }

  private release(): void {
    this.buf = EMPTY;
    this.start = 0;
    this.end = 0;
    this.owned = false;
  }
}

/** Concatenates the payloads of the physical packets in `raw` (headers already validated). */
function joinPayloads(raw: Buffer, total: number): Buffer {
  const payload = Buffer.allocUnsafe(total);
  let from = 0;
  let to = 0;
  while (from < raw.length) {
    const length = raw[from] | (raw[from + 1] << 8) | (raw[from + 2] << 16);
    raw.copy(payload, to, from + HEADER_SIZE, from + HEADER_SIZE + length);
    to += length;
    from += HEADER_SIZE + length;
  }
  return payload;
}
