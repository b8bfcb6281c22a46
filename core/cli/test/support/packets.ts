// Frames for the tcpcopy command's tests, built with the compliance kit's packet builder: Ethernet + IPv4 + TCP with
// correct checksums, plus the odd ones a capture can hold (UDP, ICMP, IPv6, fragments) and helpers to break a header
// on purpose.
import { finishSum, sumBytes, writeIpv4Checksum } from '@tcpcopy/core';
import {
  buildPacket,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ethernetFrame,
  ipv4Packet,
  tcpSegment,
  udpPacket,
  type Ipv4Fields,
  type PacketFields,
} from '@tcpcopy/core/compliance';

export { udpPacket };

export const FIN = 0x01;
export const SYN = 0x02;
export const PSH = 0x08;
export const ACK = 0x10;

export const ETH_IPV4 = ETHERTYPE_IPV4;
export const ETH_IPV6 = ETHERTYPE_IPV6;

/** A TCP packet's fields (a string payload is latin1). */
export type TcpFields = PacketFields;

/** IPv4 + TCP (`fragment`: the IPv4 flags and fragment offset word, DF by default). */
export function tcpPacket(f: TcpFields, opts: Ipv4Fields = {}): Buffer {
  return buildPacket({ ...f, ...opts });
}

/** IPv4 + ICMP echo request. */
export function icmpEcho(src: string, dst: string): Buffer {
  const m = Buffer.alloc(16);
  m[0] = 8;
  m.writeUInt16BE(0x1234, 4);
  m.writeUInt16BE(1, 6);
  m.writeUInt16BE(finishSum(sumBytes(m, 0, m.length)), 2);
  return ipv4Packet(src, dst, 1, m);
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

/** An Ethernet frame (the kit's fixed, locally administered MACs) around a network-layer packet. */
export function ethernet(packet: Buffer, etherType = ETH_IPV4): Buffer {
  return ethernetFrame(packet, { etherType });
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
