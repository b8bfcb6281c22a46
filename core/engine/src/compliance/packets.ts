import { finishSum, pseudoHeaderSum, sumBytes, writeIpv4Checksum } from '../decode/checksum';
import { parseIpv4 } from '../decode/ip-address';
import { TcpPacket } from '../decode/tcp-packet';

/** IPv4 header fields a test may want to set; the rest is fixed (no options, version 4). */
export interface Ipv4Fields {
  /** Identification (default 0). */
  id?: number;
  /** The flags and fragment offset word (default 0x4000: DF, not a fragment; 0x2000 is MF, the low 13 bits the offset in 8-byte units). */
  fragment?: number;
  /** Time to live (default 64). */
  ttl?: number;
}

export interface PacketFields extends Ipv4Fields {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  seq: number;
  ack?: number;
  flags: number;
  /** The payload; a string is taken as latin1 (one byte per character). */
  payload?: Buffer | string;
  window?: number;
  /** Raw TCP option bytes (padded to 4 by the caller). */
  options?: Buffer;
  /** Leave the TCP checksum as offload leaves it: only the pseudo-header sum. */
  partialChecksum?: boolean;
}

function payloadOf(p: Buffer | string | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0);
  return typeof p === 'string' ? Buffer.from(p, 'latin1') : p;
}

function address(text: string): number {
  const ip = parseIpv4(text);
  if (ip < 0) throw new Error(`not an IPv4 address: ${JSON.stringify(text)}`);
  return ip;
}

/**
 * A TCP segment (header, options, payload) without the IP header, its checksum computed for the
 * pseudo-header of `src` and `dst` (or left partial, as checksum offload leaves it).
 */
export function tcpSegment(f: PacketFields): Buffer {
  const opts = f.options ?? Buffer.alloc(0);
  if (opts.length % 4 !== 0 || opts.length > 40) throw new Error(`TCP options must be 0-40 bytes, a multiple of 4 (got ${opts.length})`);
  const payload = payloadOf(f.payload);
  const hdr = 20 + opts.length;
  const b = Buffer.alloc(hdr + payload.length);
  b.writeUInt16BE(f.sport, 0);
  b.writeUInt16BE(f.dport, 2);
  b.writeUInt32BE(f.seq >>> 0, 4);
  b.writeUInt32BE((f.ack ?? 0) >>> 0, 8);
  b[12] = (hdr / 4) << 4;
  b[13] = f.flags;
  b.writeUInt16BE(f.window ?? 65535, 14);
  opts.copy(b, 20);
  payload.copy(b, hdr);
  const pseudo = pseudoHeaderSum(address(f.src), address(f.dst), b.length);
  if (f.partialChecksum) {
    let p = pseudo;
    while (p > 0xffff) p = (p & 0xffff) + (p >>> 16);
    b.writeUInt16BE(p, 16);
  } else {
    b.writeUInt16BE(finishSum(sumBytes(b, 0, b.length, pseudo)), 16);
  }
  return b;
}

/** A 20-byte IPv4 header for protocol `proto` (6 TCP, 17 UDP, 1 ICMP) in front of `body`, with its checksum. */
export function ipv4Packet(src: string, dst: string, proto: number, body: Buffer, f: Ipv4Fields = {}): Buffer {
  const b = Buffer.alloc(20 + body.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE((f.id ?? 0) & 0xffff, 4);
  b.writeUInt16BE((f.fragment ?? 0x4000) & 0xffff, 6);
  b[8] = f.ttl ?? 64;
  b[9] = proto;
  b.writeUInt32BE(address(src), 12);
  b.writeUInt32BE(address(dst), 16);
  body.copy(b, 20);
  writeIpv4Checksum(b, 0);
  return b;
}

/** Builds an IPv4/TCP packet (no link header) with correct checksums. */
export function buildPacket(f: PacketFields): Buffer {
  return ipv4Packet(f.src, f.dst, 6, tcpSegment(f), f);
}

/** IPv4 + UDP; the UDP checksum is 0 (none), which IPv4 allows. */
export function udpPacket(src: string, dst: string, sport: number, dport: number, payload: Buffer | string, f: Ipv4Fields = {}): Buffer {
  const data = payloadOf(payload);
  const u = Buffer.alloc(8 + data.length);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(u.length, 4);
  data.copy(u, 8);
  return ipv4Packet(src, dst, 17, u, f);
}

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;

/**
 * An Ethernet II frame around a network-layer packet. The MACs default to two fixed, locally
 * administered addresses (6 bytes each when given).
 */
export function ethernetFrame(packet: Buffer, opts: { etherType?: number; dstMac?: Buffer; srcMac?: Buffer } = {}): Buffer {
  const dst = opts.dstMac ?? Buffer.from('02c633640009', 'hex');
  const src = opts.srcMac ?? Buffer.from('02cb00710001', 'hex');
  if (dst.length !== 6 || src.length !== 6) throw new Error('a MAC address has 6 bytes');
  const f = Buffer.alloc(14 + packet.length);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(opts.etherType ?? ETHERTYPE_IPV4, 12);
  packet.copy(f, 14);
  return f;
}

/** A decoded view of an IPv4/TCP packet built here (or any packet without a link header). */
export function view(buf: Buffer): TcpPacket {
  const p = new TcpPacket();
  p.decode(buf, 0, buf.length);
  return p;
}

/** TCP options for a SYN-ACK: MSS, window scale, timestamps. */
export function synAckOptions(mss: number, wscale: number, tsVal: number, tsEcr: number): Buffer {
  const o = Buffer.alloc(20);
  o[0] = 2; o[1] = 4; o.writeUInt16BE(mss, 2);
  o[4] = 1; o[5] = 3; o[6] = 3; o[7] = wscale;
  o[8] = 1; o[9] = 1; o[10] = 8; o[11] = 10;
  o.writeUInt32BE(tsVal, 12);
  o.writeUInt32BE(tsEcr, 16);
  return o;
}
