// The global `Buffer` is a getter on globalThis: a generic lookup and a call at every use in optimized code.
import { Buffer } from 'node:buffer';
import { formatIpv4 } from '../decode/ip-address';
import { SpanReader } from '../decode/span-reader';
import { seqAdd, seqDiff, seqGte } from '../decode/seq';
import { TcpOptions } from '../decode/tcp-options';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpPacket } from '../decode/tcp-packet';
import type { Route } from '../intercept/route-registry';
import { DEFAULT_PROTOCOL, ProtocolDriver, type DriverHost } from '../protocol/protocol-driver';
import { CLOSE_TAG } from '../protocol/session-protocol';
import { ClientStream } from './client-stream';
import { DEFAULT_ENGINE_CONFIG, type EngineContext } from './engine-context';
import { chunkSum, OutQueue } from './out-queue';
import { ReleaseControl } from './release-control';
import { RtoEstimator } from './rto-estimator';
import type { WheelEntry } from './timer-wheel';

export enum SessionState {
  /** Nothing sent to the target yet. */
  CLOSED,
  SYN_SENT,
  ESTABLISHED,
  /** Finished; kept for a moment to absorb late replies. */
  DONE,
}

/**
 * The first value of a field that will hold sequence numbers (unsigned 32-bit) or times (fractional ms):
 * -0 is no small integer, so V8 lays the field out as a double from the first session on. Starting at 0
 * instead, the first value past 2^31 (any ISN, often) changes every session's layout at once: with
 * 10,000 keep-alive sessions whose first FIN comes late, that was a wave of deoptimizations and
 * object migrations, several percent of a run's CPU. -0 === 0.
 */
const AS_DOUBLE_ZERO = -0;
/** Wait after a stale connection on the target was reset before the SYN goes again. */
const STALE_RETRY_MS = 10;
/**
 * Wait after the target refused a SYN (RST: nothing listens, a server restarting) before it goes again:
 * short and not backed off, so the replay resumes as soon as the server is back; after REFUSED_FAST_MS of
 * refusals (a server down, not restarting), once a second until the handshake timeout.
 */
const REFUSED_RETRY_MS = 50;
const REFUSED_FAST_MS = 5_000;
const REFUSED_SLOW_RETRY_MS = 1_000;
/** A handshake unanswered this long (its 4th SYN) is told once a run: a missing route is the usual cause. */
const SLOW_HANDSHAKE_MS = 5_000;
/**
 * Delayed ACK (RFC 1122 §4.2.3.2): less than two segments of target data get
 * their ACK after this long (Linux waits 40 ms too), unless something we send carries it first.
 */
const ACK_DELAY_MS = 40;
/** New connections to the target one session may open after the first; beyond it the session is given up. */
const MAX_RECONNECTS = 16;
/** A session whose target spoke this recently may still be answering (kept busy at the end of a capture). */
const QUIET_MS = 100;
/**
 * Soft deadlines are rounded up to this grain, so that the sessions of a busy moment share a few slots of the
 * timer wheel: at 500 connections/s one linger expiry a 5 ms slot, and a cleared delayed ACK a connection, woke
 * tcpcopy 235 times a second, 48 since (docs/benchmarks.md, "Soft deadlines").
 */
const SOFT_DEADLINE_GRAIN_MS = 50;

const scratchOptions = new TcpOptions();
/** Sums and copies captured payloads where they lie, in the capture's buffer (the same one packet after packet). */
const captureSpans = new SpanReader();
/** Reused for every onClientData call (protocols must not keep it). */
const clientInfo = { onlineServerBytes: 0, captureTimeMs: 0 };
/** Reused for every onOnlineData call. */
const onlineInfo = { gap: 0, captureTimeMs: 0 };

/**
 * What a finished session holds instead of its own driver, queues and timers, so that those are freed
 * when it ends rather than when it is forgotten after lingering (to answer a repeated FIN). Shared, and
 * never written to: on a finished session only the linger timer and that ACK run.
 * @internal exported for its test
 */
export const FINISHED = (() => {
  const host: DriverHost = {
    clientIp: 0, clientPort: 0, targetIp: 0, targetPort: 0, sawHandshake: false,
    emitOut: () => undefined, emitNextOut: () => undefined, alignServerBytes: () => undefined,
    setReplyPayloadBytes: () => undefined, protocolLog: () => undefined, protocolFault: () => undefined,
  };
  const driver = new ProtocolDriver(DEFAULT_PROTOCOL, host);
  driver.close();
  return {
    driver,
    release: new ReleaseControl(driver, DEFAULT_ENGINE_CONFIG),
    captured: new ClientStream(),
    out: new OutQueue(),
    timer: new RtoEstimator(),
  };
})();

/**
 * One emulated client connection, in three stages:
 *  - capture: the client's segments, reordered and de-duplicated in the
 *    capture's sequence space, handed to the protocol in order;
 *  - out queue: what the protocol emitted for the target, numbered by stream
 *    position (so a rewrite may change lengths);
 *  - connection: a TCP connection to the target with its own ISN; positions
 *    map to its sequence numbers, and a reconnect starts a new mapping.
 */
export class Session implements WheelEntry, DriverHost {
  deadline = Infinity;
  wheelSlot = -1;
  wheelPrev: WheelEntry | null = null;
  wheelNext: WheelEntry | null = null;
  /** Next session in the same hash bucket (engine-owned). */
  nextInBucket: Session | null = null;
  nextInReplyBucket: Session | null = null;

  state = SessionState.CLOSED;
  readonly route: Route;
  /**
   * The addresses the engine's lookups compare per packet (the client's and the server's as captured, the
   * client's and the target's as the target sees them), as signed 32-bit integers: V8 keeps those inside the
   * object, while an unsigned address above 2^31 (most of them) is a heap number of its own, one more memory
   * access per comparison. The captured ones are kept only so (clientIp and serverIp give them unsigned).
   */
  readonly clientIpKey: number;
  readonly serverIpKey: number;
  readonly replyIpKey: number;
  readonly targetIpKey: number;
  private routed = false;

