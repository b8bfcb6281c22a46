// The intercept side of the channel: accepts tcpcopy connections, keeps the route table they
// fill, and sends each captured target reply to the one tcpcopy that registered its connection.
//
//   capture (LiveCapture, or a test calling dispatch()) ──► dispatch(): decode in place,
//     route lookup ──► the owner's FrameWriter (one socket.write per event-loop turn)
//                  └─► no route yet: hold queue (SYN-ACK race), delivered when ROUTE_ADD comes
//
// The per-packet path allocates nothing: the route table and the hold queue are typed arrays,
// the packet is read through one reused TcpPacket view, and the reply bytes are copied straight
// from the capture buffer into the writer's output buffer. The route table is route-table.ts,
// the hold queue hold-queue.ts; this file holds the tcpcopy connections and the dispatch.
import * as net from 'node:net';
import * as os from 'node:os';
import type { LinkType } from '../decode/link-type';
import { ipv4Offset } from '../decode/link';
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
  MAX_BODY_LENGTH,
  MessageType,
  PAYLOAD_UNLIMITED,
  decodeError,
  decodeHello,
  encodeError,
  encodeHelloAck,
  previewBytes,
  readRouteBody,
} from './channel-messages';
import {
  AUTH_PROOF_TCPCOPY_BODY,
  HELLO_FLAG_AUTH,
  MAX_HANDSHAKE_BODY,
  authMac,
  encodeAuthChallenge,
  encodeAuthProof,
  macMatches,
  newNonce,
  secretBytes,
} from './channel-auth';
import { HandshakeSniff } from './handshake-sniff';
import { HoldQueue } from './hold-queue';
import { listenError } from './listen-errors';
import { routeText, type Route } from './route-registry';
import { RouteTable } from './route-table';

// Comes with the server, importable from this module (as '@tcpcopy/core' does).
export { InterceptListenError } from './listen-errors';

export interface InterceptServerOptions {
  /** TCP port tcpcopy connects to (default 36524; 0 picks a free one, see address()). */
  port?: number;
  /** Address to listen on (default 0.0.0.0). */
  host?: string;
  /** Routes kept at most; adding one more evicts the oldest (counted). Default 1 048 576. */
  maxRoutes?: number;
  /** How long a reply without a route waits for its ROUTE_ADD, ms. Default 2000. */
  holdMs?: number;
  /** Replies held at most; one more pushes out the oldest (counted as unmatched). Default 4096. */
  holdLimit?: number;
  /** Bytes of each held reply kept (IP packet prefix, at least 128). Default 512. */
  holdBytes?: number;
  /** Payload bytes per reply this intercept can return, told to tcpcopy in HELLO_ACK. Default: no limit. */
  maxPayload?: number;
  /** Unsent bytes one tcpcopy's socket may hold before replies to it are dropped. Default 64 MiB. */
  maxBufferedBytes?: number;
  /** Client (destination) addresses whose replies are ignored: never routed, held or counted unmatched. */
  passlist?: readonly number[];
  /** A connection that has not sent HELLO after this long is closed, ms. Default 10000. */
  helloTimeoutMs?: number;
  /** Name sent in HELLO_ACK, for tcpcopy's logs. */
  name?: string;
  /**
   * Log every route added and removed ('debug'). Default true; false spares building two messages per
   * replayed connection that a log without debug level throws away.
   */
  logRoutes?: boolean;
  /**
   * intercept --secret: only tcpcopys that prove they know it are served, and this intercept
   * proves it knows it too (challenge-response, see channel-auth.ts). Default: none, no check.
   */
  secret?: string | Buffer;
  /** Where to report connections, protocol errors and (level 'debug') route changes. */
  log?: (level: 'info' | 'warn' | 'debug', message: string) => void;
}

