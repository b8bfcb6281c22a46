import { finishSum, pseudoHeaderSum, sumBytes, writeIpv4Checksum } from '../decode/checksum';
import { parseIpv4 } from '../decode/ip-address';
import { TcpPacket } from '../decode/tcp-packet';

export interface PacketFields {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  seq: number;
  ack?: number;
  flags: number;
  payload?: Buffer;
  window?: number;
  /** Raw TCP option bytes (padded to 4 by the caller). */
  options?: Buffer;
  /** Leave the TCP checksum as offload leaves it: only the pseudo-header sum. */
  partialChecksum?: boolean;
}

/** Builds an IPv4/TCP packet (no link header) with correct checksums. */
export function buildPacket(f: PacketFields): Buffer {
  const opts = f.options ?? Buffer.alloc(0);
  const payload = f.payload ?? Buffer.alloc(0);
  const tcpLen = 20 + opts.length;
  const b = Buffer.alloc(20 + tcpLen + payload.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(0x4000, 6);
  b[8] = 64;
  b[9] = 6;
  const src = parseIpv4(f.src);
  const dst = parseIpv4(f.dst);
  b.writeUInt32BE(src, 12);
  b.writeUInt32BE(dst, 16);
  writeIpv4Checksum(b, 0);
  b.writeUInt16BE(f.sport, 20);
  b.writeUInt16BE(f.dport, 22);
  b.writeUInt32BE(f.seq >>> 0, 24);
  b.writeUInt32BE((f.ack ?? 0) >>> 0, 28);
  b[32] = (tcpLen / 4) << 4;
  b[33] = f.flags;
  b.writeUInt16BE(f.window ?? 65535, 34);
  opts.copy(b, 40);
  payload.copy(b, 20 + tcpLen);
  const pseudo = pseudoHeaderSum(src, dst, tcpLen + payload.length);
  if (f.partialChecksum) {
    let p = pseudo;
    while (p > 0xffff) p = (p & 0xffff) + (p >>> 16);
    b.writeUInt16BE(p, 36);
  } else {
    b.writeUInt16BE(finishSum(sumBytes(b, 20, b.length, pseudo)), 36);
  }
  return b;
}

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
