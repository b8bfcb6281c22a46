import { flowHash } from './flow-hash';
import type { Route } from './route-registry';

/**
 * Routes added and not removed (keepRunning only): what a reconnected channel registers again.
 * Parallel typed arrays chained per bucket, like intercept's route table, so a million routes
 * are not a million objects. Slot numbers stay valid while a route is in the set (growing
 * copies the arrays in place); route queues refer to routes by slot and add sequence number.
 */
export class RouteSet {
  size = 0;
  /** Slots ever handed out; live ones have seq >= 0. */
  used = 0;
  /** Sequence number of the add() that last (re)registered the route in each slot; -1: free. */
  seq: Float64Array;
  private cip: Uint32Array;
  private tip: Uint32Array;
  private ports: Uint32Array; // (client port << 16 | target port) >>> 0
  private want: Uint16Array;
  private next: Int32Array; // bucket chain, or free list
  private buckets: Int32Array;
  private mask: number;
  private free = -1;

  constructor(capacity = 256) {
    this.seq = new Float64Array(capacity).fill(-1);
    this.cip = new Uint32Array(capacity);
    this.tip = new Uint32Array(capacity);
    this.ports = new Uint32Array(capacity);
    this.want = new Uint16Array(capacity);
    this.next = new Int32Array(capacity);
    this.buckets = new Int32Array(capacity).fill(-1);
    this.mask = capacity - 1;
  }

  find(r: Route): number {
    const ip = r.clientIp >>> 0;
    const tip = r.targetIp >>> 0;
    const ports = ((r.clientPort << 16) | r.targetPort) >>> 0;
    let i = this.buckets[flowHash(ip, r.clientPort) & this.mask];
    while (i >= 0) {
      if (this.cip[i] === ip && this.ports[i] === ports && this.tip[i] === tip) return i;
      i = this.next[i];
    }
    return -1;
  }

  /** Adds the route, or refreshes it (payload bytes, sequence number); returns its slot. */
  put(r: Route, seq: number): number {
    let i = this.find(r);
    if (i < 0) {
      if (this.free >= 0) {
        i = this.free;
        this.free = this.next[i];
      } else {
        if (this.used === this.seq.length) this.grow();
        i = this.used++;
      }
      this.cip[i] = r.clientIp >>> 0;
      this.tip[i] = r.targetIp >>> 0;
      this.ports[i] = ((r.clientPort << 16) | r.targetPort) >>> 0;
      const b = flowHash(this.cip[i], r.clientPort) & this.mask;
      this.next[i] = this.buckets[b];
      this.buckets[b] = i;
      this.size++;
    }
    this.want[i] = Math.min(Math.max(0, r.payloadBytes | 0), 0xffff);
    this.seq[i] = seq;
    return i;
  }

  delete(r: Route): boolean {
    const ip = r.clientIp >>> 0;
    const tip = r.targetIp >>> 0;
    const ports = ((r.clientPort << 16) | r.targetPort) >>> 0;
    const b = flowHash(ip, r.clientPort) & this.mask;
    let prev = -1;
    let i = this.buckets[b];
    while (i >= 0) {
      if (this.cip[i] === ip && this.ports[i] === ports && this.tip[i] === tip) {
        if (prev < 0) this.buckets[b] = this.next[i];
        else this.next[prev] = this.next[i];
        this.seq[i] = -1;
        this.next[i] = this.free;
        this.free = i;
        this.size--;
        return true;
      }
      prev = i;
      i = this.next[i];
    }
    return false;
  }

  /** Copies slot i into `out` (a reused object). */
  read(i: number, out: Route): void {
    out.clientIp = this.cip[i];
    out.clientPort = this.ports[i] >>> 16;
    out.targetIp = this.tip[i];
    out.targetPort = this.ports[i] & 0xffff;
    out.payloadBytes = this.want[i];
  }

  /** Doubles every array (slots keep their numbers) and rehashes. Only called with no free slot. */
  private grow(): void {
    const cap = this.seq.length * 2;
    const seq = new Float64Array(cap).fill(-1);
    seq.set(this.seq);
    this.seq = seq;
    const cip = new Uint32Array(cap);
    cip.set(this.cip);
    this.cip = cip;
    const tip = new Uint32Array(cap);
    tip.set(this.tip);
    this.tip = tip;
    const ports = new Uint32Array(cap);
    ports.set(this.ports);
    this.ports = ports;
    const want = new Uint16Array(cap);
    want.set(this.want);
    this.want = want;
    this.next = new Int32Array(cap);
    this.buckets = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
    for (let i = 0; i < this.used; i++) {
      const b = flowHash(this.cip[i], this.ports[i] >>> 16) & this.mask;
      this.next[i] = this.buckets[b];
      this.buckets[b] = i;
    }
  }
}
