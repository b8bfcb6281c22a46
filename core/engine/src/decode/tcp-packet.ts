/**
 * In-place IPv4 + TCP decoding (gopacket's DecodingLayer idea): one reusable
 * view object is pointed at a buffer; fields are read and written directly in
 * the buffer, nothing is copied or allocated per packet.
 */

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;

export enum DecodeStatus {
  OK = 0,
  TOO_SHORT,
  NOT_IPV4,
  BAD_IHL,
  BAD_TOTAL_LENGTH,
  NOT_TCP,
  FRAGMENT,
  BAD_DATA_OFFSET,
  TRUNCATED,
}

export const DECODE_STATUS_TEXT: Record<DecodeStatus, string> = {
  [DecodeStatus.OK]: 'ok',
  [DecodeStatus.TOO_SHORT]: 'shorter than an IPv4 header',
  [DecodeStatus.NOT_IPV4]: 'not IPv4',
  [DecodeStatus.BAD_IHL]: 'bad IPv4 header length',
  [DecodeStatus.BAD_TOTAL_LENGTH]: 'bad IPv4 total length',
  [DecodeStatus.NOT_TCP]: 'not TCP',
  [DecodeStatus.FRAGMENT]: 'IP fragment (not reassembled)',
  [DecodeStatus.BAD_DATA_OFFSET]: 'bad TCP data offset',
  [DecodeStatus.TRUNCATED]: 'payload cut by the capture snaplen',
};

const EMPTY = Buffer.alloc(0);

/** A view of one IPv4/TCP packet inside a buffer. Offsets are absolute positions in `buf`. */
export class TcpPacket {
  buf: Buffer = EMPTY;
  /** Offset of the IPv4 header. */
  ip = 0;
  /** Offset of the TCP header. */
  tcp = 0;
  /** Offset of the TCP payload. */
  payload = 0;
  /** End of the packet (IP header offset + total length, bounded by the captured bytes). */
  end = 0;
  /** When the packet was captured, ms (a pcap file's record time); -1 when the source does not say (live). */
  capturedAtMs = -1;

  /**
   * Points the view at `buf[ipOffset, ipOffset+length)`. A packet whose IP total
   * length is 0 (segmentation offload) takes its length from the capture; one
   * whose captured bytes fall short of its total length is TRUNCATED. A `length` reaching past
   * the buffer is cut to it (as ipv4Offset does), so the view never points outside `buf`.
   */
  decode(buf: Buffer, ipOffset: number, length: number): DecodeStatus {
    this.buf = buf;
    this.ip = ipOffset;
    if (length > buf.length - ipOffset) length = buf.length - ipOffset;
    if (length < 20) return DecodeStatus.TOO_SHORT;
    const vihl = buf[ipOffset];
    if (vihl >> 4 !== 4) return DecodeStatus.NOT_IPV4;
    const ihl = (vihl & 0x0f) * 4;
    if (ihl < 20 || ihl > length) return DecodeStatus.BAD_IHL;
    let total = read16(buf, ipOffset + 2);
    if (total === 0) total = length;
    if (total < ihl) return DecodeStatus.BAD_TOTAL_LENGTH;
    if (buf[ipOffset + 9] !== 6) return DecodeStatus.NOT_TCP;
    // More-fragments set or a non-zero fragment offset.
    if ((read16(buf, ipOffset + 6) & 0x3fff) !== 0) return DecodeStatus.FRAGMENT;
    const tcp = ipOffset + ihl;
    if (total - ihl < 20 || length - ihl < 20) return DecodeStatus.TOO_SHORT;
    const doff = (buf[tcp + 12] >> 4) * 4;
    if (doff < 20 || ihl + doff > total || ihl + doff > length) return DecodeStatus.BAD_DATA_OFFSET;
    this.tcp = tcp;
    this.payload = tcp + doff;
    this.end = ipOffset + Math.min(total, length);
    return total > length ? DecodeStatus.TRUNCATED : DecodeStatus.OK;
  }

  get ipHeaderLength(): number { return this.tcp - this.ip; }
  get tcpHeaderLength(): number { return this.payload - this.tcp; }
  get payloadLength(): number { return this.end - this.payload; }
  get totalLength(): number { return this.end - this.ip; }

  // Reads are byte loads combined by hand: cheaper per packet than Buffer's checked readUInt*BE (decode
  // has already checked that every header byte is inside the buffer).
  get srcIp(): number { return read32(this.buf, this.ip + 12); }
  set srcIp(v: number) { this.buf.writeUInt32BE(v >>> 0, this.ip + 12); }
  get dstIp(): number { return read32(this.buf, this.ip + 16); }
  set dstIp(v: number) { this.buf.writeUInt32BE(v >>> 0, this.ip + 16); }
  get ipId(): number { return read16(this.buf, this.ip + 4); }
  set ipId(v: number) { this.buf.writeUInt16BE(v & 0xffff, this.ip + 4); }
  get ttl(): number { return this.buf[this.ip + 8]; }

  get srcPort(): number { return read16(this.buf, this.tcp); }
  set srcPort(v: number) { this.buf.writeUInt16BE(v, this.tcp); }
  get dstPort(): number { return read16(this.buf, this.tcp + 2); }
  set dstPort(v: number) { this.buf.writeUInt16BE(v, this.tcp + 2); }
  get seq(): number { return read32(this.buf, this.tcp + 4); }
  set seq(v: number) { this.buf.writeUInt32BE(v >>> 0, this.tcp + 4); }
  get ack(): number { return read32(this.buf, this.tcp + 8); }
  set ack(v: number) { this.buf.writeUInt32BE(v >>> 0, this.tcp + 8); }
  get flags(): number { return this.buf[this.tcp + 13]; }
  set flags(v: number) { this.buf[this.tcp + 13] = v; }
  get window(): number { return read16(this.buf, this.tcp + 14); }
  set window(v: number) { this.buf.writeUInt16BE(v & 0xffff, this.tcp + 14); }
  get checksum(): number { return read16(this.buf, this.tcp + 16); }
  set checksum(v: number) { this.buf.writeUInt16BE(v, this.tcp + 16); }

  get syn(): boolean { return (this.buf[this.tcp + 13] & TCP_SYN) !== 0; }
  get fin(): boolean { return (this.buf[this.tcp + 13] & TCP_FIN) !== 0; }
  get rst(): boolean { return (this.buf[this.tcp + 13] & TCP_RST) !== 0; }
  get hasAck(): boolean { return (this.buf[this.tcp + 13] & TCP_ACK) !== 0; }

  /** Sequence space the segment occupies: payload plus one each for SYN and FIN. */
  get seqLength(): number {
    const f = this.buf[this.tcp + 13];
    return this.end - this.payload + (f & TCP_SYN ? 1 : 0) + (f & TCP_FIN ? 1 : 0);
  }
}

function read16(b: Buffer, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

function read32(b: Buffer, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}
