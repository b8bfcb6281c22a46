import { tcpChecksumValid } from '../decode/checksum';
import { formatIpv4 } from '../decode/ip-address';
import { TcpOptions } from '../decode/tcp-options';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpPacket } from '../decode/tcp-packet';
import { buildPacket, synAckOptions } from './packets';

/** One connection the simulated target accepted. */
export class SimConnection {
  isn = (Math.random() * 2 ** 32) >>> 0;
  rcvNxt = 0;
  sndNxt = 0;
  received: Buffer[] = [];
  closed = false;
  finSent = false;
  reset = false;
  /** Responses sent (whole answers, as the responder counts them). */
  answered = 0;
  /** With holdGreeting: the greeting not sent yet, and the SYN that addresses it. */
  heldGreeting: { answers: Buffer[]; syn: Buffer } | null = null;
  constructor(readonly key: string) {}
  get bytes(): Buffer {
    return Buffer.concat(this.received);
  }
}

/**
 * What the simulated server says. `onConnect` may greet; `onData` gets each
 * run of new in-order bytes and returns the answers to send now (each answer
 * counts once for `answered`).
 */
export interface Responder {
  onConnect?(conn: SimConnection): Buffer[];
  onData(conn: SimConnection, data: Buffer): Buffer[];
}

/** Requests are lines "<anything> <N>\n"; each is answered with N bytes. */
export function lineResponder(): Responder {
  const pending = new Map<SimConnection, string>();
  return {
    onData(conn, data) {
      let text = (pending.get(conn) ?? '') + data.toString('latin1');
      const answers: Buffer[] = [];
      let nl: number;
      while ((nl = text.indexOf('\n')) >= 0) {
        const n = Number(text.slice(0, nl).split(' ').pop()) || 0;
        answers.push(Buffer.alloc(n, 0x61 + ((conn.answered + answers.length) % 26)));
        text = text.slice(nl + 1);
      }
      pending.set(conn, text);
      return answers;
    },
  };
}

/**
 * Serves a scripted conversation: after the client's bytes of request i
 * (`expect`) have all arrived, it answers with `server` of exchange i. The
 * position in the script is kept per client address across reconnects.
 */
export function scriptResponder(exchanges: ReadonlyArray<{ expect: Buffer; server: Buffer }>, greeting?: Buffer): Responder {
  const state = new Map<string, { index: number; have: number }>();
  const of = (conn: SimConnection) => {
    let s = state.get(conn.key);
    if (!s) state.set(conn.key, (s = { index: 0, have: 0 }));
    return s;
  };
  return {
    onConnect: () => (greeting ? [greeting] : []),
    onData(conn, data) {
      const s = of(conn);
      s.have += data.length;
      const answers: Buffer[] = [];
      while (s.index < exchanges.length && s.have >= exchanges[s.index].expect.length) {
        s.have -= exchanges[s.index].expect.length;
        answers.push(exchanges[s.index].server);
        s.index++;
      }
      return answers;
    },
  };
}

export interface SimOptions {
  mss?: number;
  /** Drop the n-th data packet we receive (1-based), to exercise retransmission. */
  dropDataPacket?: number;
  /** Send an RST after this many answered requests on each connection. */
  resetAfterAnswers?: number;
  /** Send an RST once the first connection has received this many bytes (later connections are spared). */
  resetAfterBytes?: number;
  /** Close (FIN) right after the first answer, as an HTTP server does for "Connection: close". */
  closeAfterAnswer?: boolean;
  responder?: Responder;
  /** Advertise a zero window, and never update it by itself, until a segment arrives while it is shut (a probe). */
  zeroWindowUntilProbe?: boolean;
  /** Keep each connection's greeting back until releaseGreetings() (a server slow to greet). */
  holdGreeting?: boolean;
}

/** How the simulated host treats SYNs: accept them, refuse them (RST: nothing listens), or send nothing at all. */
export type SimListening = 'accept' | 'refuse' | 'silent';

/**
 * A simulated target host for tests and the compliance suite: a minimal TCP
 * server per connection that records each connection's received byte stream
 * and a log of events (`<client> data <bytes>`, `<client> answer <n>`).
 */