  // ---- capture side (capture sequence space)
  /** The client's SYN sequence number, when it was captured. */
  capIsn = AS_DOUBLE_ZERO;
  private synMss = -1;
  private captured = new ClientStream();
  /** Next capture sequence number to hand to the protocol. */
  private deliveredSeq = AS_DOUBLE_ZERO;
  private haveSeq = false;
  /** Bytes the online server had sent, per the client's ACKs: zero at `ackBase`. */
  private ackBase = AS_DOUBLE_ZERO;
  private haveAckBase = false;
  private hasFin = false;
  private finSeq = AS_DOUBLE_ZERO;
  private finServerBytes = 0;
  private finDelivered = false;
  private hasRst = false;
  private rstServerBytes = 0;
  private driver: ProtocolDriver;
  /** When held client data may go (the protocol's yes, or the idle release). */
  private release: ReleaseControl;

  /** Next sequence number of the online server's bytes to this client, once known. */
  private onlineNext = AS_DOUBLE_ZERO;
  private haveOnlineSeq = false;

  // ---- out queue (stream positions)
  out = new OutQueue();
  /** Oldest position the target has not acknowledged. */
  sndUna = 0;
  /** Next position to send (a sent FIN counts as one position). */
  sndNxt = 0;
  private finSent = false;
  private finAcked = false;
  private finPos = 0;
  /** Emits during onConnect go before anything unsent: gathered here, then inserted. */
  private prelude: Array<{ data: Buffer; tag: number; serverBytes: number }> | null = null;
  /** serverBytes given to bytes emitted now (those of the client data being handled). */
  private currentServerBytes = 0;
  private currentData: Buffer | null = null;
  private currentSum = -1;

  // ---- connection to the target
  private isn = AS_DOUBLE_ZERO;
  /** Stream position of the first byte after our SYN on this connection. */
  private basePos = 0;
  private connections = 0;
  private targetIsn = AS_DOUBLE_ZERO;
  /** Next target byte expected: the ACK we send. */
  private rcvNxt = AS_DOUBLE_ZERO;
  /** Bytes received from the target on all connections, its FINs counted as one (like the client's ACKs). */
  private targetBytes = 0;
  private targetFin = false;
  /** The target reset the connection; the client side may still have more to say. */
  private targetReset = false;
  private peerWindow = 65535;
  private peerWscale = 0;
  private targetMss = 536;
  private timestamps = false;
  private tsRecent = AS_DOUBLE_ZERO;
  private lastAckSeen = -1;
  private dupAcks = 0;
  ackPending = false;
  /** The target sequence number our last ACK carried. */
  private ackedUpTo = AS_DOUBLE_ZERO;
  /** A delayed ACK is owed at this time (Infinity: none). */
  private ackAt = Infinity;
  /** Zero-window probe (RFC 9293 §3.8.6.1) due at this time (Infinity: none). */
  private probeAt = Infinity;
  /** The one byte in flight is a window probe. */
  private probing = false;
  /** The protocol refused the connection: its later packets are absorbed (see absorb()). */
  refused = false;
  /**
   * The client started a new connection on this session's ports: captured packets go to the new session,
   * this one finishes what it captured (it stays in the reply index and on the timer wheel).
   */
  detached = false;
  /** Finished with both FINs exchanged: late FIN repeats get an ACK. */
  private closedCleanly = false;

  private ipId: number;
  private synSentAt = AS_DOUBLE_ZERO;
  private handshakeStartedAt = AS_DOUBLE_ZERO;
  /** RFC 6298 retransmission timeout (kept across reconnects: same path). */
  private timer = new RtoEstimator();
  private rtoAt = Infinity;
  /** The SYN was sent again: its SYN-ACK gives no RTT sample (Karn's rule). */
  private synRetransmitted = false;
  /** When the target first refused this handshake (RST to our SYN); -1: it has not. */
  private refusedSince = -1;
  /** When a hole in the captured stream is given up on (a packet the capture lost). */
  private gapAt = Infinity;
  /** When the last captured client packet was captured (its pcap time, or when it arrived live), for the protocol. */
  private capturedAtMs = AS_DOUBLE_ZERO;
  /** The protocol's beforeSend holds the next chunk back (until a target reply changes its mind). */
  private sendHeld = false;
  private lingerAt = Infinity;
  private finWaitAt = Infinity;
  private lastReplyAt: number;
  private lastActivityAt: number;

  constructor(
    private readonly ctx: EngineContext,
    clientIp: number,
    readonly clientPort: number,
    serverIp: number,
    readonly serverPort: number,
    outClientIp: number,
    outClientPort: number,
    targetIp: number,
    targetPort: number,
    readonly pass: number,
    /** Which -n copy of the captured connection this is (0 for the first). */
    readonly copy: number,
    /** Whether the client's SYN was captured (else the handshake is faked). */
    readonly sawSyn: boolean,
    now: number,
  ) {
    this.route = {
      clientIp: outClientIp,
      clientPort: outClientPort,
      targetIp,
      targetPort,
      payloadBytes: ctx.protocol.replyPayloadBytes,
    };
    this.clientIpKey = clientIp | 0;
    this.serverIpKey = serverIp | 0;
    this.replyIpKey = outClientIp | 0;
    this.targetIpKey = targetIp | 0;
    this.ipId = (Math.random() * 65536) | 0;
    this.lastReplyAt = now;
    this.lastActivityAt = now;
    this.driver = new ProtocolDriver(ctx.protocol, this);
    this.release = new ReleaseControl(this.driver, ctx.config);
  }

  /** The captured client's address (unsigned). */
  get clientIp(): number {
    return this.clientIpKey >>> 0;
  }

  /** The captured server's address (unsigned). */
  get serverIp(): number {
    return this.serverIpKey >>> 0;
  }

  // ---- DriverHost: what the protocol driver may ask of this session ----------------

  get targetIp(): number {
    return this.route.targetIp;
  }

  get targetPort(): number {
    return this.route.targetPort;
  }

  get sawHandshake(): boolean {
    return this.sawSyn;
  }

  alignServerBytes(onlineServerBytes: number): void {
    this.release.align(onlineServerBytes, this.targetBytes);
  }

