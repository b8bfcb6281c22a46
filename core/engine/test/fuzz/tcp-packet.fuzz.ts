// Fuzz properties of the IPv4 + TCP decoder (decode/tcp-packet.ts: TcpPacket.decode) and of the
// FrameDecoder that puts it behind the link layer for every capture; run by tcp-packet-fuzz.spec.ts
// and `npm run fuzz`.
import { expect } from 'chai';
import fc from 'fast-check';
import { FrameDecoder } from '../../src/capture/frame-decoder';
import { DecodeStatus, TCP_FIN, TCP_SYN, TcpPacket } from '../../src/decode/tcp-packet';
import { LinkType } from '../../src/decode/link-type';
import { mutated, randomBytes, type FuzzSuite } from '../../src/fuzz';
import { LINK_TYPES, packetBytes, packetSpec, validFrame, validPacket } from './packets';

/** Bytes the decoder must not look at, around the packet. */
const junk = fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a));

const untrustedPacket = fc.oneof(
  { weight: 1, arbitrary: randomBytes(120) },
  { weight: 1, arbitrary: randomBytes(120).map((b) => (b.length > 0 ? ((b[0] = 0x40 | (b[0] & 0x0f)), b) : b)) },
  { weight: 5, arbitrary: mutated(validPacket, 4) },
);

/** Every getter of a decoded view reads inside its packet: none may throw. */
function readAll(p: TcpPacket): number {
  return p.srcIp + p.dstIp + p.ipId + p.ttl + p.srcPort + p.dstPort + p.seq + p.ack + p.flags + p.window + p.checksum +
    p.seqLength + p.payloadLength + p.totalLength + p.ipHeaderLength + p.tcpHeaderLength + Number(p.syn) + Number(p.fin);
}

/** What a decoded view (OK or TRUNCATED) must satisfy for buf[ip, ip + length). */
function checkView(p: TcpPacket, buf: Buffer, ip: number, length: number, status: DecodeStatus): void {
  const captured = Math.min(length, buf.length - ip);
  expect(p.ip).to.equal(ip);
  expect(p.tcp - p.ip, 'IP header length').to.equal((buf[ip] & 0x0f) * 4);
  expect(p.tcp - p.ip).to.be.within(20, 60);
  expect(p.payload - p.tcp, 'TCP header length').to.equal((buf[p.tcp + 12] >> 4) * 4);
  expect(p.payload - p.tcp).to.be.within(20, 60);
  expect(p.payload).to.be.at.most(p.end);
  expect(p.end, 'inside the captured bytes').to.be.at.most(ip + captured);
  expect(p.end, 'inside the buffer').to.be.at.most(buf.length);
  const total = buf.readUInt16BE(ip + 2) || captured;
  if (status === DecodeStatus.OK) expect(p.end - ip, 'the whole packet').to.equal(total);
  else expect(total, 'TRUNCATED: the packet was longer than what was captured').to.be.greaterThan(captured);
  expect(Number.isFinite(readAll(p))).to.equal(true);
}

