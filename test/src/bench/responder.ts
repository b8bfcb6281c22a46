// The bench's simulated target, inside the process: a sink that counts what the engine sends and, without
// copying it, notes what a TCP server would answer; then those answers are crafted as header-only replies
// (what intercept returns) in one reusable buffer and fed to the engine.
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpPacket, type PacketSink, type ReplayEngine } from '@tcpcopy/core';

/** The packet view class of the engine under test (another checkout's, with --engine-against). */
export type PacketViewClass = new () => TcpPacket;

const EMPTY = Buffer.alloc(0);
const TARGET_MSS = 1460;
/** Payload per reply segment: the MSS less the timestamp option every segment carries. */
const SEGMENT = TARGET_MSS - 12;

/** The target's side of one connection. */
class TargetConn {
  ip = 0;
  port = 0;
  isn = 0;
  rcvNxt = 0;
  sndNxt = 0;
  /** Request bytes received and not yet answered. */
  pendingBytes = 0;
  owedSynAck = false;
  owedResponses = 0;
  owedFin = false;
  /** Out-of-order data: a duplicate ACK is owed. */
  owedAck = false;
  finSent = false;
  queued = false;
}

export class SimulatedTarget implements PacketSink {
  readonly stats = { sent: 0, failed: 0, queued: 0 };
  requestsAnswered = 0;
  repliesSent = 0;
  private engine!: ReplayEngine;
  private readonly conns = new Map<number, TargetConn>();
  /** Connections owing an answer: queue[0, owing) (a count, not `length = 0`, which is a slow runtime call per batch). */
  private readonly queue: TargetConn[] = [];
  private owing = 0;
  private readonly seen: TcpPacket;
  private readonly reply: Buffer;
  private readonly synReply: Buffer;
  private readonly replyView: TcpPacket;
  private isnCounter = 1;

  constructor(
    private readonly targetIp: number,
    private readonly targetPort: number,
    /** Each this many request bytes get one response (requests come one segment each, but need not). */
    private readonly requestBytes: number,
    private readonly responseBytes: number,
    PacketView: PacketViewClass = TcpPacket,
  ) {
    this.seen = new PacketView();
    this.replyView = new PacketView();
    this.reply = replyTemplate(targetIp, targetPort, false);
    this.synReply = replyTemplate(targetIp, targetPort, true);
  }

  attach(engine: ReplayEngine): void {
    this.engine = engine;
  }

  /** Connections the target still holds (closed ones are forgotten once our FIN is acknowledged). */
  get open(): number {
    return this.conns.size;
  }

  // ---- PacketSink: called from inside the engine; reads the packet in place, answers later ----

  send(buf: Buffer, offset: number, length: number): void {
    this.stats.sent++;
    const v = this.seen;
    v.decode(buf, offset, length);
    const key = connKey(v.srcIp, v.srcPort);
    const flags = v.flags;
    let c = this.conns.get(key);
    if (c && (c.ip !== v.srcIp || c.port !== v.srcPort)) {
      throw new Error(`the simulated target's connection key ${key} is shared by two clients: their addresses must differ in the low 16 bits`);
    }
    if (flags & TCP_RST) {
      this.conns.delete(key);
      return;
    }
    if (flags & TCP_SYN) {
      if (!c) this.conns.set(key, (c = new TargetConn()));
      c.ip = v.srcIp;
      c.port = v.srcPort;
      c.isn = Math.imul(this.isnCounter++, 0x2545f491) >>> 0;
      c.rcvNxt = (v.seq + 1) >>> 0;
      c.sndNxt = (c.isn + 1) >>> 0;
      c.owedSynAck = true;
      this.enqueue(c);
      return;
    }
    if (!c) return;
    const len = v.payloadLength;
    const fin = (flags & TCP_FIN) !== 0;
    if (len === 0 && !fin) {
      // A pure ACK: once it covers our FIN the connection is over.
      if (c.finSent && v.ack === c.sndNxt) this.conns.delete(key);
      return;
    }
    if (v.seq !== c.rcvNxt) {
      c.owedAck = true;
    } else {
      c.rcvNxt = (c.rcvNxt + len + (fin ? 1 : 0)) >>> 0;
      c.pendingBytes += len;
      while (c.pendingBytes >= this.requestBytes) {
        c.pendingBytes -= this.requestBytes;
        c.owedResponses++;
      }
      if (fin) c.owedFin = true;
      else if (c.owedResponses === 0) c.owedAck = true; // part of a request: ACK it
    }
    this.enqueue(c);
  }

  close(): void {}

  private enqueue(c: TargetConn): void {
    if (c.queued) return;
    c.queued = true;
    this.queue[this.owing++] = c;
  }