  setReplyPayloadBytes(bytes: number): void {
    this.route.payloadBytes = bytes;
    if (this.routed) this.ctx.routes.add(this.route);
  }

  protocolLog(message: string): void {
    this.ctx.protocolLog(`${this.ctx.protocol.name} ${this.describe()}: ${message}`);
  }

  protocolFault(hook: string, err: unknown): void {
    this.ctx.stats.protocolFaults++;
    this.ctx.warn(`protocol ${this.ctx.protocol.name} failed in ${hook} (connection ${this.describe()}), going on as raw TCP: ${(err as Error)?.message ?? err}`);
  }

  describe(): string {
    const ip = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    return `${ip(this.clientIp)}:${this.clientPort}->${ip(this.serverIp)}:${this.serverPort}`;
  }

  get finished(): boolean {
    return this.state === SessionState.DONE;
  }

  /** Next capture sequence number this session expects from the client. */
  get capturedUpTo(): number {
    return this.deliveredSeq;
  }

  /** True while the session owes the target data or awaits its answer. */
  busy(now: number): boolean {
    if (this.state === SessionState.DONE) return false;
    if (this.state === SessionState.SYN_SENT) return true;
    if (this.state === SessionState.CLOSED) return this.out.size > 0 || this.hasFin || this.hasRst;
    if (this.sndUna !== this.sndNxt || this.sndNxt < this.out.endPos) return true;
    if ((this.finDelivered && !this.finAcked && !this.targetReset) || this.hasRst) return true;
    return now - this.lastReplyAt < QUIET_MS;
  }

  // ---- captured client packets -------------------------------------------------

  /** The client's SYN was captured: the connection is replayed from its start. */
  onCapturedSyn(pkt: TcpPacket, now: number): void {
    this.capIsn = pkt.seq;
    this.deliveredSeq = seqAdd(pkt.seq, 1);
    this.haveSeq = true;
    scratchOptions.parse(pkt.buf, pkt.tcp + 20, pkt.payload);
    this.synMss = scratchOptions.mss;
    this.lastActivityAt = now;
    this.startHandshake(now);
  }

  /** A captured non-SYN client packet of this connection. */
  onCaptured(pkt: TcpPacket, now: number): void {
    this.lastActivityAt = now;
    this.capturedAtMs = pkt.capturedAtMs >= 0 ? pkt.capturedAtMs : now;
    const flags = pkt.flags;
    const len = pkt.payloadLength;
    if (flags & TCP_ACK && !this.haveAckBase) {
      // The handshake's ACK (or, mid-stream, the first packet) marks zero server bytes received.
      this.ackBase = pkt.ack;
      this.haveAckBase = true;
    }
    const serverBytes = this.serverBytesAt(pkt);
    if (!this.haveSeq) {
      this.deliveredSeq = pkt.seq;
      this.haveSeq = true;
    }
    if (len > 0) {
      if (this.captured.size === 0 && pkt.seq === this.deliveredSeq) {
        // The next bytes with nothing held (nearly always): copied and handed over, no stop in the stream.
        const data = captureSpans.copy(pkt.buf, pkt.payload, pkt.payload + len);
        this.handOver(data, captureSpans.sum(pkt.buf, pkt.payload, pkt.payload + len), serverBytes);
        this.deliveredSeq = seqAdd(pkt.seq, len);
      } else if (!this.captured.add(this.deliveredSeq, pkt.seq, pkt.buf, pkt.payload, len, serverBytes)) {
        this.ctx.stats.capturedDuplicates++;
      }
    }
    if (flags & TCP_FIN && !this.hasFin) {
      this.hasFin = true;
      this.finSeq = seqAdd(pkt.seq, len);
      this.finServerBytes = serverBytes;
    }
    if (flags & TCP_RST && !this.hasRst) {
      this.hasRst = true;
      this.rstServerBytes = serverBytes;
    }
    this.deliver(now);
    if (this.state === SessionState.CLOSED) {
      if (this.out.size > 0 || this.finDelivered || this.hasRst) this.beginFaked(now);
      // Nothing to send yet (the protocol holds or dropped it all): the idle timeout (-k) still ends it.
      else this.rearm();
      return;
    }
    this.pump(now);
  }

  /**
   * A captured packet of the online server to this client: its new payload goes to the protocol in
   * order (retransmitted bytes cut off, missed bytes reported as a gap), for protocols that compare
   * answers. Nothing here affects what is sent.
   */
  onOnlineCaptured(pkt: TcpPacket, now: number): void {
    if (!this.driver.readsOnline) return;
    const len = pkt.payloadLength;
    if (pkt.flags & TCP_SYN) {
      this.onlineNext = seqAdd(pkt.seq, 1);
      this.haveOnlineSeq = true;
    }
    if (len === 0) return;
    if (!this.haveOnlineSeq) {
      this.onlineNext = pkt.seq;
      this.haveOnlineSeq = true;
    }
    const ahead = seqDiff(this.onlineNext, pkt.seq);
    if (ahead + len <= 0) return; // seen already
    const skip = ahead < 0 ? -ahead : 0;
    this.onlineNext = seqAdd(pkt.seq, len);
    onlineInfo.gap = ahead > 0 ? ahead : 0;
    onlineInfo.captureTimeMs = pkt.capturedAtMs >= 0 ? pkt.capturedAtMs : now;
    this.driver.onlineData(pkt.buf.subarray(pkt.payload + skip, pkt.payload + len), onlineInfo);
  }

  private serverBytesAt(pkt: TcpPacket): number {
    if (!(pkt.flags & TCP_ACK) || !this.haveAckBase) return 0;
    const d = seqDiff(this.ackBase, pkt.ack);
    return d > 0 ? d : 0;
  }

