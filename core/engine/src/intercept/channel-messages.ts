// The tcpcopy ⇄ intercept channel: wire format, encoders/decoders, a streaming frame parser and
// a batching frame writer. The format is documented in docs/intercept-protocol.md; keep the two
// in step.
//
// Every message is a frame:
//
//   offset 0  type    u8   (MessageType)
//          1  flags   u8   (0 in version 1; receivers ignore it)
//          2  length  u16  big-endian, bytes of body that follow (0..65535)
//          4  body
//
// A u16 length is enough because the largest body, a REPLY, is a prefix of one IPv4 packet
// (at most 65535 bytes), and it bounds what a parser ever has to buffer: a peer that sends
// garbage cannot make us allocate more than one 64 KiB frame.
import type { Socket } from 'node:net';
import type { Route } from './route-registry';
import { flushAtEndOfTurn } from '../event-loop/end-of-turn';

/** "TCPI" (TCP Intercept): the first four body bytes of HELLO and HELLO_ACK. */
export const CHANNEL_MAGIC = 0x54435049;
/** The protocol version this build speaks. Bump on any incompatible change (see the doc). */
export const CHANNEL_VERSION = 1;
/** Oldest version this build still speaks. */
export const CHANNEL_MIN_VERSION = 1;
export const DEFAULT_INTERCEPT_PORT = 36524;

export const FRAME_HEADER_LENGTH = 4;
export const MAX_BODY_LENGTH = 0xffff;
export const MAX_FRAME_LENGTH = FRAME_HEADER_LENGTH + MAX_BODY_LENGTH;

export enum MessageType {
  /** tcpcopy → intercept, first frame on a connection: magic, versions, a name. */
  HELLO = 1,
  /** intercept → tcpcopy, answer to HELLO: magic, chosen version, status, capture limits, a name. */
  HELLO_ACK = 2,
  /** tcpcopy → intercept: send me the replies of this connection. */
  ROUTE_ADD = 3,
  /** tcpcopy → intercept: forget this connection. */
  ROUTE_DEL = 4,
  /** intercept → tcpcopy: one captured reply (IP header, TCP header, some payload). */
  REPLY = 5,
  /** Either way: a fatal problem, in words, sent just before closing. */
  ERROR = 6,
  /** intercept → tcpcopy, only when intercept has a secret: a nonce to prove the secret on (channel-auth.ts). */
  AUTH_CHALLENGE = 7,
  /** Either way, in the secret handshake: a MAC over both nonces (and, from tcpcopy, its own nonce). */
  AUTH_PROOF = 8,
}

/**
 * Types from 0x80 up are optional extensions: a receiver that does not know one skips it.
 * An unknown type below 0x80 is a protocol error.
 */
export const FIRST_OPTIONAL_TYPE = 0x80;

export enum HelloStatus {
  OK = 0,
  /** No version in common; the HELLO_ACK carries the intercept's own range. */
  VERSION_UNSUPPORTED = 1,
}

export enum ErrorCode {
  PROTOCOL = 1,
  VERSION = 2,
  SHUTDOWN = 3,
  /** The shared-secret handshake failed: no secret, a wrong one, or a missing step. */
  AUTH = 4,
}

/** Minimum body sizes. Longer bodies are accepted: later versions may append fields. */
export const HELLO_MIN_BODY = 10;
export const HELLO_ACK_MIN_BODY = 14;
export const ROUTE_ADD_BODY = 14;
export const ROUTE_DEL_BODY = 12;
export const ERROR_MIN_BODY = 2;
/** Names in HELLO / HELLO_ACK are for logs only; longer ones are cut. */
export const MAX_NAME_BYTES = 200;

/** `maxPayload` value meaning "as many payload bytes as a route asks for". */
export const PAYLOAD_UNLIMITED = 0xffff;

export interface HelloMessage {
  magic: number;
  maxVersion: number;
  minVersion: number;
  flags: number;
  name: string;
}

export interface HelloAckMessage {
  magic: number;
  /** The version chosen (status OK), else the intercept's newest. */
  version: number;
  /** The intercept's oldest version (for the error message when there is no overlap). */
  minVersion: number;
  status: HelloStatus;
  /** Payload bytes per reply the intercept can return at most (PAYLOAD_UNLIMITED: no limit of its own). */
  maxPayload: number;
  name: string;
}

