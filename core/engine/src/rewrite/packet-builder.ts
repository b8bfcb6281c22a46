import { finishSum } from '../decode/checksum';
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
    const srcIp = s.srcIp >>> 0;
    const dstIp = s.dstIp >>> 0;
    const ipId = s.ipId & 0xffff;

    // Fields are stored byte by byte and the header sums computed from the values written: per packet,
    // this is cheaper than Buffer's checked writeUInt*BE calls and a second pass over the header.
    b[0] = 0x45;
    b[1] = 0;
    put16(b, 2, total);
    put16(b, 4, ipId);
    b[6] = 0x40; // DF
    b[7] = 0;
    b[8] = 64;
    b[9] = 6;
    put32(b, 12, srcIp);
    put32(b, 16, dstIp);
    const addrSum = (srcIp >>> 16) + (srcIp & 0xffff) + (dstIp >>> 16) + (dstIp & 0xffff);
    put16(b, 10, finishSum(0x4500 + total + ipId + 0x4000 + 0x4006 + addrSum));

    const t = 20;
    const seq = s.seq >>> 0;
    const ack = s.ack >>> 0;
    const offsetAndFlags = ((tcpHeaderLength / 4) << 12) | s.flags;
    put16(b, t, s.srcPort);
    put16(b, t + 2, s.dstPort);
    put32(b, t + 4, seq);
    put32(b, t + 8, ack);
    put16(b, t + 12, offsetAndFlags);
    put16(b, t + 14, OUR_WINDOW);
    put32(b, t + 16, 0); // checksum + urgent pointer
    let sum = addrSum + 6 + tcpHeaderLength + s.payloadLength; // pseudo-header
    sum += s.srcPort + s.dstPort + (seq >>> 16) + (seq & 0xffff) + (ack >>> 16) + (ack & 0xffff) + offsetAndFlags + OUR_WINDOW;
    let o = t + 20;
    if (syn) {
      const mss = s.mss & 0xffff;
      b[o] = 2; b[o + 1] = 4; put16(b, o + 2, mss); // MSS
      b[o + 4] = 1; b[o + 5] = 3; b[o + 6] = 3; b[o + 7] = OUR_WSCALE; // NOP, window scale
      sum += 0x0204 + mss + 0x0103 + (0x0300 | OUR_WSCALE);
      o += 8;
    }
    if (s.timestamps) {
      const tsVal = s.tsVal >>> 0;
      const tsEcr = s.tsEcr >>> 0;
      b[o] = 1; b[o + 1] = 1; b[o + 2] = 8; b[o + 3] = 10;
      put32(b, o + 4, tsVal);
      put32(b, o + 8, tsEcr);
      sum += 0x0101 + 0x080a + (tsVal >>> 16) + (tsVal & 0xffff) + (tsEcr >>> 16) + (tsEcr & 0xffff);
      o += 12;
    }
    const payload = s.payload;
    if (payload !== null && s.payloadLength > 0) {
      // A whole chunk (nearly always) is copied by TypedArray#set; Buffer#copy of a part makes a view of it first.
      if (s.payloadOffset === 0 && s.payloadLength === payload.length) b.set(payload, o);
      else payload.copy(b, o, s.payloadOffset, s.payloadOffset + s.payloadLength);
      sum += s.payloadSum;
    }
    put16(b, t + 16, finishSum(sum));
    return total;
  }
}

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