  /** Hands the contiguous captured bytes to the protocol; a hole waits (bounded) for the client's retransmission. */
  private deliver(now: number): void {
    while (this.captured.size > 0) {
      const seg = this.captured.at(0);
      const off = seqDiff(seg.seq, this.deliveredSeq);
      if (off < 0) break;
      if (off < seg.length) {
        this.handOver(off === 0 ? seg.data : seg.data.subarray(off), off === 0 ? seg.sum : -1, seg.serverBytes);
        this.deliveredSeq = seqAdd(seg.seq, seg.length);
      }
      this.captured.release(this.deliveredSeq);
    }
    if (this.hasFin && !this.finDelivered && this.deliveredSeq === this.finSeq) this.finDelivered = true;
    const holeAhead = this.captured.size > 0 || (this.hasFin && !this.finDelivered);
    if (!holeAhead) this.gapAt = Infinity;
    else if (this.gapAt === Infinity) {
      this.gapAt = now + this.ctx.config.captureGapMs;
      this.rearm();
    }
  }

  /** Client bytes, in order, to the protocol (`sum`: their ones-complement sum, -1 if not known). */
  private handOver(data: Buffer, sum: number, serverBytes: number): void {
    this.currentServerBytes = serverBytes;
    this.currentData = data;
    this.currentSum = sum;
    clientInfo.onlineServerBytes = serverBytes;
    clientInfo.captureTimeMs = this.capturedAtMs;
    this.driver.clientData(data, clientInfo);
    this.currentData = null;
  }

  /** The capture lost client bytes and no retransmission filled the hole: go on after it, counted. */
  private skipGap(now: number): void {
    this.gapAt = Infinity;
    const next = this.captured.size > 0 ? this.captured.at(0).seq : this.hasFin && !this.finDelivered ? this.finSeq : this.deliveredSeq;
    const gap = seqDiff(this.deliveredSeq, next);
    if (gap <= 0) return;
    this.ctx.stats.captureGaps++;
    this.ctx.stats.captureGapBytes += gap;
    this.ctx.warn(`the capture lost ${gap} bytes of ${this.describe()}; replaying what follows the hole`);
    this.deliveredSeq = next;
    this.deliver(now);
    if (this.state === SessionState.CLOSED) {
      if (this.out.size > 0 || this.finDelivered || this.hasRst) this.beginFaked(now);
    } else this.pump(now);
  }

  /** The protocol emitted bytes for the target. */
  emitOut(data: Buffer, tag: number): void {
    if (this.prelude) {
      this.prelude.push({ data, tag, serverBytes: this.currentServerBytes });
      return;
    }
    this.out.push(data, tag, this.currentServerBytes, data === this.currentData ? this.currentSum : -1);
  }

  /** Bytes the protocol puts ahead of everything not yet sent (after a chunk partly sent). */
  emitNextOut(data: Buffer, tag: number): void {
    if (this.prelude) {
      this.emitOut(data, tag);
      return;
    }
    if (this.finSent) return; // nothing may follow our FIN
    let pos = this.sndNxt;
    const partial = this.out.chunkAt(pos);
    if (partial && partial.pos < pos) pos = partial.pos + partial.data.length;
    // After what earlier emitNext calls put ahead and is still unsent: they keep their order.
    let next = this.out.chunkAt(pos);
    while (next && next.ahead) {
      pos = next.pos + next.data.length;
      next = this.out.chunkAt(pos);
    }
    this.out.insertAt(pos, [{ data, tag, serverBytes: next ? next.serverBytes : this.currentServerBytes }], true);
  }

  // ---- sending -------------------------------------------------------------------

  /** Position → sequence number on the current connection. */
  private seqOf(pos: number): number {
    return (this.isn + 1 + (pos - this.basePos)) >>> 0;
  }

  /** Sequence number acknowledged by the target → position (may be out of range). */
  private posOf(ack: number): number {
    return this.basePos + seqDiff((this.isn + 1) >>> 0, ack);
  }

  /** A connection whose start was not captured: fake the handshake. */
  private beginFaked(now: number): void {
    if (this.ctx.config.onlyFullSessions && !this.sawSyn) return;
    if (!this.sawSyn && this.connections === 0) this.ctx.stats.sessionsFakedHandshake++;
    this.startHandshake(now);
  }

  private startHandshake(now: number): void {
    // The protocol may refuse the connection, or put a prelude before what is still unsent.
    this.prelude = [];
    const accepted = this.driver.connect({ resumed: !this.sawSyn || this.connections > 0 });
    const prelude = this.prelude;
    this.prelude = null;
    if (!accepted) {
      this.ctx.stats.sessionsRefused++;
      this.ctx.unfinished(this.describe(), 'protocol refused');
      this.finish(now, true);
      // The rest of the connection is refused with it: absorbed, not taken for a new connection.
      this.refused = true;
      this.absorb(now);
      return;
    }
    // A new connection starts where a request starts: a half-acknowledged request is sent again whole.
    const partial = this.out.chunkAt(this.sndUna);
    if (partial) this.sndUna = this.out.startOfTag(partial);
    this.out.insertAt(this.sndUna, prelude);
    if (!this.routed) {
      this.ctx.routes.add(this.route);
      this.routed = true;
    }
    this.connections++;
    this.isn = this.ctx.isnClock(now);
    this.basePos = this.sndUna;
    this.sndNxt = this.sndUna;
    this.finSent = false;
    this.state = SessionState.SYN_SENT;
    this.handshakeStartedAt = now;
    this.timer.restart();
    this.synRetransmitted = false;
    this.refusedSince = -1;
    this.sendSyn(now);
  }

  private sendSyn(now: number): void {
    const s = this.prepare(TCP_SYN, 0, now);
    s.seq = this.isn;
    s.mss = this.synMss > 0 ? this.synMss : this.ctx.config.mss;
    s.timestamps = true;
    s.tsEcr = 0;
    this.synSentAt = now;
    this.emit();
    this.rtoAt = now + this.timer.rto;
    this.rearm();
    this.ctx.synQueued(this);
  }

  /**
   * The SYN queued at synSentAt was handed out at `now` (the sink's batch went, or for a sink that sends at once,
   * the batch of captured packets that queued it was done): a batch of a flood, a GC pause or a busy CPU can take
   * a good part of a second, and as in the kernel its retransmission timer, and the RTT its answer measures, run
   * from when it left.
   */
  synFlushed(now: number): void {
    if (this.state !== SessionState.SYN_SENT || now <= this.synSentAt) return;
    const late = now - this.synSentAt;
    this.synSentAt = now;
    if (this.rtoAt !== Infinity) {
      this.rtoAt += late;
      this.rearm();
    }
  }

