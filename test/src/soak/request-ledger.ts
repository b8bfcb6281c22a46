// Which numbered requests (PATH?TAG=<n>, as test/scripts/live-load.js sends them) reached the online server
// and which reached the target, read from the two nginx access logs as they grow. One byte per request
// number and tag, so a million requests cost a megabyte, and a missing one can be named afterwards.
import { LineTail } from '../harness/live-load';

const ONLINE = 1;
const TARGET = 2;

/** A request seen online and not at the target: its tag and number, and the client that sent it. */
export interface MissingRequest {
  tag: string;
  n: number;
  /** "198.51.100.104:10234", from the online access log (empty when it was not found again). */
  client: string;
}

export class RequestLedger {
  private readonly seen = new Map<string, Uint8Array>();
  private readonly onlineTail: LineTail;
  private readonly targetTail: LineTail;
  private readonly tagRe: RegExp;
  private onlineCount = 0;
  private targetCount = 0;

  /**
   * `tagPrefix`: only tags starting with it count (tags are [a-z0-9_]); `maxPerTag`: request numbers per tag
   * (live-load.js numbers from 0).
   */
  constructor(
    private readonly onlineLog: string,
    targetLog: string,
    tagPrefix: string,
    private readonly maxPerTag: number,
  ) {
    if (!/^[a-z0-9_]+$/.test(tagPrefix)) throw new Error(`tag prefix ${tagPrefix}: use [a-z0-9_]`);
    this.tagRe = new RegExp(`[?&](${tagPrefix}[a-z0-9_]*)=(\\d+)[ &]`);
    this.onlineTail = new LineTail(onlineLog);
    this.targetTail = new LineTail(targetLog);
  }

  /** Reads what both logs gained since the last call. */
  update(): this {
    this.onlineTail.read((l) => this.mark(l, ONLINE));
    this.targetTail.read((l) => this.mark(l, TARGET));
    return this;
  }

  /** Requests the online server logged (each once) / of those, the target logged. */
  get online(): number {
    return this.onlineCount;
  }

  get target(): number {
    return this.targetCount;
  }

  /** Online requests of one tag (or of the tags `pick` accepts) and how many of them the target has. */
  countTags(pick: (tag: string) => boolean): { online: number; target: number } {
    let online = 0;
    let target = 0;
    for (const [tag, bits] of this.seen) {
      if (!pick(tag)) continue;
      for (let i = 0; i < bits.length; i++) {
        if (bits[i] & ONLINE) online++;
        if ((bits[i] & (ONLINE | TARGET)) === (ONLINE | TARGET)) target++;
      }
    }
    return { online, target };
  }

  /** Requests at the target that the online server never logged (should stay 0: nothing is made up). */
  strays(): number {
    let n = 0;
    for (const bits of this.seen.values()) for (let i = 0; i < bits.length; i++) if (bits[i] === TARGET) n++;
    return n;
  }

  /** Every request missing at the target: the count, and the first `name` of them named (client from the online log). */
  missing(name = 20): { count: number; named: MissingRequest[] } {
    let count = 0;
    const named: MissingRequest[] = [];
    const wanted = new Map<string, MissingRequest>();
    for (const [tag, bits] of this.seen) {
      for (let i = 0; i < bits.length; i++) {
        if (bits[i] !== ONLINE) continue;
        count++;
        if (named.length < name) {
          const m = { tag, n: i, client: '' };
          named.push(m);
          wanted.set(`${tag}=${i}`, m);
        }
      }
    }
    if (wanted.size) {
      // The client of each named one, from a second read of the online log: "$remote_addr $remote_port ...".
      new LineTail(this.onlineLog).read((l) => {
        const m = this.tagRe.exec(l);
        const w = m && wanted.get(`${m[1]}=${m[2]}`);
        if (w) w.client = l.split(' ', 2).join(':');
      });
    }
    return { count, named };
  }

  private mark(line: string, side: number): void {
    const m = this.tagRe.exec(line);
    if (!m) return;
    const n = Number(m[2]);
    if (n >= this.maxPerTag) throw new Error(`request ${m[1]}=${n} beyond the ledger's ${this.maxPerTag} per tag`);
    let bits = this.seen.get(m[1]);
    if (!bits) this.seen.set(m[1], (bits = new Uint8Array(this.maxPerTag)));
    if (bits[n] & side) return; // logged twice (a replayed request sent again whole): counted once
    bits[n] |= side;
    if (side === ONLINE) {
      this.onlineCount++;
      if (bits[n] & TARGET) this.targetCount++;
    } else if (bits[n] & ONLINE) this.targetCount++;
  }
}
