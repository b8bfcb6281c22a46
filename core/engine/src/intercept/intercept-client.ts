// The tcpcopy side of the channel: N TCP connections ("channels", tcpcopy -C) to each intercept,
// HELLO first on each, then ROUTE_ADD / ROUTE_DEL out and REPLY frames in. A route always uses
// the same channel (a hash of its client address and port), because intercept sends a route's
// replies back on the connection that added it. With keepRunning (tcpcopy -L) a lost channel is
// reconnected and its active routes registered again. See docs/intercept-protocol.md.
//
// Here: the fan-out of routes to the intercepts, connect() and close(), and what to do when a
// connection fails (give up, retry, report). One connection is intercept-connection.ts; the -L
// route requeue, route-requeue.ts; the wording of errors, intercept-errors.ts.
import * as os from 'node:os';
import { TcpPacket } from '../decode/tcp-packet';
import { HELLO_FLAG_AUTH, secretBytes } from './channel-auth';
import { CHANNEL_MIN_VERSION, CHANNEL_VERSION, encodeHello } from './channel-messages';
import { channelOfRoute } from './flow-hash';
import { parseInterceptAddresses, type InterceptAddress } from './intercept-address';
import {
  ConnectionState,
  InterceptConnection,
  Remote,
  type ConnectionOwner,
  type ConnectionSettings,
  type ReplyHandler,
} from './intercept-connection';
import {
  InterceptChannelError,
  InterceptConnectError,
  isTransient,
  lostText,
  pendingAtStart,
  recoveredText,
  stillTrying,
  type InterceptErrorCode,
} from './intercept-errors';
import type { Route, RouteRegistry } from './route-registry';
import { RouteRequeue } from './route-requeue';

// The names that come with the client, importable from this module (as '@tcpcopy/core' does).
export { InterceptChannelError, InterceptConnectError, type InterceptErrorCode } from './intercept-errors';
export type { InterceptAddress } from './intercept-address';
export type { ReplyHandler } from './intercept-connection';

export interface InterceptClientOptions {
  /** Intercepts: "host", "host:port" (comma-separated in one string is fine) or {host, port}. */
  servers: string | ReadonlyArray<string | InterceptAddress>;
  onReply?: ReplyHandler;
  /** Called after each chunk read from an intercept connection that carried replies (flush ACKs here). */
  onBatch?: () => void;
  /**
   * A connection lost after connect() resolved; with keepRunning also an intercept pending at
   * start, and each recovery (code RECOVERED). Default: printed on stderr.
   */
  onError?: (message: string, err: InterceptChannelError) => void;
  /** Port for servers given without one. Default 36524. */
  defaultPort?: number;
  /** connect() gives up after this long, ms (default 5000). With keepRunning, also each reconnect attempt. */
  connectTimeoutMs?: number;
  /** Name sent in HELLO, shown in intercept's log ("[channel i/N]" is appended when N > 1). */
  name?: string;
  /**
   * tcpcopy --secret: authenticate each channel with the intercept's shared secret, both ways
   * (challenge-response; the secret itself never travels). The intercept must have the same one;
   * one without a secret is refused, as an intercept with a secret refuses a tcpcopy without.
   * Default: none (the channel as without authentication).
   */
  secret?: string | Buffer;
  /** Unsent route messages one connection may hold before more are dropped (default 64 MiB). */
  maxBufferedBytes?: number;
  /**
   * tcpcopy -C: TCP connections ("channels") to each intercept, 1..16 (default 2). A route's
   * ROUTE_ADD and ROUTE_DEL always go to the same channel of every intercept, picked by a hash
   * of its client address and port; intercept sends the route's replies back on that channel.
   */
  channelsPerIntercept?: number;
  /**
   * tcpcopy -L (lonely): a lost intercept connection is reconnected (forever, with a bounded
   * backoff) instead of only being reported, and connect() does not fail for an intercept that
   * is down (refused, no answer, unreachable): it resolves with that intercept pending.
   * ROUTE_ADDs for a channel that is down are queued; on reconnect every route still active
   * on the channel is registered again, then the queued ones. Default false.
   */
  keepRunning?: boolean;
  /** keepRunning: delay before the first reconnect attempt, ms (default 1000); doubles after each failure... */
  reconnectMinMs?: number;
  /** ...up to this, ms (default 10000). */
  reconnectMaxMs?: number;
  /**
   * keepRunning: ROUTE_ADDs queued per intercept while channels of it are down (default
   * 1,000,000, 12 bytes each); further ones are dropped and counted (routesQueueDropped).
   */
  maxQueuedRoutes?: number;
}

