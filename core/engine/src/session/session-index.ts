import type { Session } from './session';

/** Buckets a fresh index starts with (a power of two). */
const INITIAL_BUCKETS = 1024;

/**
 * Sessions by one (address, port) pair, chained through the sessions themselves: a lookup per packet
 * hashes two numbers and walks a short chain. A Map keyed by `ip * 65536 + port` boxed that key (it
 * passes 2^31) on every lookup and rehashed on every session's start and end.
 *
 * A chain may hold sessions of other keys (hash collisions): `first` and `next` skip them, so a caller
 * sees exactly the sessions of its key. The bucket array doubles as sessions grow (one bucket per session
 * at most) and never shrinks: a few KiB per thousand sessions at the peak.
 */
abstract class SessionIndex {
  // Both are written twice on construction (a placeholder, then the first table) so that V8 treats them as
  // mutable from the first index on. A field written only once is assumed constant by the code optimized
  // around it, and its first change, the first grow(), threw that code away: at 500 connections/s, a dozen
  // engine functions that inline the lookup were deoptimized and compiled again, 20-50 ms of CPU each.
  private buckets: Array<Session | null> = [];
  private mask = -1;
  /** Sessions held. */
  size = 0;

  constructor() {
    this.buckets = new Array<Session | null>(INITIAL_BUCKETS).fill(null);
    this.mask = INITIAL_BUCKETS - 1;
  }

  /** The session's address in this index, as a signed 32-bit integer (Session.clientIpKey, ...). */
  protected abstract ipOf(s: Session): number;
  protected abstract portOf(s: Session): number;
  protected abstract linkOf(s: Session): Session | null;
  protected abstract setLink(s: Session, next: Session | null): void;

  /** The first session of (ip, port), or null. */
  first(ip: number, port: number): Session | null {
    return this.skipOthers(this.buckets[this.slot(ip, port)], ip | 0, port);
  }

  /** The session of the same key after `s`, or null. */
  next(s: Session, ip: number, port: number): Session | null {
    return this.skipOthers(this.linkOf(s), ip | 0, port);
  }

  add(s: Session): void {
    if (this.size >= this.buckets.length) this.grow();
    const i = this.slot(this.ipOf(s), this.portOf(s));
    this.setLink(s, this.buckets[i]);
    this.buckets[i] = s;
    this.size++;
  }

  /** Takes `s` out; false when it was not here. */
  delete(s: Session): boolean {
    const i = this.slot(this.ipOf(s), this.portOf(s));
    let prev: Session | null = null;
    let x = this.buckets[i];
    while (x && x !== s) {
      prev = x;
      x = this.linkOf(x);
    }
    if (!x) return false;
    if (prev) this.setLink(prev, this.linkOf(s));
    else this.buckets[i] = this.linkOf(s);
    this.setLink(s, null);
    this.size--;
    return true;
  }

  /** True when some session satisfies `test` (for the rare whole-table questions). */
  some(test: (s: Session) => boolean): boolean {
    for (let x of this.buckets) for (; x; x = this.linkOf(x)) if (test(x)) return true;
    return false;
  }

  /** Every session, in a fresh array (for shutdown). */
  all(): Session[] {
    const out: Session[] = [];
    for (let x of this.buckets) for (; x; x = this.linkOf(x)) out.push(x);
    return out;
  }

  /** `ipKey`: the address as a signed 32-bit integer, as ipOf gives it. */
  private skipOthers(s: Session | null, ipKey: number, port: number): Session | null {
    while (s && (this.ipOf(s) !== ipKey || this.portOf(s) !== port)) s = this.linkOf(s);
    return s;
  }

  /** The same slot for an address as an unsigned or a signed 32-bit integer. */
  private slot(ip: number, port: number): number {
    const h = Math.imul(ip ^ Math.imul(port, 0x9e3779b1), 0x85ebca6b);
    return (h ^ (h >>> 15)) & this.mask;
  }

  private grow(): void {
    const old = this.buckets;
    this.buckets = new Array<Session | null>(old.length * 2).fill(null);
    this.mask = this.buckets.length - 1;
    for (let x of old) {
      while (x) {
        const next = this.linkOf(x);
        const i = this.slot(this.ipOf(x), this.portOf(x));
        this.setLink(x, this.buckets[i]);
        this.buckets[i] = x;
        x = next;
      }
    }
  }
}

/** Sessions by the captured client's address and port (captured packets find their session here). */
export class ClientIndex extends SessionIndex {
  protected ipOf(s: Session): number { return s.clientIpKey; }
  protected portOf(s: Session): number { return s.clientPort; }
  protected linkOf(s: Session): Session | null { return s.nextInBucket; }
  protected setLink(s: Session, next: Session | null): void { s.nextInBucket = next; }
}

/** Sessions by the address and port the target sees (its replies find their session here). */
export class ReplyIndex extends SessionIndex {
  protected ipOf(s: Session): number { return s.replyIpKey; }
  protected portOf(s: Session): number { return s.route.clientPort; }
  protected linkOf(s: Session): Session | null { return s.nextInReplyBucket; }
  protected setLink(s: Session, next: Session | null): void { s.nextInReplyBucket = next; }
}
