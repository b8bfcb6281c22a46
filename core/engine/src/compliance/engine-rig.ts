import { formatIpv4 } from '../decode/ip-address';
import { TcpPacket } from '../decode/tcp-packet';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../decode/tcp-packet';
import type { PacketSink } from '../output/packet-sink';
import { parseTransfers, TransferTable } from '../rewrite/address-map';
import type { EngineConfig } from '../session/engine-context';
import { ReplayEngine } from '../session/replay-engine';
import type { SessionProtocol } from '../protocol/session-protocol';
import { buildPacket } from './packets';
import { SimTarget, type SimOptions } from './sim-target';

/** Queues what the engine sends, so delivery to the simulated target is not re-entrant. */
class QueueSink implements PacketSink {
  readonly stats = { sent: 0, failed: 0, queued: 0 };
  readonly queue: Buffer[] = [];
  send(buf: Buffer, offset: number, length: number): void {
    this.stats.sent++;
    this.queue.push(Buffer.from(buf.subarray(offset, offset + length)));
  }
  close(): void {}
}

/** An engine wired to a simulated target on a fake clock. */
export class EngineRig {
  t = 1000;
  readonly sink = new QueueSink();
  readonly replies: Buffer[] = [];
  readonly sim: SimTarget;
  readonly engine: ReplayEngine;
  readonly warnings: string[] = [];
  private readonly v = new TcpPacket();

  /** Target payload bytes handed to the engine, per client address as sent ("ip:port"). */
  readonly repliedBytes = new Map<string, number>();
  /** Payload bytes per reply handed to the engine, as intercept would return them. */
  private readonly replyBytes: number;
  /** The target's replies reach the engine this much later (a distant target); may change mid-test. */
  replyDelayMs = 0;
  private readonly delayed: Array<{ due: number; pkt: Buffer }> = [];

  constructor(opts: { sim?: SimOptions; config?: Partial<EngineConfig>; clients?: number[]; protocol?: SessionProtocol } = {}) {
    this.sim = new SimTarget((p) => this.replies.push(p), opts.sim);
    this.replyBytes = opts.protocol?.replyPayloadBytes ?? 0;
    this.engine = new ReplayEngine({
      transfers: new TransferTable(parseTransfers('80-198.51.100.30:8080')),
      sink: this.sink,
      clientAddresses: opts.clients,
      config: opts.config,
      protocol: opts.protocol,
      now: () => this.t,
      warn: (m) => this.warnings.push(m),
    });
  }

  /** Feeds one captured packet, then lets the network settle. */
  capture(pkt: Buffer): void {
    this.v.decode(pkt, 0, pkt.length);
    this.engine.handleCaptured(this.v, this.t);
    this.settle();
  }

  /**
   * Feeds captured packets back to back before the network moves, as a fast
   * offline replay does: the engine must hold what may not go yet by itself.
   */
  captureBurst(pkts: Buffer[]): void {
    for (const pkt of pkts) {
      this.v.decode(pkt, 0, pkt.length);
      this.engine.handleCaptured(this.v, this.t);
    }
    this.settle();
  }

  /** Delivers queued packets both ways until nothing moves. */
  settle(): void {
    for (let guard = 0; guard < 100_000; guard++) {
      if (this.sink.queue.length > 0) {
        const out = this.sink.queue.splice(0);
        for (const p of out) this.sim.receive(p);
        continue;
      }
      if (this.replyDelayMs > 0 && this.replies.length > 0) {
        for (const pkt of this.replies.splice(0)) this.delayed.push({ due: this.t + this.replyDelayMs, pkt });
      }
      while (this.delayed.length > 0 && this.delayed[0].due <= this.t) this.replies.push(this.delayed.shift()!.pkt);
      if (this.replies.length > 0) {
        const batch = this.replies.splice(0);
        for (const p of batch) {
          this.v.decode(p, 0, p.length);
          const returned = Math.min(this.v.payloadLength, this.replyBytes);
          if (this.v.payloadLength > 0) {
            const key = `${formatIpv4(this.v.dstIp)}:${this.v.dstPort}`;
            this.repliedBytes.set(key, (this.repliedBytes.get(key) ?? 0) + this.v.payloadLength);
          }
          this.engine.handleReply(this.v, this.v.payloadLength, p.subarray(this.v.payload, this.v.payload + returned), this.t);
        }
        this.engine.flush(this.t);
        continue;
      }
      return;
    }
    throw new Error('network did not settle');
  }

  /** Advances the fake clock in 5 ms steps, running timers. */
  advance(ms: number): void {
    for (let i = 0; i < ms; i += 5) {
      this.t += 5;
      this.engine.tick(this.t);
      this.settle();
    }
  }
}

export interface Exchange {
  /** What the client sent (text is taken as latin1). */
  request: string | Buffer;
  /** Response bytes the online server sent back (the client's ACK moves by this). */
  response: number;
}

/**
 * The client side of an online conversation as captured: handshake, each request
 * sent after the previous response arrived (its ACK says so), then FIN.
 */
export function conversation(
  client: { ip: string; port: number; isn: number },
  exchanges: Exchange[],
  opts: { syn?: boolean; fin?: boolean; serverIsn?: number; mss?: number; fromExchange?: number; greeting?: number } = {},
): Buffer[] {
  const serverIsn = opts.serverIsn ?? 5000;
  const base = { src: client.ip, sport: client.port, dst: '198.51.100.20', dport: 80 };
  const out: Buffer[] = [];
  let seq = client.isn;
  let ack = (serverIsn + 1) >>> 0;
  if (opts.syn !== false) {
    out.push(buildPacket({ ...base, seq, flags: TCP_SYN }));
    seq = (seq + 1) >>> 0;
    out.push(buildPacket({ ...base, seq, ack, flags: TCP_ACK }));
  } else {
    seq = (seq + 1) >>> 0;
  }
  // A server greeting: the client acknowledges it before its first request.
  if (opts.greeting) ack = (ack + opts.greeting) >>> 0;
  const mss = opts.mss ?? 1448;
  exchanges.forEach((ex, i) => {
    const data = typeof ex.request === 'string' ? Buffer.from(ex.request, 'latin1') : ex.request;
    if (i >= (opts.fromExchange ?? 0)) {
      for (let off = 0; off < data.length; off += mss) {
        const chunk = data.subarray(off, Math.min(data.length, off + mss));
        out.push(buildPacket({ ...base, seq: (seq + off) >>> 0, ack, flags: TCP_ACK | TCP_PSH, payload: chunk }));
      }
    }
    seq = (seq + data.length) >>> 0;
    ack = (ack + ex.response) >>> 0;
  });
  if (opts.fin !== false) out.push(buildPacket({ ...base, seq, ack, flags: TCP_ACK | TCP_FIN }));
  return out;
}