export const suite: FuzzSuite = {
  id: 'tcp-packet',
  decoder: 'IPv4 + TCP (decode/tcp-packet.ts)',
  seed: 0x7c9,
  properties: [
    {
      id: 'valid',
      name: 'decodes every valid packet, anywhere in a buffer, to its fields; a capture cut after the headers is TRUNCATED',
      runs: 400,
      property: () =>
        fc.property(packetSpec, junk, junk, fc.nat(), (spec, before, after, cutAt) => {
          const bytes = packetBytes(spec);
          const buf = Buffer.concat([before, bytes, after]);
          const headers = 40 + spec.ipOptions.length + spec.tcpOptions.length;
          const p = new TcpPacket();
          expect(p.decode(buf, before.length, bytes.length)).to.equal(DecodeStatus.OK);
          expect([p.srcIp, p.dstIp, p.srcPort, p.dstPort, p.seq, p.ack, p.flags, p.window, p.ipId, p.ttl]).to.deep.equal(
            [spec.srcIp, spec.dstIp, spec.srcPort, spec.dstPort, spec.seq, spec.ack, spec.flags, spec.window, spec.ipId, spec.ttl]);
          expect(p.ipHeaderLength).to.equal(20 + spec.ipOptions.length);
          expect(p.tcpHeaderLength).to.equal(20 + spec.tcpOptions.length);
          expect(buf.subarray(p.payload, p.end).equals(spec.payload)).to.equal(true);
          expect(p.seqLength).to.equal(spec.payload.length + (spec.flags & TCP_SYN ? 1 : 0) + (spec.flags & TCP_FIN ? 1 : 0));
          // Only part of it captured (a snaplen): TRUNCATED once the headers are in, unless the total length is 0 (offload).
          const captured = headers + (cutAt % (spec.payload.length + 1));
          const st = p.decode(buf, before.length, captured);
          const whole = captured === bytes.length || spec.zeroTotal;
          expect(st).to.equal(whole ? DecodeStatus.OK : DecodeStatus.TRUNCATED);
          expect(p.end - p.payload).to.equal(captured - headers);
        }),
    },
    {
      id: 'untrusted',
      name: 'random and mutated packets, lengths up to past the buffer: a status, and any view lies inside the captured bytes',
      runs: 1500,
      property: () =>
        fc.property(untrustedPacket, junk, fc.oneof(fc.constant(0), fc.nat({ max: 200 })), (bytes, before, extra) => {
          const buf = Buffer.concat([before, bytes]);
          const ip = before.length;
          // Mostly the real length; sometimes more than the buffer holds (a caller's length is not trusted either).
          const length = extra % 3 === 0 ? bytes.length : Math.max(0, bytes.length + extra - 100);
          const p = new TcpPacket();
          const st = p.decode(buf, ip, length);
          expect(Object.values(DecodeStatus)).to.include(st);
          if (st === DecodeStatus.OK || st === DecodeStatus.TRUNCATED) checkView(p, buf, ip, length, st);
        }),
    },
    {
      id: 'bounds',
      name: 'reads nothing past the captured length: the bytes after it do not change the result',
      runs: 800,
      property: () =>
        fc.property(untrustedPacket, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes, cut, tail) => {
          const length = cut % (bytes.length + 1);
          const a = new TcpPacket();
          const b = new TcpPacket();
          const sa = a.decode(bytes, 0, length);
          const sb = b.decode(Buffer.concat([bytes.subarray(0, length), tail]), 0, length);
          expect(sb).to.equal(sa);
          if (sa === DecodeStatus.OK || sa === DecodeStatus.TRUNCATED) expect([b.tcp, b.payload, b.end]).to.deep.equal([a.tcp, a.payload, a.end]);
        }),
    },
    {
      id: 'frames',
      name: 'FrameDecoder: every frame is counted once, and a packet it returns lies inside the frame',
      runs: 800,
      property: () =>
        fc.property(
          fc.array(fc.tuple(
            fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...LINK_TYPES) }, { weight: 1, arbitrary: fc.nat({ max: 300 }) }) as fc.Arbitrary<LinkType>,
            fc.oneof(validFrame.map((f) => f.frame), mutated(validFrame.map((f) => f.frame), 4), randomBytes(80)),
            fc.integer({ min: -100, max: 100 }),
          ), { minLength: 1, maxLength: 10 }),
          (frames) => {
            const warnings: string[] = [];
            const d = new FrameDecoder(() => 'fuzz', (m) => warnings.push(m));
            let returned = 0;
            for (const [linkType, frame, delta] of frames) {
              const length = Math.max(0, frame.length + (delta > 0 ? delta : delta < -50 ? delta + 50 : 0));
              const p = d.decode(linkType, frame, length);
              if (p === null) continue;
              returned++;
              expect(p.buf).to.equal(frame);
              expect(p.end).to.be.at.most(Math.min(length, frame.length));
              expect(Number.isFinite(readAll(p))).to.equal(true);
            }
            const s = d.stats;
            expect(s.records).to.equal(frames.length);
            expect(s.tcpPackets).to.equal(returned);
            expect(s.tcpPackets + s.notIpv4 + s.notTcp + s.fragments + s.malformed + s.truncatedBySnaplen).to.equal(s.records);
            expect(warnings.length, 'warnings are bounded').to.be.at.most(6);
          },
        ),
    },
    {
      id: 'frame-decoder-in-place',
      name: 'FrameDecoder in place: a frame inside a larger buffer (start) decodes as it does alone, shifted by start, nothing read around it',
      runs: 500,
      property: () =>
        fc.property(
          fc.array(fc.tuple(
            fc.constantFrom(...LINK_TYPES),
            fc.oneof(validFrame.map((f) => f.frame), mutated(validFrame.map((f) => f.frame), 4), randomBytes(80)),
            fc.nat(),
            junk,
            junk,
          ), { minLength: 1, maxLength: 8 }),
          (frames) => {
            const alone = new FrameDecoder(() => 'alone');
            const inPlace = new FrameDecoder(() => 'in place');
            const fields = (p: TcpPacket | null, shift: number) =>
              p && [p.ip - shift, p.end - shift, p.srcIp, p.dstIp, p.srcPort, p.dstPort, p.seq, p.ack, p.flags, p.payloadLength];
            for (const [linkType, frame, cut, head, tail] of frames) {
              const length = cut % (frame.length + 1);
              const a = fields(alone.decode(linkType, frame, length), 0);
              const big = Buffer.concat([head, frame.subarray(0, length), tail]);
              const b = fields(inPlace.decode(linkType, big, length, head.length), head.length);
              expect(b).to.deep.equal(a);
            }
            expect(inPlace.stats).to.deep.equal(alone.stats);
          },
        ),
    },
  ],
};
