// Fuzz properties of tcpcopy's side of the channel (intercept/intercept-client.ts and
// intercept-connection.ts): what it reads from an intercept (the HELLO_ACK handshake, replies,
// errors, any bytes), over loopback from a fake intercept; run by channel-fuzz.spec.ts and
// `npm run fuzz`.
import { expect } from 'chai';
import fc from 'fast-check';
import { chunked, splits, untrusted, type FuzzSuite } from '../../src/fuzz';
import { decodeHelloAck, MessageType } from '../../src/intercept/channel-messages';
import { InterceptClient, InterceptConnectError } from '../../src/intercept/intercept-client';
import { framesOf, interceptStream, startsWithHandshake } from './channel-streams';
import { fakePeer, LOOPBACK, noUncaught, readable, until, writeChunks } from './loopback';

/** What connect() may fail with when the peer answered something: each names the address and says what to do. */
const CONNECT_CODES = ['NOT_INTERCEPT', 'VERSION', 'PROTOCOL', 'CLOSED'];

export const suite: FuzzSuite = {
  id: 'channel-tcpcopy',
  decoder: 'channel, tcpcopy side (intercept/intercept-connection.ts reading intercept)',
  seed: 0x7c9c,
  properties: [
    {
      id: 'intercept-streams',
      name: 'whatever an intercept sends: connect() succeeds only on a HELLO_ACK OK of version 1, else an InterceptConnectError naming the address; replies inside their frame, never more data than payload',
      runs: 150,
      property: () =>
        fc.asyncProperty(untrusted(interceptStream, { maxRandom: 200 }), splits(64), (stream, sizes) => noUncaught(async () => {
          const peer = await fakePeer((s) => void writeChunks(s, chunked(stream, sizes)));
          const at = `${LOOPBACK}:${peer.port}`;
          const errors: string[] = [];
          let replies = 0;
          const client = new InterceptClient({
            servers: [{ host: LOOPBACK, port: peer.port }],
            channelsPerIntercept: 1,
            connectTimeoutMs: 2000,
            onReply: (pkt, payloadLength, data) => {
              replies++;
              expect(pkt.ip).to.be.at.least(4);
              expect(pkt.end, 'the reply lies in its frame').to.be.at.most(pkt.buf.length);
              expect(data.length).to.equal(pkt.end - pkt.payload);
              expect(payloadLength).to.be.within(0, 0xffff);
              expect(data.length, 'never more payload bytes than the packet has').to.be.at.most(payloadLength);
            },
            onError: (m) => errors.push(m),
          });
          try {
            const failure = await client.connect().then(() => null, (e: unknown) => e);
            const sent = framesOf(stream);
            const ack = startsWithHandshake(stream, MessageType.HELLO_ACK) ? decodeHelloAck(sent[0].body, 0, sent[0].body.length) : null;
            const accepted = ack !== null && ack.status === 0 && ack.version === 1;
            if (failure !== null) {
              expect(accepted, `refused a valid HELLO_ACK: ${(failure as Error).message}`).to.equal(false);
              expect(failure).to.be.instanceOf(InterceptConnectError);
              const err = failure as InterceptConnectError;
              expect(CONNECT_CODES).to.include(err.code);
              expect(err.address).to.equal(at);
              expect(err.message).to.contain(at);
              expect(readable(err.message), err.message).to.equal(true);
              expect(replies).to.equal(0);
            } else {
              expect(accepted, 'connected without a valid HELLO_ACK').to.equal(true);
              // The fake intercept closes after its bytes: the loss is reported once, in words.
              await until('the loss to be reported', () => errors.length > 0);
              expect(errors).to.have.length(1);
              expect(errors[0]).to.contain(`lost the connection to intercept at ${at}`);
              expect(readable(errors[0]), errors[0]).to.equal(true);
              const st = client.stats();
              expect(st.repliesReceived + st.repliesMalformed).to.be.at.most(sent.filter((f) => f.type === MessageType.REPLY).length);
              expect(st.repliesReceived).to.equal(replies);
            }
          } finally {
            await client.close();
            await peer.close();
          }
        })),
    },
  ],
};
