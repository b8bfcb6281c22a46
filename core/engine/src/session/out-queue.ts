import { sumBytes } from '../decode/checksum';
import { ChunkBacklog } from './chunk-backlog';

/**
 * A stretch of bytes queued for the target. Positions count bytes of the
 * stream the target receives (from 0, across reconnects); they are mapped to
 * TCP sequence numbers per connection.
 */
export interface OutChunk {
  data: Buffer;
  /** Stream position of data[0]. */
  pos: number;
  /** The protocol's label (e.g. a request number). */
  tag: number;
  /** Bytes the online server had sent when the client sent these bytes. */
  serverBytes: number;
  /** Ones-complement sum of the whole chunk, or -1 when not known. */
  sum: number;
  /** The protocol (or the idle release) let it go. */
  released: boolean;
  /** The connection (numbered from 1) on which the protocol's beforeSend said yes to it; 0: none yet. */
  readyOn: number;
  /** Put ahead of the queue by the protocol (emitNext): a later emitNext goes after it, keeping their order. */
  ahead: boolean;
}

/**
 * The array of an empty queue, shared and never written to: the first push replaces it with a
 * one-slot array (a first push onto [] reserves 17 slots). Emptying keeps a one-slot array, its slot cleared
 * (most sessions hold one request at a time: the next push fills it again instead of allocating), and puts
 * this one back in place of a longer array (an idle session keeps one empty slot at most; setting
 * `length = 0` is a slow runtime call).
 */
const NO_CHUNKS: OutChunk[] = [];

/**
 * Chunks held as objects at most, before those pushed after them wait in the compact backlog: the send
 * point needs only the first few (sent and not yet acknowledged, the next to go); the rest become objects
 * when it reaches them.
 */
const HELD_AS_OBJECTS = 4;

/**
 * The bytes for the target, in order, until the target acknowledges them: the first chunks as OutChunk
 * objects, those behind them (a target slower than the online server) in a ChunkBacklog.
 */
export class OutQueue {
  private chunks: OutChunk[] = NO_CHUNKS;
  private head = 0;
  /** Chunks after every one in `chunks`, not yet looked at (null until a session first falls behind). */
  private backlog: ChunkBacklog | null = null;
  /** Position after the last queued byte. */
  endPos = 0;
  /** Bytes held. */
  bytes = 0;

  get size(): number {
    return this.chunks.length - this.head + (this.backlog === null ? 0 : this.backlog.count);
  }

  push(data: Buffer, tag: number, serverBytes: number, sum: number): void {
    if (data.length === 0) return;
    if (this.chunks.length - this.head >= HELD_AS_OBJECTS || (this.backlog !== null && this.backlog.count > 0)) {
      (this.backlog ??= new ChunkBacklog()).push(data, tag, serverBytes, sum);
      this.endPos += data.length;
      this.bytes += data.length;
      return;
    }
    const chunk: OutChunk = { data, pos: this.endPos, tag, serverBytes, sum, released: false, readyOn: 0, ahead: false };
    this.append(chunk);
    this.endPos += data.length;
    this.bytes += data.length;
  }

  /**
   * Inserts chunks at `pos` (a chunk boundary not yet sent), moving what follows:
   * used for a protocol's prelude on a new connection.
   */
  insertAt(pos: number, items: Array<{ data: Buffer; tag: number; serverBytes: number }>, ahead = false): void {
    this.takeFromBacklog(pos - 1);
    let i = this.head;
    while (i < this.chunks.length && this.chunks[i].pos < pos) i++;
    let at = pos;
    const added: OutChunk[] = [];
    for (const it of items) {
      if (it.data.length === 0) continue;
      added.push({ data: it.data, pos: at, tag: it.tag, serverBytes: it.serverBytes, sum: -1, released: false, readyOn: 0, ahead });
      at += it.data.length;
    }
    const shift = at - pos;
    if (shift === 0) return;
    for (let j = i; j < this.chunks.length; j++) this.chunks[j].pos += shift;
    if (this.chunks.length === 0) this.chunks = added; // never write into the shared empty array
    else this.chunks.splice(i, 0, ...added);
    this.endPos += shift;
    this.bytes += shift;
  }

  /** Takes the chunk that starts at `pos` (not sent on the current connection) out of the stream, moving what follows. */
  dropAt(pos: number): void {
    this.replaceAt(pos, null);
  }

