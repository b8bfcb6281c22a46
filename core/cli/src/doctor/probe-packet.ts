// The probe's two packets, written from scratch: a SYN (with an MSS option, as a client's) and the
// RST that frees the target's half-open connection afterwards.
import { tcpChecksum, TCP_RST, TCP_SYN, writeIpv4Checksum } from '@tcpcopy/core';

export interface ProbeSegment {
  /** Host-order numbers. */
  srcIp: number;
  dstIp: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  flags: number;
}

const PROBE_MSS = 1460;
const PROBE_WINDOW = 65535;

/** Writes an IPv4+TCP segment without payload into `buf` (60 bytes suffice); returns its length. */
export function writeProbeSegment(buf: Buffer, s: ProbeSegment): number {
  const syn = (s.flags & TCP_SYN) !== 0;
  const tcpLength = syn ? 24 : 20;
  const total = 20 + tcpLength;
  buf.fill(0, 0, total);
  buf[0] = 0x45;
  buf.writeUInt16BE(total, 2);
  buf.writeUInt16BE(0x4000, 6); // DF
  buf[8] = 64;
  buf[9] = 6;
  buf.writeUInt32BE(s.srcIp >>> 0, 12);
  buf.writeUInt32BE(s.dstIp >>> 0, 16);
  writeIpv4Checksum(buf, 0);
  buf.writeUInt16BE(s.srcPort, 20);
  buf.writeUInt16BE(s.dstPort, 22);
  buf.writeUInt32BE(s.seq >>> 0, 24);
  buf[32] = (tcpLength / 4) << 4;
  buf[33] = s.flags;
  // A RST carries no window; a SYN offers one.
  buf.writeUInt16BE(s.flags & TCP_RST ? 0 : PROBE_WINDOW, 34);
  if (syn) {
    buf[40] = 2;
    buf[41] = 4;
    buf.writeUInt16BE(PROBE_MSS, 42);
  }
  buf.writeUInt16BE(tcpChecksum(buf, s.srcIp >>> 0, s.dstIp >>> 0, 20, total), 36);
  return total;
}