export interface ErrorMessage {
  code: number;
  text: string;
}

// ---- encoders: each writes one whole frame at buf[offset] and returns the offset after it ----

export function writeFrameHeader(buf: Buffer, offset: number, type: number, bodyLength: number): number {
  if (bodyLength < 0 || bodyLength > MAX_BODY_LENGTH) {
    throw new RangeError(`frame body of ${bodyLength} bytes does not fit the 16-bit length`);
  }
  buf[offset] = type;
  buf[offset + 1] = 0;
  buf[offset + 2] = bodyLength >>> 8;
  buf[offset + 3] = bodyLength & 0xff;
  return offset + FRAME_HEADER_LENGTH;
}

function nameBytes(name: string): Buffer {
  const b = Buffer.from(name, 'utf8');
  return b.length > MAX_NAME_BYTES ? b.subarray(0, MAX_NAME_BYTES) : b;
}

/** A complete HELLO frame (sent once per connection, so it may allocate). */
export function encodeHello(name: string, maxVersion = CHANNEL_VERSION, minVersion = CHANNEL_MIN_VERSION, flags = 0): Buffer {
  const n = nameBytes(name);
  const buf = Buffer.alloc(FRAME_HEADER_LENGTH + HELLO_MIN_BODY + n.length);
  const p = writeFrameHeader(buf, 0, MessageType.HELLO, HELLO_MIN_BODY + n.length);
  buf.writeUInt32BE(CHANNEL_MAGIC, p);
  buf.writeUInt16BE(maxVersion, p + 4);
  buf.writeUInt16BE(minVersion, p + 6);
  buf.writeUInt16BE(flags, p + 8);
  n.copy(buf, p + HELLO_MIN_BODY);
  return buf;
}

/** A complete HELLO_ACK frame. */
export function encodeHelloAck(m: Omit<HelloAckMessage, 'magic'>): Buffer {
  const n = nameBytes(m.name);
  const buf = Buffer.alloc(FRAME_HEADER_LENGTH + HELLO_ACK_MIN_BODY + n.length);
  const p = writeFrameHeader(buf, 0, MessageType.HELLO_ACK, HELLO_ACK_MIN_BODY + n.length);
  buf.writeUInt32BE(CHANNEL_MAGIC, p);
  buf.writeUInt16BE(m.version, p + 4);
  buf.writeUInt16BE(m.minVersion, p + 6);
  buf[p + 8] = m.status;
  buf[p + 9] = 0;
  buf.writeUInt16BE(m.maxPayload, p + 10);
  buf.writeUInt16BE(0, p + 12);
  n.copy(buf, p + HELLO_ACK_MIN_BODY);
  return buf;
}

/** A complete ERROR frame. */
export function encodeError(code: number, text: string): Buffer {
  const t = Buffer.from(text, 'utf8').subarray(0, 1000);
  const buf = Buffer.alloc(FRAME_HEADER_LENGTH + ERROR_MIN_BODY + t.length);
  const p = writeFrameHeader(buf, 0, MessageType.ERROR, ERROR_MIN_BODY + t.length);
  buf.writeUInt16BE(code, p);
  t.copy(buf, p + 2);
  return buf;
}

/** Writes the ROUTE_ADD body (14 bytes) at buf[offset]. */
export function writeRouteAddBody(buf: Buffer, offset: number, r: Route): void {
  buf.writeUInt32BE(r.clientIp >>> 0, offset);
  buf.writeUInt16BE(r.clientPort, offset + 4);
  buf.writeUInt32BE(r.targetIp >>> 0, offset + 6);
  buf.writeUInt16BE(r.targetPort, offset + 10);
  buf.writeUInt16BE(Math.min(Math.max(0, r.payloadBytes | 0), 0xffff), offset + 12);
}

/** Writes the ROUTE_DEL body (12 bytes) at buf[offset]. */
export function writeRouteDelBody(buf: Buffer, offset: number, r: Route): void {
  buf.writeUInt32BE(r.clientIp >>> 0, offset);
  buf.writeUInt16BE(r.clientPort, offset + 4);
  buf.writeUInt32BE(r.targetIp >>> 0, offset + 6);
  buf.writeUInt16BE(r.targetPort, offset + 10);
}

// ---- decoders: bodies are buf[start, end) ----

