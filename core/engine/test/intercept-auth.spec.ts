// The channel's shared-secret handshake (tcpcopy/intercept --secret): both ends on loopback, and
// fake peers that show what travels on the wire (never the secret, no route before the intercept
// proved itself) and that a recorded proof, a wrong proof or a stalled handshake gets nowhere.
import { expect } from 'chai';
import * as net from 'node:net';
import { parseIpv4 } from '../src/decode/ip-address';
import type { TcpPacket } from '../src/decode/tcp-packet';
import { TCP_ACK, TCP_SYN } from '../src/decode/tcp-packet';
import {
  AUTH_CHALLENGE_BODY,
  HELLO_FLAG_AUTH,
  authMac,
  encodeAuthChallenge,
  encodeAuthProof,
} from '../src/intercept/channel-auth';
import {
  CHANNEL_VERSION,
  FRAME_HEADER_LENGTH,
  FrameParser,
  MessageType,
  encodeHello,
  writeFrameHeader,
} from '../src/intercept/channel-messages';
import { InterceptClient, InterceptConnectError } from '../src/intercept/intercept-client';
import { InterceptServer } from '../src/intercept/intercept-server';
import type { Route } from '../src/intercept/route-registry';
import { buildPacket } from '../src/compliance/packets';
import { fakePeer, LOOPBACK, until } from './fuzz/loopback';

const SECRET = 'correct horse battery staple';
const TARGET = '198.51.100.2';

function route(client: string, clientPort: number): Route {
  return { clientIp: parseIpv4(client), clientPort, targetIp: parseIpv4(TARGET), targetPort: 80, payloadBytes: 0 };
}

/** Frames of a byte stream, as [type, body]. */
function framesOf(bytes: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  new FrameParser((type, buf, start, end) => out.push([type, Buffer.from(buf.subarray(start, end))])).push(bytes);
  return out;
}

/** Opens a raw connection to `port`, sends `first`, and collects what comes back until it closes. */
function rawPeer(port: number, first: Buffer) {
  const got: Buffer[] = [];
  const socket = net.connect({ port, host: LOOPBACK });
  socket.on('error', () => undefined);
  socket.on('data', (c: Buffer) => got.push(c));
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.once('connect', () => socket.write(first));
  return { socket, received: () => Buffer.concat(got), closed: () => closed };
}

