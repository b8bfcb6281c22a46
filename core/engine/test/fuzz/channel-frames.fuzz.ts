// Fuzz properties of the channel's wire format (intercept/channel-messages.ts: the frame parser and
// the message decoders, and intercept/handshake-sniff.ts), shared by both sides; run by
// channel-fuzz.spec.ts and `npm run fuzz`. How each side reacts to what it reads is in
// channel-intercept.fuzz.ts and channel-tcpcopy.fuzz.ts.
import { expect } from 'chai';
import fc from 'fast-check';
import { DecodeStatus, TcpPacket } from '../../src/decode/tcp-packet';
import { chunked, splits, untrusted, type FuzzSuite } from '../../src/fuzz';
import {
  decodeError,
  decodeHello,
  decodeHelloAck,
  ERROR_MIN_BODY,
  FRAME_HEADER_LENGTH,
  FrameParser,
  HELLO_ACK_MIN_BODY,
  HELLO_MIN_BODY,
  MAX_BODY_LENGTH,
  MAX_FRAME_LENGTH,
  MAX_NAME_BYTES,
  MessageType,
  previewBytes,
  readRouteBody,
  ROUTE_ADD_BODY,
  ROUTE_DEL_BODY,
} from '../../src/intercept/channel-messages';
import { HandshakeSniff } from '../../src/intercept/handshake-sniff';
import type { Route } from '../../src/intercept/route-registry';
import { encode, interceptStream, message, tcpcopyStream, type Message } from './channel-streams';

const cutName = (s: string, max: number) => Buffer.from(s, 'utf8').subarray(0, max).toString('utf8');

/** Whatever the body, each decoder returns null/false or values in their fields' ranges. */
function decodeAny(type: number, buf: Buffer, start: number, end: number, scratch: Route, pkt: TcpPacket): void {
  const n = end - start;
  const h = decodeHello(buf, start, end);
  expect(h === null).to.equal(n < HELLO_MIN_BODY);
  if (h) {
    expect(Buffer.byteLength(h.name), 'a name is cut to 200 bytes').to.be.at.most(3 * MAX_NAME_BYTES);
    expect([h.maxVersion, h.minVersion, h.flags].every((v) => v >= 0 && v <= 0xffff)).to.equal(true);
  }
  const a = decodeHelloAck(buf, start, end);
  expect(a === null).to.equal(n < HELLO_ACK_MIN_BODY);
  if (a) expect(a.name.length).to.be.at.most(MAX_NAME_BYTES);
  expect(readRouteBody(MessageType.ROUTE_ADD, buf, start, end, scratch)).to.equal(n >= ROUTE_ADD_BODY);
  expect(readRouteBody(MessageType.ROUTE_DEL, buf, start, end, scratch)).to.equal(n >= ROUTE_DEL_BODY);
  const e = decodeError(buf, start, end);
  expect(e.code).to.be.within(0, 0xffff);
  if (n < ERROR_MIN_BODY) expect(e).to.deep.equal({ code: 0, text: '' });
  expect(previewBytes(buf, start, end).length, 'a preview is short').to.be.at.most(40 * 3 + 12);
  if (type === MessageType.REPLY) {
    const st = pkt.decode(buf, start, n);
    if (st === DecodeStatus.OK || st === DecodeStatus.TRUNCATED) expect(pkt.end).to.be.at.most(end);
  }
}

function checkDecoded(m: Message, type: number, buf: Buffer, start: number, end: number): void {
  expect(type).to.equal(m.type);
  if ('other' in m) {
    expect(buf.subarray(start, end).equals(m.body)).to.equal(true);
    return;
  }
  switch (m.type) {
    case MessageType.HELLO: {
      const h = decodeHello(buf, start, end)!;
      expect(h).to.deep.equal({ magic: 0x54435049, maxVersion: m.maxVersion, minVersion: m.minVersion, flags: 0, name: cutName(m.name, MAX_NAME_BYTES) });
      break;
    }
    case MessageType.HELLO_ACK: {
      const a = decodeHelloAck(buf, start, end)!;
      expect(a).to.deep.equal({ magic: 0x54435049, version: m.version, minVersion: m.minVersion, status: m.status, maxPayload: m.maxPayload, name: cutName(m.name, MAX_NAME_BYTES) });
      break;
    }
    case MessageType.ROUTE_ADD:
    case MessageType.ROUTE_DEL: {
      const r: Route = { clientIp: 0, clientPort: 0, targetIp: 0, targetPort: 0, payloadBytes: -1 };
      expect(readRouteBody(m.type, buf, start, end, r)).to.equal(true);
      expect(r).to.deep.equal({ ...m.route, payloadBytes: m.type === MessageType.ROUTE_ADD ? m.route.payloadBytes : 0 });
      break;
    }
    case MessageType.REPLY:
      expect(buf.subarray(start, end).equals(m.body)).to.equal(true);
      break;
    case MessageType.ERROR:
      expect(decodeError(buf, start, end)).to.deep.equal({ code: m.code, text: cutName(m.text, 1000) });
      break;
  }
}

