// The packet builder on its own: every header field it writes, its options, and checksums checked with the
// decoder's own checksum functions (not with the builder's arithmetic).
import { expect } from 'chai';
import { ipv4ChecksumValid, sumBytes, tcpChecksum, tcpChecksumValid } from '../src/decode/checksum';
import { parseIpv4 } from '../src/decode/ip-address';
import { TcpOptions } from '../src/decode/tcp-options';
import { DecodeStatus, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpPacket } from '../src/decode/tcp-packet';
import { OUR_WINDOW, OUR_WSCALE, PacketBuilder, SegmentSpec } from '../src/rewrite/packet-builder';

const CLIENT = parseIpv4('203.0.113.7');
const TARGET = parseIpv4('198.51.100.30');

function spec(fields: Partial<SegmentSpec> = {}): SegmentSpec {
  const s = new SegmentSpec();
  s.srcIp = CLIENT;
  s.dstIp = TARGET;
  s.srcPort = 40001;
  s.dstPort = 8080;
  s.ipId = 7;
  s.seq = 1000;
  s.ack = 2000;
  s.flags = TCP_ACK;
  return Object.assign(s, fields);
}

/** Sets the payload fields from `data` (a slice of `src` at `offset`), with its true sum. */
function withPayload(s: SegmentSpec, src: Buffer, offset = 0, length = src.length - offset): SegmentSpec {
  s.payload = src;
  s.payloadOffset = offset;
  s.payloadLength = length;
  s.payloadSum = sumBytes(src, offset, offset + length);
  return s;
}

/** Builds and returns a copy of the packet, decoded. */
function build(pb: PacketBuilder, s: SegmentSpec): { buf: Buffer; p: TcpPacket; opts: TcpOptions } {
  const n = pb.build(s);
  const buf = Buffer.from(pb.scratch.subarray(0, n));
  const p = new TcpPacket();
  expect(p.decode(buf, 0, buf.length), 'decodes').to.equal(DecodeStatus.OK);
  const opts = new TcpOptions().parse(buf, p.tcp + 20, p.payload);
  return { buf, p, opts };
}

function checksumsValid(buf: Buffer, p: TcpPacket): void {
  expect(ipv4ChecksumValid(buf, 0), 'IPv4 header checksum').to.equal(true);
  expect(tcpChecksumValid(buf, p.srcIp, p.dstIp, p.tcp, p.end), 'TCP checksum').to.equal(true);
  expect(tcpChecksum(buf, p.srcIp, p.dstIp, p.tcp, p.end), 'the TCP checksum computed afresh').to.equal(p.checksum);
}