export function decodeHello(buf: Buffer, start: number, end: number): HelloMessage | null {
  if (end - start < HELLO_MIN_BODY) return null;
  return {
    magic: buf.readUInt32BE(start),
    maxVersion: buf.readUInt16BE(start + 4),
    minVersion: buf.readUInt16BE(start + 6),
    flags: buf.readUInt16BE(start + 8),
    name: buf.toString('utf8', start + HELLO_MIN_BODY, Math.min(end, start + HELLO_MIN_BODY + MAX_NAME_BYTES)),
  };
}

export function decodeHelloAck(buf: Buffer, start: number, end: number): HelloAckMessage | null {
  if (end - start < HELLO_ACK_MIN_BODY) return null;
  return {
    magic: buf.readUInt32BE(start),
    version: buf.readUInt16BE(start + 4),
    minVersion: buf.readUInt16BE(start + 6),
    status: buf[start + 8],
    maxPayload: buf.readUInt16BE(start + 10),
    name: buf.toString('utf8', start + HELLO_ACK_MIN_BODY, Math.min(end, start + HELLO_ACK_MIN_BODY + MAX_NAME_BYTES)),
  };
}

export function decodeError(buf: Buffer, start: number, end: number): ErrorMessage {
  if (end - start < ERROR_MIN_BODY) return { code: 0, text: '' };
  return { code: buf.readUInt16BE(start), text: buf.toString('utf8', start + 2, end) };
}

/**
 * Reads a ROUTE_ADD (payloadBytes included) or ROUTE_DEL (payloadBytes set to 0) body into
 * `out`, a caller-owned object reused for every message. False when the body is too short.
 */
export function readRouteBody(type: MessageType, buf: Buffer, start: number, end: number, out: Route): boolean {
  const need = type === MessageType.ROUTE_ADD ? ROUTE_ADD_BODY : ROUTE_DEL_BODY;
  if (end - start < need) return false;
  out.clientIp = buf.readUInt32BE(start);
  out.clientPort = buf.readUInt16BE(start + 4);
  out.targetIp = buf.readUInt32BE(start + 6);
  out.targetPort = buf.readUInt16BE(start + 10);
  out.payloadBytes = type === MessageType.ROUTE_ADD ? buf.readUInt16BE(start + 12) : 0;
  return true;
}

/** Printable preview of bytes a peer sent, for "this is not an intercept" messages. */
export function previewBytes(buf: Buffer, start: number, end: number, max = 40): string {
  const slice = buf.subarray(start, Math.min(end, start + max));
  const printable = slice.every((c) => (c >= 0x20 && c < 0x7f) || c === 0x0a || c === 0x0d || c === 0x09);
  if (printable && slice.length > 0) {
    return `"${slice.toString('latin1').replace(/\r/g, '\\r').replace(/\n/g, '\\n')}${end - start > max ? '…' : ''}"`;
  }
  return `bytes ${slice.toString('hex').replace(/(..)/g, '$1 ').trim()}${end - start > max ? ' …' : ''}`;
}

// ---- streaming frame parser ----

/**
 * Called once per complete frame. The body is buf[start, end): `buf` is either the chunk
 * just read or the parser's own reassembly buffer, and is only valid during the call.
 */
export type FrameHandler = (type: number, buf: Buffer, start: number, end: number) => void;

/**
 * Splits a byte stream into frames. Frames that lie wholly inside a chunk are handed out in
 * place (no copy); only a frame cut by a chunk boundary is copied, into one buffer of
 * MAX_FRAME_LENGTH allocated at the first such cut and reused after that.
 */
export class FrameParser {
  /** Frames delivered. */
  frames = 0;
  /** Set by stop(): the rest of the stream is ignored (the handler found an error). */
  stopped = false;
  /**
   * Longest body accepted; a frame that announces more stops the parser and calls onOversize
   * (the handshake lowers it, so that an unauthenticated peer cannot make us buffer 64 KiB).
   */
  maxBody = MAX_BODY_LENGTH;
  private pending: Buffer | null = null;
  private pendingLength = 0;

  constructor(private readonly handler: FrameHandler,
    private readonly onOversize: (type: number, bodyLength: number) => void = () => undefined) {}

  /** Bytes of an incomplete frame waiting for the next chunk. */
  get bufferedBytes(): number {
    return this.pendingLength;
  }

  /** Ignore everything from now on (call from the handler after a fatal problem). */
  stop(): void {
    this.stopped = true;
    this.pendingLength = 0;
  }