export class SimTarget {
  readonly conns = new Map<string, SimConnection>();
  /** Every connection ever opened, in order (a reconnect on the same ports replaces its entry in conns). */
  readonly history: SimConnection[] = [];
  readonly log: string[] = [];
  badChecksums = 0;
  private dataPackets = 0;
  private readonly view = new TcpPacket();
  private readonly opts = new TcpOptions();
  private readonly responder: Responder;
  /** The advertised window is shut (zeroWindowUntilProbe). */
  windowShut: boolean;
  /** May change mid-test: a server going down ('refuse') and coming back ('accept'), or a host gone ('silent'). */
  listening: SimListening = 'accept';
  /** SYNs received, in order (retransmissions included). */
  synsReceived = 0;

  constructor(
    private readonly reply: (pkt: Buffer) => void,
    private readonly o: SimOptions = {},
  ) {
    this.responder = o.responder ?? lineResponder();
    this.windowShut = !!o.zeroWindowUntilProbe;
  }

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
    if (flags & TCP_SYN) this.synsReceived++;
    if (this.listening === 'silent') return;
    if (flags & TCP_SYN) {
      if (this.listening === 'refuse') {
        this.reply(buildPacket({ src: formatIpv4(v.dstIp), sport: v.dstPort, dst: formatIpv4(v.srcIp), dport: v.srcPort, seq: 0,
          ack: (v.seq + 1) >>> 0, flags: TCP_RST | TCP_ACK, payload: Buffer.alloc(0), window: 0 }));
        this.log.push(`${key} refused`);
        return;
      }
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
      const greeting = this.responder.onConnect?.(c) ?? [];
      if (this.o.holdGreeting && greeting.length > 0) c.heldGreeting = { answers: greeting, syn: Buffer.from(buf) };
      else this.answer(v, c, greeting);
      return;
    }
    if (!c || c.reset) return; // a reset connection takes nothing more
    const len = v.payloadLength;
    if (len > 0 && this.windowShut) {
      // A probe: open the window and acknowledge nothing of it (the byte is sent again in order).
      this.windowShut = false;
      this.log.push(`${key} probe`);
      this.send(v, c, c.sndNxt, TCP_ACK, Buffer.alloc(0));
      return;
    }
    if (len > 0) {
      this.dataPackets++;
      if (this.o.dropDataPacket === this.dataPackets) return;
      if (v.seq === c.rcvNxt) {
        const data = Buffer.from(buf.subarray(v.payload, v.end));
        c.received.push(data);
        c.rcvNxt = (c.rcvNxt + len) >>> 0;
        this.log.push(`${key} data ${data.toString('latin1').replace(/\n/g, '|')}`);
        if (this.o.resetAfterBytes && this.history.length === 1 && c.bytes.length >= this.o.resetAfterBytes) {
          this.send(v, c, c.sndNxt, TCP_ACK, Buffer.alloc(0));
          this.send(v, c, c.sndNxt, TCP_RST, Buffer.alloc(0));
          c.reset = true;
          return;
        }
        const answers = c.finSent ? [] : this.responder.onData(c, data);
        if (answers.length === 0) this.send(v, c, c.sndNxt, TCP_ACK, Buffer.alloc(0));
        else this.answer(v, c, answers);
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

  /** Sends the greetings held back by holdGreeting. */
  releaseGreetings(): void {
    for (const c of this.conns.values()) {
      const held = c.heldGreeting;
      if (!held || c.reset) continue;
      c.heldGreeting = null;
      this.view.decode(held.syn, 0, held.syn.length);
      this.answer(this.view, c, held.answers);
    }
  }

  private answer(v: TcpPacket, c: SimConnection, answers: Buffer[]): void {
    const mss = this.o.mss ?? 1460;
    for (const body of answers) {
      for (let off = 0; off < body.length; off += mss) {
        const chunk = body.subarray(off, Math.min(body.length, off + mss));
        this.send(v, c, c.sndNxt, TCP_ACK | TCP_PSH, chunk);
        c.sndNxt = (c.sndNxt + chunk.length) >>> 0;
      }
      c.answered++;
      this.log.push(`${c.key} answer ${c.answered}`);
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
        window: this.windowShut ? 0 : 1024,
        options,
      }),
    );
  }
}
