// The compliance kit's own test doubles (exported as @tcpcopy/core/compliance): the packet builder and the fake
// ProtocolContext that protocol packages' tests are built on.
import { expect } from 'chai';
import * as kit from '../src/compliance';
import {
  buildPacket,
  ethernetFrame,
  ETHERTYPE_IPV6,
  FakeProtocolContext,
  ipv4Packet,
  synAckOptions,
  tcpSegment,
  udpPacket,
  view,
} from '../src/compliance';
import { ipv4ChecksumValid, tcpChecksumValid } from '../src/decode/checksum';
import { formatIpv4 } from '../src/decode/ip-address';
import { TcpOptions } from '../src/decode/tcp-options';
import { DecodeStatus, TCP_ACK, TCP_PSH, TCP_SYN, TcpPacket } from '../src/decode/tcp-packet';
import { MAX_REPLY_PAYLOAD_BYTES, type ProtocolContext } from '../src/protocol/session-protocol';

const FIELDS = { src: '192.0.2.10', sport: 40000, dst: '198.51.100.20', dport: 80, seq: 0xfffffff0, ack: 7, flags: TCP_ACK | TCP_PSH };

describe('compliance kit', () => {
  it('exports the packet builder and the fake context next to the suite', () => {
    for (const name of ['protocolComplianceTests', 'EngineRig', 'SimTarget', 'conversation', 'prng', 'buildPacket', 'tcpSegment',
      'ipv4Packet', 'udpPacket', 'ethernetFrame', 'view', 'synAckOptions', 'FakeProtocolContext']) {
      expect(kit, name).to.have.property(name);
    }
  });

  describe('buildPacket', () => {
    it('builds a packet the decoder reads back field by field, with valid checksums', () => {
      const pkt = buildPacket({ ...FIELDS, payload: 'héllo', window: 1024, id: 0x1234, ttl: 33 });
      const p = new TcpPacket();
      expect(p.decode(pkt, 0, pkt.length)).to.equal(DecodeStatus.OK);
      expect([formatIpv4(p.srcIp), p.srcPort, formatIpv4(p.dstIp), p.dstPort]).to.deep.equal(['192.0.2.10', 40000, '198.51.100.20', 80]);
      expect([p.seq, p.ack, p.flags, p.window, p.ipId, p.ttl]).to.deep.equal([0xfffffff0, 7, TCP_ACK | TCP_PSH, 1024, 0x1234, 33]);
      expect(pkt.subarray(p.payload).equals(Buffer.from('héllo', 'latin1')), 'a string payload is latin1').to.equal(true);
      expect(pkt.readUInt16BE(6), 'DF by default').to.equal(0x4000);
      expect(ipv4ChecksumValid(pkt, 0)).to.equal(true);
      expect(tcpChecksumValid(pkt, p.srcIp, p.dstIp, p.tcp, p.end)).to.equal(true);
    });

    it('carries TCP options and sets the data offset from them', () => {
      const pkt = buildPacket({ ...FIELDS, flags: TCP_SYN | TCP_ACK, options: synAckOptions(1400, 7, 11, 22) });
      const p = view(pkt);
      expect(p.tcpHeaderLength).to.equal(40);
      const o = new TcpOptions().parse(pkt, p.tcp + 20, p.payload);
      expect([o.mss, o.wscale, o.tsVal, o.tsEcr]).to.deep.equal([1400, 7, 11, 22]);
      expect(tcpChecksumValid(pkt, p.srcIp, p.dstIp, p.tcp, p.end)).to.equal(true);
      expect(() => buildPacket({ ...FIELDS, options: Buffer.alloc(3) }), 'options not padded to 4').to.throw(/multiple of 4/);
    });

    it('leaves a partial checksum (pseudo-header only) when asked, as offload does', () => {
      const pkt = buildPacket({ ...FIELDS, payload: Buffer.from('data'), partialChecksum: true });
      const p = view(pkt);
      expect(tcpChecksumValid(pkt, p.srcIp, p.dstIp, p.tcp, p.end)).to.equal(false);
      const full = buildPacket({ ...FIELDS, payload: Buffer.from('data') });
      expect(pkt.subarray(0, 36).equals(full.subarray(0, 36)), 'everything else is the same').to.equal(true);
    });

    it('builds fragments (the flags and offset word) and refuses a bad address', () => {
      const frag = buildPacket({ ...FIELDS, fragment: 0x2000 });
      expect(frag.readUInt16BE(6)).to.equal(0x2000);
      expect(ipv4ChecksumValid(frag, 0)).to.equal(true);
      expect(() => buildPacket({ ...FIELDS, dst: '198.51.100' })).to.throw(/not an IPv4 address/);
    });

    it('is ipv4Packet around tcpSegment', () => {
      const f = { ...FIELDS, payload: 'abc', id: 9 };
      expect(buildPacket(f).equals(ipv4Packet(f.src, f.dst, 6, tcpSegment(f), { id: 9 }))).to.equal(true);
    });

    it('udpPacket and ethernetFrame', () => {
      const u = udpPacket('192.0.2.1', '192.0.2.2', 5353, 53, 'q');
      expect([u[9], u.readUInt16BE(20), u.readUInt16BE(22), u.readUInt16BE(24), u.length]).to.deep.equal([17, 5353, 53, 9, 29]);
      expect(ipv4ChecksumValid(u, 0)).to.equal(true);
      const frame = ethernetFrame(buildPacket(FIELDS));
      expect(new TcpPacket().decode(frame, 14, frame.length - 14), 'the IPv4 packet after 14 bytes').to.equal(DecodeStatus.OK);
      expect(frame.readUInt16BE(12)).to.equal(0x0800);
      expect(ethernetFrame(Buffer.alloc(40), { etherType: ETHERTYPE_IPV6 }).readUInt16BE(12)).to.equal(0x86dd);
      expect(() => ethernetFrame(Buffer.alloc(40), { srcMac: Buffer.alloc(5) })).to.throw(/6 bytes/);
    });
  });

  describe('FakeProtocolContext', () => {
    it('is a whole ProtocolContext, addressed as asked (defaults: 192.0.2.10:40000 → 198.51.100.30:80, handshake seen)', () => {
      const ctx: ProtocolContext = new FakeProtocolContext();
      expect([formatIpv4(ctx.clientIp), ctx.clientPort, formatIpv4(ctx.targetIp), ctx.targetPort, ctx.sawHandshake])
        .to.deep.equal(['192.0.2.10', 40000, '198.51.100.30', 80, true]);
      const other = new FakeProtocolContext({ clientIp: 0xcb007101, targetIp: '198.51.100.31', targetPort: 6379, sawHandshake: false });
      expect([formatIpv4(other.clientIp), formatIpv4(other.targetIp), other.targetPort, other.sawHandshake])
        .to.deep.equal(['203.0.113.1', '198.51.100.31', 6379, false]);
      expect(() => new FakeProtocolContext({ targetIp: 'target' })).to.throw(/not an IPv4 address/);
    });

    it('records every call in order, emits with their tags, the buffers themselves', () => {
      const ctx = new FakeProtocolContext();
      const a = Buffer.from('GET /a\n');
      ctx.emit(a, 1);
      ctx.log('something odd');
      ctx.emitNext(Buffer.from('LOGIN\n'), 9);
      ctx.alignServerBytes(120);
      ctx.setReplyPayloadBytes(64);
      ctx.emit(Buffer.from('raw'));
      expect(ctx.calls.map((c) => c.kind)).to.deep.equal(['emit', 'log', 'emitNext', 'alignServerBytes', 'setReplyPayloadBytes', 'emit']);
      expect(ctx.emitted.map((e) => [e.data.toString(), e.tag, e.next])).to.deep.equal([
        ['GET /a\n', 1, false], ['LOGIN\n', 9, true], ['raw', 0, false],
      ]);
      expect(ctx.emitted[0].data, 'not a copy').to.equal(a);
      expect(ctx.logs).to.deep.equal(['something odd']);
      expect(ctx.alignments).to.deep.equal([120]);
      expect(ctx.replyPayloadRequests).to.deep.equal([64]);
      expect(ctx.replyPayloadBytes).to.equal(64);
    });

    it('joins what was emitted, all of it and by tag', () => {
      const ctx = new FakeProtocolContext();
      ctx.emit(Buffer.from('a1'), 1);
      ctx.emit(Buffer.from('b2'), 2);
      ctx.emit(Buffer.from('a1+'), 1);
      expect(ctx.bytes().toString()).to.equal('a1b2a1+');
      expect(ctx.tags()).to.deep.equal([1, 2]);
      expect([...ctx.byTag()].map(([t, d]) => [t, d.toString()])).to.deep.equal([[1, 'a1a1+'], [2, 'b2']]);
    });

    it('stamps each call with the mark the test set', () => {
      const ctx = new FakeProtocolContext();
      ctx.emit(Buffer.from('x'));
      ctx.mark = 3;
      ctx.emit(Buffer.from('y'));
      ctx.log('z');
      expect(ctx.emitted.map((e) => e.mark)).to.deep.equal([-1, 3]);
      expect(ctx.calls.map((c) => c.mark)).to.deep.equal([-1, 3, 3]);
    });

    it('refuses emitNext while asking (mayRelease, beforeSend), as the engine does; emit is allowed', () => {
      const ctx = new FakeProtocolContext();
      ctx.asking = true;
      expect(() => ctx.emitNext(Buffer.from('x'))).to.throw(/not allowed from mayRelease or beforeSend/);
      ctx.emit(Buffer.from('y'));
      ctx.asking = false;
      ctx.emitNext(Buffer.from('z'));
      expect(ctx.emitted.map((e) => e.data.toString())).to.deep.equal(['y', 'z']);
    });

    it('clamps the reply payload bytes as the engine does, keeping what was asked', () => {
      const ctx = new FakeProtocolContext({ replyPayloadBytes: 16 });
      expect(ctx.replyPayloadBytes).to.equal(16);
      ctx.setReplyPayloadBytes(10 ** 9);
      expect(ctx.replyPayloadBytes).to.equal(MAX_REPLY_PAYLOAD_BYTES);
      ctx.setReplyPayloadBytes(-5);
      expect(ctx.replyPayloadBytes).to.equal(0);
      ctx.setReplyPayloadBytes(99.7);
      expect(ctx.replyPayloadBytes).to.equal(99);
      expect(ctx.replyPayloadRequests).to.deep.equal([10 ** 9, -5, 99.7]);
    });

    it('refuses what is not a Buffer (the engine would fail later, far from the cause)', () => {
      const ctx = new FakeProtocolContext();
      expect(() => ctx.emit('text' as unknown as Buffer)).to.throw(TypeError);
      expect(ctx.emitted).to.have.length(0);
    });
  });
});