export interface InterceptClientStats {
  /** Intercepts configured. */
  intercepts: number;
  /** Intercepts connected now (every channel of them). */
  connected: number;
  /** Connections configured: intercepts × channelsPerIntercept. */
  channels: number;
  /** Connections that are up now. */
  channelsConnected: number;
  repliesReceived: number;
  /** REPLY frames whose packet did not decode (should stay 0). */
  repliesMalformed: number;
  /** onBatch() calls. */
  batches: number;
  routesAdded: number;
  routesRemoved: number;
  /**
   * Route messages that did not reach an intercept: its connection was gone (without
   * keepRunning) or backed up, or its route queue was full (keepRunning).
   */
  routesDropped: number;
  bytesReceived: number;
  /** keepRunning: channels connected again after a loss (or after a failed first attempt). */
  reconnects: number;
  /** keepRunning: ROUTE_ADDs sent again on reconnect for routes still active. */
  routesReregistered: number;
  /** keepRunning: ROUTE_ADDs waiting now for a channel to come back. */
  routesQueued: number;
  /** keepRunning: queued ROUTE_ADDs sent on reconnect. */
  routesQueueSent: number;
  /** keepRunning: ROUTE_ADDs not queued because the queue was full (included in routesDropped). */
  routesQueueDropped: number;
}

const DEFAULT_CONNECT_TIMEOUT = 5000;
const DEFAULT_CHANNELS = 2;
const MAX_CHANNELS = 16;
const DEFAULT_RECONNECT_MIN_MS = 1000;
const DEFAULT_RECONNECT_MAX_MS = 10_000;
const DEFAULT_MAX_QUEUED = 1_000_000;

/**
 * tcpcopy's end of the channel and the engine's RouteRegistry: add()/remove() go to every
 * intercept (on the route's channel), replies from any connection come out of onReply.
 */
export class InterceptClient implements RouteRegistry {
  readonly addresses: readonly InterceptAddress[];
  /** Connections to each intercept (tcpcopy -C). */
  readonly channelsPerIntercept: number;
  /** tcpcopy -L: reconnect lost intercepts instead of giving them up. */
  readonly keepRunning: boolean;
  private readonly remotes: Remote[];
  private readonly conns: InterceptConnection[];
  private readonly onError: (message: string, err: InterceptChannelError) => void;
  private readonly timeoutMs: number;
  /** keepRunning: the routes to register again when a channel comes back. */
  private readonly requeue: RouteRequeue | null;
  /** Connect failures after which keepRunning keeps trying. */
  private readonly transient = new WeakSet<InterceptConnectError>();
  /** Without keepRunning: routes add()ed / remove()d before connect(), written behind each HELLO. */
  private early: Array<{ add: boolean; route: Route }> | null;
  private connecting: Promise<void> | null = null;
  private closed = false;
  private counters: Omit<InterceptClientStats, 'intercepts' | 'connected' | 'channels' | 'channelsConnected' | 'routesQueued'> = {
    repliesReceived: 0,
    repliesMalformed: 0,
    batches: 0,
    routesAdded: 0,
    routesRemoved: 0,
    routesDropped: 0,
    bytesReceived: 0,
    reconnects: 0,
    routesReregistered: 0,
    routesQueueSent: 0,
    routesQueueDropped: 0,
  };

