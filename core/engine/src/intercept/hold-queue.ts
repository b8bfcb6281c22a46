import { flowHash, nextPow2 } from './flow-hash';

/**
 * Replies that arrived before their route (the SYN-ACK can beat the ROUTE_ADD that tcpcopy
 * sent before its SYN: they take different paths). A ring of fixed-size slots in one slab,
 * allocated at the first use, so holding never allocates per packet either; a hash chain per
 * (client ip, client port) finds a route's replies when its ROUTE_ADD arrives, in arrival order.
 */
export class HoldQueue {
  /** Replies held now. */
  count = 0;
  private slab: Buffer | null = null;
  private readonly len: Uint16Array;
  private readonly cip: Uint32Array;
  private readonly tip: Uint32Array;
  private readonly ports: Uint32Array;
  private readonly time: Float64Array;
  private readonly usedArr: Uint8Array;
  private readonly next: Int32Array;
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private tail = 0; // oldest slot that may be in use
  private head = 0; // next slot to write
  private span = 0; // slots from tail to head (used or emptied by take())

  constructor(readonly limit: number, readonly slotSize: number) {
    this.len = new Uint16Array(limit);
    this.cip = new Uint32Array(limit);
    this.tip = new Uint32Array(limit);
    this.ports = new Uint32Array(limit);
    this.time = new Float64Array(limit);
    this.usedArr = new Uint8Array(limit);
    this.next = new Int32Array(limit);
    const nb = nextPow2(limit);
    this.mask = nb - 1;
    this.buckets = new Int32Array(nb).fill(-1);
  }

  /**
   * Keeps a copy of buf[start, start+length) (cut to the slot size). Returns true when the
   * oldest held reply had to be pushed out to make room.
   */
  add(buf: Buffer, start: number, length: number, clientIp: number, clientPort: number,
    targetIp: number, targetPort: number, now: number): boolean {
    let pushedOut = false;
    if (this.span === this.limit) {
      const s = this.tail;
      if (this.usedArr[s]) {
        this.unlink(s);
        pushedOut = true;
      }
      this.tail = (s + 1) % this.limit;
      this.span--;
    }
    const slab = this.slab ?? (this.slab = Buffer.allocUnsafe(this.limit * this.slotSize));
    const s = this.head;
    const n = length < this.slotSize ? length : this.slotSize;
    buf.copy(slab, s * this.slotSize, start, start + n);
    this.len[s] = n;
    this.cip[s] = clientIp;
    this.tip[s] = targetIp;
    this.ports[s] = ((clientPort << 16) | targetPort) >>> 0;
    this.time[s] = now;
    this.usedArr[s] = 1;
    this.next[s] = -1;
    // Append at the chain's end so that take() hands replies out in arrival order.
    const b = flowHash(clientIp, clientPort) & this.mask;
    let j = this.buckets[b];
    if (j < 0) this.buckets[b] = s;
    else {
      while (this.next[j] >= 0) j = this.next[j];
      this.next[j] = s;
    }
    this.head = (s + 1) % this.limit;
    this.span++;
    this.count++;
    return pushedOut;
  }

  /**
   * Removes the replies held for the route and passes each to `deliver` (slab, start, length),
   * oldest first. Returns how many.
   */
  take(clientIp: number, clientPort: number, targetIp: number, targetPort: number,
    deliver: (buf: Buffer, start: number, length: number) => void): number {
    if (this.count === 0) return 0;
    const ports = ((clientPort << 16) | targetPort) >>> 0;
    const b = flowHash(clientIp, clientPort) & this.mask;
    let n = 0;
    let prev = -1;
    let s = this.buckets[b];
    while (s >= 0) {
      const nxt = this.next[s];
      if (this.cip[s] === clientIp && this.ports[s] === ports && this.tip[s] === targetIp) {
        if (prev < 0) this.buckets[b] = nxt;
        else this.next[prev] = nxt;
        this.usedArr[s] = 0;
        this.count--;
        n++;
        deliver(this.slab!, s * this.slotSize, this.len[s]);
      } else {
        prev = s;
      }
      s = nxt;
    }
    return n;
  }

  /** Drops replies held since before `cutoff`; returns how many. */
  expire(cutoff: number): number {
    let n = 0;
    while (this.span > 0) {
      const s = this.tail;
      if (this.usedArr[s]) {
        if (this.time[s] > cutoff) break;
        this.unlink(s);
        n++;
      }
      this.tail = (s + 1) % this.limit;
      this.span--;
    }
    return n;
  }

  /** Arrival time of the oldest held reply (NaN when none). */
  oldestTime(): number {
    let s = this.tail;
    for (let k = 0; k < this.span; k++) {
      if (this.usedArr[s]) return this.time[s];
      s = (s + 1) % this.limit;
    }
    return NaN;
  }

  private unlink(s: number): void {
    const b = flowHash(this.cip[s], this.ports[s] >>> 16) & this.mask;
    let j = this.buckets[b];
    if (j === s) this.buckets[b] = this.next[s];
    else {
      while (this.next[j] !== s) j = this.next[j];
      this.next[j] = this.next[s];
    }
    this.usedArr[s] = 0;
    this.count--;
  }
}
