// The tcpcopy side of the channel: N TCP connections ("channels", tcpcopy -C) to each intercept,
// HELLO first on each, then ROUTE_ADD / ROUTE_DEL out and REPLY frames in. A route always uses
// the same channel (a hash of its client address and port), because intercept sends a route's
// replies back on the connection that added it. With keepRunning (tcpcopy -L) a lost channel is
// reconnected and its active routes registered again. See docs/intercept-protocol.md.
import * as net from 'node:net';
import * as os from 'node:os';
import { formatIpv4 } from '../decode/ip-address';
import { DecodeStatus, TcpPacket } from '../decode/tcp-packet';
import {
  CHANNEL_MAGIC,
  CHANNEL_MIN_VERSION,
  CHANNEL_VERSION,
  DEFAULT_INTERCEPT_PORT,
  ErrorCode,
  FIRST_OPTIONAL_TYPE,
  FrameParser,
  FrameWriter,
  HelloStatus,
  MessageType,
  ROUTE_ADD_BODY,
  ROUTE_DEL_BODY,
  decodeError,
  decodeHelloAck,
  encodeHello,
  previewBytes,
  writeRouteAddBody,
  writeRouteDelBody,
  type HelloAckMessage,
} from './channel-messages';
import type { Route, RouteRegistry } from './route-registry';

export interface InterceptAddress {
  host: string;
  port: number;
}

/**
 * A reply from the target: `pkt` views its IP and TCP headers (and the payload bytes intercept
 * included), `payloadLength` is the real payload length from the IP total length, `data` the
 * payload bytes included (often none). All three are only valid during the call.
 */
export type ReplyHandler = (pkt: TcpPacket, payloadLength: number, data: Buffer) => void;

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

export type InterceptErrorCode =
  | 'REFUSED' | 'TIMEOUT' | 'UNREACHABLE' | 'DNS' | 'NOT_INTERCEPT' | 'VERSION' | 'CLOSED' | 'LOST' | 'PROTOCOL' | 'EIO'
  | 'RECOVERED';

/**
 * A channel problem; `address` is host:port of the intercept concerned. With keepRunning, the
 * recovery from a reported problem comes through onError too, with code RECOVERED.
 */
export class InterceptChannelError extends Error {
  override name = 'InterceptChannelError';
  constructor(readonly code: InterceptErrorCode, readonly address: string, message: string) {
    super(message);
  }
}

