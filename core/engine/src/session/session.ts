import { sumBytes } from '../decode/checksum';
import { seqAdd, seqDiff, seqGt, seqGte, seqLte } from '../decode/seq';
import { TcpOptions } from '../decode/tcp-options';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpPacket } from '../decode/tcp-packet';
import type { Route } from '../intercept/route-registry';
import { ProtocolDriver } from '../protocol/protocol-driver';
import { ClientStream } from './client-stream';
import type { EngineContext } from './engine-context';
import type { WheelEntry } from './timer-wheel';

export enum SessionState {
  /** Nothing sent to the target yet. */
  CLOSED,
  SYN_SENT,
  ESTABLISHED,
  /** Finished; kept for a moment to absorb late replies. */
  DONE,
}

const INITIAL_RTO_MS = 200;
const MAX_RTO_MS = 3_000;
const MIN_RTO_MS = 30;
/** Wait after a stale connection on the target was reset before the SYN goes again. */
const STALE_RETRY_MS = 10;
/** A session whose target spoke this recently may still be answering (kept busy at the end of a capture). */
const QUIET_MS = 100;

const scratchOptions = new TcpOptions();
/** Reused for every gate question (protocols must not keep it). */
const releaseQuery = { onlineServerBytes: 0, targetServerBytes: 0 };

/**
 * One emulated client connection. Sequence numbers come in three spaces:
 * "capture" (the client's own numbers, as captured), "out" (capture + shift,
 * what the target sees; the shift makes every replay start from a fresh ISN),
 * and the target's own space (for the ACKs we send).
 */
export class Session implements WheelEntry {
  deadline = Infinity;
  wheelSlot = -1;
  /** Next session in the same hash bucket (engine-owned). */
  nextInBucket: Session | null = null;
  nextInReplyBucket: Session | null = null;

  state = SessionState.CLOSED;
  readonly route: Route;
  private routed = false;

  /** Whether the client's SYN was captured (else the handshake is faked). */
  sawSyn = false;
  /** ISN in capture space: the captured SYN's, or one before the first byte we replay. */
  capIsn = 0;
  private synMss = -1;
  /** out = capture + shift (mod 2^32). */
  private shift = 0;

  readonly stream = new ClientStream();
  /** Oldest byte (capture space) the target has not acknowledged. */
  sndUna = 0;
  /** Next byte (capture space) to send. */
  sndNxt = 0;
  private haveSeq = false;

  /** The client's FIN: its sequence number (capture space) and what the client had received then. */
  private finSeq = 0;
  private hasFin = false;
  private finServerBytes = 0;
  private finSent = false;
  private finAcked = false;
  private hasRst = false;
  private rstServerBytes = 0;

  /** Online ACK value that stands for "no server byte received yet". */
  private ackBase = 0;
  private haveAckBase = false;

  private targetIsn = 0;
  /** Next target byte expected: the ACK we send. */
  private rcvNxt = 0;
  /** Payload bytes received from the target on this connection. */
  private targetBytes = 0;
  /** Added to targetBytes when comparing with online byte counts (after fallbacks and reconnects). */
  private gateAdjust = 0;
  private targetFin = false;
  /** The target reset the connection; the client side may still have more to say. */
  private targetReset = false;
  private peerWindow = 65535;
  private peerWscale = 0;
  private targetMss = 536;
  private timestamps = false;
  private tsRecent = 0;
  private lastAckSeen = -1;
  private dupAcks = 0;
  ackPending = false;
  /** Finished with both FINs exchanged: late FIN repeats get an ACK. */
  private closedCleanly = false;

  private ipId: number;
  private synSentAt = 0;
  private handshakeStartedAt = 0;
  private rto = INITIAL_RTO_MS;
  private rtoAt = Infinity;
  private gateAt = Infinity;
  private gateWaiting = false;
  private lingerAt = Infinity;
  private finWaitAt = Infinity;
  private lastReplyAt: number;
  private lastActivityAt: number;
  /** Created at the first handshake, when it is known whether the connection's start was captured. */
  private driver!: ProtocolDriver;

