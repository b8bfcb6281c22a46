import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpPacket } from '../decode/tcp-packet';
import { NULL_ROUTES, type RouteRegistry } from '../intercept/route-registry';
import type { PacketSink } from '../output/packet-sink';
import { DEFAULT_PROTOCOL } from '../protocol/protocol-driver';
import type { SessionProtocol } from '../protocol/session-protocol';
import { ClientAddressMap, shiftPort, type Transfer, type TransferTable } from '../rewrite/address-map';
import { PacketBuilder, SegmentSpec } from '../rewrite/packet-builder';
import { DEFAULT_ENGINE_CONFIG, type EngineConfig, type EngineContext, EngineStats, type UnfinishedReason, type UnfinishedSessions } from './engine-context';
import { Session } from './session';
import { ClientIndex, ReplyIndex } from './session-index';
import { TimerWheel } from './timer-wheel';

export interface ReplayEngineInit {
  transfers: TransferTable;
  sink: PacketSink;
  routes?: RouteRegistry;
  protocol?: SessionProtocol;
  /** Fake client addresses (-c); empty keeps the captured ones. */
  clientAddresses?: readonly number[];
  config?: Partial<EngineConfig>;
  warn?: (message: string) => void;
  /** Where the protocol's own messages go (ProtocolContext.log, already limited per connection). Default: warn. */
  protocolLog?: (message: string) => void;
  /** The engine's clock in ms (monotonic). */
  now?: () => number;
}

/** Sessions that could not finish named in the summary; the rest are only counted. */
const MAX_NAMED_UNFINISHED = 20;
/** Port distance between replay passes (prime, so passes spread over the port range). */
const PASS_PORT_STRIDE = 4099;
/** Port distance between -n copies of one connection (odd, so copies spread over the range). */
const COPY_PORT_STRIDE = 97;
/** -f moves ports by this much per instance, as tcpcopy does. */
const FACTOR_PORT_STRIDE = 2048;
const LOOPBACK_NET = 0x7f000000;
/** -g remembers at most this many left-out connections (then forgets them all: bounded memory). */
const MAX_LEFT_OUT = 1 << 20;
/** Port re-picks tried when two captured clients would share one fake client address and port. */
const PORT_COLLISION_TRIES = 64;

function bucketKey(ip: number, port: number): number {
  return ip * 65536 + port;
}

/**
 * The session engine: demultiplexes captured client→server packets into one
 * emulated session per connection (keyed by the full 4-tuple and the replay
 * pass), and target replies back to their session (keyed by the rewritten
 * 4-tuple the target sees).
 */
export class ReplayEngine implements EngineContext {
  readonly config: EngineConfig;
  readonly stats = new EngineStats();
  /** @internal */
  readonly builder = new PacketBuilder();
  /** @internal */
  readonly spec = new SegmentSpec();
  readonly sink: PacketSink;
  readonly routes: RouteRegistry;
  /** @internal */
  readonly wheel: TimerWheel;
  readonly protocol: SessionProtocol;
  readonly now: () => number;

  private readonly transfers: TransferTable;
  private readonly clients: ClientAddressMap;
  private readonly byClient = new ClientIndex();
  private readonly byReply = new ReplyIndex();
  private readonly pendingAcks = new Set<Session>();
  private readonly warnFn: (message: string) => void;
  private readonly protocolLogFn: (message: string) => void;
  private readonly clockOrigin: number;
  private pass = 0;
  private firstPacketAt = -1;
  /** -g: connections left out while the share was rising (bounded). */
  private readonly leftOut = new Set<number>();
  /** False while memory is short (-m): no new sessions, existing ones carry on. */
  admitting = true;
  private readonly sampleSalt = (Math.random() * 0x7fffffff) | 0;