  // ---- the target's answers ----

  /** Answers everything owed, in batches followed by engine.flush() as the intercept channel does, until quiet. */
  deliver(now: number): void {
    const q = this.queue;
    while (this.owing > 0) {
      // Answering may make the engine send more, which appends to the queue: it is walked as it grows.
      for (let k = 0; k < this.owing; k++) {
        const c = q[k];
        c.queued = false;
        this.answer(c, now);
      }
      this.owing = 0;
      this.engine.flush(now);
    }
  }

  private answer(c: TargetConn, now: number): void {
    if (c.owedSynAck) {
      c.owedSynAck = false;
      this.emit(c, c.isn, TCP_SYN | TCP_ACK, 0, now);
    }
    let answered = false;
    while (c.owedResponses > 0) {
      c.owedResponses--;
      for (let off = 0; off < this.responseBytes; off += SEGMENT) {
        const len = Math.min(SEGMENT, this.responseBytes - off);
        const seq = c.sndNxt;
        // Advanced before the engine sees the reply: it may answer (ACK) from inside handleReply.
        c.sndNxt = (seq + len) >>> 0;
        this.emit(c, seq, off + len >= this.responseBytes ? TCP_ACK | TCP_PSH : TCP_ACK, len, now);
      }
      this.requestsAnswered++;
      answered = true;
    }
    if (c.owedFin) {
      // The client closed: the server closes too (FIN-ACK, as after "Connection: close").
      c.owedFin = false;
      c.finSent = true;
      c.sndNxt = (c.sndNxt + 1) >>> 0;
      this.emit(c, (c.sndNxt - 1) >>> 0, TCP_FIN | TCP_ACK, 0, now);
      answered = true;
    }
    if (c.owedAck && !answered) this.emit(c, c.sndNxt, TCP_ACK, 0, now);
    c.owedAck = false;
  }

  /**
   * One header-only reply: IPv4 + TCP (timestamps; MSS and window scale too on a SYN-ACK). The IP total
   * length counts `payload` bytes that are not there, as in what intercept sends back. Checksums stay 0:
   * nothing checks them on this path (the TCP one covers bytes intercept leaves out). The fields that
   * never change are in the two templates already; only the reply's own ones are written here.
   */
  private emit(c: TargetConn, seq: number, flags: number, payload: number, now: number): void {
    const syn = (flags & TCP_SYN) !== 0;
    const b = syn ? this.synReply : this.reply;
    const headers = syn ? 60 : 52;
    put16(b, 2, headers + payload);
    put32(b, 16, c.ip);
    put16(b, 22, c.port);
    put32(b, 24, seq);
    put32(b, 28, c.rcvNxt);
    b[33] = flags;
    put32(b, headers - 8, this.repliesSent >>> 0); // TSval
    const v = this.replyView;
    v.decode(b, 0, headers); // TRUNCATED when payload > 0: expected for a header-only reply
    this.repliesSent++;
    this.engine.handleReply(v, payload, EMPTY, now);
  }
}

/** A reply's fixed fields: from the target's address and port, timestamps, and on a SYN-ACK MSS and window scale. */
function replyTemplate(targetIp: number, targetPort: number, syn: boolean): Buffer {
  const tcpLen = syn ? 40 : 32;
  const b = Buffer.alloc(20 + tcpLen);
  b[0] = 0x45;
  put32(b, 4, 0x40000000); // id 0, DF
  b[8] = 64;
  b[9] = 6;
  put32(b, 12, targetIp);
  put16(b, 20, targetPort);
  b[32] = (tcpLen / 4) << 4;
  put16(b, 34, syn ? 65535 : 502); // 502 << 7 after the handshake: plenty
  let o = 40;
  if (syn) {
    b[o] = 2; b[o + 1] = 4; put16(b, o + 2, TARGET_MSS); // MSS
    b[o + 4] = 1; b[o + 5] = 3; b[o + 6] = 3; b[o + 7] = 7; // NOP, window scale 7
    o += 8;
  }
  b[o] = 1; b[o + 1] = 1; b[o + 2] = 8; b[o + 3] = 10; // NOP, NOP, timestamps (TSval written per reply)
  return b;
}

/**
 * A connection's key: the low 16 bits of the client's address and its port, a small integer (a Map keyed by
 * address * 65536 + port boxed every key past 2^31). The bench's clients differ in those bits; send() checks it.
 */
function connKey(ip: number, port: number): number {
  return ((ip & 0xffff) << 16) | port;
}

// Byte stores: the simulated target's share of the engine bench's time stays small (Buffer's checked
// writeUInt*BE calls made it a fifth of the total).
function put16(b: Buffer, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v;
}

function put32(b: Buffer, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}