  constructor(opts: InterceptClientOptions) {
    this.addresses = parseInterceptAddresses(opts.servers, opts.defaultPort);
    const n = opts.channelsPerIntercept ?? DEFAULT_CHANNELS;
    if (!Number.isInteger(n) || n < 1 || n > MAX_CHANNELS) {
      throw new RangeError(`channelsPerIntercept (-C) must be a whole number from 1 to ${MAX_CHANNELS}, not ${n}`);
    }
    this.channelsPerIntercept = n;
    this.keepRunning = opts.keepRunning ?? false;
    this.onError = opts.onError ?? ((message) => process.stderr.write(`tcpcopy: ${message}\n`));
    this.timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT;
    const name = opts.name ?? `tcpcopy pid ${process.pid} on ${os.hostname()}`;
    const reconnectMinMs = opts.reconnectMinMs ?? DEFAULT_RECONNECT_MIN_MS;
    const reconnectMaxMs = Math.max(reconnectMinMs, opts.reconnectMaxMs ?? DEFAULT_RECONNECT_MAX_MS);
    if (!(reconnectMinMs > 0) || !Number.isFinite(reconnectMaxMs)) {
      throw new RangeError('reconnectMinMs and reconnectMaxMs must be positive numbers of milliseconds');
    }
    const maxQueued = opts.maxQueuedRoutes ?? DEFAULT_MAX_QUEUED;
    if (!Number.isInteger(maxQueued) || maxQueued < 0) {
      throw new RangeError(`maxQueuedRoutes must be a whole number ≥ 0, not ${maxQueued}`);
    }
    const settings: ConnectionSettings = {
      owner: this.owner(),
      onReply: opts.onReply ?? (() => undefined),
      onBatch: opts.onBatch ?? (() => undefined),
      counters: this.counters,
      pkt: new TcpPacket(),
      maxBufferedBytes: opts.maxBufferedBytes ?? 64 * 1024 * 1024,
      timeoutMs: this.timeoutMs,
      reconnectMinMs,
      reconnectMaxMs,
      secret: secretBytes(opts.secret),
    };
    const helloFlags = settings.secret ? HELLO_FLAG_AUTH : 0;
    this.remotes = this.addresses.map((a) => {
      const r = new Remote(a);
      for (let i = 0; i < n; i++) {
        const hello = encodeHello(n > 1 ? `${name} [channel ${i + 1}/${n}]` : name, CHANNEL_VERSION, CHANNEL_MIN_VERSION, helloFlags);
        r.conns.push(new InterceptConnection(r, i, hello, settings));
      }
      return r;
    });
    this.conns = this.remotes.flatMap((r) => r.conns);
    this.requeue = this.keepRunning ? new RouteRequeue(n, maxQueued, this.counters) : null;
    // With keepRunning, routes added before connect() simply wait in the channels' queues.
    this.early = this.keepRunning ? null : [];
  }

  /** What each intercept said in HELLO_ACK (null until it answered). */
  get intercepts(): ReadonlyArray<{ address: string; name: string; version: number; maxPayload: number } | null> {
    return this.remotes.map((r) => r.info && { address: r.text, name: r.info.name, version: r.info.version, maxPayload: r.info.maxPayload });
  }

  /** The channel (0..channelsPerIntercept-1) that carries this route, at every intercept. */
  channelOf(route: Route): number {
    return channelOfRoute(route.clientIp, route.clientPort, this.channelsPerIntercept);
  }

