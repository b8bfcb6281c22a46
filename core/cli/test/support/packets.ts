// Hand-built frames for the tcpcopy command's tests: Ethernet + IPv4 + TCP with correct checksums, plus the odd
// ones a capture can hold (UDP, ICMP, IPv6, fragments) and helpers to break a header on purpose.
import { finishSum, parseIpv4, pseudoHeaderSum, sumBytes, writeIpv4Checksum } from '@tcpcopy/core';

export const FIN = 0x01;
export const SYN = 0x02;
export const PSH = 0x08;
export const ACK = 0x10;

export const ETH_IPV4 = 0x0800;
export const ETH_IPV6 = 0x86dd;
const ETH_LEN = 14;

export interface TcpFields {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack?: number;
  flags: number;
  payload?: Buffer | string;
}

/** An IPv4 header of 20 bytes for `proto` around `body`, checksummed. */
export function ipv4(src: string, dst: string, proto: number, body: Buffer, opts: { id?: number; fragment?: number } = {}): Buffer {
  const b = Buffer.alloc(20 + body.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(opts.id ?? 1, 4);
  b.writeUInt16BE(opts.fragment ?? 0x4000, 6); // default: DF, no fragment
  b[8] = 64;
  b[9] = proto;
  b.writeUInt32BE(parseIpv4(src), 12);
  b.writeUInt32BE(parseIpv4(dst), 16);
  body.copy(b, 20);
  writeIpv4Checksum(b, 0);
  return b;
}

/** A 20-byte TCP header plus payload, with the checksum for these addresses. */
export function tcpSegment(f: TcpFields): Buffer {
  const payload = typeof f.payload === 'string' ? Buffer.from(f.payload, 'latin1') : (f.payload ?? Buffer.alloc(0));
  const b = Buffer.alloc(20 + payload.length);
  b.writeUInt16BE(f.sport, 0);
  b.writeUInt16BE(f.dport, 2);
  b.writeUInt32BE(f.seq >>> 0, 4);
  b.writeUInt32BE((f.ack ?? 0) >>> 0, 8);
  b[12] = 5 << 4;
  b[13] = f.flags;
  b.writeUInt16BE(65535, 14);
  payload.copy(b, 20);
  const pseudo = pseudoHeaderSum(parseIpv4(f.src), parseIpv4(f.dst), b.length);
  b.writeUInt16BE(finishSum(sumBytes(b, 0, b.length, pseudo)), 16);
  return b;
}

/** IPv4 + TCP. */
export function tcpPacket(f: TcpFields, opts: { fragment?: number } = {}): Buffer {
  return ipv4(f.src, f.dst, 6, tcpSegment(f), opts);
}

/** IPv4 + UDP (checksum 0: none). */
export function udpPacket(src: string, dst: string, sport: number, dport: number, payload: Buffer): Buffer {
  const u = Buffer.alloc(8 + payload.length);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(u.length, 4);
  payload.copy(u, 8);
  return ipv4(src, dst, 17, u);
}

/** IPv4 + ICMP echo request. */
export function icmpEcho(src: string, dst: string): Buffer {
  const m = Buffer.alloc(16);
  m[0] = 8;
  m.writeUInt16BE(0x1234, 4);
  m.writeUInt16BE(1, 6);
  m.writeUInt16BE(finishSum(sumBytes(m, 0, m.length)), 2);
  return ipv4(src, dst, 1, m);
}

/** An IPv6 header (next header TCP) around a TCP segment; the TCP checksum is not made valid for IPv6. */
export function ipv6Tcp(sport: number, dport: number, payload = 'GET / HTTP/1.1\r\n\r\n'): Buffer {
  const tcp = tcpSegment({ src: '0.0.0.0', dst: '0.0.0.0', sport, dport, seq: 1, ack: 1, flags: ACK | PSH, payload });
  const b = Buffer.alloc(40 + tcp.length);
  b.writeUInt32BE(0x60000000, 0);
  b.writeUInt16BE(tcp.length, 4);
  b[6] = 6;
  b[7] = 64;
  Buffer.from('20010db8000000000000000000000001', 'hex').copy(b, 8); // 2001:db8::1
  Buffer.from('20010db8000000000000000000000002', 'hex').copy(b, 24); // 2001:db8::2
  tcp.copy(b, 40);
  return b;
}

/** An Ethernet frame (fixed, locally administered MACs) around a network-layer packet. */
export function ethernet(packet: Buffer, etherType = ETH_IPV4): Buffer {
  const f = Buffer.alloc(ETH_LEN + packet.length);
  Buffer.from('02c633640009', 'hex').copy(f, 0);
  Buffer.from('02cb00710001', 'hex').copy(f, 6);
  f.writeUInt16BE(etherType, 12);
  packet.copy(f, ETH_LEN);
  return f;
}

/** A copy of an IPv4 packet changed by `edit`, its header checksum recomputed when the header length allows. */
export function broken(packet: Buffer, edit: (p: Buffer) => void): Buffer {
  const p = Buffer.from(packet);
  edit(p);
  const ihl = (p[0] & 0x0f) * 4;
  if (ihl >= 20 && ihl <= p.length) writeIpv4Checksum(p, 0);
  return p;
}

/**
 * One complete client connection to `dst:dport` as the capture shows it from the client side: SYN, the ACK of
 * the handshake, `requests` with their ACKs of the (not captured) responses in between, FIN.
 */
export function clientConnection(c: { src: string; sport: number; dst: string; dport: number; requests: string[] }): Buffer[] {
  const base = { src: c.src, sport: c.sport, dst: c.dst, dport: c.dport };
  let seq = 1000;
  let ack = 5000;
  const out = [tcpPacket({ ...base, seq: seq++, flags: SYN })];
  ack++;
  out.push(tcpPacket({ ...base, seq, ack, flags: ACK }));
  for (const r of c.requests) {
    out.push(tcpPacket({ ...base, seq, ack, flags: ACK | PSH, payload: r }));
    seq += Buffer.byteLength(r, 'latin1');
    ack += 100; // a 100-byte response
    out.push(tcpPacket({ ...base, seq, ack, flags: ACK }));
  }
  out.push(tcpPacket({ ...base, seq, ack, flags: FIN | ACK }));
  return out;
}
