// One TCP connection ("channel") from tcpcopy to an intercept, and its state machine:
//
//   IDLE ─attempt()─► CONNECTING ─connected─► HELLO ─HELLO_ACK accepted─► READY
//
// It sends HELLO, checks the peer's first bytes and its HELLO_ACK, then hands each REPLY to
// onReply. An attempt that fails before READY goes to owner.attemptFailed(), a READY connection
// that closes to owner.lost(): the owner (InterceptClient) gives up (CLOSED) or calls
// retryLater() (IDLE). close() makes it CLOSED from any state.
import * as net from 'node:net';
import { DecodeStatus, type TcpPacket } from '../decode/tcp-packet';
import {
  CHANNEL_MAGIC,
  FIRST_OPTIONAL_TYPE,
  FrameParser,
  FrameWriter,
  MessageType,
  ROUTE_ADD_BODY,
  ROUTE_DEL_BODY,
  decodeError,
  decodeHelloAck,
  previewBytes,
  writeRouteAddBody,
  writeRouteDelBody,
  type HelloAckMessage,
} from './channel-messages';
import { HandshakeSniff } from './handshake-sniff';
import { addressText, type InterceptAddress } from './intercept-address';
import {
  connectFailure,
  errnoText,
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
}

const EMPTY = Buffer.alloc(0);
const CLOSE_GRACE_MS = 1000;

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
  private readonly sniff = new HandshakeSniff(MessageType.HELLO_ACK, MessageType.ERROR);
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

  /** Appends a ROUTE_ADD or ROUTE_DEL to the batch; false if the writer refused it (backed up, closed). */
  writeRoute(add: boolean, route: Route): boolean {
    const w = this.writer!;
    const off = w.reserve(add ? MessageType.ROUTE_ADD : MessageType.ROUTE_DEL, add ? ROUTE_ADD_BODY : ROUTE_DEL_BODY);
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
    const socket = net.connect({ host, port });
    this.socket = socket;
    this.state = ConnectionState.CONNECTING;
    this.sniff.reset();
    this.lastError = null;
    this.peerError = '';
    this.peerErrorCode = 0;
    socket.setNoDelay(true); // route messages and replies are small and latency-bound
    socket.setKeepAlive(true, 10_000);
    this.writer = new FrameWriter(socket, { maxBufferedBytes: this.settings.maxBufferedBytes });
    this.writer.append(this.hello);
    this.owner.afterHello(this);
    this.writer.flush();
    this.parser = new FrameParser((type, buf, start, end) => this.onFrame(type, buf, start, end));
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

  /** An attempt failed on our side (timeout, wrong peer): drop the socket, then tell the owner. */
  private fail(err: InterceptConnectError): void {
    const s = this.socket;
    this.socket = null;
    this.parser?.stop();
    this.writer?.close();
    s?.destroy();
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
    this.onReply(pkt, payloadLength, pkt.end > pkt.payload ? buf.subarray(pkt.payload, pkt.end) : EMPTY);
  }

  private onHelloAck(type: number, buf: Buffer, start: number, end: number): void {
    if (type === MessageType.ERROR) {
      const e = decodeError(buf, start, end);
      this.peerErrorCode = e.code;
      this.fail(refusedError(this.text, e.text));
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
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.remote.info = ack;
    this.state = ConnectionState.READY;
    this.retryDelay = 0;
    this.owner.ready(this);
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