  constructor(
    private readonly ctx: EngineContext,
    readonly clientIp: number,
    readonly clientPort: number,
    readonly serverIp: number,
    readonly serverPort: number,
    outClientIp: number,
    outClientPort: number,
    targetIp: number,
    targetPort: number,
    readonly pass: number,
    now: number,
  ) {
    this.route = {
      clientIp: outClientIp,
      clientPort: outClientPort,
      targetIp,
      targetPort,
      payloadBytes: ctx.protocol.replyPayloadBytes,
    };
    this.ipId = (Math.random() * 65536) | 0;
    this.lastReplyAt = now;
    this.lastActivityAt = now;
  }

  private newDriver(): ProtocolDriver {
    return new ProtocolDriver(
      this.ctx.protocol,
      {
        clientIp: this.clientIp,
        clientPort: this.clientPort,
        targetIp: this.route.targetIp,
        targetPort: this.route.targetPort,
        sawHandshake: this.sawSyn,
      },
      (hook, err) => {
        this.ctx.stats.protocolFaults++;
        this.ctx.warn(`protocol ${this.ctx.protocol.name} failed in ${hook} (connection ${this.describe()}): ${(err as Error)?.message ?? err}`);
      },
    );
  }

  describe(): string {
    const ip = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    return `${ip(this.clientIp)}:${this.clientPort}->${ip(this.serverIp)}:${this.serverPort}`;
  }

  get finished(): boolean {
    return this.state === SessionState.DONE;
  }

  /** True while the session owes the target data or awaits its answer. */
  busy(now: number): boolean {
    if (this.state === SessionState.DONE) return false;
    if (this.state === SessionState.SYN_SENT) return true;
    if (this.state === SessionState.CLOSED) return this.stream.size > 0 || this.hasFin || this.hasRst;
    if (this.sndUna !== this.sndNxt || this.stream.size > 0) return true;
    if ((this.hasFin && !this.finAcked) || this.hasRst) return true;
    return now - this.lastReplyAt < QUIET_MS;
  }

  // ---- captured client packets -------------------------------------------------

  /** The client's SYN was captured: the connection is replayed from its start. */
  onCapturedSyn(pkt: TcpPacket, now: number): void {
    this.sawSyn = true;
    this.capIsn = pkt.seq;
    this.sndUna = this.sndNxt = seqAdd(pkt.seq, 1);
    this.haveSeq = true;
    scratchOptions.parse(pkt.buf, pkt.tcp + 20, pkt.payload);
    this.synMss = scratchOptions.mss;
    this.lastActivityAt = now;
    this.startHandshake(now);
  }

  /** A captured non-SYN client packet of this connection. */
  onCaptured(pkt: TcpPacket, now: number): void {
    this.lastActivityAt = now;
    const flags = pkt.flags;
    const len = pkt.payloadLength;
    if (flags & TCP_ACK) {
      if (!this.haveAckBase) {
        // The handshake's ACK (or, mid-stream, the first packet) marks zero server bytes received.
        this.ackBase = pkt.ack;
        this.haveAckBase = true;
      }
    }
    const serverBytes = this.serverBytesAt(pkt);
    if (!this.haveSeq) {
      this.sndUna = this.sndNxt = pkt.seq;
      this.capIsn = seqAdd(pkt.seq, -1);
      this.haveSeq = true;
    }
    let added = false;
    if (len > 0) {
      added = this.stream.add(this.sndNxt, pkt.seq, pkt.buf, pkt.payload, len, serverBytes);
      if (!added) this.ctx.stats.capturedDuplicates++;
    }
    if (flags & TCP_FIN && !this.hasFin) {
      this.hasFin = true;
      this.finSeq = seqAdd(pkt.seq, len);
      this.finServerBytes = serverBytes;
      added = true;
    }
    if (flags & TCP_RST && !this.hasRst) {
      this.hasRst = true;
      this.rstServerBytes = serverBytes;
      added = true;
    }
    if (added) this.pump(now);
  }

  private serverBytesAt(pkt: TcpPacket): number {
    if (!(pkt.flags & TCP_ACK) || !this.haveAckBase) return 0;
    const d = seqDiff(this.ackBase, pkt.ack);
    return d > 0 ? d : 0;
  }