  /** Gives the chunk that starts at `pos` (not sent on the current connection) other bytes, moving what follows. */
  replaceAt(pos: number, data: Buffer | null): void {
    this.takeFromBacklog(pos);
    let i = this.head;
    while (i < this.chunks.length && this.chunks[i].pos < pos) i++;
    const c = this.chunks[i];
    if (!c || c.pos !== pos) return;
    const shift = (data ? data.length : 0) - c.data.length;
    if (data && data.length > 0) {
      c.data = data;
      c.sum = -1;
      i++;
    } else this.chunks.splice(i, 1);
    for (let j = i; j < this.chunks.length; j++) this.chunks[j].pos += shift;
    this.endPos += shift;
    this.bytes += shift;
  }

  /** Position of the first held chunk of the request `c` belongs to (tag > 0), or of `c` itself. */
  startOfTag(c: OutChunk): number {
    let k = this.chunks.indexOf(c, this.head);
    if (k < 0 || c.tag <= 0) return c.pos;
    while (k > this.head && this.chunks[k - 1].tag === c.tag) k--;
    return this.chunks[k].pos;
  }

  /** The chunk holding position `pos`, or undefined past the end. */
  chunkAt(pos: number): OutChunk | undefined {
    for (let i = this.head; i < this.chunks.length; i++) {
      const c = this.chunks[i];
      if (pos < c.pos + c.data.length) return pos >= c.pos ? c : undefined;
    }
    while (this.backlog !== null && this.backlog.count > 0 && pos < this.endPos) {
      const c = this.takeOne();
      if (pos < c.pos + c.data.length) return pos >= c.pos ? c : undefined;
    }
    return undefined;
  }

  /** Makes objects of the backlog's chunks up to the one holding `pos` (it included). */
  private takeFromBacklog(pos: number): void {
    const b = this.backlog;
    while (b !== null && b.count > 0 && this.endPos - b.bytes <= pos) this.takeOne();
  }

  /** The backlog's oldest chunk, now an object after the others. */
  private takeOne(): OutChunk {
    const b = this.backlog!;
    const pos = this.endPos - b.bytes;
    const data = b.shift();
    const chunk: OutChunk = { data, pos, tag: b.tag, serverBytes: b.serverBytes, sum: b.sum, released: false, readyOn: 0, ahead: false };
    this.append(chunk);
    return chunk;
  }

  private append(chunk: OutChunk): void {
    // An empty queue starts a one-slot array (most sessions hold one request at a time, and a first push onto
    // [] reserves 17 slots), or fills the one it kept.
    if (this.chunks.length === 0) this.chunks = [chunk];
    else if (this.head === 1 && this.chunks.length === 1) {
      this.chunks[0] = chunk;
      this.head = 0;
    } else this.chunks.push(chunk);
  }

  /**
   * Drops chunks wholly before `pos` (acknowledged by the target), except the
   * chunks of a request (tag > 0) not yet wholly acknowledged: a reconnect
   * sends such a request again from its start.
   */
  release(pos: number): void {
    this.takeFromBacklog(pos - 1);
    let i = this.head;
    while (i < this.chunks.length && this.chunks[i].pos + this.chunks[i].data.length <= pos) i++;
    const openTag = i < this.chunks.length ? this.chunks[i].tag : 0;
    while (this.head < this.chunks.length) {
      const c = this.chunks[this.head];
      if (c.pos + c.data.length > pos) break;
      if (openTag > 0 && c.tag === openTag) break;
      this.bytes -= c.data.length;
      this.chunks[this.head++] = undefined as unknown as OutChunk;
    }
    if (this.head === this.chunks.length) {
      // Everything acknowledged: a one-slot array stays for the next push (its slot cleared above).
      if (this.chunks.length > 1) {
        this.chunks = NO_CHUNKS;
        this.head = 0;
      }
    } else if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.chunks = NO_CHUNKS;
    this.head = 0;
    this.backlog = null;
    this.bytes = 0;
  }
}

/** Sum of chunk bytes [off, off+len), from the cached whole-chunk sum when it covers it all. */
export function chunkSum(c: OutChunk, off: number, len: number): number {
  if (off === 0 && len === c.data.length && c.sum >= 0) return c.sum;
  return sumBytes(c.data, off, off + len);
}
