// Valid channel traffic for the fuzz properties of the tcpcopy ⇄ intercept channel: messages of
// every type, encoded with the channel's own encoders, and the streams each side sends.
import fc from 'fast-check';
import {
  CHANNEL_MAGIC,
  encodeError,
  encodeHello,
  encodeHelloAck,
  FRAME_HEADER_LENGTH,
  FrameParser,
  HELLO_ACK_MIN_BODY,
  HELLO_MIN_BODY,
  HelloStatus,
  MessageType,
  writeFrameHeader,
  writeRouteAddBody,
  writeRouteDelBody,
} from '../../src/intercept/channel-messages';
import type { Route } from '../../src/intercept/route-registry';
import { validPacket } from './packets';

export type Message =
  | { type: MessageType.HELLO; name: string; maxVersion: number; minVersion: number }
  | { type: MessageType.HELLO_ACK; version: number; minVersion: number; status: number; maxPayload: number; name: string }
  | { type: MessageType.ROUTE_ADD | MessageType.ROUTE_DEL; route: Route }
  | { type: MessageType.REPLY; body: Buffer }
  | { type: MessageType.ERROR; code: number; text: string }
  /** An extension (0x80-0xFF), or a type below 0x80 that version 1 does not know. */
  | { type: number; body: Buffer; other: true };

const u16 = fc.nat({ max: 0xffff });
const name = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', minLength: 60, maxLength: 120 }));
const version = fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: u16 });

export const route: fc.Arbitrary<Route> = fc.record({
  clientIp: fc.nat({ max: 0xffffffff }),
  clientPort: u16,
  targetIp: fc.nat({ max: 0xffffffff }),
  targetPort: u16,
  payloadBytes: u16,
});

/**
 * A REPLY body: a captured packet cut after its headers and some payload, as intercept sends it;
 * now and then an offload packet whose total length 0 was not replaced by its captured length (as
 * intercept does), as another peer could send it.
 */
export const replyBody: fc.Arbitrary<Buffer> = fc.tuple(validPacket, fc.nat(), fc.nat({ max: 9 })).map(([p, keep, raw]) => {
  const headers = (p[0] & 0x0f) * 4 + (p[((p[0] & 0x0f) * 4) + 12] >> 4) * 4;
  const total = p.readUInt16BE(2);
  if (total === 0 && raw > 0) p.writeUInt16BE(p.length, 2); // intercept writes the captured length for offload packets
  return p.subarray(0, headers + (keep % (p.length - headers + 1)));
});

export const hello = fc.record({ type: fc.constant(MessageType.HELLO as const), name, maxVersion: version, minVersion: version });
export const helloAck = fc.record({
  type: fc.constant(MessageType.HELLO_ACK as const),
  version,
  minVersion: version,
  status: fc.oneof({ weight: 4, arbitrary: fc.constant(HelloStatus.OK) }, { weight: 1, arbitrary: fc.nat({ max: 255 }) }),
  maxPayload: u16,
  name,
});
const routeMsg = fc.record({ type: fc.constantFrom(MessageType.ROUTE_ADD as const, MessageType.ROUTE_DEL as const), route });
const reply = fc.record({ type: fc.constant(MessageType.REPLY as const), body: replyBody });
const error = fc.record({ type: fc.constant(MessageType.ERROR as const), code: u16, text: fc.string({ maxLength: 60 }) });
const other = fc.record({
  type: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0x80, max: 0xff }) }, { weight: 1, arbitrary: fc.constantFrom(0, 7, 8, 0x7f) }),
  body: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  other: fc.constant(true as const),
});

/** Any message, either direction. */
export const message: fc.Arbitrary<Message> = fc.oneof(hello, helloAck, routeMsg, reply, error, other);

export function encode(m: Message): Buffer {
  if ('other' in m) return frame(m.type, m.body);
  switch (m.type) {
    case MessageType.HELLO: return encodeHello(m.name, m.maxVersion, m.minVersion);
    case MessageType.HELLO_ACK: return encodeHelloAck(m);
    case MessageType.ROUTE_ADD:
    case MessageType.ROUTE_DEL: {
      const add = m.type === MessageType.ROUTE_ADD;
      const b = Buffer.alloc(FRAME_HEADER_LENGTH + (add ? 14 : 12));
      writeFrameHeader(b, 0, m.type, b.length - FRAME_HEADER_LENGTH);
      (add ? writeRouteAddBody : writeRouteDelBody)(b, FRAME_HEADER_LENGTH, m.route);
      return b;
    }
    case MessageType.REPLY: return frame(m.type, m.body);
    case MessageType.ERROR: return encodeError(m.code, m.text);
  }
  throw new Error('unreachable');
}

export function frame(type: number, body: Buffer): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_LENGTH + body.length);
  writeFrameHeader(b, 0, type, body.length);
  body.copy(b, FRAME_HEADER_LENGTH);
  return b;
}

/** What tcpcopy sends: a HELLO (version 1 mostly), then routes, errors, extensions and the odd unknown type. */
export const tcpcopyStream: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.record({ type: fc.constant(MessageType.HELLO as const), name, maxVersion: fc.oneof({ weight: 9, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: u16 }), minVersion: fc.constant(1) }),
    fc.array(fc.oneof({ weight: 6, arbitrary: routeMsg }, { weight: 1, arbitrary: error }, { weight: 1, arbitrary: other }), { maxLength: 12 }),
  )
  .map(([h, rest]) => Buffer.concat([encode(h), ...rest.map(encode)]));

/** What intercept sends: a HELLO_ACK (OK, version 1 mostly), then replies, and now and then an error or an extension. */
export const interceptStream: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.record({
      type: fc.constant(MessageType.HELLO_ACK as const),
      version: fc.oneof({ weight: 9, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: u16 }),
      minVersion: fc.constant(1),
      status: fc.oneof({ weight: 9, arbitrary: fc.constant(HelloStatus.OK) }, { weight: 1, arbitrary: fc.nat({ max: 3 }) }),
      maxPayload: u16,
      name,
    }),
    fc.array(fc.oneof({ weight: 8, arbitrary: reply }, { weight: 1, arbitrary: error }, { weight: 1, arbitrary: other }), { maxLength: 12 }),
  )
  .map(([h, rest]) => Buffer.concat([encode(h), ...rest.map(encode)]));

/** The first frame of a stream, when it is whole. */
export function firstFrame(stream: Buffer): { type: number; body: Buffer } | null {
  if (stream.length < FRAME_HEADER_LENGTH) return null;
  const n = stream.readUInt16BE(2);
  if (stream.length < FRAME_HEADER_LENGTH + n) return null;
  return { type: stream[0], body: stream.subarray(FRAME_HEADER_LENGTH, FRAME_HEADER_LENGTH + n) };
}

/** The stream starts with a whole HELLO (or HELLO_ACK) with our magic: the handshake the peer must accept. */
export function startsWithHandshake(stream: Buffer, type: MessageType.HELLO | MessageType.HELLO_ACK): boolean {
  const f = firstFrame(stream);
  const min = type === MessageType.HELLO ? HELLO_MIN_BODY : HELLO_ACK_MIN_BODY;
  return f !== null && f.type === type && f.body.length >= min && f.body.readUInt32BE(0) === CHANNEL_MAGIC;
}

/** Every whole frame of a stream, in order (a trailing partial frame is left out). */
export function framesOf(stream: Buffer): Array<{ type: number; body: Buffer }> {
  const out: Array<{ type: number; body: Buffer }> = [];
  new FrameParser((type, buf, start, end) => out.push({ type, body: Buffer.from(buf.subarray(start, end)) })).push(stream);
  return out;
}
