// The intercept side of the channel: accepts tcpcopy connections, keeps the route table they
// fill, and sends each captured target reply to the one tcpcopy that registered its connection.
//
//   capture (LiveCapture, or a test calling dispatch()) ──► dispatch(): decode in place,
//     route lookup ──► the owner's FrameWriter (one socket.write per event-loop turn)
//                  └─► no route yet: hold queue (SYN-ACK race), delivered when ROUTE_ADD comes
//
// The per-packet path allocates nothing: the route table and the hold queue are typed arrays,
// the packet is read through one reused TcpPacket view, and the reply bytes are copied straight
// from the capture buffer into the writer's output buffer.
import * as net from 'node:net';
import * as os from 'node:os';
import type { LinkType } from '../capture/pcap-file';
import { formatIpv4 } from '../decode/ip-address';
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
  MessageType,
  PAYLOAD_UNLIMITED,
  decodeError,
  decodeHello,
  encodeError,
  encodeHelloAck,
  previewBytes,
  readRouteBody,
} from './channel-messages';
import type { Route } from './route-registry';

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
  /** Connections closed because they did not speak this protocol (or an incompatible version). */
  clientsRejected = 0;
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

/** A listen problem, with a message that says how to fix it. `code` is the errno code. */
export class InterceptListenError extends Error {
  override name = 'InterceptListenError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
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

/**
 * Hash of a client address and port, kept to its top (32 - shift) bits: the port is spread by a
 * golden-ratio multiply, then murmur3's finaliser mixes. (A bare multiply leaves sequential
 * addresses in a fraction of the buckets; this measures as uniform as random keys.)
 */
function clientHash(ip: number, port: number, shift: number): number {
  let h = (ip ^ Math.imul(port + 1, 0x9e3779b1)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> shift;
}

function shiftFor(buckets: number): number {
  return 32 - Math.log2(buckets);
}

/** Power of two ≥ n, at least 2 (a shift of 32 would be a shift of 0 in JavaScript). */
function nextPow2(n: number): number {
  let p = 2;
  while (p < n) p *= 2;
  return p;
}

/**
 * Route table: (client ip, client port, target ip, target port) → owning connection and payload
 * bytes wanted. Entries live in parallel typed arrays, chained per hash of (client ip, client
 * port) — the part that varies between connections — and compared on the target in the chain.
 * No per-route objects (a million routes would be a million objects for the GC to walk) and no
 * allocation per lookup. An age list (oldest first) gives O(1) eviction when full.
 */
export class RouteTable {
  size = 0;
  private capacity: number;
  private used = 0; // slots ever handed out (< capacity); freed ones are on the free list
  private freeHead = -1;
  private shift: number;
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
    this.shift = shiftFor(nb);
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
    let i = this.buckets[clientHash(clientIp, clientPort, this.shift)];
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

  /** Client ip/port and target ip/port of route i, for logs. */
  describe(i: number): string {
    const p = this.ports[i];
    return `${formatIpv4(this.cip[i])}:${p >>> 16} ← ${formatIpv4(this.tip[i])}:${p & 0xffff}`;
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
    const b = clientHash(clientIp, clientPort, this.shift);
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
    const b = clientHash(this.cip[i], this.ports[i] >>> 16, this.shift);
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
    this.shift = shiftFor(nb);
    this.buckets = new Int32Array(nb).fill(-1);
    for (let i = 0; i < this.used; i++) {
      if (this.connArr[i] < 0) continue;
      const b = clientHash(this.cip[i], this.ports[i] >>> 16, this.shift);
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

/**
 * Replies that arrived before their route (the SYN-ACK can beat the ROUTE_ADD that tcpcopy
 * sent before its SYN: they take different paths). A ring of fixed-size slots in one slab,
 * allocated at the first use, so holding never allocates per packet either; a hash chain per
 * (client ip, client port) finds a route's replies when its ROUTE_ADD arrives, in arrival order.
 */
export class HoldQueue {
  /** Replies held now. */
  count = 0;
  private slab: Buffer | null = null;
  private readonly len: Uint16Array;
  private readonly cip: Uint32Array;
  private readonly tip: Uint32Array;
  private readonly ports: Uint32Array;
  private readonly time: Float64Array;
  private readonly usedArr: Uint8Array;
  private readonly next: Int32Array;
  private readonly buckets: Int32Array;
  private readonly shift: number;
  private tail = 0; // oldest slot that may be in use
  private head = 0; // next slot to write
  private span = 0; // slots from tail to head (used or emptied by take())

  constructor(readonly limit: number, readonly slotSize: number) {
    this.len = new Uint16Array(limit);
    this.cip = new Uint32Array(limit);
    this.tip = new Uint32Array(limit);
    this.ports = new Uint32Array(limit);
    this.time = new Float64Array(limit);
    this.usedArr = new Uint8Array(limit);
    this.next = new Int32Array(limit);
    const nb = nextPow2(limit);
    this.shift = shiftFor(nb);
    this.buckets = new Int32Array(nb).fill(-1);
  }

  /**
   * Keeps a copy of buf[start, start+length) (cut to the slot size). Returns true when the
   * oldest held reply had to be pushed out to make room.
   */
  add(buf: Buffer, start: number, length: number, clientIp: number, clientPort: number,
    targetIp: number, targetPort: number, now: number): boolean {
    let pushedOut = false;
    if (this.span === this.limit) {
      const s = this.tail;
      if (this.usedArr[s]) {
        this.unlink(s);
        pushedOut = true;
      }
      this.tail = (s + 1) % this.limit;
      this.span--;
    }
    const slab = this.slab ?? (this.slab = Buffer.allocUnsafe(this.limit * this.slotSize));
    const s = this.head;
    const n = length < this.slotSize ? length : this.slotSize;
    buf.copy(slab, s * this.slotSize, start, start + n);
    this.len[s] = n;
    this.cip[s] = clientIp;
    this.tip[s] = targetIp;
    this.ports[s] = ((clientPort << 16) | targetPort) >>> 0;
    this.time[s] = now;
    this.usedArr[s] = 1;
    this.next[s] = -1;
    // Append at the chain's end so that take() hands replies out in arrival order.
    const b = clientHash(clientIp, clientPort, this.shift);
    let j = this.buckets[b];
    if (j < 0) this.buckets[b] = s;
    else {
      while (this.next[j] >= 0) j = this.next[j];
      this.next[j] = s;
    }
    this.head = (s + 1) % this.limit;
    this.span++;
    this.count++;
    return pushedOut;
  }

  /**
   * Removes the replies held for the route and passes each to `deliver` (slab, start, length),
   * oldest first. Returns how many.
   */
  take(clientIp: number, clientPort: number, targetIp: number, targetPort: number,
    deliver: (buf: Buffer, start: number, length: number) => void): number {
    if (this.count === 0) return 0;
    const ports = ((clientPort << 16) | targetPort) >>> 0;
    const b = clientHash(clientIp, clientPort, this.shift);
    let n = 0;
    let prev = -1;
    let s = this.buckets[b];
    while (s >= 0) {
      const nxt = this.next[s];
      if (this.cip[s] === clientIp && this.ports[s] === ports && this.tip[s] === targetIp) {
        if (prev < 0) this.buckets[b] = nxt;
        else this.next[prev] = nxt;
        this.usedArr[s] = 0;
        this.count--;
        n++;
        deliver(this.slab!, s * this.slotSize, this.len[s]);
      } else {
        prev = s;
      }
      s = nxt;
    }
    return n;
  }

  /** Drops replies held since before `cutoff`; returns how many. */
  expire(cutoff: number): number {
    let n = 0;
    while (this.span > 0) {
      const s = this.tail;
      if (this.usedArr[s]) {
        if (this.time[s] > cutoff) break;
        this.unlink(s);
        n++;
      }
      this.tail = (s + 1) % this.limit;
      this.span--;
    }
    return n;
  }

  /** Arrival time of the oldest held reply (NaN when none). */
  oldestTime(): number {
    let s = this.tail;
    for (let k = 0; k < this.span; k++) {
      if (this.usedArr[s]) return this.time[s];
      s = (s + 1) % this.limit;
    }
    return NaN;
  }

  private unlink(s: number): void {
    const b = clientHash(this.cip[s], this.ports[s] >>> 16, this.shift);
    let j = this.buckets[b];
    if (j === s) this.buckets[b] = this.next[s];
    else {
      while (this.next[j] !== s) j = this.next[j];
      this.next[j] = this.next[s];
    }
    this.usedArr[s] = 0;
    this.count--;
  }
}

const enum ConnState {
  AWAIT_HELLO,
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
  /** The first bytes received, until 8 have been checked (see checkHead). */
  head: Buffer | null = Buffer.alloc(8);
  headLength = 0;
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

  private readonly opts: Required<Omit<InterceptServerOptions, 'log' | 'passlist'>>;
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
    };
    this.log = options.log ?? (() => undefined);
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
    conn.parser = new FrameParser((type, buf, start, end) => this.onFrame(conn, type, buf, start, end));
    conn.helloTimer = setTimeout(() => {
      if (conn.state !== ConnState.AWAIT_HELLO) return;
      this.counters.clientsRejected++;
      this.log('warn', `connection from ${conn.remote} sent no HELLO within ${this.opts.helloTimeoutMs} ms: closed ` +
        `(is it a tcpcopy of this project? the C tcpcopy speaks another protocol)`);
      socket.destroy();
    }, this.opts.helloTimeoutMs);
    conn.helloTimer.unref();
    socket.on('data', (chunk: Buffer) => {
      if (conn.head && !this.checkHead(conn, chunk)) return;
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
    conn.writer.append(encodeError(code, text));
    conn.writer.flush();
    conn.writer.close();
    conn.state = ConnState.CLOSING;
    conn.socket.end();
    setTimeout(() => conn.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /**
   * Looks at the first 8 bytes before the parser does: a peer that does not speak this protocol
   * (an HTTP client, the C tcpcopy) would otherwise leave the parser waiting for the end of a
   * "frame" whose length is two random bytes.
   */
  private checkHead(conn: ClientConn, chunk: Buffer): boolean {
    const h = conn.head!;
    const take = Math.min(8 - conn.headLength, chunk.length);
    chunk.copy(h, conn.headLength, 0, take);
    conn.headLength += take;
    if (h[0] === MessageType.HELLO && (conn.headLength < 8 || h.readUInt32BE(4) === CHANNEL_MAGIC)) {
      if (conn.headLength >= 8) conn.head = null;
      return true;
    }
    this.notTcpcopy(conn, chunk, 0, chunk.length);
    return false;
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
          this.log('debug', `route del ${routeText(r)} by ${conn.label}`);
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
    if (conn.helloTimer) {
      clearTimeout(conn.helloTimer);
      conn.helloTimer = null;
    }
    conn.name = hello.name;
    const chosen = Math.min(hello.maxVersion, CHANNEL_VERSION);
    if (chosen < Math.max(hello.minVersion, CHANNEL_MIN_VERSION)) {
      this.counters.clientsRejected++;
      this.log('warn', `tcpcopy ${conn.label} speaks protocol version ${versionRange(hello.minVersion, hello.maxVersion)}, ` +
        `this intercept ${versionRange(CHANNEL_MIN_VERSION, CHANNEL_VERSION)}: closed (run the same release on both sides)`);
      conn.parser.stop();
      conn.writer.append(encodeHelloAck({
        version: CHANNEL_VERSION, minVersion: CHANNEL_MIN_VERSION, status: HelloStatus.VERSION_UNSUPPORTED,
        maxPayload: this.opts.maxPayload, name: this.opts.name,
      }));
      conn.writer.flush();
      conn.writer.close();
      conn.state = ConnState.CLOSING;
      conn.socket.end();
      setTimeout(() => conn.socket.destroy(), CLOSE_GRACE_MS).unref();
      return;
    }
    conn.version = chosen;
    conn.state = ConnState.READY;
    conn.writer.append(encodeHelloAck({
      version: chosen, minVersion: CHANNEL_MIN_VERSION, status: HelloStatus.OK,
      maxPayload: this.opts.maxPayload, name: this.opts.name,
    }));
    this.log('info', `tcpcopy connected from ${conn.label}`);
  }

  private addRoute(conn: ClientConn, r: Route): void {
    const before = this.routes.add(r.clientIp, r.clientPort, r.targetIp, r.targetPort, r.payloadBytes, conn.id,
      this.onEvict);
    this.counters.routesAdded++;
    if (before >= 0 && before !== conn.id) {
      this.counters.routesRebound++;
      this.log('debug', `route ${routeText(r)} moved from tcpcopy ${this.conns[before]?.label} to ${conn.label} ` +
        `(two tcpcopys use the same client address and port: give them different -c addresses)`);
    } else {
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
        if (conn.state === ConnState.READY) {
          conn.writer.flush();
          conn.writer.append(encodeError(ErrorCode.SHUTDOWN, 'intercept is shutting down'));
          conn.writer.flush();
        }
        conn.writer.close();
        conn.state = ConnState.CLOSING;
        conn.socket.end();
        setTimeout(() => conn.socket.destroy(), CLOSE_GRACE_MS).unref();
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

function routeText(r: Route): string {
  return `${formatIpv4(r.clientIp)}:${r.clientPort} ← ${formatIpv4(r.targetIp)}:${r.targetPort}`;
}

function versionRange(min: number, max: number): string {
  return min === max ? `${max}` : `${min}-${max}`;
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): InterceptListenError {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new InterceptListenError('EADDRINUSE', `port ${port} on ${host} is already in use ` +
        `(another intercept running? stop it or choose another port with -p)`);
    case 'EADDRNOTAVAIL':
      return new InterceptListenError('EADDRNOTAVAIL', `cannot listen on ${where}: ${host} is not an address of this host ` +
        `(fix -b; 0.0.0.0 listens on all)`);
    case 'EACCES':
      return new InterceptListenError('EACCES', `cannot listen on ${where}: permission denied ` +
        `(ports below 1024 need root or CAP_NET_BIND_SERVICE)`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new InterceptListenError(err.code, `cannot listen on ${where}: ${host} is not an IP address (fix -b)`);
    default:
      return new InterceptListenError(err.code ?? 'EIO', `cannot listen on ${where}: ${err.message}`);
  }
}