/** Counters; stats() returns a copy. */
export class InterceptCounters {
  /** Packets given to dispatch() (captured replies). */
  captured = 0;
  /** Frames that were not IPv4 (onCapturedFrame only). */
  notIpv4 = 0;
  /** Not a well-formed IPv4/TCP packet (fragment, bad header lengths…). */
  malformed = 0;
  /** Replies to a pass-listed client address, ignored. */
  passed = 0;
  /** Replies sent to their tcpcopy (straight away or after being held). */
  routed = 0;
  /** Replies put in the hold queue because their route was not there yet. */
  held = 0;
  /** Held replies sent when their route arrived (included in routed). */
  heldDelivered = 0;
  /** Replies that never found a route: expired in the hold queue or pushed out of it. */
  unmatched = 0;
  /** Of unmatched: pushed out because the hold queue was full. */
  holdOverflow = 0;
  /** Replies dropped because their tcpcopy's socket was backed up (or closing). */
  dropped = 0;
  routesAdded = 0;
  routesRemoved = 0;
  /** Routes dropped because the table was full (oldest first). */
  routesEvicted = 0;
  /** ROUTE_ADD for a connection another tcpcopy had registered: the newer one wins. */
  routesRebound = 0;
  /** Routes dropped because their tcpcopy disconnected. */
  routesDisconnected = 0;
  clientsAccepted = 0;
  /** Connections closed because they did not speak this protocol (or an incompatible version, or failed authentication). */
  clientsRejected = 0;
  /** Of clientsRejected: tcpcopys refused by the secret handshake (no secret, a wrong one, a missing step). */
  clientsUnauthenticated = 0;
  /** socket.write() calls to tcpcopys (one per client per event-loop turn, unless a burst fills 128 KiB). */
  batches = 0;
  bytesSent = 0;
}

export interface InterceptStats extends InterceptCounters {
  /** Routes in the table now. */
  routes: number;
  /** Replies in the hold queue now. */
  holding: number;
  /** tcpcopy connections now. */
  clients: number;
}

const DEFAULT_MAX_ROUTES = 1 << 20;
const DEFAULT_HOLD_MS = 2000;
const DEFAULT_HOLD_LIMIT = 4096;
const DEFAULT_HOLD_BYTES = 512;
/** IP header (≤ 60) + TCP header (≤ 60) + a little payload: a held reply keeps at least this. */
const MIN_HOLD_BYTES = 128;
const DEFAULT_HELLO_TIMEOUT = 10_000;
/** After close() asked tcpcopys to go, sockets still open this long later are destroyed. */
const CLOSE_GRACE_MS = 2000;

const enum ConnState {
  AWAIT_HELLO,
  /** With a secret: the challenge is sent, tcpcopy's AUTH_PROOF is awaited. */
  AWAIT_PROOF,
  READY,
  CLOSING,
}

/** One tcpcopy connection. */
class ClientConn {
  state = ConnState.AWAIT_HELLO;
  name = '';
  version = 0;
  replies = 0;
  dropped = 0;
  helloTimer: NodeJS.Timeout | null = null;
  /** With a secret: the challenge sent, and the HELLO body the proofs cover. */
  nonce: Buffer | null = null;
  helloBody: Buffer | null = null;
  /** Checks the first bytes received: a HELLO with our magic. */
  readonly sniff = new HandshakeSniff(MessageType.HELLO);
  readonly writer: FrameWriter;
  parser!: FrameParser;

  constructor(readonly id: number, readonly socket: net.Socket, readonly remote: string, maxBuffered: number) {
    this.writer = new FrameWriter(socket, { maxBufferedBytes: maxBuffered });
  }

  get label(): string {
    return this.name ? `${this.remote} (${this.name})` : this.remote;
  }
}

/**
 * The intercept server. Feed it captured replies with onCapturedFrame (from LiveCapture) or
 * dispatch (an IPv4 packet in a buffer); it sends each to the tcpcopy that registered the
 * reply's connection.
 */
export class InterceptServer {
  readonly counters = new InterceptCounters();
  /** @internal */
  readonly routes: RouteTable;
  /** @internal */
  readonly hold: HoldQueue;

