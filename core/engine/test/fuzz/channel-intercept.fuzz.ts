// Fuzz properties of intercept's side of the channel (intercept/intercept-server.ts): what it reads
// from a tcpcopy (the HELLO handshake, routes, errors, any bytes), over loopback, and the captured
// replies it decodes and forwards; run by channel-fuzz.spec.ts and `npm run fuzz`.
import { expect } from 'chai';
import fc from 'fast-check';
import { ipv4Offset } from '../../src/decode/link';
import type { LinkType } from '../../src/decode/link-type';
import { DecodeStatus, TcpPacket } from '../../src/decode/tcp-packet';
import { chunked, mutated, randomBytes, splits, untrusted, type FuzzSuite } from '../../src/fuzz';
import { FRAME_HEADER_LENGTH, HelloStatus, MessageType, decodeError, decodeHello, decodeHelloAck } from '../../src/intercept/channel-messages';
import { InterceptClient } from '../../src/intercept/intercept-client';
import { InterceptServer } from '../../src/intercept/intercept-server';
import { framesOf, startsWithHandshake, tcpcopyStream } from './channel-streams';
import { LOOPBACK, noUncaught, readable, talk, until } from './loopback';
import { frameAround, frameSpec, LINK_TYPES, packetSpec, packetBytes } from './packets';

function newServer(logs: string[]): InterceptServer {
  return new InterceptServer({ port: 0, host: LOOPBACK, helloTimeoutMs: 2000, holdMs: 50, holdLimit: 8, log: (l, m) => logs.push(`${l}: ${m}`) });
}

/** Replies the target sends to our fake clients, in link-layer frames: some for a registered route, some not. */
const capturedFrame = fc.tuple(frameSpec, packetSpec, fc.boolean()).map(([f, p, routed]) => ({ ...frameAround(f, packetBytes(p)), linkType: f.linkType, routed, p }));