describe('PacketBuilder', () => {
  it('writes the IPv4 header: version and length, id, DF, TTL 64, TCP, addresses', () => {
    const { buf, p } = build(new PacketBuilder(), spec());
    expect(buf.length).to.equal(40);
    expect(buf[0]).to.equal(0x45);
    expect(buf[1], 'TOS').to.equal(0);
    expect(buf.readUInt16BE(2)).to.equal(40);
    expect(p.ipId).to.equal(7);
    expect(buf.readUInt16BE(6), 'DF, no fragment').to.equal(0x4000);
    expect(p.ttl).to.equal(64);
    expect(buf[9]).to.equal(6);
    expect(p.srcIp).to.equal(CLIENT);
    expect(p.dstIp).to.equal(TARGET);
    checksumsValid(buf, p);
  });

  it('keeps the IP id to 16 bits', () => {
    const { buf, p } = build(new PacketBuilder(), spec({ ipId: 0x12345 }));
    expect(p.ipId).to.equal(0x2345);
    checksumsValid(buf, p);
  });

  it('writes the TCP header: ports, seq and ack (full 32-bit range), flags, our window, no urgent pointer', () => {
    const { buf, p } = build(new PacketBuilder(), spec({ seq: 0xfffffff0, ack: -1, flags: TCP_ACK | TCP_PSH | TCP_FIN }));
    expect(p.srcPort).to.equal(40001);
    expect(p.dstPort).to.equal(8080);
    expect(p.seq).to.equal(0xfffffff0);
    expect(p.ack).to.equal(0xffffffff);
    expect(p.flags).to.equal(TCP_ACK | TCP_PSH | TCP_FIN);
    expect(p.window).to.equal(OUR_WINDOW);
    expect(buf.readUInt16BE(p.tcp + 18), 'urgent pointer').to.equal(0);
    expect(buf[p.tcp + 12] & 0x0f, 'reserved bits').to.equal(0);
    expect(p.tcpHeaderLength).to.equal(20);
    checksumsValid(buf, p);
  });

  describe('options', () => {
    it('a SYN offers our MSS and window scale, and nothing else without timestamps', () => {
      const { buf, p, opts } = build(new PacketBuilder(), spec({ flags: TCP_SYN, ack: 0, mss: 1400 }));
      expect(p.tcpHeaderLength).to.equal(28);
      expect(opts.valid).to.equal(true);
      expect(opts.mss).to.equal(1400);
      expect(opts.wscale).to.equal(OUR_WSCALE);
      expect(opts.hasTimestamp).to.equal(false);
      expect(opts.sackPermitted).to.equal(false);
      checksumsValid(buf, p);
    });

    it('a SYN with timestamps carries MSS, window scale and the timestamp option', () => {
      const { buf, p, opts } = build(new PacketBuilder(), spec({ flags: TCP_SYN, timestamps: true, tsVal: 0x01020304, tsEcr: 0 }));
      expect(p.tcpHeaderLength).to.equal(40);
      expect(opts.mss).to.equal(1460);
      expect(opts.wscale).to.equal(OUR_WSCALE);
      expect(opts.tsVal).to.equal(0x01020304);
      expect(opts.tsEcr).to.equal(0);
      // Kind 8 length 10 after two NOPs, so TSval sits at a multiple of 4 from the TCP header.
      expect(buf.subarray(opts.tsOffset - 4, opts.tsOffset).toString('hex')).to.equal('0101080a');
      checksumsValid(buf, p);
    });

    it('a SYN-ACK is a SYN: it offers MSS and window scale too', () => {
      const { p, opts } = build(new PacketBuilder(), spec({ flags: TCP_SYN | TCP_ACK }));
      expect(p.tcpHeaderLength).to.equal(28);
      expect(opts.mss).to.equal(1460);
    });

    it('other segments carry the timestamp option only, with full 32-bit values', () => {
      const { buf, p, opts } = build(new PacketBuilder(), spec({ timestamps: true, tsVal: 0xfedcba98, tsEcr: 0x80000001 }));
      expect(p.tcpHeaderLength).to.equal(32);
      expect(opts.mss).to.equal(-1);
      expect(opts.wscale).to.equal(-1);
      expect(opts.tsVal).to.equal(0xfedcba98);
      expect(opts.tsEcr).to.equal(0x80000001);
      checksumsValid(buf, p);
    });
  });

  describe('payload and checksums', () => {
    it('appends the payload and checksums it from its stored sum: even and odd lengths', () => {
      for (const text of ['', 'x', 'GET / HTTP/1.1\r\n\r\n', 'odd-length payload!']) {
        const data = Buffer.from(text, 'latin1');
        const { buf, p } = build(new PacketBuilder(), withPayload(spec({ flags: TCP_ACK | TCP_PSH, timestamps: true, tsVal: 5, tsEcr: 6 }), data));
        expect(p.payloadLength, JSON.stringify(text)).to.equal(data.length);
        expect(buf.subarray(p.payload).equals(data)).to.equal(true);
        expect(buf.readUInt16BE(2)).to.equal(20 + 32 + data.length);
        checksumsValid(buf, p);
      }
    });

    it('takes the payload from an offset inside a larger buffer', () => {
      const src = Buffer.from('<<<headers>>>the payload itself<<<trailer>>>', 'latin1');
      const off = src.indexOf('the');
      const { buf, p } = build(new PacketBuilder(), withPayload(spec(), src, off, 'the payload itself'.length));
      expect(buf.subarray(p.payload).toString('latin1')).to.equal('the payload itself');
      checksumsValid(buf, p);
    });

    it('a payload larger than an MTU (a GRO-sized segment)', () => {
      const data = Buffer.alloc(9000);
      for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
      const { buf, p } = build(new PacketBuilder(), withPayload(spec(), data));
      expect(p.payloadLength).to.equal(9000);
      checksumsValid(buf, p);
    });

    it('uses the stored payload sum as given: a wrong one gives a wrong checksum (the payload is not summed again)', () => {
      const data = Buffer.from('payload', 'latin1');
      const s = withPayload(spec(), data);
      s.payloadSum += 1;
      const { buf, p } = build(new PacketBuilder(), s);
      expect(tcpChecksumValid(buf, p.srcIp, p.dstIp, p.tcp, p.end)).to.equal(false);
    });

    it('ignores the payload fields when the length is 0, and a payload of null', () => {
      const s = spec();
      s.payload = Buffer.from('ignored');
      s.payloadLength = 0;
      s.payloadSum = 12345;
      let r = build(new PacketBuilder(), s);
      expect(r.buf.length).to.equal(40);
      checksumsValid(r.buf, r.p);
      const t = spec();
      t.payload = null;
      r = build(new PacketBuilder(), t);
      expect(r.buf.length).to.equal(40);
      checksumsValid(r.buf, r.p);
    });

    it('checksums the addresses: the same segment to another address has another checksum', () => {
      const a = build(new PacketBuilder(), spec());
      const b = build(new PacketBuilder(), spec({ dstIp: parseIpv4('198.51.100.31') }));
      expect(a.p.checksum).to.not.equal(b.p.checksum);
      checksumsValid(b.buf, b.p);
    });
  });

  it('reuses its scratch buffer: a small packet after a large one carries nothing of it', () => {
    const pb = new PacketBuilder();
    const big = Buffer.alloc(1400, 0xee);
    pb.build(withPayload(spec({ flags: TCP_SYN | TCP_ACK, timestamps: true, tsVal: 1, tsEcr: 2 }), big));
    const { buf, p, opts } = build(pb, spec({ flags: TCP_RST, seq: 5 }));
    expect(buf.length).to.equal(40);
    expect(p.flags).to.equal(TCP_RST);
    expect(p.tcpHeaderLength).to.equal(20);
    expect(opts.hasTimestamp).to.equal(false);
    checksumsValid(buf, p);
  });
});
