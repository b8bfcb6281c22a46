// One TCP connection ("channel") from tcpcopy to an intercept, and its state machine:
//
//   IDLE ─attempt()─► CONNECTING ─connected─► HELLO ─HELLO_ACK accepted─► READY
//
// With a secret, HELLO lasts until the intercept has proved it knows the secret too: AUTH_CHALLENGE
// is answered with AUTH_PROOF, the intercept's AUTH_PROOF is checked, then HELLO_ACK (channel-auth.ts).
//
// It sends HELLO, checks the peer's first bytes and its HELLO_ACK, then hands each REPLY to
// onReply. An attempt that fails before READY goes to owner.attemptFailed(), a READY connection
// that closes to owner.lost(): the owner (InterceptClient) gives up (CLOSED) or calls
// retryLater() (IDLE). close() makes it CLOSED from any state.
import * as net from 'node:net';
import { DecodeStatus, type TcpPacket } from '../decode/tcp-packet';
import {
  CHANNEL_MAGIC,
  ErrorCode,
  FIRST_OPTIONAL_TYPE,
  FRAME_HEADER_LENGTH,
  FrameParser,
  FrameWriter,
  MAX_BODY_LENGTH,
  MessageType,
  ROUTE_ADD_BODY,
  ROUTE_DEL_BODY,
  decodeError,
  decodeHelloAck,
  encodeError,
  previewBytes,
  writeRouteAddBody,
  writeRouteDelBody,
  type HelloAckMessage,
} from './channel-messages';
import {
  AUTH_CHALLENGE_BODY,
  AUTH_HMAC_SHA256,
  AUTH_PROOF_INTERCEPT_BODY,
  MAX_HANDSHAKE_BODY,
  authMac,
  encodeAuthProof,
  macMatches,
  newNonce,
} from './channel-auth';
import { HandshakeSniff } from './handshake-sniff';
import { addressText, type InterceptAddress } from './intercept-address';
import {
  authBadProof,
  authNoSecret,
  authNotOffered,
  connectFailure,
  errnoText,
  handshakeTooLong,
  helloAckError,
  helloTimeout,
  notIntercept,
  refusedError,
  type InterceptConnectError,
} from './intercept-errors';
import type { Route } from './route-registry';
import { RouteQueue, type RequeueTally } from './route-requeue';

/**
 * A reply from the target: `pkt` views its IP and TCP headers (and the payload bytes intercept
 * included), `payloadLength` is the real payload length from the IP total length, `data` the
 * payload bytes included (often none). All three are only valid during the call.
 */
export type ReplyHandler = (pkt: TcpPacket, payloadLength: number, data: Buffer) => void;

export const enum ConnectionState {
  /** Not opened yet, or (keepRunning) waiting for the next reconnect attempt. */
  IDLE,
  CONNECTING,
  HELLO,
  READY,
  /** Closed by close(), or given up (without keepRunning). */
  CLOSED,
}

/** What a connection leaves to the client that owns it. */
export interface ConnectionOwner {
  /** The attempt's HELLO is in the writer: add what must follow it (routes added before connect()). */
  afterHello(conn: InterceptConnection): void;
  /** The HELLO_ACK was accepted: the connection is READY. */
  ready(conn: InterceptConnection): void;
  /** An attempt ended before HELLO_ACK; its socket is gone. */
  attemptFailed(conn: InterceptConnection, err: InterceptConnectError): void;
  /** A READY connection closed without close(); `why` in words. */
  lost(conn: InterceptConnection, why: string): void;
}

export interface ReceiveCounters {
  repliesReceived: number;
  repliesMalformed: number;
  batches: number;
  bytesReceived: number;
}

