/**
 * Length-encoded integers and strings, and NUL-terminated strings, of the MySQL protocol.
 *
 * Readers never throw: a truncated or invalid field gives `next === -1`. Strings come back as views
 * of the input (no copy): copy them if the input buffer is reused.
 */

/** Result of reading a length-encoded integer. `next` is -1 when the field is truncated or invalid. */
export interface LenencInt {
  value: number;
  next: number;
}

/** Result of reading a string field. `next` is -1 when the field is truncated or invalid. */
export interface BytesField {
  value: Buffer;
  next: number;
}

const EMPTY = Buffer.alloc(0);
const BAD_INT: Readonly<LenencInt> = Object.freeze({ value: 0, next: -1 });
const BAD_BYTES: Readonly<BytesField> = Object.freeze({ value: EMPTY, next: -1 });

/** First byte of a length-encoded NULL (in text rows); {@link readLenencInt} rejects it. */
export const LENENC_NULL = 0xfb;

/**
 * Reads a length-encoded integer at `offset`: < 0xfb is the value itself; 0xfc, 0xfd, 0xfe are
 * followed by 2, 3 or 8 little-endian bytes. 0xfb (NULL) and 0xff are invalid here: a caller that
 * may meet NULL checks for it first. 8-byte values above 2^53 lose precision (they are counts and
 * lengths; no real packet gets there).
 */
export function readLenencInt(buf: Buffer, offset: number): LenencInt {
  if (offset < 0 || offset >= buf.length) return BAD_INT;
  const first = buf[offset];
  if (first < 0xfb) return { value: first, next: offset + 1 };
  switch (first) {
    case 0xfc:
      if (offset + 3 > buf.length) return BAD_INT;
      return { value: buf.readUInt16LE(offset + 1), next: offset + 3 };
    case 0xfd:
      if (offset + 4 > buf.length) return BAD_INT;
      return { value: buf.readUIntLE(offset + 1, 3), next: offset + 4 };
    case 0xfe:
      if (offset + 9 > buf.length) return BAD_INT;
      return { value: buf.readUInt32LE(offset + 1) + buf.readUInt32LE(offset + 5) * 0x1_0000_0000, next: offset + 9 };
    default:
      return BAD_INT;
  }
}

/** Number of bytes {@link writeLenencInt} uses for `value`. */
export function lenencIntSize(value: number): number {
  if (value < 0xfb) return 1;
  if (value < 0x1_0000) return 3;
  if (value < 0x100_0000) return 4;
  return 9;
}

/**
 * Writes `value` (a non-negative integer) length-encoded into `target` at `offset` and returns the
 * offset after it; the caller sized `target` with {@link lenencIntSize}.
 */
export function writeLenencInt(value: number, target: Buffer, offset: number): number {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`not a length-encodable integer: ${value}`);
  if (value < 0xfb) {
    target[offset] = value;
    return offset + 1;
  }
  if (value < 0x1_0000) {
    target[offset] = 0xfc;
    target.writeUInt16LE(value, offset + 1);
    return offset + 3;
  }
  if (value < 0x100_0000) {
    target[offset] = 0xfd;
    target.writeUIntLE(value, offset + 1, 3);
    return offset + 4;
  }
  target[offset] = 0xfe;
  target.writeUInt32LE(value % 0x1_0000_0000, offset + 1);
  target.writeUInt32LE(Math.floor(value / 0x1_0000_0000), offset + 5);
  return offset + 9;
}

/** `value` length-encoded, as a new buffer. */
export function encodeLenencInt(value: number): Buffer {
  const out = Buffer.allocUnsafe(lenencIntSize(value));
  writeLenencInt(value, out, 0);
  return out;
}

/** Reads a length-encoded string at `offset` as a view of `buf`. NULL (0xfb) is invalid here. */
export function readLenencBytes(buf: Buffer, offset: number): BytesField {
  const length = readLenencInt(buf, offset);
  if (length.next < 0) return BAD_BYTES;
  const end = length.next + length.value;
  if (end > buf.length) return BAD_BYTES;
  return { value: buf.subarray(length.next, end), next: end };
}

/** Reads a NUL-terminated string at `offset` as a view of `buf` (without the NUL); `next` is after
 * the NUL, or -1 when there is no NUL. */
export function readNulTerminated(buf: Buffer, offset: number): BytesField {
  if (offset < 0 || offset >= buf.length) return BAD_BYTES;
  const nul = buf.indexOf(0, offset);
  if (nul < 0) return BAD_BYTES;
  return { value: buf.subarray(offset, nul), next: nul + 1 };
}

/** `bytes` prefixed with their length-encoded length, as a new buffer. */
export function encodeLenencBytes(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(lenencIntSize(bytes.length) + bytes.length);
  bytes.copy(out, writeLenencInt(bytes.length, out, 0));
  return out;
}