export const suite: FuzzSuite = {
  id: 'channel-intercept',
  decoder: 'channel, intercept side (intercept/intercept-server.ts reading tcpcopy)',
  seed: 0x1e7c,
  properties: [
    {
      id: 'tcpcopy-streams',
      name: 'whatever a tcpcopy sends: HELLO_ACK only to a HELLO with our magic, ERROR 1 with the reason for a bad message, its routes dropped at close, readable logs',
      runs: 120,
      property: () =>
        fc.asyncProperty(untrusted(tcpcopyStream, { maxRandom: 200 }), splits(64), (stream, sizes) => noUncaught(async () => {
          const logs: string[] = [];
          const server = newServer(logs);
          const { port } = await server.listen();
          try {
            const back = await talk(port, chunked(stream, sizes));
            const frames = framesOf(back);
            expect(frames.reduce((n, f) => n + FRAME_HEADER_LENGTH + f.body.length, 0), 'only whole frames come back').to.equal(back.length);
            const sent = framesOf(stream);
            if (!startsWithHandshake(stream, MessageType.HELLO)) {
              expect(frames, 'no answer to what is not a HELLO of ours').to.deep.equal([]);
            } else {
              const hello = decodeHello(sent[0].body, 0, sent[0].body.length)!;
              const compatible = hello.maxVersion >= 1 && hello.minVersion <= 1;
              expect(frames.length).to.be.at.least(1);
              expect(frames[0].type).to.equal(MessageType.HELLO_ACK);
              const ack = decodeHelloAck(frames[0].body, 0, frames[0].body.length)!;
              expect(ack.status).to.equal(compatible ? HelloStatus.OK : HelloStatus.VERSION_UNSUPPORTED);
              if (!compatible) expect(frames.length).to.equal(1);
              for (const f of frames.slice(1)) {
                expect(f.type, 'after HELLO_ACK, only an ERROR').to.equal(MessageType.ERROR);
                const e = decodeError(f.body, 0, f.body.length);
                expect(e.code).to.equal(1);
                expect(logs.some((l) => l.includes(e.text)), 'the reason is logged').to.equal(true);
              }
              expect(frames.length).to.be.at.most(2);
            }
            await until('the server to drop the connection', () => server.stats().clients === 0 && server.stats().routes === 0);
            const st = server.stats();
            expect(st.clientsAccepted).to.equal(1);
            expect(st.routesAdded).to.be.at.most(sent.filter((f) => f.type === MessageType.ROUTE_ADD).length);
            for (const l of logs) expect(readable(l), l).to.equal(true);
          } finally {
            await server.close();
          }
        })),
    },
    {
      id: 'captured-replies',
      name: 'captured frames, valid, mutated or random: each counted once, and what reaches tcpcopy is a whole REPLY of a well-formed packet',
      runs: 60,
      property: () =>
        fc.asyncProperty(
          fc.array(fc.oneof(
            { weight: 3, arbitrary: capturedFrame.map((c) => ({ ...c, mutate: null as Buffer | null })) },
            { weight: 3, arbitrary: fc.tuple(capturedFrame, mutated(capturedFrame.map((c) => c.frame), 3)).map(([c, m]) => ({ ...c, mutate: m })) },
            { weight: 1, arbitrary: fc.tuple(capturedFrame, randomBytes(100)).map(([c, r]) => ({ ...c, mutate: r })) },
          ), { minLength: 1, maxLength: 12 }),
          fc.nat({ max: 0xffff }),
          fc.oneof(fc.constantFrom(...LINK_TYPES), fc.constant(9 as LinkType)),
          fc.array(fc.nat({ max: 60 }), { minLength: 1, maxLength: 4 }),
          (captures, want, otherLinkType, snaplenCuts) => noUncaught(async () => {
            const logs: string[] = [];
            const server = newServer(logs);
            const { port } = await server.listen();
            const got: Array<{ body: Buffer; payloadLength: number; data: number }> = [];
            const errors: string[] = [];
            const client = new InterceptClient({
              servers: [{ host: LOOPBACK, port }],
              channelsPerIntercept: 1,
              onReply: (pkt, payloadLength, data) => {
                expect(pkt.end).to.be.at.most(pkt.buf.length);
                expect(data.length).to.equal(pkt.end - pkt.payload);
                got.push({ body: Buffer.from(pkt.buf.subarray(pkt.ip, pkt.end)), payloadLength, data: data.length });
              },
              onError: (m) => errors.push(m),
            });
            try {
              await client.connect();
              const routed = captures.filter((c) => c.routed);
              for (const c of routed) client.add({ clientIp: c.p.dstIp, clientPort: c.p.dstPort, targetIp: c.p.srcIp, targetPort: c.p.srcPort, payloadBytes: want });
              await until('the routes to arrive', () => server.stats().routesAdded === routed.length);
              let ipv4 = 0;
              captures.forEach((c, i) => {
                const frame = c.mutate ?? c.frame;
                const linkType = c.mutate && c.mutate.length % 7 === 0 ? otherLinkType : c.linkType;
                // Now and then cut by a snaplen: fewer bytes captured than the packet has.
                const cut = snaplenCuts[i % snaplenCuts.length];
                const length = cut > 40 ? frame.length : Math.max(0, frame.length - cut);
                if (ipv4Offset(linkType, frame, length) >= 0) ipv4++;
                server.onCapturedFrame(frame, length, linkType);
              });
              const st = server.stats();
              expect(st.captured).to.equal(ipv4);
              expect(st.notIpv4).to.equal(captures.length - ipv4);
              expect(st.malformed + st.passed + (st.routed - st.heldDelivered) + st.dropped + st.held, 'each capture counted once').to.equal(st.captured);
              await until('every routed reply to reach tcpcopy', () => got.length >= server.stats().routed);
              const pkt = new TcpPacket();
              for (const g of got) {
                const s = pkt.decode(g.body, 0, g.body.length);
                expect(s === DecodeStatus.OK || s === DecodeStatus.TRUNCATED, 'a REPLY holds a well-formed packet').to.equal(true);
                const headers = pkt.payload - pkt.ip;
                const total = g.body.readUInt16BE(2);
                expect(total, 'the total length is the packet\'s').to.be.at.least(headers);
                expect(g.payloadLength).to.equal(total - headers);
                expect(g.data).to.equal(Math.min(want, g.payloadLength, g.body.length - headers));
              }
              expect(errors).to.deep.equal([]);
              for (const l of logs) expect(readable(l), l).to.equal(true);
            } finally {
              await client.close();
              await server.close();
            }
          }),
        ),
    },
  ],
};