/** connect() failed; the message names the address and says what to do. */
export class InterceptConnectError extends InterceptChannelError {
  override name = 'InterceptConnectError';
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
const EMPTY = Buffer.alloc(0);
const CLOSE_GRACE_MS = 1000;
const HINT = 'start intercept there or fix -s';
const DEFAULT_CHANNELS = 2;
const MAX_CHANNELS = 16;
const DEFAULT_RECONNECT_MIN_MS = 1000;
const DEFAULT_RECONNECT_MAX_MS = 10_000;
const DEFAULT_MAX_QUEUED = 1_000_000;
/** A drained route queue bigger than this is freed rather than kept for the next outage. */
const QUEUE_KEEP = 4096;

const enum LinkState {
  /** Not opened yet, or (keepRunning) waiting for the next reconnect attempt. */
  IDLE,
  CONNECTING,
  HELLO,
  READY,
  /** Closed by close(), or given up (without keepRunning). */
  CLOSED,
}

/** Parses "host", "host:port", "a,b:1" into addresses. Throws a RangeError on a bad port. */
export function parseInterceptAddresses(
  servers: string | ReadonlyArray<string | InterceptAddress>,
  defaultPort = DEFAULT_INTERCEPT_PORT,
): InterceptAddress[] {
  const items = typeof servers === 'string' ? servers.split(',') : servers;
  const out: InterceptAddress[] = [];
  for (const item of items) {
    if (typeof item !== 'string') {
      out.push({ host: item.host, port: item.port });
      continue;
    }
    const text = item.trim();
    if (!text) continue;
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(text);
    const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
    if (!m || !(port >= 1 && port <= 65535)) {
      throw new RangeError(`intercept address "${text}": expected host or host:port with a port from 1 to 65535`);
    }
    out.push({ host: m[1], port });
  }
  if (out.length === 0) throw new RangeError('no intercept address given');
  return out;
}

/**
 * Scrambles a route's client address and port (xor-shift-multiply rounds). The top bits pick
 * the route's channel, the low bits its bucket in a RouteSet, so the two choices do not
 * correlate. Integer arithmetic only: nothing is allocated.
 */
function clientMix(ip: number, port: number): number {
  let h = (ip ^ (port << 16) ^ port) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Channel (0..channels-1) of the route with this client address and port. */
export function channelOfRoute(clientIp: number, clientPort: number, channels: number): number {
  if (channels <= 1) return 0;
  // Top bits of the hash, scaled to the channel count (exact: < 2^36 in a double).
  return Math.floor((clientMix(clientIp >>> 0, clientPort) * channels) / 4294967296);
}

/**
 * Routes added and not removed (keepRunning only): what a reconnected channel registers again.
 * Parallel typed arrays chained per bucket, like intercept's route table, so a million routes
 * are not a million objects. Slot numbers stay valid while a route is in the set (growing
 * copies the arrays in place); route queues refer to routes by slot and add sequence number.
 */
class RouteSet {
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
    let i = this.buckets[clientMix(ip, r.clientPort) & this.mask];
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
      const b = clientMix(this.cip[i], r.clientPort) & this.mask;
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
    const b = clientMix(ip, r.clientPort) & this.mask;
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
      const b = clientMix(this.cip[i], this.ports[i] >>> 16) & this.mask;
      this.next[i] = this.buckets[b];
      this.buckets[b] = i;
    }
  }
}

/** One intercept: its channels and what is reported about it. */
class Remote {
  readonly links: Link[] = [];
  info: HelloAckMessage | null = null;
  /** Without keepRunning: the loss was reported and the intercept given up. */
  lost = false;
  /** keepRunning: a loss (or a failed start) was reported and the recovery not yet. */
  down = false;
  /** The outage began at connect(). */
  downAtStart = false;
  downSince = 0;
  /** ROUTE_ADDs waiting in its channels' queues. */
  queued = 0;
  /** This outage: routes registered again, queued ones sent, queued ones dropped. */
  again = 0;
  queueSent = 0;
  queueDropped = 0;
  /** keepRunning: a reconnect found something that is not a (compatible) intercept; reported once. */
  misconfigReported = false;
  readonly text: string;

  constructor(readonly address: InterceptAddress) {
    this.text = address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
  }
}

/** One connection (channel) to an intercept. */
class Link {
  state = LinkState.IDLE;
  socket: net.Socket | null = null;
  writer: FrameWriter | null = null;
  parser: FrameParser | null = null;
  /** First bytes received, checked before parsing (a non-intercept may not send frames at all). */
  head: Buffer | null = null;
  headLength = 0;
  lastError: NodeJS.ErrnoException | null = null;
  /** Text and code of an ERROR frame from the intercept. */
  peerError = '';
  peerErrorCode = 0;
  repliesInChunk = 0;
  /** Set during the first attempt, made by connect(). */
  settle: ((err: InterceptConnectError | null) => void) | null = null;
  /** HELLO timeout of the current attempt. */
  timer: NodeJS.Timeout | null = null;
  /** keepRunning: next reconnect attempt. */
  retryTimer: NodeJS.Timeout | null = null;
  retryDelay = 0;
  /** keepRunning: routes whose add sequence number is below this were sent before the loss. */
  downSeq = 0;
  /** keepRunning: ROUTE_ADDs made while down, as (RouteSet slot, add sequence number), in order. */
  qSlot: Int32Array | null = null;
  qSeq: Float64Array | null = null;
  qLength = 0;

  constructor(readonly remote: Remote, readonly index: number, readonly hello: Buffer) {}

  get text(): string {
    return this.remote.text;
  }
}