  /** Parse one chunk; calls the handler for every frame completed by it (none once stopped). */
  push(chunk: Buffer): void {
    if (this.stopped) return;
    let pos = 0;
    const len = chunk.length;
    if (this.pendingLength > 0) {
      pos = this.completePending(chunk);
      if (pos < 0 || this.stopped) return;
    }
    // Fast path: frames wholly inside the chunk are delivered where they are.
    while (len - pos >= FRAME_HEADER_LENGTH) {
      const bodyLength = (chunk[pos + 2] << 8) | chunk[pos + 3];
      if (bodyLength > this.maxBody) {
        this.oversize(chunk[pos], bodyLength);
        return;
      }
      const end = pos + FRAME_HEADER_LENGTH + bodyLength;
      if (end > len) break;
      this.frames++;
      this.handler(chunk[pos], chunk, pos + FRAME_HEADER_LENGTH, end);
      if (this.stopped) return;
      pos = end;
    }
    if (pos < len) {
      const pending = this.pending ?? (this.pending = Buffer.allocUnsafe(MAX_FRAME_LENGTH));
      chunk.copy(pending, 0, pos, len);
      this.pendingLength = len - pos;
    }
  }

  private oversize(type: number, bodyLength: number): void {
    this.stop();
    this.onOversize(type, bodyLength);
  }

  /**
   * Adds the start of `chunk` to the frame being reassembled. Returns the chunk offset where
   * parsing continues, or -1 when the whole chunk was taken and the frame is still incomplete.
   */
  private completePending(chunk: Buffer): number {
    const pending = this.pending!;
    let pos = 0;
    if (this.pendingLength < FRAME_HEADER_LENGTH) {
      const take = Math.min(FRAME_HEADER_LENGTH - this.pendingLength, chunk.length);
      chunk.copy(pending, this.pendingLength, 0, take);
      this.pendingLength += take;
      pos = take;
      if (this.pendingLength < FRAME_HEADER_LENGTH) return -1;
    }
    const bodyLength = (pending[2] << 8) | pending[3];
    if (bodyLength > this.maxBody) {
      this.oversize(pending[0], bodyLength);
      return -1;
    }
    const total = FRAME_HEADER_LENGTH + bodyLength;
    const take = Math.min(total - this.pendingLength, chunk.length - pos);
    chunk.copy(pending, this.pendingLength, pos, pos + take);
    this.pendingLength += take;
    pos += take;
    if (this.pendingLength < total) return -1;
    this.pendingLength = 0;
    this.frames++;
    this.handler(pending[0], pending, FRAME_HEADER_LENGTH, total);
    return pos;
  }
}

// ---- batching frame writer ----

export interface FrameWriterOptions {
  /** Size of each output buffer (at least one maximal frame). Default 128 KiB. */
  chunkSize?: number;
  /**
   * When the socket already holds this many unsent bytes (the peer does not read), new
   * frames are dropped and counted instead of queued. Default 64 MiB.
   */
  maxBufferedBytes?: number;
}

const DEFAULT_CHUNK = 128 * 1024;
const DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024;
/** Spare output buffers kept per writer; more in flight than this are left to the GC. */
const MAX_SPARE_BUFFERS = 2;

/**
 * Collects the frames produced during one event-loop turn (a capture burst, a batch of
 * route changes) in a buffer and hands them to the socket in ONE write at the end of the turn
 * (event-loop/end-of-turn.ts: one setImmediate shared with the raw socket sink): one syscall per
 * burst instead of one per frame, and no timer latency (the C intercept waited up to 2 ms for
 * more records; we never wait for anything but the end of the current turn).
 *
 * Output buffers are recycled: a written buffer goes back to a small free list when the
 * socket's write callback says the kernel has the bytes (callbacks come in write order).
 */
/** Batches up to this size are written as copies (see flush()). */
const SMALL_WRITE = 4096;
/** A frame that may wait (reserve's `lazy`) goes with the next batch, or this long after it at the latest. */
export const LAZY_FLUSH_MS = 100;

export class FrameWriter {
  /** Frames accepted. */
  frames = 0;
  /** Frames refused because the socket was backed up past maxBufferedBytes, or closed. */
  dropped = 0;
  /** socket.write() calls (batches). */
  writes = 0;
  /** Bytes handed to the socket. */
  bytes = 0;
  /** The buffer being filled; reserve() tells where a frame's body goes in it. */
  buf: Buffer;
  /** Bytes used in buf. */
  length = 0;