export interface ConnectionSettings {
  readonly owner: ConnectionOwner;
  readonly onReply: ReplyHandler;
  readonly onBatch: () => void;
  readonly counters: ReceiveCounters;
  /** Decodes the replies of every connection of the client (one at a time). */
  readonly pkt: TcpPacket;
  readonly maxBufferedBytes: number;
  /** HELLO timeout of reconnect attempts, ms. */
  readonly timeoutMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** tcpcopy --secret: prove it, and make the intercept prove it (null: no secret handshake). */
  readonly secret: Buffer | null;
}

const EMPTY = Buffer.alloc(0);
/** Route messages kept per connection while the secret handshake runs (only a program adding routes before connect() resolves has any). */
const MAX_DEFERRED_ROUTES = 65_536;
const CLOSE_GRACE_MS = 1000;
/** Bytes one read of the channel takes at most (Node's own default for a socket read). */
const READ_BUFFER_BYTES = 65_536;

/** One intercept: its connections, what it said in HELLO_ACK, and the bookkeeping of an outage. */
export class Remote implements RequeueTally {
  readonly conns: InterceptConnection[] = [];
  info: HelloAckMessage | null = null;
  /** Without keepRunning: the loss was reported and the intercept given up. */
  lost = false;
  /** keepRunning: a loss (or a failed start) was reported and the recovery not yet. */
  down = false;
  /** The outage began at connect(). */
  downAtStart = false;
  downSince = 0;
  /** ROUTE_ADDs waiting in its connections' queues. */
  queued = 0;
  /** This outage: routes registered again, queued ones sent, queued ones dropped. */
  again = 0;
  queueSent = 0;
  queueDropped = 0;
  /** keepRunning: a reconnect found something that is not a (compatible) intercept; reported once. */
  misconfigReported = false;
  readonly text: string;

  constructor(readonly address: InterceptAddress) {
    this.text = addressText(address);
  }
}

/** One connection (channel `index`) to an intercept. */
export class InterceptConnection {
  state = ConnectionState.IDLE;
  writer: FrameWriter | null = null;
  /** Set during the first attempt, made by connect(). */
  settle: ((err: InterceptConnectError | null) => void) | null = null;
  /** Code of an ERROR frame from the intercept (0: none). */
  peerErrorCode = 0;
  /** keepRunning: ROUTE_ADDs waiting for this connection to come back. */
  readonly queue = new RouteQueue();
  private socket: net.Socket | null = null;
  private parser: FrameParser | null = null;
  private readBuffer: Buffer | null = null;
  private readonly sniff = new HandshakeSniff(MessageType.HELLO_ACK, [MessageType.ERROR, MessageType.AUTH_CHALLENGE]);
  /** With a secret, during HELLO: the MAC the intercept must send back (null until challenged), and whether it did. */
  private expectedProof: Buffer | null = null;
  private interceptProven = false;
  /**
   * With a secret and without keepRunning: routes added while the handshake runs, sent once the
   * intercept has proved itself (before that, it learns no client address). Bounded.
   */
  private deferred: Array<{ add: boolean; route: Route }> = [];
  private lastError: NodeJS.ErrnoException | null = null;
  /** Text of an ERROR frame from the intercept, or of our own protocol complaint. */
  private peerError = '';
  private repliesInChunk = 0;
  /** HELLO timeout of the current attempt. */
  private timer: NodeJS.Timeout | null = null;
  /** keepRunning: next reconnect attempt. */
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelay = 0;
  private readonly owner: ConnectionOwner;
  private readonly onReply: ReplyHandler;
  private readonly onBatch: () => void;
  private readonly counters: ReceiveCounters;
  private readonly pkt: TcpPacket;

  constructor(readonly remote: Remote, readonly index: number, private readonly hello: Buffer,
    private readonly settings: ConnectionSettings) {
    this.owner = settings.owner;
    this.onReply = settings.onReply;
    this.onBatch = settings.onBatch;
    this.counters = settings.counters;
    this.pkt = settings.pkt;
  }

  get text(): string {
    return this.remote.text;
  }