  private prepare(flags: number, ack: number, now: number) {
    const s = this.ctx.spec;
    s.srcIp = this.route.clientIp;
    s.srcPort = this.route.clientPort;
    s.dstIp = this.route.targetIp;
    s.dstPort = this.route.targetPort;
    s.ipId = this.ipId = (this.ipId + 1) & 0xffff;
    s.seq = this.seqOf(this.sndNxt);
    s.ack = ack;
    s.flags = flags;
    s.timestamps = this.timestamps;
    s.tsVal = this.ctx.tsClock(now);
    s.tsEcr = this.tsRecent;
    s.payload = null;
    s.payloadLength = 0;
    return s;
  }

  private emit(): void {
    const len = this.ctx.builder.build(this.ctx.spec);
    this.ctx.sink.send(this.ctx.builder.scratch, 0, len, this.route.targetIp);
    this.ctx.stats.packetsSent++;
    this.ctx.stats.bytesSent += this.ctx.spec.payloadLength;
  }

  /** A segment without data at position `pos`. */
  private sendControl(flags: number, pos: number, now: number): void {
    const s = this.prepare(flags, this.rcvNxt, now);
    s.seq = this.seqOf(pos);
    this.emit();
    if (flags & TCP_ACK) this.acked();
  }

  /** What we just sent acknowledged everything received so far. */
  private acked(): void {
    this.ackPending = false;
    this.ackedUpTo = this.rcvNxt;
    this.ackAt = Infinity;
  }

  private sendData(pos: number, len: number, fin: boolean, now: number): void {
    const c = this.out.chunkAt(pos)!;
    const off = pos - c.pos;
    const s = this.prepare(TCP_ACK | TCP_PSH | (fin ? TCP_FIN : 0), this.rcvNxt, now);
    s.seq = this.seqOf(pos);
    s.payload = c.data;
    s.payloadOffset = off;
    s.payloadLength = len;
    s.payloadSum = chunkSum(c, off, len);
    this.emit();
    this.acked();
  }

  /** Largest payload per packet: the target's MSS, bounded by our MTU. */
  private segmentSize(): number {
    const byMtu = this.ctx.config.mtu - 40 - (this.timestamps ? 12 : 0);
    return Math.max(1, Math.min(this.targetMss, byMtu));
  }

  /** Asks the protocol whether data labelled `tag` may go; arms the idle release when not. */
  private released(tag: number, serverBytes: number, now: number): boolean {
    if (this.release.allows(tag, serverBytes, this.targetBytes)) return true;
    if (this.release.hold(now)) this.rearm();
    return false;
  }

  /** Sends whatever the target may take now. */
  pump(now: number): void {
    if (this.state !== SessionState.ESTABLISHED) return;
    // Unacknowledged bytes with the target gone: a new connection carries them.
    if ((this.targetFin || this.targetReset) && this.out.endPos > this.sndUna) {
      this.reconnect(now, !this.targetReset);
      return;
    }
    if (this.targetReset) {
      // Nothing to send on a reset connection; once the client closes too, we are done.
      if (this.finDelivered || this.hasRst) this.finish(now, false);
      return;
    }
    const mss = this.segmentSize();
    let sent = false;
    this.sendHeld = false;
    while (this.sndNxt < this.out.endPos && !this.finSent) {
      const c = this.out.chunkAt(this.sndNxt)!;
      if (!c.released) {
        if (!this.released(c.tag, c.serverBytes, now)) break;
        c.released = true;
      }
      if (c.readyOn !== this.connections) {
        const verdict = this.driver.beforeSend(c.tag, c.data);
        if (verdict === 'drop') {
          this.out.dropAt(c.pos);
          continue;
        }
        if (Buffer.isBuffer(verdict)) {
          // Other bytes for this chunk (nothing of it has gone on this connection): the queue moves.
          this.out.replaceAt(c.pos, verdict);
          c.readyOn = this.connections;
          continue;
        }
        if (!verdict) {
          this.sendHeld = true;
          break;
        }
        c.readyOn = this.connections;
        if (this.driver.rewritesOnSend) c.sum = -1; // the protocol may have changed bytes
      }
      const inFlight = this.sndNxt - this.sndUna;
      let len = Math.min(c.pos + c.data.length - this.sndNxt, mss);
      if (inFlight + len > this.peerWindow) {
        len = this.peerWindow - inFlight;
        if (len <= 0 || (len < mss && inFlight > 0)) {
          // Wait for the window to open; with nothing in flight, probe it in case the update is lost.
          if (inFlight === 0 && this.probeAt === Infinity) {
            this.probeAt = now + this.timer.rto;
            this.rearm();
          }
          break;
        }
      }
      const end = this.sndNxt + len;
      const withFin = end === this.out.endPos && this.finDelivered && this.release.allows(CLOSE_TAG, this.finServerBytes, this.targetBytes);
      this.sendData(this.sndNxt, len, withFin, now);
      this.timer.sent(end, now);
      this.sndNxt = end;
      if (withFin) this.markFinSent();
      sent = true;
    }
    if (this.sndNxt === this.out.endPos && !this.finSent) {
      if (this.finDelivered && (this.release.closeForced || this.released(CLOSE_TAG, this.finServerBytes, now))) {
        this.sendControl(TCP_FIN | TCP_ACK, this.sndNxt, now);
        this.markFinSent();
        sent = true;
      } else if (this.hasRst && !this.finDelivered && (this.release.closeForced || this.released(CLOSE_TAG, this.rstServerBytes, now))) {
        this.sendControl(TCP_RST | TCP_ACK, this.sndNxt, now);
        this.finish(now, true);
        return;
      }
    }
    if (sent) {
      this.release.sent();
      this.lastActivityAt = now;
      if (this.rtoAt === Infinity) this.rtoAt = now + this.timer.rto;
      this.rearm();
    }
  }

