import { flowHash, nextPow2 } from './flow-hash';

/**
 * Route table: (client ip, client port, target ip, target port) → owning connection and payload
 * bytes wanted. Entries live in parallel typed arrays, chained per flowHash of (client ip, client
 * port) — the part that varies between connections — and compared on the target in the chain.
 * No per-route objects (a million routes would be a million objects for the GC to walk) and no
 * allocation per lookup. An age list (oldest first) gives O(1) eviction when full.
 */
export class RouteTable {
  size = 0;
  private capacity: number;
  private used = 0; // slots ever handed out (< capacity); freed ones are on the free list
  private freeHead = -1;
  private mask: number;
  private buckets: Int32Array;
  private cip: Uint32Array;
  private tip: Uint32Array;
  private ports: Uint32Array; // (client port << 16 | target port) >>> 0
  private wantArr: Uint16Array;
  private connArr: Int32Array; // -1: free slot
  private next: Int32Array; // bucket chain, or free list
  private older: Int32Array;
  private newer: Int32Array;
  private oldest = -1;
  private newest = -1;

  constructor(readonly limit: number, initialCapacity = 1024) {
    if (!(limit >= 1)) throw new RangeError('the route table needs room for at least one route');
    this.capacity = Math.min(limit, Math.max(16, initialCapacity));
    const nb = nextPow2(this.capacity);
    this.mask = nb - 1;
    this.buckets = new Int32Array(nb).fill(-1);
    this.cip = new Uint32Array(this.capacity);
    this.tip = new Uint32Array(this.capacity);
    this.ports = new Uint32Array(this.capacity);
    this.wantArr = new Uint16Array(this.capacity);
    this.connArr = new Int32Array(this.capacity).fill(-1);
    this.next = new Int32Array(this.capacity);
    this.older = new Int32Array(this.capacity);
    this.newer = new Int32Array(this.capacity);
  }

  /** Index of the route, or -1. */
  find(clientIp: number, clientPort: number, targetIp: number, targetPort: number): number {
    const ports = ((clientPort << 16) | targetPort) >>> 0;
    let i = this.buckets[flowHash(clientIp, clientPort) & this.mask];
    while (i >= 0) {
      if (this.cip[i] === clientIp && this.ports[i] === ports && this.tip[i] === targetIp) return i;
      i = this.next[i];
    }
    return -1;
  }

  connOf(i: number): number {
    return this.connArr[i];
  }

  wantOf(i: number): number {
    return this.wantArr[i];
  }

  /**
   * Adds or refreshes a route. Returns the connection that owned the same route before (-1 if
   * none). `onEvict` is told the owner of the oldest route when one had to go to make room.
   */
  add(clientIp: number, clientPort: number, targetIp: number, targetPort: number, want: number, conn: number,
    onEvict?: (conn: number) => void): number {
    let i = this.find(clientIp, clientPort, targetIp, targetPort);
    if (i >= 0) {
      const before = this.connArr[i];
      this.connArr[i] = conn;
      this.wantArr[i] = want;
      this.unlinkAge(i);
      this.linkNewest(i);
      return before;
    }
    if (this.freeHead >= 0) {
      i = this.freeHead;
      this.freeHead = this.next[i];
    } else if (this.used < this.capacity) {
      i = this.used++;
    } else if (this.capacity < this.limit) {
      this.grow();
      i = this.used++;
    } else {
      const victim = this.oldest;
      const owner = this.connArr[victim];
      this.removeAt(victim);
      onEvict?.(owner);
      i = this.freeHead;
      this.freeHead = this.next[i];
    }
    this.cip[i] = clientIp;
    this.tip[i] = targetIp;
    this.ports[i] = ((clientPort << 16) | targetPort) >>> 0;
    this.wantArr[i] = want;
    this.connArr[i] = conn;
    const b = flowHash(clientIp, clientPort) & this.mask;
    this.next[i] = this.buckets[b];
    this.buckets[b] = i;
    this.linkNewest(i);
    this.size++;
    return -1;
  }

  /** Removes the route if `conn` owns it (-1: whoever owns it). */
  remove(clientIp: number, clientPort: number, targetIp: number, targetPort: number, conn = -1): boolean {
    const i = this.find(clientIp, clientPort, targetIp, targetPort);
    if (i < 0 || (conn >= 0 && this.connArr[i] !== conn)) return false;
    this.removeAt(i);
    return true;
  }

  /** Removes every route of a connection; returns how many. O(routes), only on disconnects. */
  removeConn(conn: number): number {
    let n = 0;
    let i = this.oldest;
    while (i >= 0) {
      const nxt = this.newer[i];
      if (this.connArr[i] === conn) {
        this.removeAt(i);
        n++;
      }
      i = nxt;
    }
    return n;
  }

  private removeAt(i: number): void {
    const b = flowHash(this.cip[i], this.ports[i] >>> 16) & this.mask;
    let j = this.buckets[b];
    if (j === i) {
      this.buckets[b] = this.next[i];
    } else {
      while (this.next[j] !== i) j = this.next[j];
      this.next[j] = this.next[i];
    }
    this.unlinkAge(i);
    this.connArr[i] = -1;
    this.next[i] = this.freeHead;
    this.freeHead = i;
    this.size--;
  }

  private linkNewest(i: number): void {
    this.older[i] = this.newest;
    this.newer[i] = -1;
    if (this.newest >= 0) this.newer[this.newest] = i;
    else this.oldest = i;
    this.newest = i;
  }

  private unlinkAge(i: number): void {
    const o = this.older[i];
    const n = this.newer[i];
    if (o >= 0) this.newer[o] = n;
    else this.oldest = n;
    if (n >= 0) this.older[n] = o;
    else this.newest = o;
  }

  /** Doubles the arrays (up to the limit) and rehashes; indices, hence the age list, stay valid. */
  private grow(): void {
    const cap = Math.min(this.limit, this.capacity * 2);
    const more = <T extends Uint32Array | Int32Array | Uint16Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.cip = more(this.cip, (n) => new Uint32Array(n));
    this.tip = more(this.tip, (n) => new Uint32Array(n));
    this.ports = more(this.ports, (n) => new Uint32Array(n));
    this.wantArr = more(this.wantArr, (n) => new Uint16Array(n));
    this.connArr = more(this.connArr, (n) => new Int32Array(n).fill(-1));
    this.next = more(this.next, (n) => new Int32Array(n));
    this.older = more(this.older, (n) => new Int32Array(n));
    this.newer = more(this.newer, (n) => new Int32Array(n));
    this.capacity = cap;
    const nb = nextPow2(cap);
    this.mask = nb - 1;
    this.buckets = new Int32Array(nb).fill(-1);
    for (let i = 0; i < this.used; i++) {
      if (this.connArr[i] < 0) continue;
      const b = flowHash(this.cip[i], this.ports[i] >>> 16) & this.mask;
      this.next[i] = this.buckets[b];
      this.buckets[b] = i;
    }
    // The free list ran through `next`, which the rehash overwrote for live slots only: rebuild it.
    this.freeHead = -1;
    for (let i = this.used - 1; i >= 0; i--) {
      if (this.connArr[i] < 0) {
        this.next[i] = this.freeHead;
        this.freeHead = i;
      }
    }
  }
}
