// The global `Buffer` is a getter on globalThis: a generic lookup and a call at every use in optimized code.
import { Buffer } from 'node:buffer';

/**
 * Chunks queued far behind the send point, kept compact: their bytes copied into a few blocks and four
 * numbers each, no object per chunk. When the target answers slower than the online server did, a session
 * holds every request captured and not yet answered; as an OutChunk with its own Buffer one costs about 190
 * bytes of heap besides its payload, here 32 (docs/benchmarks.md, "Backlog memory").
 *
 * First in, first out: `push` at the tail, `shift` at the head. A chunk shifted out gets its bytes copied into
 * a Buffer of its own, so that the block read past is written again (kept as the spare) rather than left to
 * the collector: blocks live for seconds and die in the old generation, which V8 collects late when little
 * else grows there (40 MiB of dead blocks piled up in a 10-s run that handed out views instead).
 */
export class ChunkBacklog {
  /** Chunks held. */
  count = 0;
  /** Bytes held. */
  bytes = 0;
  /** What the last `shift` returned besides the bytes (read them before the next call). */
  tag = 0;
  serverBytes = 0;
  sum = -1;

  /** A ring of [length, tag, serverBytes, sum] per chunk; a negative length: the bytes are in `large`. */
  private meta: Float64Array = NO_META;
  private metaHead = 0;
  /** Blocks holding the bytes, oldest first; chunks are written and read in the same order, so the reader
   * finds each where the writer put it: at its offset, or at the start of the next block when it did not fit. */
  private blocks: Buffer[] = [];
  private readOffset = 0;
  private writeOffset = 0;
  private nextBlockSize = FIRST_BLOCK;
  /** The last block read past, written again when the writer needs a new one. */
  private spare: Buffer | null = null;
  /** Chunks too large to be worth copying, kept as given. */
  private large: Buffer[] = [];
  private largeHead = 0;

  push(data: Buffer, tag: number, serverBytes: number, sum: number): void {
    const len = data.length;
    let stored = len;
    if (len > LARGE_CHUNK) {
      this.large.push(data);
      stored = -len;
    } else {
      let block = this.blocks.length > 0 ? this.blocks[this.blocks.length - 1] : undefined;
      if (block === undefined || this.writeOffset + len > block.length) {
        if (this.spare !== null) {
          block = this.spare;
          this.spare = null;
        } else {
          block = Buffer.allocUnsafeSlow(this.nextBlockSize);
          this.nextBlockSize = Math.min(this.nextBlockSize * 2, MAX_BLOCK);
        }
        this.blocks.push(block);
        this.writeOffset = 0;
      }
      block.set(data, this.writeOffset);
      this.writeOffset += len;
    }
    const capacity = this.meta.length >> 2;
    if (this.count === capacity) this.grow(capacity);
    const at = ((this.metaHead + this.count) & ((this.meta.length >> 2) - 1)) << 2;
    this.meta[at] = stored;
    this.meta[at + 1] = tag;
    this.meta[at + 2] = serverBytes;
    this.meta[at + 3] = sum;
    this.count++;
    this.bytes += len;
  }

  /** The oldest chunk's bytes (its tag, serverBytes and sum in the fields of the same names). Never call it empty. */
  shift(): Buffer {
    const at = this.metaHead << 2;
    const stored = this.meta[at];
    this.tag = this.meta[at + 1];
    this.serverBytes = this.meta[at + 2];
    this.sum = this.meta[at + 3];
    this.metaHead = (this.metaHead + 1) & ((this.meta.length >> 2) - 1);
    let data: Buffer;
    if (stored < 0) {
      data = this.large[this.largeHead];
      this.large[this.largeHead++] = undefined as unknown as Buffer;
      // A backlog that never empties (a long upload to a slow target) must not keep every slot it used.
      if (this.largeHead > 64 && this.largeHead * 2 > this.large.length) {
        this.large = this.large.slice(this.largeHead);
        this.largeHead = 0;
      }
    } else {
      let block = this.blocks[0];
      if (this.readOffset + stored > block.length) {
        const done = this.blocks.shift()!;
        if (this.spare === null || done.length > this.spare.length) this.spare = done;
        block = this.blocks[0];
        this.readOffset = 0;
      }
      data = Buffer.allocUnsafe(stored);
      block.copy(data, 0, this.readOffset, this.readOffset + stored);
      this.readOffset += stored;
    }
    this.count--;
    this.bytes -= data.length;
    if (this.count === 0) this.reset();
    return data;
  }

  /** Empty: nothing kept (a session that caught up holds no blocks). */
  private reset(): void {
    this.meta = NO_META;
    this.metaHead = 0;
    this.blocks = [];
    this.readOffset = 0;
    this.writeOffset = 0;
    this.nextBlockSize = FIRST_BLOCK;
    this.spare = null;
    this.large = [];
    this.largeHead = 0;
    this.count = 0;
    this.bytes = 0;
  }

  private grow(capacity: number): void {
    const next = new Float64Array(Math.max(FIRST_CAPACITY, capacity * 2) * 4);
    for (let i = 0; i < this.count; i++) {
      const from = ((this.metaHead + i) & (capacity - 1)) << 2;
      next.set(this.meta.subarray(from, from + 4), i << 2);
    }
    this.meta = next;
    this.metaHead = 0;
  }
}

/** Chunks a fresh ring holds (a power of two, as every capacity after it). */
const FIRST_CAPACITY = 16;
/**
 * The first block is small (many sessions hold only a few chunks back); each next one doubles, up to MAX_BLOCK:
 * a session behind keeps up to three partly used blocks (the one read, the one written, the spare), and at
 * 64 KiB that was 3 MiB more peak RSS with 50 keep-alive sessions behind (docs/benchmarks.md, "Backlog memory").
 */
const FIRST_BLOCK = 2048;
const MAX_BLOCK = 16384;
/** Larger chunks are kept as given: their Buffer's cost is small beside them. */
const LARGE_CHUNK = 2048;
const NO_META = new Float64Array(0);