  constructor(init: ReplayEngineInit) {
    this.config = { ...DEFAULT_ENGINE_CONFIG, ...init.config };
    this.transfers = init.transfers;
    this.sink = init.sink;
    this.routes = init.routes ?? NULL_ROUTES;
    this.protocol = init.protocol ?? DEFAULT_PROTOCOL;
    this.clients = new ClientAddressMap(init.clientAddresses ?? []);
    this.warnFn = init.warn ?? (() => undefined);
    this.protocolLogFn = init.protocolLog ?? this.warnFn;
    this.now = init.now ?? (() => performance.now());
    this.clockOrigin = performance.timeOrigin + performance.now() - this.now();
    this.wheel = new TimerWheel(5, 1024, this.now());
    // A sink that sends in batches says when a batch went: SYNs are timed from then (synsHandedOut).
    this.sinkBatches = this.sink.onFlushed !== undefined;
    if (this.sinkBatches) this.sink.onFlushed = this.synsHandedOut;
  }

  /** Live sessions (including finished ones still lingering). */
  get size(): number {
    return this.byClient.size;
  }

  /** Starts replay pass `n` (-T loops): its connections use other client ports than earlier passes. */
  startPass(n: number): void {
    this.pass = n;
  }

  // ---- EngineContext (what sessions use; internal) ----------------------------------

  /** @internal */
  tsClock(now: number): number {
    return Math.floor(this.clockOrigin + now) >>> 0;
  }

  /** @internal */
  isnClock(now: number): number {
    return Math.floor((this.clockOrigin + now) * 250) >>> 0;
  }

  /** @internal */
  markAckPending(session: Session): void {
    session.ackPending = true;
    this.pendingAcks.add(session);
  }

  /** Reports a problem through the engine's `warn` (ReplayEngineInit.warn, Tokens.Warn). */
  warn(message: string): void {
    this.warnFn(message);
  }

  protocolLog(message: string): void {
    this.protocolLogFn(message);
  }

  private slowHandshakeTold = false;

  /** @internal */
  slowHandshake(connection: string, ms: number): void {
    if (this.slowHandshakeTold) return;
    this.slowHandshakeTold = true;
    this.warn(`no answer from the target to ${connection}'s SYNs for ${ms} ms (they go on for ${this.config.handshakeTimeoutMs} ms; ` +
      `other sessions may wait too, this is said once): check that the target routes replies to intercept`);
  }

  /** The first sessions that could not finish, named, and how many more (for the summary). */
  readonly unfinishedSessions: UnfinishedSessions = { sessions: [], more: 0 };

  unfinished(connection: string, reason: UnfinishedReason): void {
    const u = this.unfinishedSessions;
    if (u.sessions.length < MAX_NAMED_UNFINISHED) u.sessions.push({ connection, reason });
    else u.more++;
  }

  /** @internal */
  sessionFinished(session: Session): void {
    session.unroute();
    this.unlink(session);
  }

  // ---- input -----------------------------------------------------------------------

  /** A captured client→server packet (other packets are counted and ignored). */
  handleCaptured(pkt: TcpPacket, now = this.now()): void {
    this.stats.capturedPackets++;
    const transfer = this.transfers.match(pkt.dstIp, pkt.dstPort);
    if (!transfer) {
      // The online server's side (a pcap file usually has it): protocols may read its replies to compare.
      if (this.transfers.match(pkt.srcIp, pkt.srcPort) && this.handleOnline(pkt, now)) this.stats.capturedOnlineReplies++;
      else this.stats.capturedUnmatched++;
      return;
    }
    if (!this.admitting && !this.knows(pkt.srcIp, pkt.srcPort)) {
      this.stats.capturedRefusedMemory++;
      return;
    }
    if (!this.sampled(pkt.srcIp, pkt.srcPort, now)) {
      this.stats.capturedSampledOut++;
      return;
    }
    for (let copy = 0; copy < this.config.copies; copy++) this.handleCopy(pkt, transfer, copy, now);
  }

  /** A captured server→client packet: handed to the sessions of that client connection; false when there is none. */
  private handleOnline(pkt: TcpPacket, now: number): boolean {
    let found = false;
    for (let copy = 0; copy < this.config.copies; copy++) {
      const s = this.find(pkt.dstIp, pkt.dstPort, pkt.srcIp, pkt.srcPort, copy);
      if (s && !s.finished) {
        s.onOnlineCaptured(pkt, now);
        found = true;
      }
    }
    return found;
  }

  private knows(ip: number, port: number): boolean {
    return this.byClient.first(ip, port) !== null;
  }