/** Failures after which keepRunning keeps trying (the intercept is down, not misconfigured). */
function isTransient(err: InterceptConnectError, peerErrorCode: number): boolean {
  switch (err.code) {
    case 'REFUSED':
    case 'TIMEOUT':
    case 'UNREACHABLE':
    case 'EIO':
    case 'CLOSED':
    case 'LOST':
      return true;
    case 'PROTOCOL':
      return peerErrorCode === ErrorCode.SHUTDOWN; // it answered "shutting down"
    default:
      return false; // DNS, NOT_INTERCEPT, VERSION: fix -s or the release
  }
}

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
  private readonly links: Link[];
  private readonly onReply: ReplyHandler;
  private readonly onBatch: () => void;
  private readonly onError: (message: string, err: InterceptChannelError) => void;
  private readonly timeoutMs: number;
  private readonly name: string;
  private readonly maxBuffered: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly maxQueued: number;
  private readonly pkt = new TcpPacket();
  /** keepRunning: the active routes of each channel index (shared by the intercepts). */
  private readonly active: RouteSet[] | null;
  /** keepRunning: sequence number of the next add(). */
  private nextSeq = 0;
  private readonly scratch: Route = { clientIp: 0, clientPort: 0, targetIp: 0, targetPort: 0, payloadBytes: 0 };
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
    this.onReply = opts.onReply ?? (() => undefined);
    this.onBatch = opts.onBatch ?? (() => undefined);
    this.onError = opts.onError ?? ((message) => process.stderr.write(`tcpcopy: ${message}\n`));
    this.timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT;
    this.name = opts.name ?? `tcpcopy pid ${process.pid} on ${os.hostname()}`;
    this.maxBuffered = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
    this.reconnectMinMs = opts.reconnectMinMs ?? DEFAULT_RECONNECT_MIN_MS;
    this.reconnectMaxMs = Math.max(this.reconnectMinMs, opts.reconnectMaxMs ?? DEFAULT_RECONNECT_MAX_MS);
    if (!(this.reconnectMinMs > 0) || !Number.isFinite(this.reconnectMaxMs)) {
      throw new RangeError('reconnectMinMs and reconnectMaxMs must be positive numbers of milliseconds');
    }
    this.maxQueued = opts.maxQueuedRoutes ?? DEFAULT_MAX_QUEUED;
    if (!Number.isInteger(this.maxQueued) || this.maxQueued < 0) {
      throw new RangeError(`maxQueuedRoutes must be a whole number ≥ 0, not ${this.maxQueued}`);
    }
    this.remotes = this.addresses.map((a) => {
      const r = new Remote(a);
      for (let i = 0; i < n; i++) {
        r.links.push(new Link(r, i, encodeHello(n > 1 ? `${this.name} [channel ${i + 1}/${n}]` : this.name)));
      }
      return r;
    });
    this.links = this.remotes.flatMap((r) => r.links);
    this.active = this.keepRunning ? Array.from({ length: n }, () => new RouteSet()) : null;
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
    // Without keepRunning, attempt() writes the routes queued so far behind the HELLO of their
    // channel; from then on add()/remove() go straight to the connections' writers (which
    // queue until the socket is connected).
    const opening = this.remotes.map((r) => this.openRemote(r, timeoutMs));
    this.early = null;
    this.connecting = (async () => {
      const failed = (await Promise.all(opening)).filter((e): e is InterceptConnectError => e !== null);
      if (failed.length === 0) return;
      this.closeLinks();
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
    const results = await Promise.allSettled(r.links.map((l) => this.open(l, timeoutMs)));
    const errors = results
      .map((x) => (x.status === 'rejected' ? (x.reason as InterceptConnectError) : null))
      .filter((e): e is InterceptConnectError => e !== null);
    if (errors.length === 0) return null;
    const fatal = errors.find((e) => !this.transient.has(e));
    if (fatal || !this.keepRunning || this.closed) return fatal ?? errors[0];
    // keepRunning and the intercept is down: the failed channels are already retrying.
    if (!r.down) {
      r.down = true;
      r.downAtStart = true;
      r.downSince = Date.now();
      r.again = r.queueSent = r.queueDropped = 0;
      const e = errors[0];
      this.report(e.code, r, `${e.message} (-L: tcpcopy goes on without it, tries again in the background ` +
        `and registers its routes when it answers)`);
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
    const set = this.active === null ? null : this.active[c];
    let slot = -1;
    let seq = 0;
    if (set) {
      if (add) {
        seq = this.nextSeq++;
        slot = set.put(route, seq);
      } else {
        set.delete(route);
      }
    }
    for (const r of this.remotes) {
      const l = r.links[c];
      const w = l.writer;
      // Without keepRunning, a channel still in its HELLO exchange takes routes too: they
      // queue behind the HELLO. With it, they wait in the channel's queue until HELLO_ACK.
      if (w && (l.state === LinkState.READY || (!set && l.state !== LinkState.CLOSED && l.state !== LinkState.IDLE))) {
        const off = w.reserve(add ? MessageType.ROUTE_ADD : MessageType.ROUTE_DEL, add ? ROUTE_ADD_BODY : ROUTE_DEL_BODY);
        if (off < 0) {
          this.counters.routesDropped++;
          continue;
        }
        if (add) {
          writeRouteAddBody(w.buf, off, route);
          // The engine sends the SYN right after add(): write the route now, not at the end of
          // the turn, so that it usually reaches intercept before the SYN-ACK does (measured in
          // the namespace e2e test: with end-of-turn batching every SYN-ACK went through the
          // hold queue). One small write per new connection; removals stay batched.
          if (l.state === LinkState.READY) w.flush();
        } else {
          writeRouteDelBody(w.buf, off, route);
        }
      } else if (set && l.state !== LinkState.CLOSED) {
        // keepRunning, channel down: a removal needs no message (the new connection will not
        // know the route); an addition waits in the queue.
        if (add) this.enqueue(l, slot, seq);
      } else {
        this.counters.routesDropped++;
      }
    }
  }

  /** keepRunning: remembers a ROUTE_ADD for a channel that is down (bounded per intercept). */
  private enqueue(l: Link, slot: number, seq: number): void {
    const r = l.remote;
    if (r.queued >= this.maxQueued) {
      this.counters.routesDropped++;
      this.counters.routesQueueDropped++;
      r.queueDropped++;
      return;
    }
    let q = l.qSlot;
    if (q === null || l.qLength === q.length) {
      // Grows by doubling; never past the bound (qLength ≤ r.queued < maxQueued).
      const cap = Math.min(this.maxQueued, Math.max(256, (q?.length ?? 0) * 2));
      const slots = new Int32Array(cap);
      const seqs = new Float64Array(cap);
      if (q !== null) {
        slots.set(q);
        seqs.set(l.qSeq!);
      }
      l.qSlot = q = slots;
      l.qSeq = seqs;
    }
    q[l.qLength] = slot;
    l.qSeq![l.qLength] = seq;
    l.qLength++;
    r.queued++;
  }

  /**
   * keepRunning, a channel has just answered HELLO again: register the routes it had before the
   * loss that are still active, then the ones queued while it was down (skipping those removed
   * since), in one batch.
   */
  private registerAgain(l: Link): void {
    const set = this.active![l.index];
    const w = l.writer!;
    const r = l.remote;
    const route = this.scratch;
    let again = 0;
    let sent = 0;
    const seqs = set.seq;
    for (let i = 0; i < set.used; i++) {
      const s = seqs[i];
      if (s < 0 || s >= l.downSeq) continue; // free, or added after the loss (queued)
      set.read(i, route);
      if (this.writeAdd(w, route)) again++;
    }
    const slots = l.qSlot;
    const qseq = l.qSeq;
    const n = l.qLength;
    for (let k = 0; k < n; k++) {
      const slot = slots![k];
      // Removed since (or added again: a later entry has the new sequence number).
      if (seqs[slot] !== qseq![k]) continue;
      set.read(slot, route);
      if (this.writeAdd(w, route)) sent++;
    }
    r.queued -= n;
    l.qLength = 0;
    if (slots !== null && slots.length > QUEUE_KEEP) {
      l.qSlot = null;
      l.qSeq = null;
    }
    w.flush();
    r.again += again;
    r.queueSent += sent;
    this.counters.routesReregistered += again;
    this.counters.routesQueueSent += sent;
  }

  private writeAdd(w: FrameWriter, route: Route): boolean {
    const off = w.reserve(MessageType.ROUTE_ADD, ROUTE_ADD_BODY);
    if (off < 0) {
      this.counters.routesDropped++;
      return false;
    }
    writeRouteAddBody(w.buf, off, route);
    return true;
  }

  stats(): InterceptClientStats {
    let connected = 0;
    let channelsConnected = 0;
    let routesQueued = 0;
    for (const r of this.remotes) {
      let up = 0;
      for (const l of r.links) if (l.state === LinkState.READY) up++;
      channelsConnected += up;
      if (up === r.links.length) connected++;
      routesQueued += r.queued;
    }
    return {
      intercepts: this.remotes.length,
      connected,
      channels: this.links.length,
      channelsConnected,
      routesQueued,
      ...this.counters,
    };
  }

  /** Sends what is queued and closes every connection (and stops reconnecting); resolves when they are closed. */
  close(): Promise<void> {
    this.closed = true;
    return this.closeLinks();
  }

  private closeLinks(): Promise<void> {
    return Promise.all(this.links.map((l) => this.closeLink(l))).then(() => undefined);
  }

  private closeLink(l: Link): Promise<void> {
    if (l.retryTimer) clearTimeout(l.retryTimer);
    l.retryTimer = null;
    if (l.timer) clearTimeout(l.timer);
    l.timer = null;
    l.state = LinkState.CLOSED;
    const s = l.socket;
    if (!s || s.destroyed) return Promise.resolve();
    l.writer?.flush();
    l.writer?.close();
    return new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.end();
      setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
    });
  }

  private report(code: InterceptErrorCode, r: Remote, message: string): void {
    const err = new InterceptChannelError(code, r.text, message);
    this.onError(message, err);
  }

  // ---- one connection --------------------------------------------------------------

  /** The first attempt on a channel (from connect()): settles when it answered or failed. */
  private open(l: Link, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      l.settle = (err) => {
        l.settle = null;
        if (err) reject(err);
        else resolve();
      };
      this.attempt(l, timeoutMs);
    });
  }

  /** Opens the channel's socket and sends HELLO (and, before the first HELLO_ACK, the early routes). */
  private attempt(l: Link, timeoutMs: number): void {
    const socket = net.connect({ host: l.remote.address.host, port: l.remote.address.port });
    l.socket = socket;
    l.state = LinkState.CONNECTING;
    l.head = Buffer.alloc(8);
    l.headLength = 0;
    l.lastError = null;
    l.peerError = '';
    l.peerErrorCode = 0;
    socket.setNoDelay(true); // route messages and replies are small and latency-bound
    socket.setKeepAlive(true, 10_000);
    const writer = new FrameWriter(socket, { maxBufferedBytes: this.maxBuffered });
    l.writer = writer;
    writer.append(l.hello);
    for (const e of this.early ?? []) {
      if (this.channelOf(e.route) !== l.index) continue;
      const off = writer.reserve(e.add ? MessageType.ROUTE_ADD : MessageType.ROUTE_DEL, e.add ? ROUTE_ADD_BODY : ROUTE_DEL_BODY);
      if (off >= 0) (e.add ? writeRouteAddBody : writeRouteDelBody)(writer.buf, off, e.route);
    }
    writer.flush();
    l.parser = new FrameParser((type, buf, start, end) => this.onFrame(l, type, buf, start, end));
    l.timer = setTimeout(() => {
      l.timer = null;
      const secs = `${timeoutMs / 1000} s`;
      const err = l.state === LinkState.CONNECTING
        ? new InterceptConnectError('TIMEOUT', l.text, `cannot reach intercept at ${l.text}: no answer within ${secs} ` +
          `(host down, or a firewall drops port ${l.remote.address.port}); ${HINT}`)
        : new InterceptConnectError('NOT_INTERCEPT', l.text, `${l.text} accepted the connection but did not answer HELLO ` +
          `within ${secs}: is it an intercept of this project (the C intercept speaks another protocol)? ${HINT}`);
      this.fail(l, err);
    }, timeoutMs);
    // Events of a socket the link has since dropped (failed attempt, reconnect) are ignored.
    socket.once('connect', () => {
      if (l.socket === socket && l.state === LinkState.CONNECTING) l.state = LinkState.HELLO;
    });
    socket.on('data', (chunk: Buffer) => {
      if (l.socket === socket) this.onData(l, chunk);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (l.socket === socket) l.lastError = err;
    });
    socket.on('close', () => {
      if (l.socket === socket) this.onClose(l);
    });
  }

  /** An attempt failed on our side (timeout, wrong peer): drop the socket, then as attemptFailed. */
  private fail(l: Link, err: InterceptConnectError): void {
    const s = l.socket;
    l.socket = null;
    l.parser?.stop();
    l.writer?.close();
    s?.destroy();
    this.attemptFailed(l, err);
  }

  /**
   * An attempt ended before HELLO_ACK. The first one settles connect(); with keepRunning the
   * channel is tried again later unless connect() is failing anyway.
   */
  private attemptFailed(l: Link, err: InterceptConnectError): void {
    if (l.timer) clearTimeout(l.timer);
    l.timer = null;
    const transient = isTransient(err, l.peerErrorCode);
    const settle = l.settle;
    if (this.closed || !this.keepRunning || (settle && !transient)) {
      l.state = LinkState.CLOSED;
      settle?.(err);
      return;
    }
    if (settle) {
      this.transient.add(err);
      settle(err);
    } else if (!transient && !l.remote.misconfigReported) {
      // The port answers, but not as an intercept of this release: say so once, keep trying.
      l.remote.misconfigReported = true;
      this.report(err.code, l.remote, `${err.message} (-L: still trying)`);
    }
    this.scheduleRetry(l);
  }

  /** keepRunning: next attempt after 1 s, 2 s, 4 s… up to 10 s (by default), forever while open. */
  private scheduleRetry(l: Link): void {
    l.state = LinkState.IDLE;
    l.retryDelay = l.retryDelay === 0 ? this.reconnectMinMs : Math.min(this.reconnectMaxMs, l.retryDelay * 2);
    l.retryTimer = setTimeout(() => {
      l.retryTimer = null;
      if (!this.closed && l.state === LinkState.IDLE) this.attempt(l, this.timeoutMs);
    }, l.retryDelay);
  }

  private onData(l: Link, chunk: Buffer): void {
    this.counters.bytesReceived += chunk.length;
    if (l.head) {
      // Before the first frame: make sure this is an intercept at all. A frame parser would
      // wait for e.g. "HTTP/1.1 400" to complete a 0x5450-byte frame; checking the first bytes
      // gives a clear error at once.
      const take = Math.min(8 - l.headLength, chunk.length);
      chunk.copy(l.head, l.headLength, 0, take);
      l.headLength += take;
      const h = l.head;
      const bad = h[0] === MessageType.HELLO_ACK
        ? l.headLength >= 8 && h.readUInt32BE(4) !== CHANNEL_MAGIC
        : h[0] !== MessageType.ERROR;
      if (bad) {
        this.fail(l, new InterceptConnectError('NOT_INTERCEPT', l.text, `${l.text} is not an intercept: it answered ` +
          `${previewBytes(chunk, 0, chunk.length)}; fix -s (the C intercept speaks another protocol)`));
        return;
      }
      if (l.headLength >= 8) l.head = null;
    }
    l.repliesInChunk = 0;
    l.parser!.push(chunk);
    if (l.repliesInChunk > 0) {
      this.counters.batches++;
      this.onBatch();
    }
  }

  private onFrame(l: Link, type: number, buf: Buffer, start: number, end: number): void {
    if (type === MessageType.REPLY && l.state === LinkState.READY) {
      this.reply(l, buf, start, end);
      return;
    }
    if (l.state === LinkState.HELLO || l.state === LinkState.CONNECTING) {
      this.onHelloAck(l, type, buf, start, end);
      return;
    }
    if (l.state !== LinkState.READY) return;
    if (type === MessageType.ERROR) {
      const e = decodeError(buf, start, end);
      l.peerError = e.text;
      l.peerErrorCode = e.code;
      return; // the intercept closes next; onClose reports it
    }
    if (type >= FIRST_OPTIONAL_TYPE) return; // an extension we do not know: skip it
    l.parser!.stop();
    l.peerError = `it sent an unexpected message (type ${type}); protocol error`;
    l.socket!.destroy();
  }

  private reply(l: Link, buf: Buffer, start: number, end: number): void {
    const pkt = this.pkt;
    // The record holds fewer bytes than the packet had (headers + some payload): TRUNCATED is normal.
    const st = pkt.decode(buf, start, end - start);
    if (st !== DecodeStatus.OK && st !== DecodeStatus.TRUNCATED) {
      this.counters.repliesMalformed++;
      return;
    }
    const total = buf.readUInt16BE(start + 2);
    const headers = pkt.payload - pkt.ip;
    const payloadLength = total > headers ? total - headers : 0;
    this.counters.repliesReceived++;
    l.repliesInChunk++;
    this.onReply(pkt, payloadLength, pkt.end > pkt.payload ? buf.subarray(pkt.payload, pkt.end) : EMPTY);
  }

  private onHelloAck(l: Link, type: number, buf: Buffer, start: number, end: number): void {
    const ack = type === MessageType.HELLO_ACK ? decodeHelloAck(buf, start, end) : null;
    if (type === MessageType.ERROR) {
      const e = decodeError(buf, start, end);
      l.peerErrorCode = e.code;
      this.fail(l, new InterceptConnectError('PROTOCOL', l.text, `intercept at ${l.text} refused this tcpcopy: ${e.text}`));
      return;
    }
    if (!ack || ack.magic !== CHANNEL_MAGIC) {
      this.fail(l, new InterceptConnectError('NOT_INTERCEPT', l.text, `${l.text} is not an intercept: it answered ` +
        `${previewBytes(buf, Math.max(0, start - 4), end)}; fix -s`));
      return;
    }
    const range = (min: number, max: number): string => (min === max ? `${max}` : `${min} to ${max}`);
    if (ack.status === HelloStatus.VERSION_UNSUPPORTED || ack.version < CHANNEL_MIN_VERSION || ack.version > CHANNEL_VERSION) {
      this.fail(l, new InterceptConnectError('VERSION', l.text, `intercept at ${l.text} speaks channel protocol version ` +
        `${range(ack.minVersion, ack.version)}, this tcpcopy ${range(CHANNEL_MIN_VERSION, CHANNEL_VERSION)}: ` +
        `run the same release of tcpcopy and intercept`));
      return;
    }
    if (ack.status !== HelloStatus.OK) {
      this.fail(l, new InterceptConnectError('PROTOCOL', l.text, `intercept at ${l.text} refused HELLO (status ${ack.status})`));
      return;
    }
    if (l.timer) clearTimeout(l.timer);
    l.timer = null;
    const r = l.remote;
    r.info = ack;
    l.state = LinkState.READY;
    l.retryDelay = 0;
    if (this.active) this.registerAgain(l);
    if (l.settle) l.settle(null);
    else this.counters.reconnects++;
    if (r.down && r.links.every((x) => x.state === LinkState.READY)) {
      r.down = false;
      r.misconfigReported = false;
      const secs = ((Date.now() - r.downSince) / 1000).toFixed(1);
      const dropped = r.queueDropped > 0 ? `, ${r.queueDropped} dropped (queue full)` : '';
      this.report('RECOVERED', r, r.downAtStart
        ? `connected to intercept at ${r.text} after ${secs} s (it was not reachable at start): ` +
          `${r.queueSent} queued route(s) sent${dropped}`
        : `reconnected to intercept at ${r.text} after ${secs} s: ${r.again} route(s) registered again, ` +
          `${r.queueSent} queued route(s) sent${dropped}; replies flow again`);
    }
  }

  private onClose(l: Link): void {
    const was = l.state;
    if (l.timer) clearTimeout(l.timer);
    l.timer = null;
    l.socket = null;
    l.writer?.close();
    l.parser?.stop();
    if (l.settle || (was !== LinkState.READY && was !== LinkState.CLOSED)) {
      // An attempt (the first one, from connect(), or a reconnect) ended before HELLO_ACK.
      this.attemptFailed(l, connectFailure(l, was));
      return;
    }
    if (was !== LinkState.READY || this.closed) {
      l.state = LinkState.CLOSED;
      return;
    }
    const r = l.remote;
    const why = l.peerError
      ? l.peerError
      : l.lastError
        ? errnoText(l.lastError)
        : 'the intercept closed the connection';
    if (!this.keepRunning) {
      // Losing one channel is losing the intercept: its other channels are closed too (their
      // routes' replies would stop sooner or later anyway), and the loss is reported once.
      l.state = LinkState.CLOSED;
      if (r.lost) return;
      r.lost = true;
      for (const other of r.links) if (other !== l) void this.closeLink(other);
      this.report('LOST', r, `lost the connection to intercept at ${r.text}: ${why}; replies through it stop`);
      return;
    }
    // keepRunning: every route this channel carried is registered again on reconnect.
    l.downSeq = this.nextSeq;
    if (!r.down) {
      r.down = true;
      r.downAtStart = false;
      r.downSince = Date.now();
      r.again = r.queueSent = r.queueDropped = 0;
      this.report('LOST', r, `lost the connection to intercept at ${r.text}: ${why}; reconnecting (-L): ` +
        `routes are queued and registered again when it answers`);
    }
    this.scheduleRetry(l);
  }
}