  // ---- sending -------------------------------------------------------------------

  private startHandshake(now: number): void {
    if (!this.haveSeq) return;
    if (!this.routed) {
      this.ctx.routes.add(this.route);
      this.routed = true;
    }
    // One protocol session per connection to the target (a reconnect closes the old one first).
    this.driver = this.newDriver();
    this.shift = (this.ctx.isnClock(now) - this.capIsn) >>> 0;
    this.state = SessionState.SYN_SENT;
    this.handshakeStartedAt = now;
    this.rto = INITIAL_RTO_MS;
    this.sendSyn(now);
  }

  private sendSyn(now: number): void {
    const s = this.prepare(TCP_SYN, this.capIsn, 0, now);
    s.ack = 0;
    s.mss = this.synMss > 0 ? this.synMss : this.ctx.config.mss;
    s.timestamps = true;
    s.tsEcr = 0;
    this.synSentAt = now;
    this.emit();
    this.rtoAt = now + this.rto;
    this.rearm();
  }

  private prepare(flags: number, capSeq: number, ack: number, now: number) {
    const s = this.ctx.spec;
    s.srcIp = this.route.clientIp;
    s.srcPort = this.route.clientPort;
    s.dstIp = this.route.targetIp;
    s.dstPort = this.route.targetPort;
    s.ipId = this.ipId = (this.ipId + 1) & 0xffff;
    s.seq = (capSeq + this.shift) >>> 0;
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

  private sendControl(flags: number, capSeq: number, now: number): void {
    this.prepare(flags, capSeq, this.rcvNxt, now);
    this.emit();
    if (flags & TCP_ACK) this.ackPending = false;
  }

  /** Largest payload per packet: the target's MSS, bounded by our MTU. */
  private segmentSize(): number {
    const byMtu = this.ctx.config.mtu - 40 - (this.timestamps ? 12 : 0);
    return Math.max(1, Math.min(this.targetMss, byMtu));
  }

  /** Client data may go once the target has sent at least what the online server had (the protocol may decide otherwise). */
  private gateOpen(serverBytes: number, now: number): boolean {
    const have = this.targetBytes + this.gateAdjust;
    if (serverBytes <= have) return true;
    releaseQuery.onlineServerBytes = serverBytes;
    releaseQuery.targetServerBytes = have;
    if (this.driver.mayRelease(releaseQuery)) return true;
    if (!this.gateWaiting) {
      this.gateWaiting = true;
      this.gateAt = now + this.ctx.config.gateIdleMs;
      this.rearm();
    }
    return false;
  }

  /** Sends whatever the target may take now. */
  pump(now: number): void {
    if (this.state === SessionState.CLOSED) {
      if (this.stream.size > 0 || this.hasFin) this.beginFaked(now);
      return;
    }
    if (this.state !== SessionState.ESTABLISHED) return;
    // Held segments are exactly the data the target has not acknowledged yet.
    if ((this.targetFin || this.targetReset) && this.stream.size > 0) {
      // The target closed while requests remain: reconnect and go on with them.
      this.reconnect(now, !this.targetReset);
      return;
    }
    if (this.targetReset) {
      // Nothing to send on a reset connection; once the client closes too, we are done.
      if (this.hasFin || this.hasRst) this.finish(now, false);
      return;
    }
    const mss = this.segmentSize();
    let sent = false;
    for (let guard = 0; guard < 1_000_000; guard++) {
      const idx = this.stream.find(this.sndNxt);
      if (idx < 0) break;
      const seg = this.stream.at(idx);
      if (seqGt(seg.seq, this.sndNxt)) break; // a hole in the capture: wait for the client's retransmission
      if (!this.gateOpen(seg.serverBytes, now)) break;
      const off = seqDiff(seg.seq, this.sndNxt);
      const inFlight = seqDiff(this.sndUna, this.sndNxt);
      let len = Math.min(seg.length - off, mss);
      if (inFlight + len > this.peerWindow) {
        len = this.peerWindow - inFlight;
        if (len <= 0 || (len < mss && inFlight > 0)) break; // wait for the window to open
      }
      const end = seqAdd(this.sndNxt, len);
      const withFin = this.hasFin && !this.finSent && end === this.finSeq && off + len === seg.length &&
        this.stream.size === idx + 1 && this.gateOpenQuiet(this.finServerBytes);
      this.sendData(seg.data, off, len, off === 0 && len === seg.length ? seg.sum : -1, this.sndNxt, withFin, now);
      this.sndNxt = end;
      if (withFin) this.markFinSent();
      sent = true;
    }
    if (!sent && this.sndNxt === this.stream.end(this.sndNxt)) {
      if (this.hasFin && !this.finSent && this.sndNxt === this.finSeq && this.gateOpen(this.finServerBytes, now)) {
        this.sendControl(TCP_FIN | TCP_ACK, this.sndNxt, now);
        this.markFinSent();
        sent = true;
      } else if (this.hasRst && this.gateOpen(this.rstServerBytes, now)) {
        this.sendControl(TCP_RST | TCP_ACK, this.sndNxt, now);
        this.finish(now, true);
        return;
      }
    }
    if (sent) {
      this.gateWaiting = false;
      this.gateAt = Infinity;
      this.lastActivityAt = now;
      if (this.rtoAt === Infinity) this.rtoAt = now + this.rto;
      this.rearm();
    }
  }

  private gateOpenQuiet(serverBytes: number): boolean {
    return serverBytes <= this.targetBytes + this.gateAdjust;
  }

  private markFinSent(): void {
    this.finSent = true;
    this.sndNxt = seqAdd(this.finSeq, 1);
  }

  private sendData(data: Buffer, off: number, len: number, sum: number, capSeq: number, fin: boolean, now: number): void {
    const s = this.prepare(TCP_ACK | TCP_PSH | (fin ? TCP_FIN : 0), capSeq, this.rcvNxt, now);
    s.payload = data;
    s.payloadOffset = off;
    s.payloadLength = len;
    s.payloadSum = sum >= 0 ? sum : sumBytes(data, off, off + len);
    this.emit();
    this.ackPending = false;
  }

  /** Resends the oldest unacknowledged segment (one per trigger, as TCP does). */
  private retransmit(now: number): void {
    if (this.state === SessionState.SYN_SENT) {
      this.sendSyn(now);
      return;
    }
    if (this.sndUna === this.sndNxt) return;
    this.ctx.stats.retransmissions++;
    if (this.finSent && this.sndUna === this.finSeq) {
      this.sendControl(TCP_FIN | TCP_ACK, this.finSeq, now);
      return;
    }
    const idx = this.stream.find(this.sndUna);
    if (idx < 0) return;
    const seg = this.stream.at(idx);
    const off = Math.max(0, seqDiff(seg.seq, this.sndUna));
    const capSeq = seqAdd(seg.seq, off);
    const len = Math.min(seg.length - off, this.segmentSize(), Math.max(1, seqDiff(capSeq, this.sndNxt)));
    const end = seqAdd(capSeq, len);
    const fin = this.finSent && end === this.finSeq;
    this.sendData(seg.data, off, len, off === 0 && len === seg.length ? seg.sum : -1, capSeq, fin, now);
  }

  /** A connection whose start was not captured: fake the handshake from the first byte we have. */
  private beginFaked(now: number): void {
    if (this.ctx.config.onlyFullSessions && !this.sawSyn) return;
    if (!this.sawSyn) this.ctx.stats.sessionsFakedHandshake++;
    this.capIsn = seqAdd(this.sndNxt, -1);
    this.startHandshake(now);
  }

  /**
   * The target went away (FIN or RST) while requests remain: a new connection
   * carries the rest, from the first byte the target did not acknowledge.
   */
  private reconnect(now: number, resetOld: boolean): void {
    this.ctx.stats.sessionsReconstructed++;
    if (resetOld) this.sendControl(TCP_RST | TCP_ACK, this.sndNxt, now);
    // Keep the server-byte scale continuous across connections.
    this.gateAdjust += this.targetBytes;
    this.targetBytes = 0;
    this.targetFin = false;
    this.targetReset = false;
    this.timestamps = false;
    this.tsRecent = 0;
    this.dupAcks = 0;
    this.lastAckSeen = -1;
    this.sndNxt = this.sndUna;
    this.finSent = false;
    this.capIsn = seqAdd(this.sndUna, -1);
    this.driver.close();
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
      if (flags & TCP_FIN && !(flags & TCP_RST) && this.closedCleanly) {
        this.sendControl(TCP_ACK, this.sndNxt, now);
      }
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
      scratchOptions.parse(pkt.buf, pkt.tcp + 20, pkt.payload);
      if (scratchOptions.hasTimestamp) this.tsRecent = scratchOptions.tsVal;
    }
    this.peerWindow = pkt.window << this.peerWscale;

    // What the target acknowledges of ours.
    if (flags & TCP_ACK) {
      const acked = (pkt.ack - this.shift) >>> 0;
      if (seqGt(acked, this.sndUna) && seqLte(acked, this.sndNxt)) {
        this.sndUna = acked;
        this.stream.release(acked);
        this.dupAcks = 0;
        this.rto = Math.max(MIN_RTO_MS, Math.min(this.rto, INITIAL_RTO_MS));
        this.rtoAt = this.sndUna === this.sndNxt ? Infinity : now + this.rto;
        if (this.finSent && seqGt(acked, this.finSeq)) this.finAcked = true;
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
      if (seqGt(end, this.rcvNxt)) {
        this.targetBytes += seqDiff(this.rcvNxt, end);
        this.rcvNxt = end;
        this.driver.onTargetData(payloadLength, data);
      }
      this.ctx.markAckPending(this);
    }
    if (flags & TCP_FIN) {
      const finSeq = seqAdd(pkt.seq, payloadLength);
      if (!this.targetFin && seqGte(finSeq, this.rcvNxt)) {
        this.rcvNxt = seqAdd(finSeq, 1);
        this.targetFin = true;
        // The client's ACK numbers count the server's FIN too: keep both scales alike.
        this.targetBytes += 1;
      }
      this.ctx.markAckPending(this);
    }
    this.pump(now);
    this.checkClosed(now);
    this.rearm();
  }

  private onReplyWhileConnecting(pkt: TcpPacket, flags: number, now: number): void {
    const synAck = TCP_SYN | TCP_ACK;
    if ((flags & synAck) === synAck && pkt.ack === ((this.capIsn + 1 + this.shift) >>> 0)) {
      this.targetIsn = pkt.seq;
      this.rcvNxt = seqAdd(pkt.seq, 1);
      scratchOptions.parse(pkt.buf, pkt.tcp + 20, pkt.payload);
      this.peerWscale = scratchOptions.wscale >= 0 ? scratchOptions.wscale : 0;
      this.targetMss = scratchOptions.mss > 0 ? scratchOptions.mss : 536;
      this.timestamps = scratchOptions.hasTimestamp;
      this.tsRecent = scratchOptions.tsVal;
      this.peerWindow = pkt.window; // never scaled in a SYN-ACK
      this.lastAckSeen = pkt.ack;
      const rtt = now - this.synSentAt;
      this.rto = Math.min(MAX_RTO_MS, Math.max(MIN_RTO_MS, 4 * rtt));
      this.rtoAt = Infinity;
      this.state = SessionState.ESTABLISHED;
      this.ackPending = true;
      this.pump(now);
      // Nothing to send yet: the handshake still needs its ACK now.
      if (this.ackPending) this.sendControl(TCP_ACK, this.sndNxt, now);
      this.rearm();
      return;
    }
    if (flags & TCP_RST) {
      // Refused (the target's server is not up yet, or it dropped an old connection): retry with backoff.
      this.rtoAt = now + this.rto;
      this.rearm();
      return;
    }
    if (flags & TCP_ACK) {
      // The target still holds an older connection on these ports (e.g. TIME_WAIT it would not recycle):
      // reset that one, then send the SYN again.
      this.ctx.stats.staleConnectionResets++;
      const s = this.prepare(TCP_RST, 0, 0, now);
      s.seq = pkt.ack;
      s.timestamps = false;
      this.emit();
      this.rtoAt = now + STALE_RETRY_MS;
      this.rearm();
    }
  }

  /**
   * The target reset the connection. With client data left we reconnect; if the
   * client has not closed yet, more may still be captured, so the session waits.
   */
  private onTargetReset(now: number): void {
    if (this.hasRst || (this.hasFin && this.stream.size === 0)) {
      this.finish(now, !this.finSent);
      return;
    }
    this.targetReset = true;
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
    if (this.ackPending && this.state === SessionState.ESTABLISHED && !this.targetReset) {
      this.sendControl(TCP_ACK, this.sndNxt, now);
    }
    this.closedCleanly = !aborted && this.targetFin;
    this.state = SessionState.DONE;
    if (aborted) this.ctx.stats.sessionsAborted++;
    else this.ctx.stats.sessionsCompleted++;
    this.driver?.close();
    this.stream.clear();
    this.rtoAt = this.gateAt = this.finWaitAt = Infinity;
    this.lingerAt = now + this.ctx.config.lingerMs;
    this.rearm();
  }

  /** Closes the session now: an RST tells the target (used at shutdown and on timeouts). */
  abort(now: number): void {
    if (this.state === SessionState.ESTABLISHED && !this.targetReset) this.sendControl(TCP_RST | TCP_ACK, this.sndNxt, now);
    else if (this.state === SessionState.SYN_SENT) {
      this.prepare(TCP_RST, seqAdd(this.capIsn, 1), 0, now);
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

  private rearm(): void {
    const cfg = this.ctx.config;
    let d = Math.min(this.rtoAt, this.gateAt, this.lingerAt, this.finWaitAt);
    if (this.state !== SessionState.DONE) {
      const waiting = this.state === SessionState.SYN_SENT || this.sndUna !== this.sndNxt || this.gateWaiting;
      d = Math.min(
        d,
        waiting ? this.lastReplyAt + cfg.sessionTimeoutMs : this.lastActivityAt + cfg.keepaliveTimeoutMs,
        this.state === SessionState.SYN_SENT ? this.handshakeStartedAt + cfg.handshakeTimeoutMs : Infinity,
      );
    }
    const earlier = d < this.deadline;
    this.deadline = d;
    if (earlier || this.wheelSlot < 0) this.ctx.wheel.arm(this);
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
      this.ctx.warn(`no handshake with the target for ${this.describe()} after ${cfg.handshakeTimeoutMs} ms: check that the target routes replies to intercept`);
      this.abort(now);
      return;
    }
    const waiting = this.state === SessionState.SYN_SENT || this.sndUna !== this.sndNxt || this.gateWaiting;
    if (waiting && now >= this.lastReplyAt + cfg.sessionTimeoutMs) {
      this.ctx.stats.sessionTimeouts++;
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
    if (now >= this.rtoAt) {
      this.rtoAt = Infinity;
      if (this.state === SessionState.SYN_SENT || this.sndUna !== this.sndNxt) {
        this.retransmit(now);
        this.rto = Math.min(MAX_RTO_MS, this.rto * 2);
        this.rtoAt = now + this.rto;
      }
    }
    if (now >= this.gateAt) {
      this.gateAt = Infinity;
      if (this.gateWaiting) {
        const quietSince = Math.max(this.lastReplyAt, this.lastActivityAt);
        if (this.sndUna === this.sndNxt && now - quietSince >= cfg.gateIdleMs) {
          // The target answered less than the online server did: stop waiting for the difference.
          const next = this.nextServerBytes();
          const have = this.targetBytes + this.gateAdjust;
          if (next > have) this.gateAdjust += next - have;
          this.ctx.stats.gateFallbacks++;
          this.gateWaiting = false;
          this.pump(now);
        } else {
          this.gateAt = Math.max(now + 1, quietSince + cfg.gateIdleMs);
        }
      }
    }
    this.rearm();
  }

  private nextServerBytes(): number {
    const idx = this.stream.find(this.sndNxt);
    if (idx >= 0) return this.stream.at(idx).serverBytes;
    if (this.hasFin && !this.finSent) return this.finServerBytes;
    if (this.hasRst) return this.rstServerBytes;
    return 0;
  }
}