  private readonly opts: Required<Omit<InterceptServerOptions, 'log' | 'passlist' | 'secret'>>;
  private readonly secret: Buffer | null;
  private readonly log: (level: 'info' | 'warn' | 'debug', message: string) => void;
  private readonly passlist: Uint32Array;
  private readonly server: net.Server;
  private readonly conns: (ClientConn | null)[] = [];
  private readonly freeIds: number[] = [];
  private readonly pkt = new TcpPacket();
  private readonly heldPkt = new TcpPacket();
  private readonly scratchRoute: Route = { clientIp: 0, clientPort: 0, targetIp: 0, targetPort: 0, payloadBytes: 0 };
  private holdTimer: NodeJS.Timeout | null = null;
  private holdTimerAt = Infinity;
  private listening = false;
  private closing: Promise<void> | null = null;
  /** The connection a held reply is being delivered to (see deliverHeld). */
  private deliverTo: ClientConn | null = null;
  private deliverWant = 0;

  constructor(options: InterceptServerOptions = {}) {
    this.opts = {
      port: options.port ?? DEFAULT_INTERCEPT_PORT,
      host: options.host ?? '0.0.0.0',
      maxRoutes: options.maxRoutes ?? DEFAULT_MAX_ROUTES,
      holdMs: options.holdMs ?? DEFAULT_HOLD_MS,
      holdLimit: options.holdLimit ?? DEFAULT_HOLD_LIMIT,
      holdBytes: Math.max(MIN_HOLD_BYTES, Math.min(0xffff, options.holdBytes ?? DEFAULT_HOLD_BYTES)),
      maxPayload: options.maxPayload ?? PAYLOAD_UNLIMITED,
      maxBufferedBytes: options.maxBufferedBytes ?? 64 * 1024 * 1024,
      helloTimeoutMs: options.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT,
      name: options.name ?? `intercept pid ${process.pid} on ${os.hostname()}`,
      logRoutes: options.logRoutes ?? true,
    };
    this.log = options.log ?? (() => undefined);
    this.secret = secretBytes(options.secret);
    this.passlist = Uint32Array.from(options.passlist ?? []);
    this.routes = new RouteTable(this.opts.maxRoutes);
    this.hold = new HoldQueue(Math.max(1, this.opts.holdLimit), this.opts.holdBytes);
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Starts listening; resolves with the bound address. Rejects with an InterceptListenError. */
  listen(): Promise<{ address: string; port: number }> {
    const { port, host } = this.opts;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(listenError(err, host, port));
      };
      this.server.once('error', onError);
      this.server.listen({ port, host, backlog: 64 }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log('warn', `listening socket: ${err.message}`));
        this.listening = true;
        resolve(this.address()!);
      });
    });
  }

  /** Where the server listens (null before listen()). */
  address(): { address: string; port: number } | null {
    const a = this.server.address();
    return a && typeof a === 'object' ? { address: a.address, port: a.port } : null;
  }

  stats(): InterceptStats {
    let clients = 0;
    const s: InterceptStats = { ...this.counters, routes: this.routes.size, holding: this.hold.count, clients: 0 };
    for (const c of this.conns) {
      if (!c) continue;
      if (c.state === ConnState.READY) clients++;
      s.batches += c.writer.writes;
      s.bytesSent += c.writer.bytes;
    }
    s.clients = clients;
    return s;
  }

  /**
   * Capture callback: a link-layer frame as LiveCapture delivers it. An arrow property, so it
   * can be handed to capture.start() as is.
   */
  readonly onCapturedFrame = (frame: Buffer, length: number, linkType: LinkType): void => {
    const ip = ipv4Offset(linkType, frame, length);
    if (ip < 0) {
      this.counters.notIpv4++;
      return;
    }
    this.dispatch(frame, ip, length - ip);
  };

  /**
   * One captured reply: the IPv4 packet at buf[ip, ip+length) (captured bytes; the packet may
   * be cut short). Processed in place and not kept: the caller may reuse `buf` at once.
   */
  dispatch(buf: Buffer, ip: number, length: number): void {
    const c = this.counters;
    c.captured++;
    const pkt = this.pkt;
    const st = pkt.decode(buf, ip, length);
    if (st !== DecodeStatus.OK && st !== DecodeStatus.TRUNCATED) {
      c.malformed++;
      return;
    }
    // An IP total length of 0 means a segmentation-offload super-packet: tcpcopy computes the
    // payload length from the total length, so put the captured length there (in place).
    if (buf[ip + 2] === 0 && buf[ip + 3] === 0) buf.writeUInt16BE(pkt.totalLength, ip + 2);
    const clientIp = pkt.dstIp;
    if (this.passlist.length > 0 && this.passlisted(clientIp)) {
      c.passed++;
      return;
    }
    const clientPort = pkt.dstPort;
    const targetIp = pkt.srcIp;
    const targetPort = pkt.srcPort;
    const r = this.routes.find(clientIp, clientPort, targetIp, targetPort);
    if (r < 0) {
      this.holdReply(buf, ip, pkt.totalLength, clientIp, clientPort, targetIp, targetPort);
      return;
    }
    this.send(this.conns[this.routes.connOf(r)]!, pkt, this.routes.wantOf(r));
  }

  /** Copies the reply's REPLY frame into the connection's batch. */
  private send(conn: ClientConn, pkt: TcpPacket, want: number): void {
    const present = pkt.end - pkt.payload;
    const n = pkt.payload - pkt.ip + (present < want ? present : want);
    const w = conn.writer;
    const off = w.reserve(MessageType.REPLY, n);
    if (off < 0) {
      this.counters.dropped++;
      if (conn.dropped++ === 0) {
        this.log('warn', `tcpcopy ${conn.label} does not keep up (over ${this.opts.maxBufferedBytes} bytes unsent): ` +
          `dropping its replies until it catches up`);
      }
      return;
    }
    pkt.buf.copy(w.buf, off, pkt.ip, pkt.ip + n);
    conn.replies++;
    this.counters.routed++;
  }

  private passlisted(ip: number): boolean {
    const list = this.passlist;
    for (let i = 0; i < list.length; i++) if (list[i] === ip) return true;
    return false;
  }

  private holdReply(buf: Buffer, ip: number, length: number, clientIp: number, clientPort: number,
    targetIp: number, targetPort: number): void {
    const now = performance.now();
    this.counters.held++;
    if (this.hold.add(buf, ip, length, clientIp, clientPort, targetIp, targetPort, now)) {
      this.counters.unmatched++;
      this.counters.holdOverflow++;
    }
    this.armHoldTimer(now + this.opts.holdMs);
  }

  /** One timer for the oldest held reply's expiry (not per reply); unref'd, it keeps nothing alive. */
  private armHoldTimer(at: number): void {
    if (this.holdTimer !== null && this.holdTimerAt <= at) return;
    if (this.holdTimer !== null) clearTimeout(this.holdTimer);
    this.holdTimerAt = at;
    this.holdTimer = setTimeout(this.onHoldTimer, Math.max(1, at - performance.now() + 1));
    this.holdTimer.unref();
  }

  private readonly onHoldTimer = (): void => {
    this.holdTimer = null;
    this.holdTimerAt = Infinity;
    this.expireHeld();
  };

  /** Drops held replies older than holdMs (also callable from outside, e.g. by tests). */
  expireHeld(now = performance.now()): void {
    const n = this.hold.expire(now - this.opts.holdMs);
    this.counters.unmatched += n;
    if (this.hold.count > 0) this.armHoldTimer(this.hold.oldestTime() + this.opts.holdMs);
  }

  private readonly deliverHeld = (slab: Buffer, start: number, length: number): void => {
    const pkt = this.heldPkt;
    const st = pkt.decode(slab, start, length);
    if (st !== DecodeStatus.OK && st !== DecodeStatus.TRUNCATED) return; // was valid when held
    this.counters.heldDelivered++;
    this.send(this.deliverTo!, pkt, this.deliverWant);
  };

  // ---- connections -------------------------------------------------------------------

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const id = this.freeIds.pop() ?? this.conns.length;
    const conn = new ClientConn(id, socket, `${socket.remoteAddress}:${socket.remotePort}`, this.opts.maxBufferedBytes);
    this.conns[id] = conn;
    this.counters.clientsAccepted++;
    conn.parser = new FrameParser((type, buf, start, end) => this.onFrame(conn, type, buf, start, end),
      (type, length) => this.reject(conn, ErrorCode.PROTOCOL,
        `a handshake message (type ${type}) of ${length} bytes, more than the ${MAX_HANDSHAKE_BODY} allowed before the handshake ends`));
    // With a secret, a peer that has not authenticated cannot make us buffer a 64 KiB frame.
    if (this.secret) conn.parser.maxBody = MAX_HANDSHAKE_BODY;
    // One bound for the whole handshake: HELLO and, with a secret, AUTH_PROOF.
    conn.helloTimer = setTimeout(() => {
      if (conn.state === ConnState.AWAIT_PROOF) {
        this.refuse(conn, `no AUTH_PROOF within ${this.opts.helloTimeoutMs} ms`, 'authentication timed out');
        return;
      }
      if (conn.state !== ConnState.AWAIT_HELLO) return;
      this.counters.clientsRejected++;
      this.log('warn', `connection from ${conn.remote} sent no HELLO within ${this.opts.helloTimeoutMs} ms: closed ` +
        `(is it a tcpcopy of this project? the C tcpcopy speaks another protocol)`);
      socket.destroy();
    }, this.opts.helloTimeoutMs);
    conn.helloTimer.unref();
    socket.on('data', (chunk: Buffer) => {
      if (!conn.sniff.done && !conn.sniff.check(chunk)) {
        this.notTcpcopy(conn, chunk, 0, chunk.length);
        return;
      }
      conn.parser.push(chunk);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (conn.state === ConnState.READY && err.code !== 'ECONNRESET' && err.code !== 'EPIPE') {
        this.log('warn', `tcpcopy ${conn.label}: ${err.message}`);
      }
    });
    socket.on('close', () => this.release(conn));
  }

  private release(conn: ClientConn): void {
    if (this.conns[conn.id] !== conn) return;
    if (conn.helloTimer) clearTimeout(conn.helloTimer);
    conn.writer.close();
    conn.parser.stop();
    const wasReady = conn.state === ConnState.READY;
    conn.state = ConnState.CLOSING;
    // Drop its routes before the id can be reused, or a new tcpcopy would inherit them.
    const n = this.routes.removeConn(conn.id);
    this.counters.routesDisconnected += n;
    this.conns[conn.id] = null;
    this.freeIds.push(conn.id);
    this.counters.batches += conn.writer.writes;
    this.counters.bytesSent += conn.writer.bytes;
    if (wasReady) {
      this.log('info', `tcpcopy ${conn.label} disconnected: ${n} route(s) dropped, ${conn.replies} replies sent` +
        (conn.dropped ? `, ${conn.dropped} dropped (it did not keep up)` : ''));
    }
  }

  /** Ends a connection after an ERROR frame (protocol violations). */
  private reject(conn: ClientConn, code: ErrorCode, text: string): void {
    this.counters.clientsRejected++;
    this.counters.routesDisconnected += this.routes.removeConn(conn.id); // its replies would only be dropped now
    this.log('warn', `tcpcopy ${conn.label}: ${text}; connection closed`);
    conn.parser.stop();
    this.end(conn, encodeError(code, text));
  }

  /** Sends `last` (if any) and ends the connection; a socket still open after the grace period is destroyed. */
  private end(conn: ClientConn, last: Buffer | null): void {
    if (last) {
      conn.writer.append(last);
      conn.writer.flush();
    }
    conn.writer.close();
    conn.state = ConnState.CLOSING;
    conn.socket.end();
    setTimeout(() => conn.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  private notTcpcopy(conn: ClientConn, buf: Buffer, start: number, end: number): void {
    this.counters.clientsRejected++;
    this.log('warn', `connection from ${conn.remote} is not a tcpcopy of this project ` +
      `(it sent ${previewBytes(buf, start, end)}; the C tcpcopy speaks another protocol): closed`);
    conn.parser.stop();
    conn.state = ConnState.CLOSING;
    conn.socket.destroy();
  }

  private onFrame(conn: ClientConn, type: number, buf: Buffer, start: number, end: number): void {
    if (conn.state === ConnState.AWAIT_HELLO) {
      this.onHello(conn, type, buf, start, end);
      return;
    }
    if (conn.state === ConnState.AWAIT_PROOF) {
      this.onProof(conn, type, buf, start, end);
      return;
    }
    if (conn.state !== ConnState.READY) return;
    const r = this.scratchRoute;
    switch (type) {
      case MessageType.ROUTE_ADD:
        if (!readRouteBody(type, buf, start, end, r)) {
          this.reject(conn, ErrorCode.PROTOCOL, `ROUTE_ADD of ${end - start} bytes, expected 14`);
          return;
        }
        this.addRoute(conn, r);
        return;
      case MessageType.ROUTE_DEL:
        if (!readRouteBody(type, buf, start, end, r)) {
          this.reject(conn, ErrorCode.PROTOCOL, `ROUTE_DEL of ${end - start} bytes, expected 12`);
          return;
        }
        if (this.routes.remove(r.clientIp, r.clientPort, r.targetIp, r.targetPort, conn.id)) {
          this.counters.routesRemoved++;
          if (this.opts.logRoutes) this.log('debug', `route del ${routeText(r)} by ${conn.label}`);
        }
        return;
      case MessageType.ERROR: {
        const e = decodeError(buf, start, end);
        this.log('warn', `tcpcopy ${conn.label} reports: ${e.text || `error ${e.code}`}`);
        return;
      }
      default:
        if (type >= FIRST_OPTIONAL_TYPE) return; // an extension we do not know: skip it
        this.reject(conn, ErrorCode.PROTOCOL, `unexpected message type ${type} (protocol version ${conn.version})`);
    }
  }

  private onHello(conn: ClientConn, type: number, buf: Buffer, start: number, end: number): void {
    const hello = type === MessageType.HELLO ? decodeHello(buf, start, end) : null;
    if (!hello || hello.magic !== CHANNEL_MAGIC) {
      this.notTcpcopy(conn, buf, start - 4, end);
      return;
    }
    conn.name = hello.name;
    const chosen = Math.min(hello.maxVersion, CHANNEL_VERSION);
    if (chosen < Math.max(hello.minVersion, CHANNEL_MIN_VERSION)) {
      this.counters.clientsRejected++;
      this.log('warn', `tcpcopy ${conn.label} speaks protocol version ${versionRange(hello.minVersion, hello.maxVersion)}, ` +
        `this intercept ${versionRange(CHANNEL_MIN_VERSION, CHANNEL_VERSION)}: closed (run the same release on both sides)`);
      conn.parser.stop();
      this.end(conn, encodeHelloAck({
        version: CHANNEL_VERSION, minVersion: CHANNEL_MIN_VERSION, status: HelloStatus.VERSION_UNSUPPORTED,
        maxPayload: this.opts.maxPayload, name: this.opts.name,
      }));
      return;
    }
    conn.version = chosen;
    if (this.secret) {
      if ((hello.flags & HELLO_FLAG_AUTH) === 0) {
        this.refuse(conn, 'it has no secret (start it with the same TCPCOPY_SECRET or --secret as this intercept)',
          'this intercept requires a shared secret: start tcpcopy with the intercept\'s secret in TCPCOPY_SECRET (or --secret)');
        return;
      }
      conn.nonce = newNonce();
      conn.helloBody = Buffer.from(buf.subarray(start, end));
      conn.state = ConnState.AWAIT_PROOF;
      conn.writer.append(encodeAuthChallenge(conn.nonce));
      return;
    }
    this.ready(conn, '');
  }

  /** With a secret: tcpcopy's answer to the challenge; a right one gets ours, then HELLO_ACK. */
  private onProof(conn: ClientConn, type: number, buf: Buffer, start: number, end: number): void {
    if (type === MessageType.ERROR) {
      const e = decodeError(buf, start, end);
      this.refuse(conn, `it gave up: ${e.text || `error ${e.code}`}`, null);
      return;
    }
    if (type !== MessageType.AUTH_PROOF || end - start < AUTH_PROOF_TCPCOPY_BODY) {
      this.refuse(conn, `it sent message type ${type} (${end - start} bytes) instead of AUTH_PROOF`,
        'authentication failed: expected AUTH_PROOF');
      return;
    }
    const secret = this.secret!;
    const nonceT = buf.subarray(start + 32, start + AUTH_PROOF_TCPCOPY_BODY);
    const expected = authMac(secret, 'tcpcopy', conn.nonce!, nonceT, conn.helloBody!);
    if (!macMatches(expected, buf, start)) {
      this.refuse(conn, 'wrong secret (its proof does not match this intercept\'s secret)',
        'authentication failed: tcpcopy\'s secret is not this intercept\'s (set the same TCPCOPY_SECRET or --secret on both hosts)');
      return;
    }
    conn.writer.append(encodeAuthProof(authMac(secret, 'intercept', conn.nonce!, nonceT, conn.helloBody!), null));
    conn.nonce = conn.helloBody = null;
    this.ready(conn, ' (authenticated)');
  }

  /** The handshake is over: HELLO_ACK, and the full frame size from now on. */
  private ready(conn: ClientConn, how: string): void {
    if (conn.helloTimer) {
      clearTimeout(conn.helloTimer);
      conn.helloTimer = null;
    }
    conn.state = ConnState.READY;
    conn.parser.maxBody = MAX_BODY_LENGTH;
    conn.writer.append(encodeHelloAck({
      version: conn.version, minVersion: CHANNEL_MIN_VERSION, status: HelloStatus.OK,
      maxPayload: this.opts.maxPayload, name: this.opts.name,
    }));
    this.log('info', `tcpcopy connected from ${conn.label}${how}`);
  }

  /** Refuses a tcpcopy in the secret handshake: the log says who and why; `text` (if any) goes to it in ERROR. */
  private refuse(conn: ClientConn, why: string, text: string | null): void {
    this.counters.clientsRejected++;
    this.counters.clientsUnauthenticated++;
    this.log('warn', `refused tcpcopy from ${conn.label}: ${why}`);
    conn.parser.stop();
    this.end(conn, text === null ? null : encodeError(ErrorCode.AUTH, text));
  }

  private addRoute(conn: ClientConn, r: Route): void {
    const before = this.routes.add(r.clientIp, r.clientPort, r.targetIp, r.targetPort, r.payloadBytes, conn.id,
      this.onEvict);
    this.counters.routesAdded++;
    if (before >= 0 && before !== conn.id) {
      this.counters.routesRebound++;
      this.log('debug', `route ${routeText(r)} moved from tcpcopy ${this.conns[before]?.label} to ${conn.label} ` +
        `(two tcpcopys use the same client address and port: give them different -c addresses)`);
    } else if (this.opts.logRoutes) {
      this.log('debug', `route add ${routeText(r)} (${r.payloadBytes} payload bytes) by ${conn.label}`);
    }
    if (this.hold.count > 0) {
      this.deliverTo = conn;
      this.deliverWant = r.payloadBytes;
      this.hold.take(r.clientIp, r.clientPort, r.targetIp, r.targetPort, this.deliverHeld);
      this.deliverTo = null;
    }
  }

  private readonly onEvict = (): void => {
    if (this.counters.routesEvicted++ === 0) {
      this.log('warn', `route table full (${this.opts.maxRoutes} routes): evicting the oldest routes ` +
        `(raise the limit if replies go missing)`);
    }
  };

  /**
   * Stops listening, tells every tcpcopy (ERROR "shutting down"), and resolves when all their
   * connections are closed (forced after a short grace period).
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      if (this.holdTimer) clearTimeout(this.holdTimer);
      this.holdTimer = null;
      for (const conn of this.conns) {
        if (!conn) continue;
        this.end(conn, conn.state === ConnState.READY ? encodeError(ErrorCode.SHUTDOWN, 'intercept is shutting down') : null);
      }
      if (!this.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
    });
    return this.closing;
  }
}

function versionRange(min: number, max: number): string {
  return min === max ? `${max}` : `${min}-${max}`;
}