describe('intercept channel: shared-secret handshake', () => {
  let server: InterceptServer | null = null;
  const clients: InterceptClient[] = [];
  const logs: string[] = [];

  async function startServer(secret: string | undefined, extra: Partial<ConstructorParameters<typeof InterceptServer>[0]> = {}) {
    server = new InterceptServer({ port: 0, host: LOOPBACK, secret, log: (l, m) => logs.push(`${l}: ${m}`), ...extra });
    return (await server.listen()).port;
  }

  function client(port: number, secret: string | undefined, extra: Partial<ConstructorParameters<typeof InterceptClient>[0]> = {}) {
    const errors: string[] = [];
    const replies: number[] = [];
    const c = new InterceptClient({
      servers: [{ host: LOOPBACK, port }], secret, connectTimeoutMs: 2000, name: 'auth test tcpcopy',
      onReply: (pkt: TcpPacket) => replies.push(pkt.dstPort),
      onError: (m) => errors.push(m),
      ...extra,
    });
    clients.push(c);
    return { c, errors, replies };
  }

  async function connectError(c: InterceptClient): Promise<InterceptConnectError> {
    try {
      await c.connect();
    } catch (err) {
      expect(err).to.be.instanceOf(InterceptConnectError);
      return err as InterceptConnectError;
    }
    throw new Error('connect() resolved; it should have been refused');
  }

  beforeEach(() => {
    logs.length = 0;
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await server?.close();
    server = null;
  });

  it('the same secret on both ends: connects, authenticated, and replies flow', async () => {
    const port = await startServer(SECRET);
    const { c, replies } = client(port, SECRET, { channelsPerIntercept: 2 });
    await c.connect();
    expect(c.stats().channelsConnected).to.equal(2);
    const r = route('203.0.113.7', 40001);
    c.add(r);
    await until('the route at the intercept', () => server!.stats().routes === 1);
    server!.dispatch(buildPacket({ src: TARGET, sport: 80, dst: '203.0.113.7', dport: 40001, seq: 1, ack: 2, flags: TCP_SYN | TCP_ACK }), 0, 40);
    await until('the reply at tcpcopy', () => replies.length === 1);
    expect(replies).to.deep.equal([40001]);
    expect(logs.filter((l) => l.includes('(authenticated)'))).to.have.length(2);
    expect(server!.stats().clientsUnauthenticated).to.equal(0);
  });

  it('a wrong secret: refused (AUTH), and the intercept logs the peer and the reason', async () => {
    const port = await startServer(SECRET);
    const { c } = client(port, 'not the secret', { channelsPerIntercept: 1 });
    const err = await connectError(c);
    expect(err.code).to.equal('AUTH');
    expect(err.message).to.match(/^intercept at 127\.0\.0\.1:\d+ refused this tcpcopy: authentication failed: tcpcopy's secret is not this intercept's/);
    await until('the refusal in the log', () => logs.some((l) => l.startsWith('warn: refused tcpcopy')));
    expect(logs.find((l) => l.startsWith('warn: refused tcpcopy'))).to.match(
      /^warn: refused tcpcopy from 127\.0\.0\.1:\d+ \(auth test tcpcopy\): wrong secret/);
    expect(server!.stats()).to.include({ clientsUnauthenticated: 1, clients: 0, routes: 0 });
  });

  it('a tcpcopy without a secret: refused, told to set TCPCOPY_SECRET', async () => {
    const port = await startServer(SECRET);
    const { c } = client(port, undefined, { channelsPerIntercept: 1 });
    const err = await connectError(c);
    expect(err.code).to.equal('AUTH');
    expect(err.message).to.contain('this intercept requires a shared secret: start tcpcopy with the intercept\'s secret in TCPCOPY_SECRET');
    await until('the refusal in the log', () => logs.some((l) => l.includes('refused tcpcopy')));
    expect(logs.join('\n')).to.match(/refused tcpcopy from 127\.0\.0\.1:\d+ \(auth test tcpcopy\): it has no secret/);
  });

  it('a tcpcopy with a secret and an intercept without: tcpcopy fails clearly and tells the intercept why', async () => {
    const port = await startServer(undefined);
    const { c } = client(port, SECRET, { channelsPerIntercept: 1 });
    const err = await connectError(c);
    expect(err.code).to.equal('AUTH');
    expect(err.message).to.match(/does not check a secret \(it was started without TCPCOPY_SECRET or --secret\), and this tcpcopy has one/);
    await until('the intercept logs why tcpcopy left', () => logs.some((l) => l.includes('reports: this tcpcopy has a secret')));
  });

  it('without a secret on either end, the channel is as before (no challenge, no flag)', async () => {
    const port = await startServer(undefined);
    const { c } = client(port, undefined, { channelsPerIntercept: 1 });
    await c.connect();
    expect(logs.some((l) => l.includes('authenticated'))).to.equal(false);
    expect(encodeHello('x').readUInt16BE(FRAME_HEADER_LENGTH + 8)).to.equal(0);
  });

  it('with -L a refused secret still fails connect() once, with no retry loop', async () => {
    const port = await startServer(SECRET);
    const { c } = client(port, 'wrong', { keepRunning: true, channelsPerIntercept: 2, reconnectMinMs: 50, reconnectMaxMs: 100 });
    const err = await connectError(c);
    expect(err.code).to.equal('AUTH');
    // Had it retried, the intercept would have accepted a new connection every 50-100 ms.
    await new Promise((r) => setTimeout(r, 400));
    expect(server!.stats().clientsAccepted).to.equal(2);
  });

  it('with -L, an intercept restarted with another secret: reported once, retried with the bounded backoff, not in a loop', async () => {
    const port = await startServer(SECRET);
    const { c, errors } = client(port, SECRET, { keepRunning: true, channelsPerIntercept: 1, reconnectMinMs: 50, reconnectMaxMs: 200 });
    await c.connect();
    await server!.close();
    server = new InterceptServer({ port, host: LOOPBACK, secret: 'another secret', log: (l, m) => logs.push(`${l}: ${m}`) });
    await server.listen();
    await until('a refused reconnect reported', () => errors.some((e) => e.includes('(-L: still trying)')), 3000);
    const accepted = server.stats().clientsAccepted;
    await new Promise((r) => setTimeout(r, 600));
    // Attempts come at most every 200 ms (the backoff's ceiling here), not as fast as the refusals.
    expect(server.stats().clientsAccepted - accepted).to.be.within(1, 4);
    expect(errors.filter((e) => e.includes('(-L: still trying)'))).to.have.length(1);
    expect(errors.find((e) => e.includes('still trying'))).to.contain('refused this tcpcopy: authentication failed');
    expect(server.stats().clientsUnauthenticated).to.equal(server.stats().clientsAccepted);
  });

  it('the secret never travels, and no route reaches an intercept that has not proved it knows the secret', async () => {
    const seen: Buffer[] = [];
    const nonceI = Buffer.alloc(32, 7);
    const fake = await fakePeer((s) => {
      s.on('data', (d: Buffer) => {
        seen.push(d);
        const frames = framesOf(Buffer.concat(seen));
        if (frames.length === 1 && frames[0][0] === MessageType.HELLO) s.write(encodeAuthChallenge(nonceI));
        // An impostor: it answers with a proof made without the secret.
        if (frames.some(([t]) => t === MessageType.AUTH_PROOF)) s.write(encodeAuthProof(Buffer.alloc(32, 1), null));
      });
    });
    try {
      const { c } = client(fake.port, SECRET, { channelsPerIntercept: 1 });
      c.add(route('203.0.113.9', 40002)); // before connect(): would follow HELLO at once without a secret
      const err = await connectError(c);
      expect(err.code).to.equal('AUTH');
      expect(err.message).to.match(/did not prove it knows the secret \(its proof is wrong\)/);
      const wire = Buffer.concat(seen);
      expect(wire.includes(Buffer.from(SECRET))).to.equal(false);
      const frames = framesOf(wire);
      expect(frames.map(([t]) => t)).to.deep.equal([MessageType.HELLO, MessageType.AUTH_PROOF]);
      const hello = frames[0][1];
      expect(hello.readUInt16BE(8) & HELLO_FLAG_AUTH).to.equal(HELLO_FLAG_AUTH);
      // The proof is the HMAC the protocol document gives, over our nonce and tcpcopy's.
      const proof = frames[1][1];
      const nonceT = proof.subarray(32, 64);
      expect(proof.subarray(0, 32).equals(authMac(Buffer.from(SECRET), 'tcpcopy', nonceI, nonceT, hello))).to.equal(true);
    } finally {
      await fake.close();
    }
  });

  it('a proof recorded on one connection is refused on the next (fresh nonces)', async () => {
    const port = await startServer(SECRET);
    const hello = encodeHello('replayer', CHANNEL_VERSION, 1, HELLO_FLAG_AUTH);
    const helloBody = hello.subarray(FRAME_HEADER_LENGTH);
    const challengeOf = async (p: ReturnType<typeof rawPeer>): Promise<Buffer> => {
      await until('the challenge', () => framesOf(p.received()).length >= 1);
      const [type, body] = framesOf(p.received())[0];
      expect(type).to.equal(MessageType.AUTH_CHALLENGE);
      expect(body.length).to.equal(AUTH_CHALLENGE_BODY);
      return body.subarray(2);
    };
    // First connection: a right proof (the test knows the secret) gets in.
    const nonceT = Buffer.alloc(32, 3);
    const first = rawPeer(port, hello);
    const proof = encodeAuthProof(authMac(Buffer.from(SECRET), 'tcpcopy', await challengeOf(first), nonceT, helloBody), nonceT);
    first.socket.write(proof);
    await until('HELLO_ACK', () => framesOf(first.received()).some(([t]) => t === MessageType.HELLO_ACK));
    expect(framesOf(first.received()).map(([t]) => t)).to.deep.equal([MessageType.AUTH_CHALLENGE, MessageType.AUTH_PROOF, MessageType.HELLO_ACK]);
    first.socket.destroy();
    // Second connection: the same bytes again.
    const second = rawPeer(port, hello);
    await challengeOf(second);
    second.socket.write(proof);
    await until('the replayer to be closed', () => second.closed());
    expect(framesOf(second.received()).map(([t]) => t)).to.deep.equal([MessageType.AUTH_CHALLENGE, MessageType.ERROR]);
    expect(logs.join('\n')).to.match(/refused tcpcopy from 127\.0\.0\.1:\d+ \(replayer\): wrong secret/);
  });

  it('bounds the handshake: a peer that never answers the challenge, and one that announces a huge frame', async () => {
    const port = await startServer(SECRET, { helloTimeoutMs: 300 });
    const silent = rawPeer(port, encodeHello('silent', CHANNEL_VERSION, 1, HELLO_FLAG_AUTH));
    const started = Date.now();
    await until('the silent peer to be closed', () => silent.closed(), 3000);
    expect(Date.now() - started).to.be.below(2500);
    expect(logs.join('\n')).to.match(/refused tcpcopy from 127\.0\.0\.1:\d+ \(silent\): no AUTH_PROOF within 300 ms/);

    const huge = Buffer.alloc(FRAME_HEADER_LENGTH + 8);
    writeFrameHeader(huge, 0, MessageType.HELLO, 60_000);
    huge.writeUInt32BE(0x54435049, FRAME_HEADER_LENGTH);
    const greedy = rawPeer(port, huge);
    await until('the greedy peer to be closed', () => greedy.closed(), 3000);
    expect(logs.join('\n')).to.contain('a handshake message (type 1) of 60000 bytes, more than the 1024 allowed');
  });
});