  /** The first attempt (from connect()): settles when the intercept answered or the attempt failed. */
  open(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.settle = (err) => {
        this.settle = null;
        if (err) reject(err);
        else resolve();
      };
      this.attempt(timeoutMs);
    });
  }

  /** True while routes must wait for the secret handshake (see defer()). */
  get authenticating(): boolean {
    return this.settings.secret !== null && this.state !== ConnectionState.READY;
  }

  /** Keeps a route message until the intercept has proved itself; false when too many wait already. */
  defer(add: boolean, route: Route): boolean {
    if (this.deferred.length >= MAX_DEFERRED_ROUTES) return false;
    this.deferred.push({ add, route: { ...route } });
    return true;
  }

  /** Appends a ROUTE_ADD or ROUTE_DEL to the batch; false if the writer refused it (backed up, closed). */
  writeRoute(add: boolean, route: Route): boolean {
    const w = this.writer!;
    // A removal is lazy: nothing waits for it, and it keeps its order with a later ROUTE_ADD of the
    // same route (same channel, same buffer), so it can wait for the next write.
    const off = w.reserve(add ? MessageType.ROUTE_ADD : MessageType.ROUTE_DEL, add ? ROUTE_ADD_BODY : ROUTE_DEL_BODY, !add);
    if (off < 0) return false;
    (add ? writeRouteAddBody : writeRouteDelBody)(w.buf, off, route);
    return true;
  }

  /** keepRunning: next attempt after 1 s, 2 s, 4 s… up to 10 s (by default), until close(). */
  retryLater(): void {
    const { reconnectMinMs, reconnectMaxMs, timeoutMs } = this.settings;
    this.state = ConnectionState.IDLE;
    this.retryDelay = this.retryDelay === 0 ? reconnectMinMs : Math.min(reconnectMaxMs, this.retryDelay * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state === ConnectionState.IDLE) this.attempt(timeoutMs);
    }, this.retryDelay);
  }

  /** Sends what is queued, closes and stops retrying; resolves when the socket is closed. */
  close(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.state = ConnectionState.CLOSED;
    const s = this.socket;
    if (!s || s.destroyed) return Promise.resolve();
    this.writer?.flush();
    this.writer?.close();
    return new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.end();
      setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
    });
  }

  /** Opens the socket and sends HELLO (and what the owner puts behind it). */
  private attempt(timeoutMs: number): void {
    const { host, port } = this.remote.address;
    // Replies are read into one reused buffer (no Readable stream, no Buffer per read): the frame parser copies
    // what it keeps of a chunk, and reply() copies the payload bytes it hands on.
    const readBuffer = this.readBuffer ?? (this.readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES));
    const socket = net.connect({
      host,
      port,
      onread: {
        buffer: readBuffer,
        callback: (nread: number, buf: Uint8Array) => {
          if (this.socket === socket) this.onData(buf === readBuffer ? readBuffer.subarray(0, nread) : Buffer.from(buf.buffer, buf.byteOffset, nread));
          return true;
        },
      },
    });
    this.socket = socket;
    this.state = ConnectionState.CONNECTING;
    this.sniff.reset();
    this.lastError = null;
    this.peerError = '';
    this.peerErrorCode = 0;
    this.expectedProof = null;
    this.interceptProven = false;
    socket.setNoDelay(true); // route messages and replies are small and latency-bound
    socket.setKeepAlive(true, 10_000);
    this.writer = new FrameWriter(socket, { maxBufferedBytes: this.settings.maxBufferedBytes });
    this.writer.append(this.hello);
    // With a secret, the owner defers these routes until the intercept has proved itself (onHelloAck).
    this.owner.afterHello(this);
    this.writer.flush();
    this.parser = new FrameParser((type, buf, start, end) => this.onFrame(type, buf, start, end),
      (type, length) => this.fail(handshakeTooLong(this.text, type, length, MAX_HANDSHAKE_BODY)));
    // With a secret, a peer that has not proved it knows it cannot make us buffer a 64 KiB frame.
    if (this.settings.secret) this.parser.maxBody = MAX_HANDSHAKE_BODY;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.fail(helloTimeout(this.text, port, timeoutMs, this.state === ConnectionState.CONNECTING));
    }, timeoutMs);
    // Events of a socket the connection has since dropped (failed attempt, reconnect) are ignored.
    socket.once('connect', () => {
      if (this.socket === socket && this.state === ConnectionState.CONNECTING) this.state = ConnectionState.HELLO;
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) this.onData(chunk);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.socket === socket) this.lastError = err;
    });
    socket.on('close', () => {
      if (this.socket === socket) this.onClose();
    });
  }

  /**
   * An attempt failed on our side (timeout, wrong peer): drop the socket, then tell the owner.
   * `last`: a frame (ERROR) to send before closing, for the peer's log.
   */
  private fail(err: InterceptConnectError, last?: Buffer): void {
    const s = this.socket;
    this.socket = null;
    this.parser?.stop();
    this.writer?.close();
    if (s && last) {
      s.end(last);
      setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
    } else {
      s?.destroy();
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.owner.attemptFailed(this, err);
  }

  private onData(chunk: Buffer): void {
    this.counters.bytesReceived += chunk.length;
    if (!this.sniff.done && !this.sniff.check(chunk)) {
      this.fail(notIntercept(this.text, previewBytes(chunk, 0, chunk.length), true));
      return;
    }
    this.repliesInChunk = 0;
    this.parser!.push(chunk);
    if (this.repliesInChunk > 0) {
      this.counters.batches++;
      this.onBatch();
    }
  }

  private onFrame(type: number, buf: Buffer, start: number, end: number): void {
    if (type === MessageType.REPLY && this.state === ConnectionState.READY) {
      this.reply(buf, start, end);
      return;
    }
    if (this.state === ConnectionState.HELLO || this.state === ConnectionState.CONNECTING) {
      this.onHelloAck(type, buf, start, end);
      return;
    }
    if (this.state !== ConnectionState.READY) return;
    if (type === MessageType.ERROR) {
      const e = decodeError(buf, start, end);
      this.peerError = e.text;
      this.peerErrorCode = e.code;
      return; // the intercept closes next; onClose reports it
    }
    if (type >= FIRST_OPTIONAL_TYPE) return; // an extension we do not know: skip it
    this.parser!.stop();
    this.peerError = `it sent an unexpected message (type ${type}); protocol error`;
    this.socket!.destroy();
  }

  private reply(buf: Buffer, start: number, end: number): void {
    const pkt = this.pkt;
    // The record holds fewer bytes than the packet had (headers + some payload): TRUNCATED is normal.
    const st = pkt.decode(buf, start, end - start);
    if (st !== DecodeStatus.OK && st !== DecodeStatus.TRUNCATED) {
      this.counters.repliesMalformed++;
      return;
    }
    // A total length of 0 (an offload packet whose length the intercept did not fill in) means the
    // bytes present, as the decoder took it: never fewer payload bytes than the reply carries.
    const total = buf.readUInt16BE(start + 2) || end - start;
    const headers = pkt.payload - pkt.ip;
    const payloadLength = total > headers ? total - headers : 0;
    this.counters.repliesReceived++;
    this.repliesInChunk++;
    // The payload outlives the read buffer when a protocol keeps it: its own copy (raw replay asks for none).
    this.onReply(pkt, payloadLength, pkt.end > pkt.payload ? Buffer.from(buf.subarray(pkt.payload, pkt.end)) : EMPTY);
  }

  private onHelloAck(type: number, buf: Buffer, start: number, end: number): void {
    if (type === MessageType.ERROR) {
      const e = decodeError(buf, start, end);
      this.peerErrorCode = e.code;
      this.fail(refusedError(this.text, e.text, e.code));
      return;
    }
    if (type === MessageType.AUTH_CHALLENGE) {
      this.answerChallenge(buf, start, end);
      return;
    }
    if (type === MessageType.AUTH_PROOF) {
      this.checkProof(buf, start, end);
      return;
    }
    const ack = type === MessageType.HELLO_ACK ? decodeHelloAck(buf, start, end) : null;
    if (!ack || ack.magic !== CHANNEL_MAGIC) {
      this.fail(notIntercept(this.text, previewBytes(buf, Math.max(0, start - 4), end), false));
      return;
    }
    const err = helloAckError(this.text, ack);
    if (err) {
      this.fail(err);
      return;
    }
    if (this.settings.secret && !this.interceptProven) {
      // Tell the intercept why we leave, for its log, then go.
      this.fail(this.expectedProof ? authBadProof(this.text, 'it sent no AUTH_PROOF') : authNotOffered(this.text),
        encodeError(ErrorCode.AUTH, 'this tcpcopy has a secret and this intercept none: ' +
          'start intercept with the same TCPCOPY_SECRET or --secret'));
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.remote.info = ack;
    this.state = ConnectionState.READY;
    this.parser!.maxBody = MAX_BODY_LENGTH;
    this.retryDelay = 0;
    if (this.settings.secret) {
      // The intercept proved itself: the routes held back during the handshake may go now.
      for (const d of this.deferred) this.writeRoute(d.add, d.route);
      this.deferred = [];
    }
    this.owner.ready(this);
  }

  /** AUTH_CHALLENGE: prove the secret on the intercept's nonce, and challenge it with ours. */
  private answerChallenge(buf: Buffer, start: number, end: number): void {
    const secret = this.settings.secret;
    if (!secret) {
      this.fail(authNoSecret(this.text));
      return;
    }
    if (end - start < AUTH_CHALLENGE_BODY || buf[start] !== AUTH_HMAC_SHA256 || this.expectedProof) {
      this.fail(authBadProof(this.text, this.expectedProof ? 'it challenged twice'
        : `unknown challenge (algorithm ${buf[start]}, ${end - start} bytes)`));
      return;
    }
    const nonceI = Buffer.from(buf.subarray(start + 2, start + AUTH_CHALLENGE_BODY));
    const nonceT = newNonce();
    const helloBody = this.hello.subarray(FRAME_HEADER_LENGTH);
    this.expectedProof = authMac(secret, 'intercept', nonceI, nonceT, helloBody);
    this.writer!.append(encodeAuthProof(authMac(secret, 'tcpcopy', nonceI, nonceT, helloBody), nonceT));
    this.writer!.flush();
  }

  /** The intercept's AUTH_PROOF: it must match what only the secret gives. */
  private checkProof(buf: Buffer, start: number, end: number): void {
    if (!this.expectedProof || end - start < AUTH_PROOF_INTERCEPT_BODY) {
      this.fail(authBadProof(this.text, this.expectedProof ? 'its proof is too short' : 'a proof nobody asked for'));
      return;
    }
    if (!macMatches(this.expectedProof, buf, start)) {
      this.fail(authBadProof(this.text, 'its proof is wrong'));
      return;
    }
    this.interceptProven = true;
  }

  private onClose(): void {
    const was = this.state;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.socket = null;
    this.writer?.close();
    this.parser?.stop();
    if (this.settle || (was !== ConnectionState.READY && was !== ConnectionState.CLOSED)) {
      // An attempt (the first one, from connect(), or a reconnect) ended before HELLO_ACK.
      this.owner.attemptFailed(this, connectFailure(this.text, this.remote.address.host, this.lastError, this.peerError,
        was === ConnectionState.CONNECTING));
      return;
    }
    if (was !== ConnectionState.READY) {
      this.state = ConnectionState.CLOSED;
      return;
    }
    this.owner.lost(this, this.peerError || (this.lastError ? errnoText(this.lastError) : 'the intercept closed the connection'));
  }
}
