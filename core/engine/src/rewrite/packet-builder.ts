import { finishSum, pseudoHeaderSum, sumBytes, writeIpv4Checksum } from '../decode/checksum';
import { TCP_SYN } from '../decode/tcp-packet';

/** Window scale we offer: the replay client swallows everything, so it advertises a large window. */
export const OUR_WSCALE = 7;
export const OUR_WINDOW = 65535;

/** Header fields of one outgoing segment. Reused: the builder reads it and nothing keeps it. */
export class SegmentSpec {
  srcIp = 0;
  dstIp = 0;
  srcPort = 0;
  dstPort = 0;
  ipId = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  /** MSS to offer (SYN only). */
  mss = 1460;
  /** Whether to put a timestamp option in; tsVal/tsEcr are its fields. */
  timestamps = false;
  tsVal = 0;
  tsEcr = 0;
  /** Payload source: src[offset, offset+length) and its precomputed ones-complement sum. */
  payload: Buffer | null = null;
  payloadOffset = 0;
  payloadLength = 0;
  payloadSum = 0;
}

/**
 * Writes complete IPv4/TCP packets into one scratch buffer. The TCP checksum is
 * built from the pseudo-header, the freshly written header and the payload's
 * stored sum: correct whatever the captured packet's own checksum was (veth
 * and checksum offload leave captured packets with partial checksums), and no
 * payload byte is summed twice.
 */
export class PacketBuilder {
  readonly scratch = Buffer.alloc(65535 + 60);

  build(s: SegmentSpec): number {
    const b = this.scratch;
    const syn = (s.flags & TCP_SYN) !== 0;
    const optLen = (syn ? 8 : 0) + (s.timestamps ? 12 : 0);
    const tcpHeaderLength = 20 + optLen;
    const total = 20 + tcpHeaderLength + s.payloadLength;

    b[0] = 0x45;
    b[1] = 0;
    b.writeUInt16BE(total, 2);
    b.writeUInt16BE(s.ipId & 0xffff, 4);
    b.writeUInt16BE(0x4000, 6); // DF
    b[8] = 64;
    b[9] = 6;
    b.writeUInt32BE(s.srcIp >>> 0, 12);
    b.writeUInt32BE(s.dstIp >>> 0, 16);
    writeIpv4Checksum(b, 0);

    const t = 20;
    b.writeUInt16BE(s.srcPort, t);
    b.writeUInt16BE(s.dstPort, t + 2);
    b.writeUInt32BE(s.seq >>> 0, t + 4);
    b.writeUInt32BE(s.ack >>> 0, t + 8);
    b[t + 12] = (tcpHeaderLength / 4) << 4;
    b[t + 13] = s.flags;
    b.writeUInt16BE(OUR_WINDOW, t + 14);
    b.writeUInt32BE(0, t + 16); // checksum + urgent pointer
    let o = t + 20;
    if (syn) {
      b[o] = 2; b[o + 1] = 4; b.writeUInt16BE(s.mss, o + 2); // MSS
      b[o + 4] = 1; b[o + 5] = 3; b[o + 6] = 3; b[o + 7] = OUR_WSCALE; // NOP, window scale
      o += 8;
    }
    if (s.timestamps) {
      b[o] = 1; b[o + 1] = 1; b[o + 2] = 8; b[o + 3] = 10;
      b.writeUInt32BE(s.tsVal >>> 0, o + 4);
      b.writeUInt32BE(s.tsEcr >>> 0, o + 8);
      o += 12;
    }
    let sum = pseudoHeaderSum(s.srcIp >>> 0, s.dstIp >>> 0, tcpHeaderLength + s.payloadLength);
    sum = sumBytes(b, t, o, sum);
    if (s.payload && s.payloadLength > 0) {
      s.payload.copy(b, o, s.payloadOffset, s.payloadOffset + s.payloadLength);
      sum += s.payloadSum;
    }
    b.writeUInt16BE(finishSum(sum), t + 16);
    return total;
  }
}