  /**
   * -r/-g: whether this connection is replayed. The choice hashes the client's
   * address and port, so it holds for every packet of the connection.
   */
  private sampled(ip: number, port: number, now: number): boolean {
    const cfg = this.config;
    if (this.firstPacketAt < 0) this.firstPacketAt = now;
    let percent = cfg.samplePercent;
    const key = bucketKey(ip, port);
    if (cfg.gradual) {
      // The share rises with time: remember who was left out, so no connection joins halfway through.
      if (this.leftOut.has(key)) return false;
      percent = Math.min(percent, 1 + Math.floor((now - this.firstPacketAt) / 1000));
    }
    if (percent >= 100) return true;
    let h = Math.imul(ip ^ this.sampleSalt, 0x9e3779b1) ^ Math.imul(port + 0x7f4a7c15, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    h ^= h >>> 13;
    if ((h >>> 0) % 100 < percent) return true;
    if (cfg.gradual && !this.knows(ip, port)) {
      if (this.leftOut.size >= MAX_LEFT_OUT) this.leftOut.clear();
      this.leftOut.add(key);
    }
    return false;
  }

  private handleCopy(pkt: TcpPacket, transfer: Transfer, copy: number, now: number): void {
    const srcIp = pkt.srcIp;
    const srcPort = pkt.srcPort;
    const dstIp = pkt.dstIp;
    const dstPort = pkt.dstPort;
    const flags = pkt.flags;
    let session = this.find(srcIp, srcPort, dstIp, dstPort, copy);

    if ((flags & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
      if (session) {
        if (session.sawSyn && session.capIsn === pkt.seq) {
          if (copy === 0) this.stats.capturedDuplicates++;
          return;
        }
        if (session.finished) {
          this.retire(session);
        } else {
          // The client reused its port while we still replay its previous connection (the target was slower,
          // a reply was lost on its way back). That connection is over for the client, so everything of it was
          // captured: the old session finishes it alone while the new one replays beside it on another port.
          this.stats.portReuses++;
          session.detached = true;
        }
      }
      session = this.create(srcIp, srcPort, dstIp, dstPort, transfer, copy, true, now);
      if (!session) return;
      session.onCapturedSyn(pkt, now);
      return;
    }
    if (flags & TCP_SYN) {
      if (copy === 0) this.stats.capturedUnmatched++; // a SYN-ACK from a server on a transfer port: not client traffic
      return;
    }
    if (session?.refused) {
      if (copy === 0) this.stats.capturedSkippedNoSession++;
      session.absorb(now);
      return;
    }
    if (!session || session.finished) {
      const startsData = pkt.payloadLength > 0 || (flags & TCP_FIN) !== 0;
      if (!startsData || (flags & TCP_RST) || this.config.onlyFullSessions || (session && !this.isNewData(session, pkt))) {
        if (copy === 0) this.stats.capturedSkippedNoSession++;
        return;
      }
      if (session) this.retire(session);
      session = this.create(srcIp, srcPort, dstIp, dstPort, transfer, copy, false, now);
      if (!session) return;
    }
    session.onCaptured(pkt, now);
  }

  /** Data after a finished session's end belongs to a new use of the same ports (capture mid-stream). */
  private isNewData(session: Session, pkt: TcpPacket): boolean {
    return ((pkt.seq - session.capturedUpTo) | 0) > 0;
  }

  /**
   * A reply from the target as intercept returned it: IP and TCP headers,
   * `payloadLength` from the IP total length, and `data` the payload bytes
   * intercept included (possibly none).
   */
  handleReply(pkt: TcpPacket, payloadLength: number, data: Buffer, now = this.now()): void {
    this.stats.repliesReceived++;
    const clientIp = pkt.dstIp;
    const clientPort = pkt.dstPort;
    const targetIp = pkt.srcIp;
    const targetPort = pkt.srcPort;
    const targetIpKey = targetIp | 0;
    let s = this.byReply.first(clientIp, clientPort);
    while (s && !(s.targetIpKey === targetIpKey && s.route.targetPort === targetPort)) s = this.byReply.next(s, clientIp, clientPort);
    if (!s) {
      this.stats.repliesUnmatched++;
      return;
    }
    s.onReply(pkt, payloadLength, data, now);
  }

  /** Sends the ACKs owed after a batch of replies (one ACK per session per batch). */
  flush(now = this.now()): void {
    if (this.synsQueued.length > 0 && !this.sinkBatches) this.synsHandedOut(now);
    if (this.pendingAcks.size === 0) return;
    for (const s of this.pendingAcks) s.flushAck(now);
    this.pendingAcks.clear();
  }

  /**
   * Sessions that queued a SYN since the last batch went out: told when it did (synFlushed), by flush() at the
   * end of a batch of captured packets, or by the sink after its sendmmsg when it sends in batches (a long
   * garbage collection between the two would otherwise start the timer before the SYN left: under a SYN flood
   * at the -m limit, 128 SYNs were sent again 0.90 s after the first instead of 1 s).
   */
  private readonly synsQueued: Session[] = [];
  private readonly sinkBatches: boolean;
  private readonly synsHandedOut = (now = this.now()): void => {
    const q = this.synsQueued;
    for (let i = 0; i < q.length; i++) q[i].synFlushed(now);
    q.length = 0;
  };

  /** @internal */
  synQueued(session: Session): void {
    this.synsQueued.push(session);
  }

  /** Runs due timers; call every few milliseconds. */
  tick(now = this.now()): void {
    this.wheel.advance(now);
    this.flush(now);
  }

  /** True while some session owes the target data or waits for its answer. */
  busy(now = this.now()): boolean {
    return this.byClient.some((s) => s.busy(now));
  }

  /** Ends every session (an RST tells the target) and forgets them. */
  closeAll(now = this.now()): void {
    for (const s of this.byClient.all()) {
      if (!s.finished) s.abort(now);
      this.retire(s);
    }
    this.pendingAcks.clear();
  }

  // ---- session table -----------------------------------------------------------------

  private find(srcIp: number, srcPort: number, dstIp: number, dstPort: number, copy: number): Session | undefined {
    const dstIpKey = dstIp | 0;
    for (let s = this.byClient.first(srcIp, srcPort); s; s = this.byClient.next(s, srcIp, srcPort)) {
      if (s.serverIpKey === dstIpKey && s.serverPort === dstPort && s.pass === this.pass && s.copy === copy && !s.detached) return s;
    }
    return undefined;
  }

  private create(
    srcIp: number,
    srcPort: number,
    dstIp: number,
    dstPort: number,
    transfer: Transfer,
    copy: number,
    sawSyn: boolean,
    now: number,
  ): Session | undefined {
    const { targetIp, targetPort } = transfer;
    // -H: a loopback client cannot be answered by another host; give it a real address first.
    const local = this.config.localAddress && srcIp >>> 24 === LOOPBACK_NET >>> 24 ? this.config.localAddress : srcIp;
    const outIp = this.clients.map(local);
    let outPort = shiftPort(
      srcPort,
      this.pass * PASS_PORT_STRIDE + copy * COPY_PORT_STRIDE + this.config.portFactor * FACTOR_PORT_STRIDE,
    );
    // Two captured clients may land on one fake address: keep their replayed 4-tuples apart.
    for (let i = 0; this.replyTaken(outIp, outPort, targetIp, targetPort); i++) {
      if (i >= PORT_COLLISION_TRIES) {
        this.stats.capturedSkippedNoSession++;
        return undefined;
      }
      this.stats.portCollisionsAvoided++;
      outPort = shiftPort(outPort, 1);
    }
    const s = new Session(this, srcIp, srcPort, dstIp, dstPort, outIp, outPort, targetIp, targetPort, this.pass, copy, sawSyn, now);
    this.byClient.add(s);
    this.byReply.add(s);
    this.stats.sessionsCreated++;
    return s;
  }

  private replyTaken(ip: number, port: number, targetIp: number, targetPort: number): boolean {
    for (let s = this.byReply.first(ip, port); s; s = this.byReply.next(s, ip, port)) {
      if (s.route.targetIp === targetIp && s.route.targetPort === targetPort) return true;
    }
    return false;
  }

  private retire(s: Session): void {
    s.unroute();
    this.wheel.remove(s);
    this.unlink(s);
  }

  private unlink(s: Session): void {
    this.byClient.delete(s);
    this.byReply.delete(s);
    this.pendingAcks.delete(s);
  }
}