  private markFinSent(): void {
    this.finSent = true;
    this.finPos = this.out.endPos;
    this.sndNxt = this.finPos + 1;
  }

  /** Resends the oldest unacknowledged segment (one per trigger, as TCP does). */
  private retransmit(now: number): void {
    this.timer.retransmitted();
    if (this.state === SessionState.SYN_SENT) {
      this.synRetransmitted = true;
      this.sendSyn(now);
      return;
    }
    if (this.sndUna === this.sndNxt) return;
    this.ctx.stats.retransmissions++;
    if (this.finSent && this.sndUna === this.finPos) {
      this.sendControl(TCP_FIN | TCP_ACK, this.finPos, now);
      return;
    }
    const c = this.out.chunkAt(this.sndUna);
    if (!c) return;
    const dataEnd = this.finSent ? this.finPos : this.sndNxt;
    const len = Math.min(c.pos + c.data.length - this.sndUna, this.segmentSize(), dataEnd - this.sndUna);
    const fin = this.finSent && this.sndUna + len === this.finPos;
    this.sendData(this.sndUna, len, fin, now);
  }

  /**
   * The target went away (FIN or RST) while bytes remain unacknowledged: a new
   * connection carries them, from the first byte the target did not acknowledge.
   */
  private reconnect(now: number, resetOld: boolean): void {
    if (this.connections > MAX_RECONNECTS) {
      // A target that drops every connection it gets (or a protocol whose prelude it refuses) never lets
      // this session through: give it up rather than reconnect forever.
      this.ctx.stats.reconnectsGivenUp++;
      this.ctx.unfinished(this.describe(), 'reconnects given up');
      this.ctx.warn(`the target closed ${this.describe()} ${MAX_RECONNECTS} times with data left: giving it up`);
      this.abort(now);
      return;
    }
    this.ctx.stats.sessionsReconstructed++;
    if (resetOld) this.sendControl(TCP_RST | TCP_ACK, this.sndNxt, now);
    this.targetFin = false;
    this.targetReset = false;
    this.timestamps = false;
    this.tsRecent = 0;
    this.dupAcks = 0;
    this.lastAckSeen = -1;
    this.startHandshake(now);
  }

  // ---- target replies ------------------------------------------------------------

  /**
   * A reply from the target (IP and TCP headers as intercept returned them).
   * `payloadLength` comes from the IP total length; `data` holds the payload
   * bytes intercept returned, if any.
   */
  onReply(pkt: TcpPacket, payloadLength: number, data: Buffer, now: number): void {
    this.lastReplyAt = now;
    const flags = pkt.flags;
    if (this.state === SessionState.CLOSED) return;
    if (this.state === SessionState.DONE) {
      // Our final ACK was lost: the target repeats its FIN. Answer as TIME_WAIT would.
      if (flags & TCP_FIN && !(flags & TCP_RST) && this.closedCleanly) this.sendControl(TCP_ACK, this.sndNxt, now);
      return;
    }
    if (this.state === SessionState.SYN_SENT) {
      this.onReplyWhileConnecting(pkt, flags, now);
      return;
    }
    if (flags & TCP_RST) {
      this.onTargetReset(now);
      return;
    }
    if (flags & TCP_SYN) {
      // A repeated SYN-ACK: our handshake ACK was lost.
      if (pkt.seq === this.targetIsn) this.ctx.markAckPending(this);
      return;
    }
    if (this.timestamps) {
      const tsVal = scratchOptions.timestampValue(pkt.buf, pkt.tcp + 20, pkt.payload);
      if (tsVal >= 0) this.tsRecent = tsVal;
    }
    this.peerWindow = pkt.window << this.peerWscale;

    // What the target acknowledges of ours.
    if (flags & TCP_ACK) {
      const acked = this.posOf(pkt.ack);
      if (this.probing) {
        // The answer to a window probe: a refused probe byte is simply sent again in order.
        this.probing = false;
        if (acked === this.sndUna) {
          this.sndNxt = this.sndUna;
          this.rtoAt = Infinity;
        }
      }
      if (acked > this.sndUna && acked <= this.sndNxt) {
        this.sndUna = acked;
        this.out.release(acked);
        this.dupAcks = 0;
        this.timer.acked(acked, now);
        this.rtoAt = this.sndUna === this.sndNxt ? Infinity : now + this.timer.rto;
        if (this.finSent && acked > this.finPos) this.finAcked = true;
      } else if (acked === this.sndUna && payloadLength === 0 && !(flags & TCP_FIN) && this.sndUna !== this.sndNxt && pkt.ack === this.lastAckSeen) {
        if (++this.dupAcks === 3) {
          this.ctx.stats.fastRetransmissions++;
          this.retransmit(now);
        }
      }
      this.lastAckSeen = pkt.ack;
    }

    // What the target sends us. We are its sink: everything up to the highest byte seen is taken,
    // so a reply intercept missed never stalls the target.
    if (payloadLength > 0) {
      const end = seqAdd(pkt.seq, payloadLength);
      const fresh = seqDiff(this.rcvNxt, end);
      if (fresh > 0) {
        // Hand the protocol only the new bytes, and say how many it never saw before them.
        const gap = Math.max(0, seqDiff(this.rcvNxt, pkt.seq));
        const newBytes = fresh - gap;
        const skip = payloadLength - newBytes;
        this.targetBytes += fresh;
        this.rcvNxt = end;
        this.driver.targetData(skip > 0 ? data.subarray(Math.min(skip, data.length)) : data, newBytes, gap);
        if (seqDiff(this.ackedUpTo, this.rcvNxt) >= 2 * this.targetMss) this.ctx.markAckPending(this);
        else if (this.ackAt === Infinity) this.ackAt = now + ACK_DELAY_MS;
      } else {
        this.ctx.markAckPending(this); // a repeat: our ACK was lost
      }
    }
    if (flags & TCP_FIN) {
      const finSeq = seqAdd(pkt.seq, payloadLength);
      if (!this.targetFin && seqGte(finSeq, this.rcvNxt)) {
        this.rcvNxt = seqAdd(finSeq, 1);
        this.targetFin = true;
        this.targetBytes += 1; // the client's ACK numbers count the server's FIN too
        this.driver.targetClose(false);
      }
      this.ctx.markAckPending(this);
    }
    this.pump(now);
    this.checkClosed(now);
    this.rearm();
  }

