// The tcpcopy side of the channel: one TCP connection to each intercept, HELLO first, then
// ROUTE_ADD / ROUTE_DEL out and REPLY frames in. See docs/intercept-protocol.md.
import * as net from 'node:net';
import * as os from 'node:os';
import { formatIpv4 } from '../decode/ip-address';
import { DecodeStatus, TcpPacket } from '../decode/tcp-packet';
import {
  CHANNEL_MAGIC,
  CHANNEL_MIN_VERSION,
  CHANNEL_VERSION,
  DEFAULT_INTERCEPT_PORT,
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
  /** Called after each chunk read from an intercept that carried replies (flush ACKs here). */
  onBatch?: () => void;
  /** A connection lost after connect() resolved. Default: printed on stderr. */
  onError?: (message: string, err: InterceptChannelError) => void;
  /** Port for servers given without one. Default 36524. */
  defaultPort?: number;
  /** connect() gives up after this long, ms (default 5000). */
  connectTimeoutMs?: number;
  /** Name sent in HELLO, shown in intercept's log. */
  name?: string;
  /** Unsent route messages one connection may hold before more are dropped (default 64 MiB). */
  maxBufferedBytes?: number;
}

export type InterceptErrorCode =
  | 'REFUSED' | 'TIMEOUT' | 'UNREACHABLE' | 'DNS' | 'NOT_INTERCEPT' | 'VERSION' | 'CLOSED' | 'LOST' | 'PROTOCOL' | 'EIO';

/** A channel problem; `address` is host:port of the intercept concerned. */
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
  /** Intercepts connected now. */
  connected: number;
  repliesReceived: number;
  /** REPLY frames whose packet did not decode (should stay 0). */
  repliesMalformed: number;
  /** onBatch() calls. */
  batches: number;
  routesAdded: number;
  routesRemoved: number;
  /** Route messages not sent: the intercept connection was gone or backed up. */
  routesDropped: number;
  bytesReceived: number;
}

const DEFAULT_CONNECT_TIMEOUT = 5000;
const EMPTY = Buffer.alloc(0);
const CLOSE_GRACE_MS = 1000;
const HINT = 'start intercept there or fix -s';