  private readonly chunkSize: number;
  private readonly maxBuffered: number;
  private readonly spare: Buffer[] = [];
  private readonly inFlight: Buffer[] = [];
  /** A flush is due at the end of this turn (event-loop/end-of-turn.ts). */
  private scheduled = false;
  /** Armed while lazy frames may be waiting with no batch flush due. */
  private lazyTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly onWritten = (): void => {
    const b = this.inFlight.shift();
    if (b && b.length === this.chunkSize && this.spare.length < MAX_SPARE_BUFFERS) this.spare.push(b);
  };
  private readonly flushNow = (): void => {
    this.scheduled = false;
    this.flush();
  };
  private readonly flushLazy = (): void => {
    this.lazyTimer = null;
    this.flush();
  };

  constructor(private readonly socket: Socket, opts: FrameWriterOptions = {}) {
    this.chunkSize = Math.max(MAX_FRAME_LENGTH, opts.chunkSize ?? DEFAULT_CHUNK);
    this.maxBuffered = opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED;
    this.buf = Buffer.allocUnsafe(this.chunkSize);
  }

  /** True when the socket holds more unsent bytes than the bound (frames are being dropped). */
  get backedUp(): boolean {
    return this.socket.writableLength + this.length > this.maxBuffered;
  }

  /**
   * Makes room for a frame of `type` with a body of `bodyLength` bytes, writes its header and
   * returns the offset in `this.buf` where the caller writes the body (right away, before
   * anything else can run). Returns -1, and counts a drop, when the peer is backed up or the
   * writer closed. Schedules the batch flush; a `lazy` frame (one nothing waits for: a route removal)
   * only makes sure it goes within LAZY_FLUSH_MS, so that it rides along with the next batch rather
   * than costing a write of its own.
   */
  reserve(type: number, bodyLength: number, lazy = false): number {
    const size = FRAME_HEADER_LENGTH + bodyLength;
    if (this.closed || this.socket.destroyed) {
      this.dropped++;
      return -1;
    }
    if (this.socket.writableLength + this.length + size > this.maxBuffered) {
      this.dropped++;
      return -1;
    }
    if (this.length + size > this.buf.length) this.flush(); // a burst bigger than one buffer
    const off = writeFrameHeader(this.buf, this.length, type, bodyLength);
    this.length += size;
    this.frames++;
    if (lazy) {
      if (!this.scheduled && this.lazyTimer === null) {
        this.lazyTimer = setTimeout(this.flushLazy, LAZY_FLUSH_MS);
        this.lazyTimer.unref();
      }
    } else if (!this.scheduled) {
      this.scheduled = true;
      flushAtEndOfTurn(this.flushNow, true);
    }
    return off;
  }

  /** Appends a ready-made frame (HELLO and the like). */
  append(frame: Buffer): boolean {
    const off = this.reserve(frame[0], frame.length - FRAME_HEADER_LENGTH);
    if (off < 0) return false;
    frame.copy(this.buf, off, FRAME_HEADER_LENGTH);
    return true;
  }

  /** Writes what is buffered now (normally left to the end-of-turn flush scheduled by reserve()). */
  flush(): void {
    if (this.length === 0 || this.closed) return;
    const n = this.length;
    if (n <= SMALL_WRITE) {
      // A few frames (a route added at once): write a copy and keep the big buffer, rather than
      // handing the socket a whole chunk, which many such writes in one turn would multiply.
      const copy = Buffer.from(this.buf.subarray(0, n));
      this.length = 0;
      if (this.socket.destroyed) return;
      this.writes++;
      this.bytes += n;
      this.socket.write(copy);
      return;
    }
    const full = this.buf;
    this.buf = this.spare.pop() ?? Buffer.allocUnsafe(this.chunkSize);
    this.length = 0;
    if (this.socket.destroyed) return;
    this.inFlight.push(full);
    this.writes++;
    this.bytes += n;
    this.socket.write(full.subarray(0, n), this.onWritten);
  }

  /** Drops anything unsent and stops scheduling (the socket is going away). */
  close(): void {
    this.closed = true;
    this.length = 0;
    if (this.lazyTimer !== null) clearTimeout(this.lazyTimer);
    this.lazyTimer = null;
  }
}
