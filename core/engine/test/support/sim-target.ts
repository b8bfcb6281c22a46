import { formatIpv4 } from '../../src/decode/ip-address';
import { TcpOptions } from '../../src/decode/tcp-options';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpPacket } from '../../src/decode/tcp-packet';
import { tcpChecksumValid } from '../../src/decode/checksum';
import { buildPacket, synAckOptions } from './packets';

/**
 * A simulated target host for unit tests: a minimal TCP server per
 * connection. A request is a line "<anything> <N>\n"; the answer is N bytes.
 * It records each connection's received byte stream and the order of events.
 */
export class SimConnection {
  isn = (Math.random() * 2 ** 32) >>> 0;
  rcvNxt = 0;
  sndNxt = 0;
  received: Buffer[] = [];
  pendingLine = '';
  closed = false;
  finSent = false;
  reset = false;
  answered = 0;
  constructor(readonly key: string) {}
  get bytes(): Buffer {
    return Buffer.concat(this.received);
  }
}

export interface SimOptions {
  mss?: number;
  /** Drop the n-th data packet we receive (1-based), to exercise retransmission. */
  dropDataPacket?: number;
  /** Send an RST after this many answered requests on each connection. */
  resetAfterAnswers?: number;
  timestamps?: boolean;
  /** Close (FIN) right after each answer, as an HTTP server does for "Connection: close". */
  closeAfterAnswer?: boolean;
}

export class SimTarget {
  readonly conns = new Map<string, SimConnection>();
  /** Every connection ever opened, in order (a reconnect on the same ports replaces its entry in conns). */
  readonly history: SimConnection[] = [];
  readonly log: string[] = [];
  badChecksums = 0;
  private dataPackets = 0;
  private readonly view = new TcpPacket();
  private readonly opts = new TcpOptions();

  constructor(
    private readonly reply: (pkt: Buffer) => void,
    private readonly o: SimOptions = {},
  ) {}

  /** Every connection's stream, keyed by the client address as sent. */
  streams(): Map<string, string> {
    const m = new Map<string, string>();
    for (const [k, c] of this.conns) m.set(k, c.bytes.toString('latin1'));
    return m;
  }

  receive(buf: Buffer): void {
    const v = this.view;
    v.decode(buf, 0, buf.length);
    if (!tcpChecksumValid(buf, v.srcIp, v.dstIp, v.tcp, v.end)) this.badChecksums++;
    const key = `${formatIpv4(v.srcIp)}:${v.srcPort}`;
    const flags = v.flags;
    let c = this.conns.get(key);
    if (flags & TCP_RST) {
      if (c) c.reset = true;
      this.log.push(`${key} rst`);
      return;
    }
    if (flags & TCP_SYN) {
      if (!c || c.closed || c.reset) {
        c = new SimConnection(key);
        this.conns.set(key, c);
        this.history.push(c);
      }
      c.rcvNxt = (v.seq + 1) >>> 0;
      c.sndNxt = (c.isn + 1) >>> 0;
      this.opts.parse(buf, v.tcp + 20, v.payload);
      this.send(v, c, c.isn, TCP_SYN | TCP_ACK, Buffer.alloc(0), synAckOptions(this.o.mss ?? 1460, 7, 1000, this.opts.tsVal));
      this.log.push(`${key} syn`);
      return;
    }
    if (!c || c.reset) return; // a reset connection takes nothing more
    const len = v.payloadLength;
    if (len > 0) {
      this.dataPackets++;
      if (this.o.dropDataPacket === this.dataPackets) return;
      if (v.seq === c.rcvNxt) {
        const data = Buffer.from(buf.subarray(v.payload, v.end));
        c.received.push(data);
        c.rcvNxt = (c.rcvNxt + len) >>> 0;
        this.log.push(`${key} data ${data.toString('latin1').replace(/\n/g, '|')}`);
        c.pendingLine += data.toString('latin1');
        this.answer(v, c);
      } else {
        this.send(v, c, c.sndNxt, TCP_ACK, Buffer.alloc(0));
      }
    }
    if (flags & TCP_FIN && ((v.seq + len) >>> 0) === c.rcvNxt) {
      c.rcvNxt = (c.rcvNxt + 1) >>> 0;
      c.closed = true;
      this.log.push(`${key} fin`);
      if (c.finSent) {
        this.send(v, c, c.sndNxt, TCP_ACK, Buffer.alloc(0));
      } else {
        this.send(v, c, c.sndNxt, TCP_ACK | TCP_FIN, Buffer.alloc(0));
        c.sndNxt = (c.sndNxt + 1) >>> 0;
        c.finSent = true;
      }
    }
  }

  private answer(v: TcpPacket, c: SimConnection): void {
    let nl: number;
    let sentSomething = false;
    while ((nl = c.pendingLine.indexOf('\n')) >= 0) {
      const line = c.pendingLine.slice(0, nl);
      c.pendingLine = c.pendingLine.slice(nl + 1);
      const n = Number(line.split(' ').pop()) || 0;
      const mss = this.o.mss ?? 1460;
      for (let off = 0; off < n; off += mss) {
        const chunk = Buffer.alloc(Math.min(mss, n - off), 0x61 + (c.answered % 26));
        this.send(v, c, c.sndNxt, TCP_ACK | TCP_PSH, chunk);
        c.sndNxt = (c.sndNxt + chunk.length) >>> 0;
        sentSomething = true;
      }
      c.answered++;
      if (this.o.closeAfterAnswer && !c.finSent) {
        this.send(v, c, c.sndNxt, TCP_ACK | TCP_FIN, Buffer.alloc(0));
        c.sndNxt = (c.sndNxt + 1) >>> 0;
        c.finSent = true;
        return;
      }
      if (this.o.resetAfterAnswers && c.answered >= this.o.resetAfterAnswers) {
        this.send(v, c, c.sndNxt, TCP_RST, Buffer.alloc(0));
        c.reset = true;
        return;
      }
    }
    if (!sentSomething) this.send(v, c, c.sndNxt, TCP_ACK, Buffer.alloc(0));
  }

  private send(v: TcpPacket, c: SimConnection, seq: number, flags: number, payload: Buffer, options?: Buffer): void {
    this.reply(
      buildPacket({
        src: formatIpv4(v.dstIp),
        sport: v.dstPort,
        dst: formatIpv4(v.srcIp),
        dport: v.srcPort,
        seq,
        ack: c.rcvNxt,
        flags,
        payload,
        window: 1024,
        options,
      }),
    );
  }
}