const enum LinkState {
  CONNECTING,
  HELLO,
  READY,
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

/** One intercept connection. */
class Link {
  state = LinkState.CONNECTING;
  socket: net.Socket | null = null;
  writer: FrameWriter | null = null;
  parser: FrameParser | null = null;
  info: HelloAckMessage | null = null;
  /** First bytes received, checked before parsing (a non-intercept may not send frames at all). */
  head: Buffer | null = Buffer.alloc(8);
  headLength = 0;
  lastError: NodeJS.ErrnoException | null = null;
  /** Text of an ERROR frame from the intercept. */
  peerError = '';
  repliesInChunk = 0;
  settle: ((err: InterceptConnectError | null) => void) | null = null;
  timer: NodeJS.Timeout | null = null;

  constructor(readonly address: InterceptAddress) {}

  get text(): string {
    return this.address.host.includes(':') ? `[${this.address.host}]:${this.address.port}` : `${this.address.host}:${this.address.port}`;
  }
}

/**
 * tcpcopy's end of the channel and the engine's RouteRegistry: add()/remove() go to every
 * intercept, replies from any of them come out of onReply.
 */
export class InterceptClient implements RouteRegistry {
  readonly addresses: readonly InterceptAddress[];
  private readonly links: Link[];
  private readonly onReply: ReplyHandler;
  private readonly onBatch: () => void;
  private readonly onError: (message: string, err: InterceptChannelError) => void;
  private readonly timeoutMs: number;
  private readonly name: string;
  private readonly maxBuffered: number;
  private readonly pkt = new TcpPacket();
  /** Routes add()ed / remove()d before connect(): replayed into each connection at connect(). */
  private early: Array<{ add: boolean; route: Route }> | null = [];
  private connecting: Promise<void> | null = null;
  private closed = false;
  private counters: Omit<InterceptClientStats, 'intercepts' | 'connected'> = {
    repliesReceived: 0,
    repliesMalformed: 0,
    batches: 0,
    routesAdded: 0,
    routesRemoved: 0,
    routesDropped: 0,
    bytesReceived: 0,
  };

  constructor(opts: InterceptClientOptions) {
    this.addresses = parseInterceptAddresses(opts.servers, opts.defaultPort);
    this.links = this.addresses.map((a) => new Link(a));
    this.onReply = opts.onReply ?? (() => undefined);
    this.onBatch = opts.onBatch ?? (() => undefined);
    this.onError = opts.onError ?? ((message) => process.stderr.write(`tcpcopy: ${message}\n`));
    this.timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT;
    this.name = opts.name ?? `tcpcopy pid ${process.pid} on ${os.hostname()}`;
    this.maxBuffered = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
  }

  /** What each intercept said in HELLO_ACK (null until it answered). */
  get intercepts(): ReadonlyArray<{ address: string; name: string; version: number; maxPayload: number } | null> {
    return this.links.map((l) => l.info && { address: l.text, name: l.info.name, version: l.info.version, maxPayload: l.info.maxPayload });
  }

  /**
   * Connects to every intercept and exchanges HELLO. Resolves when all answered; otherwise
   * closes everything and rejects with an InterceptConnectError naming the address(es).
   */
  connect(timeoutMs = this.timeoutMs): Promise<void> {
    if (this.connecting) return this.connecting;
    // open() writes the routes queued so far behind each HELLO; from then on add()/remove()
    // go straight to the connections' writers (which queue until the socket is connected).
    const opening = this.links.map((l) => this.open(l, timeoutMs));
    this.early = null;
    this.connecting = (async () => {
      const results = await Promise.allSettled(opening);
      const failed = results
        .map((r) => (r.status === 'rejected' ? (r.reason as InterceptConnectError) : null))
        .filter((e): e is InterceptConnectError => e !== null);
      if (failed.length > 0) {
        this.closeLinks();
        if (failed.length === 1) throw failed[0];
        throw new InterceptConnectError(failed[0].code, failed.map((e) => e.address).join(','),
          failed.map((e) => e.message).join('; '));
      }
    })();
    return this.connecting;
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
    for (const l of this.links) {
      const w = l.writer;
      if (!w || l.state === LinkState.CLOSED) {
        this.counters.routesDropped++;
        continue;
      }
      // While the HELLO exchange is still going on this just queues behind the HELLO.
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
    }
  }

  stats(): InterceptClientStats {
    return {
      intercepts: this.links.length,
      connected: this.links.filter((l) => l.state === LinkState.READY).length,
      ...this.counters,
    };
  }

  /** Sends what is queued and closes every connection; resolves when they are closed. */
  close(): Promise<void> {
    this.closed = true;
    return this.closeLinks();
  }

  private closeLinks(): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const l of this.links) {
      const s = l.socket;
      if (l.timer) clearTimeout(l.timer);
      l.timer = null;
      if (l.state !== LinkState.CLOSED) l.state = LinkState.CLOSED;
      if (!s || s.destroyed) continue;
      l.writer?.flush();
      l.writer?.close();
      waits.push(new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.end();
        setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
      }));
    }
    return Promise.all(waits).then(() => undefined);
  }

  // ---- one connection --------------------------------------------------------------

  private open(l: Link, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      l.settle = (err) => {
        l.settle = null;
        if (l.timer) clearTimeout(l.timer);
        l.timer = null;
        if (err) reject(err);
        else resolve();
      };
      const socket = net.connect({ host: l.address.host, port: l.address.port });
      l.socket = socket;
      l.state = LinkState.CONNECTING;
      socket.setNoDelay(true); // route messages and replies are small and latency-bound
      socket.setKeepAlive(true, 10_000);
      const writer = new FrameWriter(socket, { maxBufferedBytes: this.maxBuffered });
      l.writer = writer;
      writer.append(encodeHello(this.name));
      for (const e of this.early ?? []) {
        const off = writer.reserve(e.add ? MessageType.ROUTE_ADD : MessageType.ROUTE_DEL, e.add ? ROUTE_ADD_BODY : ROUTE_DEL_BODY);
        if (off >= 0) (e.add ? writeRouteAddBody : writeRouteDelBody)(writer.buf, off, e.route);
      }
      writer.flush();
      l.parser = new FrameParser((type, buf, start, end) => this.onFrame(l, type, buf, start, end));
      l.timer = setTimeout(() => {
        const secs = `${timeoutMs / 1000} s`;
        const err = l.state === LinkState.CONNECTING
          ? new InterceptConnectError('TIMEOUT', l.text, `cannot reach intercept at ${l.text}: no answer within ${secs} ` +
            `(host down, or a firewall drops port ${l.address.port}); ${HINT}`)
          : new InterceptConnectError('NOT_INTERCEPT', l.text, `${l.text} accepted the connection but did not answer HELLO ` +
            `within ${secs}: is it an intercept of this project (the C intercept speaks another protocol)? ${HINT}`);
        this.fail(l, err);
      }, timeoutMs);
      socket.once('connect', () => {
        if (l.state === LinkState.CONNECTING) l.state = LinkState.HELLO;
      });
      socket.on('data', (chunk: Buffer) => this.onData(l, chunk));
      socket.on('error', (err: NodeJS.ErrnoException) => {
        l.lastError = err;
      });
      socket.on('close', () => this.onClose(l));
    });
  }

  /** A connect-time failure: reject connect() and drop the socket. */
  private fail(l: Link, err: InterceptConnectError): void {
    l.state = LinkState.CLOSED;
    l.parser?.stop();
    l.writer?.close();
    l.socket?.destroy();
    l.settle?.(err);
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
      l.peerError = decodeError(buf, start, end).text;
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
    l.info = ack;
    l.state = LinkState.READY;
    l.settle?.(null);
  }

  private onClose(l: Link): void {
    const was = l.state;
    l.state = LinkState.CLOSED;
    l.writer?.close();
    l.parser?.stop();
    if (l.settle) {
      // Still in connect().
      l.settle(connectFailure(l, was));
      return;
    }
    if (was !== LinkState.READY || this.closed) return;
    const why = l.peerError
      ? l.peerError
      : l.lastError
        ? errnoText(l.lastError)
        : 'the intercept closed the connection';
    const err = new InterceptChannelError('LOST', l.text, `lost the connection to intercept at ${l.text}: ${why}; ` +
      `replies through it stop`);
    this.onError(err.message, err);
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
        return new InterceptConnectError('DNS', l.text, `${at}: no such host "${l.address.host}"; fix -s`);
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