  /**
   * Opens every channel to every intercept and exchanges HELLO on each. Resolves when all
   * answered. Otherwise closes everything and rejects with an InterceptConnectError naming the
   * address(es) — except with keepRunning, where an intercept that is merely down (refused, no
   * answer, unreachable, closed, shutting down) does not fail connect(): it is reported through
   * onError, left pending and tried again in the background. DNS, NOT_INTERCEPT and VERSION
   * failures reject in both modes.
   */
  connect(timeoutMs = this.timeoutMs): Promise<void> {
    if (this.connecting) return this.connecting;
    // Without keepRunning, each first attempt writes the routes queued so far behind the HELLO
    // of their channel; from then on add()/remove() go straight to the connections' writers
    // (which queue until the socket is connected).
    const opening = this.remotes.map((r) => this.openRemote(r, timeoutMs));
    this.early = null;
    this.connecting = (async () => {
      const failed = (await Promise.all(opening)).filter((e): e is InterceptConnectError => e !== null);
      if (failed.length === 0) return;
      this.closeAll();
      if (failed.length === 1) throw failed[0];
      throw new InterceptConnectError(failed[0].code, failed.map((e) => e.address).join(','),
        failed.map((e) => e.message).join('; '));
    })();
    return this.connecting;
  }

  /**
   * First attempt on every channel of one intercept. Resolves with the error that fails
   * connect() (the first failed channel's), or null: all answered, or (keepRunning) pending.
   */
  private async openRemote(r: Remote, timeoutMs: number): Promise<InterceptConnectError | null> {
    const results = await Promise.allSettled(r.conns.map((c) => c.open(timeoutMs)));
    const errors = results
      .map((x) => (x.status === 'rejected' ? (x.reason as InterceptConnectError) : null))
      .filter((e): e is InterceptConnectError => e !== null);
    if (errors.length === 0) return null;
    const fatal = errors.find((e) => !this.transient.has(e));
    if (fatal || !this.keepRunning || this.closed) return fatal ?? errors[0];
    // keepRunning and the intercept is down: the failed channels are already retrying.
    if (!r.down) {
      this.beginOutage(r, true);
      this.report(errors[0].code, r, pendingAtStart(errors[0]));
    }
    return null;
  }

  add(route: Route): void {
    this.counters.routesAdded++;
    this.routeMessage(true, route);
  }

  remove(route: Route): void {
    this.counters.routesRemoved++;
    this.routeMessage(false, route);
  }

  private routeMessage(add: boolean, route: Route): void {
    if (this.early) {
      // Before connect(): keep a copy (the engine reuses its Route objects).
      this.early.push({ add, route: { ...route } });
      return;
    }
    const c = this.channelsPerIntercept === 1 ? 0 : channelOfRoute(route.clientIp, route.clientPort, this.channelsPerIntercept);
    const rq = this.requeue;
    if (rq) {
      if (add) rq.add(c, route);
      else rq.remove(c, route);
    }
    for (const r of this.remotes) {
      const conn = r.conns[c];
      const state = conn.state;
      // Without keepRunning, a channel still in its HELLO exchange takes routes too: they
      // queue behind the HELLO. With it, they wait in the channel's queue until HELLO_ACK.
      if (!rq && conn.authenticating && state !== ConnectionState.CLOSED && state !== ConnectionState.IDLE) {
        // A secret handshake still running: the intercept learns no route before it proved itself.
        if (!conn.defer(add, route)) this.counters.routesDropped++;
      } else if (conn.writer && (state === ConnectionState.READY ||
        (!rq && state !== ConnectionState.CLOSED && state !== ConnectionState.IDLE))) {
        if (!conn.writeRoute(add, route)) {
          this.counters.routesDropped++;
          continue;
        }
        // The engine sends the SYN right after add(): write the route now, not at the end of
        // the turn, so that it usually reaches intercept before the SYN-ACK does (measured in
        // the namespace e2e test: with end-of-turn batching every SYN-ACK went through the
        // hold queue). One small write per new connection, carrying the removals that waited for it.
        if (add && state === ConnectionState.READY) conn.writer.flush();
      } else if (rq && state !== ConnectionState.CLOSED) {
        // keepRunning, channel down: an addition waits in the queue.
        if (add) rq.enqueue(conn.queue, r);
      } else {
        this.counters.routesDropped++;
      }
    }
  }

