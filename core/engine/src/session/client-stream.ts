import { seqDiff, seqGt, seqLt } from '../decode/seq';
import { SpanReader } from '../decode/span-reader';

/**
 * One stretch of the captured client byte stream, in the capture's sequence
 * space. `data` is our own copy (capture buffers are reused).
 */
export interface ClientSegment {
  seq: number;
  length: number;
  data: Buffer;
  /** Ones-complement sum of data, for checksums without re-reading the payload. */
  sum: number;
  /** Bytes the online server had sent when the client sent this (from the client's ACK). */
  serverBytes: number;
}

/**
 * The array of an empty stream, shared and never written to: the first add replaces it with a
 * one-slot array (a first push onto [] reserves 17 slots), and emptying puts it back (an idle session keeps
 * no array storage; setting `length = 0` is a slow runtime call).
 */
const NO_SEGMENTS: ClientSegment[] = [];

/** Copies and sums the added bytes where they lie, in the capture's buffer (the same one packet after packet). */
const captureSpans = new SpanReader();

/**
 * The client's captured payload awaiting replay: segments kept in sequence
 * order, duplicates and overlaps trimmed on the way in (capture duplicates and
 * client retransmissions), acknowledged data dropped from the head. The
 * client's FIN and RST are kept by the session, not here.
 */
export class ClientStream {
  private segs: ClientSegment[] = NO_SEGMENTS;
  private head = 0;
  /** Bytes of payload held. */
  bytes = 0;

  get size(): number {
    return this.segs.length - this.head;
  }

  /** The i-th held segment (0 = oldest). */
  at(i: number): ClientSegment {
    return this.segs[this.head + i];
  }

  /** Sequence number just after the last held byte, or `fallback` when empty. */
  end(fallback: number): number {
    if (this.segs.length === this.head) return fallback;
    const last = this.segs[this.segs.length - 1];
    return (last.seq + last.length) >>> 0;
  }

  /**
   * Adds captured payload [seq, seq+length) from src[offset...], trimmed to what
   * is neither held nor already sent (`sentUpTo` is the first byte not yet sent).
   * Returns false when nothing new was added.
   */
  add(sentUpTo: number, seq: number, src: Buffer, offset: number, length: number, serverBytes: number): boolean {
    const sent = seqDiff(seq, sentUpTo);
    if (sent > 0) {
      if (sent >= length) return false;
      offset += sent;
      seq = sentUpTo;
      length -= sent;
    }
    // Find the insertion point from the tail (captured data nearly always appends).
    let i = this.segs.length;
    while (i > this.head && seqGt(this.segs[i - 1].seq, seq)) i--;
    if (i > this.head) {
      const prev = this.segs[i - 1];
      const overlap = seqDiff(seq, (prev.seq + prev.length) >>> 0);
      if (overlap > 0) {
        if (overlap >= length) return false;
        offset += overlap;
        seq = (seq + overlap) >>> 0;
        length -= overlap;
      }
    }
    // Fill every hole the new bytes cover, up to and between the segments already held after them.
    let added = false;
    while (length > 0) {
      let part = length;
      if (i < this.segs.length) {
        const room = seqDiff(seq, this.segs[i].seq);
        if (room < part) part = Math.max(0, room);
      }
      if (part > 0) {
        const data = captureSpans.copy(src, offset, offset + part);
        const seg: ClientSegment = { seq, length: part, data, sum: captureSpans.sum(src, offset, offset + part), serverBytes };
        // An empty stream starts a one-slot array (a first push onto [] reserves 17 slots).
        if (this.segs.length === 0) this.segs = [seg];
        else if (i === this.segs.length) this.segs.push(seg);
        else this.segs.splice(i, 0, seg);
        this.bytes += part;
        added = true;
        i++;
      }
      if (part === length || i >= this.segs.length) break;
      // Skip the held segment at i; what lies beyond it may fill the next hole.
      const next = this.segs[i];
      const skip = seqDiff(seq, (next.seq + next.length) >>> 0);
      if (skip >= length) break;
      offset += skip;
      seq = (seq + skip) >>> 0;
      length -= skip;
      i++;
    }
    return added;
  }

  /** Index (relative to the head) of the segment holding `seq`, or of the first one after it; -1 if none. */
  find(seq: number): number {
    for (let i = this.head; i < this.segs.length; i++) {
      const s = this.segs[i];
      if (seqLt(seq, (s.seq + s.length) >>> 0)) return i - this.head;
    }
    return -1;
  }

  /** Drops segments that end at or before `ackedUpTo` (the target has them). */
  release(ackedUpTo: number): void {
    while (this.head < this.segs.length) {
      const s = this.segs[this.head];
      if (seqGt((s.seq + s.length) >>> 0, ackedUpTo)) break;
      this.bytes -= s.length;
      this.segs[this.head++] = undefined as unknown as ClientSegment;
    }
    if (this.head === this.segs.length) {
      // All delivered: an idle session keeps no array storage.
      this.segs = NO_SEGMENTS;
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.segs.length) {
      this.segs = this.segs.slice(this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.segs = NO_SEGMENTS;
    this.head = 0;
    this.bytes = 0;
  }
}