const anyStream = fc.oneof(untrusted(tcpcopyStream, { maxRandom: 300 }), untrusted(interceptStream, { maxRandom: 300 }));

export const suite: FuzzSuite = {
  id: 'channel-frames',
  decoder: 'channel frames and messages (intercept/channel-messages.ts, handshake-sniff.ts)',
  seed: 0xc4a,
  properties: [
    {
      id: 'round-trip',
      name: 'encode → parse → decode gives back every message, however the stream is cut into chunks',
      runs: 400,
      property: () =>
        fc.property(fc.array(message, { maxLength: 10 }), splits(80), (messages, sizes) => {
          const stream = Buffer.concat(messages.map(encode));
          let i = 0;
          const parser = new FrameParser((type, buf, start, end) => {
            expect(i, 'no frame more than was sent').to.be.below(messages.length);
            checkDecoded(messages[i++], type, buf, start, end);
          });
          for (const c of chunked(stream, sizes)) parser.push(c);
          expect(i).to.equal(messages.length);
          expect(parser.bufferedBytes).to.equal(0);
          expect(parser.frames).to.equal(messages.length);
        }),
    },
    {
      id: 'untrusted',
      name: 'random and mutated streams in any chunks: frames inside their buffer, every byte accounted for, at most one 64 KiB frame buffered, every decoder total',
      runs: 800,
      property: () =>
        fc.property(anyStream, splits(100), fc.option(fc.nat({ max: 12 }), { nil: null }), (stream, sizes, stopAt) => {
          let consumed = 0;
          const scratch: Route = { clientIp: 0, clientPort: 0, targetIp: 0, targetPort: 0, payloadBytes: 0 };
          const pkt = new TcpPacket();
          let afterStop = 0;
          const parser: FrameParser = new FrameParser((type, buf, start, end) => {
            if (parser.stopped) afterStop++;
            expect(start).to.be.at.least(FRAME_HEADER_LENGTH);
            expect(end).to.be.at.most(buf.length);
            expect(end - start).to.be.within(0, MAX_BODY_LENGTH);
            expect(type).to.equal(buf[start - FRAME_HEADER_LENGTH]);
            expect(buf.readUInt16BE(start - 2)).to.equal(end - start);
            consumed += FRAME_HEADER_LENGTH + end - start;
            decodeAny(type, buf, start, end, scratch, pkt);
            if (stopAt !== null && parser.frames > stopAt) parser.stop();
          });
          for (const c of chunked(stream, sizes)) {
            parser.push(c);
            expect(parser.bufferedBytes).to.be.below(MAX_FRAME_LENGTH);
          }
          expect(afterStop, 'nothing after stop()').to.equal(0);
          if (!parser.stopped) expect(consumed + parser.bufferedBytes).to.equal(stream.length);
          else expect(parser.bufferedBytes).to.equal(0);
        }),
    },
    {
      id: 'sniff',
      name: 'the handshake sniff decides the same whatever the chunks: our magic in a HELLO / HELLO_ACK, or an ERROR where allowed',
      runs: 600,
      property: () =>
        fc.property(anyStream, splits(9), fc.constantFrom(MessageType.HELLO, MessageType.HELLO_ACK), (stream, sizes, expected) => {
          if (stream.length === 0) return;
          const alsoFirst = expected === MessageType.HELLO_ACK ? MessageType.ERROR : -1;
          const whole = new HandshakeSniff(expected, alsoFirst);
          const verdict = whole.check(stream);
          const piecewise = new HandshakeSniff(expected, alsoFirst);
          let ok = true;
          for (const c of chunked(stream, sizes)) {
            if (piecewise.done) break;
            if (!piecewise.check(c)) {
              ok = false;
              break;
            }
          }
          expect(ok).to.equal(verdict);
          expect(piecewise.done).to.equal(whole.done);
          const magicOk = stream.length < 8 || stream.readUInt32BE(4) === 0x54435049;
          expect(verdict).to.equal(stream[0] === expected ? magicOk : stream[0] === alsoFirst);
        }),
    },
  ],
};