  stats(): InterceptClientStats {
    let connected = 0;
    let channelsConnected = 0;
    let routesQueued = 0;
    for (const r of this.remotes) {
      let up = 0;
      for (const c of r.conns) if (c.state === ConnectionState.READY) up++;
      channelsConnected += up;
      if (up === r.conns.length) connected++;
      routesQueued += r.queued;
    }
    return {
      intercepts: this.remotes.length,
      connected,
      channels: this.conns.length,
      channelsConnected,
      routesQueued,
      ...this.counters,
    };
  }

  /** Sends what is queued and closes every connection (and stops reconnecting); resolves when they are closed. */
  close(): Promise<void> {
    this.closed = true;
    return this.closeAll();
  }

  private closeAll(): Promise<void> {
    return Promise.all(this.conns.map((c) => c.close())).then(() => undefined);
  }

  private report(code: InterceptErrorCode, r: Remote, message: string): void {
    this.onError(message, new InterceptChannelError(code, r.text, message));
  }

  private beginOutage(r: Remote, atStart: boolean): void {
    r.down = true;
    r.downAtStart = atStart;
    r.downSince = Date.now();
    r.again = r.queueSent = r.queueDropped = 0;
  }

  // ---- what the connections leave to the client: give up, retry, report ---------------

  private owner(): ConnectionOwner {
    return {
      afterHello: (conn) => {
        for (const e of this.early ?? []) {
          if (this.channelOf(e.route) !== conn.index) continue;
          if (!(conn.authenticating ? conn.defer(e.add, e.route) : conn.writeRoute(e.add, e.route))) this.counters.routesDropped++;
        }
      },
      ready: (conn) => this.ready(conn),
      attemptFailed: (conn, err) => this.attemptFailed(conn, err),
      lost: (conn, why) => this.lost(conn, why),
    };
  }

  private ready(conn: InterceptConnection): void {
    const r = conn.remote;
    this.requeue?.registerAgain(conn);
    if (conn.settle) conn.settle(null);
    else this.counters.reconnects++;
    if (r.down && r.conns.every((x) => x.state === ConnectionState.READY)) {
      r.down = false;
      r.misconfigReported = false;
      this.report('RECOVERED', r, recoveredText(r.text, r));
    }
  }

  /**
   * An attempt ended before HELLO_ACK. The first one settles connect(); with keepRunning the
   * channel is tried again later unless connect() is failing anyway.
   */
  private attemptFailed(conn: InterceptConnection, err: InterceptConnectError): void {
    const transient = isTransient(err, conn.peerErrorCode);
    const settle = conn.settle;
    if (this.closed || !this.keepRunning || (settle && !transient)) {
      conn.state = ConnectionState.CLOSED;
      settle?.(err);
      return;
    }
    if (settle) {
      this.transient.add(err);
      settle(err);
    } else if (!transient && !conn.remote.misconfigReported) {
      // The port answers, but not as an intercept of this release: say so once, keep trying.
      conn.remote.misconfigReported = true;
      this.report(err.code, conn.remote, stillTrying(err));
    }
    conn.retryLater();
  }

  private lost(conn: InterceptConnection, why: string): void {
    const r = conn.remote;
    if (this.closed) {
      conn.state = ConnectionState.CLOSED;
      return;
    }
    if (!this.requeue) {
      // Losing one channel is losing the intercept: its other channels are closed too (their
      // routes' replies would stop sooner or later anyway), and the loss is reported once.
      conn.state = ConnectionState.CLOSED;
      if (r.lost) return;
      r.lost = true;
      for (const other of r.conns) if (other !== conn) void other.close();
      this.report('LOST', r, lostText(r.text, why, false));
      return;
    }
    // keepRunning: every route this channel carried is registered again on reconnect.
    this.requeue.lost(conn.queue);
    if (!r.down) {
      this.beginOutage(r, false);
      this.report('LOST', r, lostText(r.text, why, true));
    }
    conn.retryLater();
  }
}