  private onReplyWhileConnecting(pkt: TcpPacket, flags: number, now: number): void {
    const synAck = TCP_SYN | TCP_ACK;
    if ((flags & synAck) === synAck && pkt.ack === ((this.isn + 1) >>> 0)) {
      this.targetIsn = pkt.seq;
      this.rcvNxt = seqAdd(pkt.seq, 1);
      scratchOptions.parse(pkt.buf, pkt.tcp + 20, pkt.payload);
      this.peerWscale = scratchOptions.wscale >= 0 ? scratchOptions.wscale : 0;
      this.targetMss = scratchOptions.mss > 0 ? scratchOptions.mss : 536;
      this.timestamps = scratchOptions.hasTimestamp;
      this.tsRecent = scratchOptions.tsVal;
      this.peerWindow = pkt.window; // never scaled in a SYN-ACK
      this.lastAckSeen = pkt.ack;
      if (!this.synRetransmitted) this.timer.sample(now - this.synSentAt);
      this.rtoAt = Infinity;
      this.state = SessionState.ESTABLISHED;
      this.ackPending = true;
      this.pump(now);
      // Nothing to send yet: the handshake still needs its ACK now.
      if (this.ackPending && this.state === SessionState.ESTABLISHED) this.sendControl(TCP_ACK, this.sndNxt, now);
      this.rearm();
      return;
    }
    if (flags & TCP_RST) {
      // Refused (the target's server is not up yet, or it dropped an old connection): try again soon.
      this.ctx.stats.synsRefused++;
      if (this.refusedSince < 0) this.refusedSince = now;
      this.rtoAt = now + (now - this.refusedSince < REFUSED_FAST_MS ? REFUSED_RETRY_MS : REFUSED_SLOW_RETRY_MS);
      this.rearm();
      return;
    }
    if (flags & TCP_ACK) {
      // The target still holds an older connection on these ports (e.g. TIME_WAIT it would not recycle):
      // reset that one, then send the SYN again.
      this.ctx.stats.staleConnectionResets++;
      const s = this.prepare(TCP_RST, 0, now);
      s.seq = pkt.ack;
      s.timestamps = false;
      this.emit();
      this.rtoAt = now + STALE_RETRY_MS;
      this.rearm();
    }
  }

  /**
   * The target reset the connection. With bytes left we reconnect; if the
   * client has not closed yet, more may still be captured, so the session waits.
   */
  private onTargetReset(now: number): void {
    if (this.hasRst || (this.finDelivered && this.out.endPos <= this.sndUna)) {
      this.finish(now, !this.finSent);
      return;
    }
    this.targetReset = true;
    this.driver.targetClose(true);
    this.rtoAt = Infinity;
    this.sndNxt = this.sndUna;
    this.pump(now);
    this.rearm();
  }

  /** Sends the ACK owed for target data (called once per batch of replies). */
  flushAck(now: number): void {
    if (!this.ackPending || this.state !== SessionState.ESTABLISHED) {
      this.ackPending = false;
      return;
    }
    this.sendControl(TCP_ACK, this.sndNxt, now);
  }

  private checkClosed(now: number): void {
    if (this.state !== SessionState.ESTABLISHED) return;
    if (this.finAcked && this.targetFin) {
      this.finish(now, false);
    } else if (this.finAcked && this.finWaitAt === Infinity) {
      // Our FIN is in; give the target a moment to close its side.
      this.finWaitAt = now + this.ctx.config.lingerMs;
    }
  }

  /** Ends the session; `aborted` sessions are counted apart from clean closes. */
  finish(now: number, aborted: boolean): void {
    if (this.state === SessionState.DONE) return;
    // Whatever the target sent last (its FIN above all) gets its ACK before we go quiet.
    if ((this.ackPending || this.ackedUpTo !== this.rcvNxt) && this.state === SessionState.ESTABLISHED && !this.targetReset) {
      this.sendControl(TCP_ACK, this.sndNxt, now);
    }
    this.closedCleanly = !aborted && this.targetFin;
    this.state = SessionState.DONE;
    if (aborted) this.ctx.stats.sessionsAborted++;
    else this.ctx.stats.sessionsCompleted++;
    this.driver.close();
    this.captured.clear();
    this.out.clear();
    this.release.idleAt = Infinity;
    // Its parts go now, not after lingering: most sessions alive under short connections are finished ones.
    this.driver = FINISHED.driver;
    this.release = FINISHED.release;
    this.captured = FINISHED.captured;
    this.out = FINISHED.out;
    this.timer = FINISHED.timer;
    this.rtoAt = this.gapAt = this.ackAt = this.probeAt = this.finWaitAt = Infinity;
    this.lingerAt = now + this.ctx.config.lingerMs;
    this.rearm();
  }

  /**
   * A packet of a connection the protocol refused: it stays refused while its packets keep coming
   * (each keeps the finished session around for the idle timeout, -k).
   */
  absorb(now: number): void {
    this.lingerAt = now + this.ctx.config.keepaliveTimeoutMs;
    this.rearm();
  }

  /** Closes the session now: an RST tells the target (used at shutdown and on timeouts). */
  abort(now: number): void {
    if (this.state === SessionState.ESTABLISHED && !this.targetReset) this.sendControl(TCP_RST | TCP_ACK, this.sndNxt, now);
    else if (this.state === SessionState.SYN_SENT) {
      const s = this.prepare(TCP_RST, 0, now);
      s.seq = seqAdd(this.isn, 1);
      this.emit();
    }
    this.finish(now, true);
  }

  /** Removes the session's route at intercept (when the engine forgets it). */
  unroute(): void {
    if (this.routed) this.ctx.routes.remove(this.route);
    this.routed = false;
  }

  // ---- timers ----------------------------------------------------------------------

  private waitingForTarget(): boolean {
    return this.state === SessionState.SYN_SENT || this.sndUna !== this.sndNxt || this.release.waiting || this.sendHeld;
  }