function errnoText(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ECONNRESET': return 'connection reset';
    case 'ETIMEDOUT': return 'connection timed out';
    case 'EHOSTUNREACH': return 'host unreachable';
    case 'ENETUNREACH': return 'network unreachable';
    case 'EPIPE': return 'broken pipe';
    default: return err.message;
  }
}

function connectFailure(l: Link, was: LinkState): InterceptConnectError {
  const e = l.lastError;
  const at = `cannot reach intercept at ${l.text}`;
  if (e) {
    switch (e.code) {
      case 'ECONNREFUSED':
        return new InterceptConnectError('REFUSED', l.text, `${at}: connection refused; ${HINT}`);
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return new InterceptConnectError('DNS', l.text, `${at}: no such host "${l.remote.address.host}"; fix -s`);
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
      case 'EADDRNOTAVAIL':
        return new InterceptConnectError('UNREACHABLE', l.text, `${at}: ${errnoText(e)} (check the address and routing); ${HINT}`);
      case 'ETIMEDOUT':
        return new InterceptConnectError('TIMEOUT', l.text, `${at}: connection timed out; ${HINT}`);
      default:
        if (was === LinkState.CONNECTING) return new InterceptConnectError('EIO', l.text, `${at}: ${e.message}; ${HINT}`);
    }
  }
  if (l.peerError) {
    return new InterceptConnectError('PROTOCOL', l.text, `intercept at ${l.text} refused this tcpcopy: ${l.peerError}`);
  }
  return new InterceptConnectError('CLOSED', l.text, `${l.text} closed the connection without answering HELLO: ` +
    `is it an intercept of this project (the C intercept speaks another protocol)? ${HINT}`);
}

/** "203.0.113.7:40000 ← 198.51.100.2:80", for logs. */
export function routeToString(r: Route): string {
  return `${formatIpv4(r.clientIp)}:${r.clientPort} ← ${formatIpv4(r.targetIp)}:${r.targetPort}`;
}
