// tcpcopy -L: while a channel is down, the routes it should carry wait; when it answers HELLO
// again they are registered again: first the routes it carried before the loss that are still
// active, then the ones added while it was down (skipping those removed since), in add order.
// Routes are kept once per channel index, shared by the intercepts, in typed arrays.
import type { InterceptConnection } from './intercept-connection';
import type { Route } from './route-registry';
import { RouteSet } from './route-set';

/** A drained route queue bigger than this is freed rather than kept for the next outage. */
const QUEUE_KEEP = 4096;

export interface RequeueCounters {
  routesDropped: number;
  routesReregistered: number;
  routesQueueSent: number;
  routesQueueDropped: number;
}

/** One intercept's part: ROUTE_ADDs queued for its channels, and what this outage sent or dropped. */
export interface RequeueTally {
  queued: number;
  again: number;
  queueSent: number;
  queueDropped: number;
}

/** One channel's ROUTE_ADDs made while it was down, as (RouteSet slot, add sequence number), in order. */
export class RouteQueue {
  /** Routes whose add sequence number is below this were sent before the loss. */
  downSeq = 0;
  length = 0;
  slots: Int32Array | null = null;
  seqs: Float64Array | null = null;
}

export class RouteRequeue {
  /** The active routes of each channel index. */
  private readonly active: RouteSet[];
  /** Sequence number of the next add(). */
  private nextSeq = 0;
  /** Where the last add() put its route, for enqueue(). */
  private lastSlot = -1;
  private lastSeq = 0;
  private readonly scratch: Route = { clientIp: 0, clientPort: 0, targetIp: 0, targetPort: 0, payloadBytes: 0 };

  constructor(channels: number, private readonly maxQueued: number, private readonly counters: RequeueCounters) {
    this.active = Array.from({ length: channels }, () => new RouteSet());
  }

  add(channel: number, route: Route): void {
    this.lastSeq = this.nextSeq++;
    this.lastSlot = this.active[channel].put(route, this.lastSeq);
  }

  /** A removal needs no message for a channel that is down: the new connection will not know the route. */
  remove(channel: number, route: Route): void {
    this.active[channel].delete(route);
  }

  /** The last add()'s route waits in `q` for its channel (at most maxQueued per intercept). */
  enqueue(q: RouteQueue, tally: RequeueTally): void {
    if (tally.queued >= this.maxQueued) {
      this.counters.routesDropped++;
      this.counters.routesQueueDropped++;
      tally.queueDropped++;
      return;
    }
    let slots = q.slots;
    if (slots === null || q.length === slots.length) {
      // Grows by doubling; never past the bound (length ≤ tally.queued < maxQueued).
      const cap = Math.min(this.maxQueued, Math.max(256, (slots?.length ?? 0) * 2));
      const more = new Int32Array(cap);
      const seqs = new Float64Array(cap);
      if (slots !== null) {
        more.set(slots);
        seqs.set(q.seqs!);
      }
      q.slots = slots = more;
      q.seqs = seqs;
    }
    slots[q.length] = this.lastSlot;
    q.seqs![q.length] = this.lastSeq;
    q.length++;
    tally.queued++;
  }

  /** A READY channel was lost: every route active now is registered again when it answers. */
  lost(q: RouteQueue): void {
    q.downSeq = this.nextSeq;
  }

  /** The channel has just answered HELLO again: its routes, in one batch. */
  registerAgain(conn: InterceptConnection): void {
    const set = this.active[conn.index];
    const q = conn.queue;
    const tally = conn.remote;
    const route = this.scratch;
    let again = 0;
    let sent = 0;
    const seqs = set.seq;
    for (let i = 0; i < set.used; i++) {
      const s = seqs[i];
      if (s < 0 || s >= q.downSeq) continue; // free, or added after the loss (queued)
      set.read(i, route);
      if (this.writeAdd(conn, route)) again++;
    }
    const slots = q.slots;
    const qseq = q.seqs;
    const n = q.length;
    for (let k = 0; k < n; k++) {
      const slot = slots![k];
      // Removed since (or added again: a later entry has the new sequence number).
      if (seqs[slot] !== qseq![k]) continue;
      set.read(slot, route);
      if (this.writeAdd(conn, route)) sent++;
    }
    tally.queued -= n;
    q.length = 0;
    if (slots !== null && slots.length > QUEUE_KEEP) {
      q.slots = null;
      q.seqs = null;
    }
    conn.writer!.flush();
    tally.again += again;
    tally.queueSent += sent;
    this.counters.routesReregistered += again;
    this.counters.routesQueueSent += sent;
  }

  private writeAdd(conn: InterceptConnection, route: Route): boolean {
    if (conn.writeRoute(true, route)) return true;
    this.counters.routesDropped++;
    return false;
  }
}