  private rearm(): void {
    const cfg = this.ctx.config;
    // What nothing waits on to the millisecond (a finished session forgotten, a target slow to close, -t, -k, a
    // handshake given up) falls on SOFT_DEADLINE_GRAIN_MS marks.
    let soft = Math.min(this.lingerAt, this.finWaitAt);
    if (this.state !== SessionState.DONE) {
      soft = Math.min(
        soft,
        this.waitingForTarget() ? this.lastReplyAt + cfg.sessionTimeoutMs : this.lastActivityAt + cfg.keepaliveTimeoutMs,
        this.state === SessionState.SYN_SENT ? this.handshakeStartedAt + cfg.handshakeTimeoutMs : Infinity,
      );
    }
    if (soft !== Infinity) soft = Math.ceil(soft / SOFT_DEADLINE_GRAIN_MS) * SOFT_DEADLINE_GRAIN_MS;
    const precise = Math.min(this.rtoAt, this.release.idleAt, this.gapAt, this.ackAt, this.probeAt);
    const d = Math.min(precise, soft);
    const earlier = d < this.deadline;
    const later = d > this.deadline;
    this.deadline = d;
    // A deadline that moved later stays filed where it was (the wheel re-files it when that slot comes: no work
    // per ACK while data flows), except when only soft ones are left: a delayed ACK or an RTO just cleared would
    // otherwise wake tcpcopy once per connection for nothing.
    if (earlier || this.wheelSlot < 0 || (later && precise === Infinity)) this.ctx.wheel.arm(this);
  }

  onDeadline(now: number): void {
    const cfg = this.ctx.config;
    if (this.state === SessionState.DONE) {
      if (now >= this.lingerAt) {
        this.deadline = Infinity;
        this.ctx.sessionFinished(this);
        return;
      }
      this.rearm();
      return;
    }
    if (this.state === SessionState.SYN_SENT && now >= this.handshakeStartedAt + cfg.handshakeTimeoutMs) {
      this.ctx.stats.handshakeTimeouts++;
      this.ctx.unfinished(this.describe(), this.refusedSince >= 0 ? 'target refused' : 'handshake timeout');
      if (this.refusedSince >= 0) {
        this.ctx.warn(`the target refused ${this.describe()} (RST to every SYN for ${now - this.refusedSince} ms): ` +
          `is its server listening on ${formatIpv4(this.route.targetIp)}:${this.route.targetPort}?`);
      } else {
        this.ctx.warn(`no handshake with the target for ${this.describe()} after ${cfg.handshakeTimeoutMs} ms: check that the target routes replies to intercept`);
      }
      this.abort(now);
      return;
    }
    const waiting = this.waitingForTarget();
    if (waiting && now >= this.lastReplyAt + cfg.sessionTimeoutMs) {
      this.ctx.stats.sessionTimeouts++;
      this.ctx.unfinished(this.describe(), 'session timeout');
      this.abort(now);
      return;
    }
    if (!waiting && now >= this.lastActivityAt + cfg.keepaliveTimeoutMs) {
      this.ctx.stats.idleTimeouts++;
      this.abort(now);
      return;
    }
    if (now >= this.finWaitAt) {
      // Everything of ours arrived; the target did not close its side in time. Not a failure.
      this.finWaitAt = Infinity;
      this.sendControl(TCP_RST | TCP_ACK, this.sndNxt, now);
      this.finish(now, false);
      return;
    }
    if (now >= this.probeAt) {
      this.probeAt = Infinity;
      // One byte beyond the closed window: the target's ACK tells its window again. RTO repeats it, backing off.
      if (this.state === SessionState.ESTABLISHED && this.sndUna === this.sndNxt && this.sndNxt < this.out.endPos && this.peerWindow === 0) {
        this.ctx.stats.windowProbes++;
        this.sendData(this.sndNxt, 1, false, now);
        this.timer.retransmitted(); // a probe's ACK may not cover it: no sample
        this.sndNxt += 1;
        this.probing = true;
        this.rtoAt = now + this.timer.rto;
      }
    }
    if (now >= this.ackAt) {
      this.ackAt = Infinity;
      if (this.state === SessionState.ESTABLISHED && this.ackedUpTo !== this.rcvNxt) this.sendControl(TCP_ACK, this.sndNxt, now);
    }
    if (now >= this.rtoAt) {
      this.rtoAt = Infinity;
      if (this.state === SessionState.SYN_SENT && this.refusedSince < 0 && now - this.handshakeStartedAt >= SLOW_HANDSHAKE_MS) {
        this.ctx.slowHandshake(this.describe(), now - this.handshakeStartedAt);
      }
      if (this.state === SessionState.SYN_SENT || this.sndUna !== this.sndNxt) {
        this.retransmit(now);
        // A SYN sent again after a refusal is not a timeout: no backoff.
        if (this.refusedSince < 0 || this.state !== SessionState.SYN_SENT) this.timer.backoff();
        this.rtoAt = now + this.timer.rto;
      }
    }
    if (now >= this.release.idleAt) {
      this.release.idleAt = Infinity;
      if (this.release.waiting) this.idleRelease(now);
    }
    if (now >= this.gapAt) this.skipGap(now);
    this.rearm();
  }

  /** The target has been quiet while data waits: it answered less than the online server did. Let the data go. */
  private idleRelease(now: number): void {
    const cfg = this.ctx.config;
    const quietSince = Math.max(this.lastReplyAt, this.lastActivityAt);
    if (this.sndUna !== this.sndNxt || now - quietSince < cfg.idleReleaseMs) {
      this.release.idleAt = Math.max(now + 1, quietSince + cfg.idleReleaseMs);
      return;
    }
    const c = this.out.chunkAt(this.sndNxt);
    this.release.released(c ? c.serverBytes : this.finDelivered ? this.finServerBytes : this.rstServerBytes, this.targetBytes);
    if (c) c.released = true;
    else this.release.closeForced = true;
    this.driver.idleRelease(c ? c.tag : CLOSE_TAG);
    this.ctx.stats.idleReleases++;
    this.pump(now);
  }
}
