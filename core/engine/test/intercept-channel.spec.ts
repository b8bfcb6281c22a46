import { expect } from 'chai';
import * as net from 'node:net';
import { parseIpv4 } from '../src/decode/ip-address';
import { TCP_ACK, TCP_PSH, TCP_SYN, type TcpPacket } from '../src/decode/tcp-packet';
import {
  CHANNEL_MAGIC,
  FRAME_HEADER_LENGTH,
  FrameParser,
  HelloStatus,
  MessageType,
  decodeHelloAck,
  encodeHello,
  encodeHelloAck,
  writeFrameHeader,
  writeRouteAddBody,
} from '../src/intercept/channel-messages';
import { channelOfRoute } from '../src/intercept/flow-hash';
import { HandshakeSniff } from '../src/intercept/handshake-sniff';
import { HoldQueue } from '../src/intercept/hold-queue';
import { parseInterceptAddresses } from '../src/intercept/intercept-address';
import { InterceptClient, InterceptConnectError } from '../src/intercept/intercept-client';
import { InterceptServer } from '../src/intercept/intercept-server';
import { routeText, type Route } from '../src/intercept/route-registry';
import { RouteTable } from '../src/intercept/route-table';
import { buildPacket, synAckOptions } from '../src/compliance/packets';
import { fakePeer } from './fuzz/loopback';

const LOOPBACK = '127.0.0.1';
const TARGET = '198.51.100.2';

function frame(type: number, body: Buffer): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_LENGTH + body.length);
  writeFrameHeader(b, 0, type, body.length);
  body.copy(b, FRAME_HEADER_LENGTH);
  return b;
}

function route(client: string, clientPort: number, payloadBytes = 0, target = TARGET, targetPort = 80): Route {
  return { clientIp: parseIpv4(client), clientPort, targetIp: parseIpv4(target), targetPort, payloadBytes };
}

/** A reply from the target to the route's client. */
function reply(r: Route, opts: { flags?: number; payload?: Buffer; seq?: number; options?: Buffer } = {}): Buffer {
  const ip = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  return buildPacket({
    src: ip(r.targetIp), sport: r.targetPort, dst: ip(r.clientIp), dport: r.clientPort,
    seq: opts.seq ?? 5000, ack: 1001, flags: opts.flags ?? TCP_ACK, payload: opts.payload,
    options: opts.options ?? Buffer.from('0101080a0000000100000002', 'hex'), // NOP NOP timestamps
  });
}

interface Got {
  record: Buffer;
  payloadLength: number;
  data: Buffer;
}

/** A client that records what it receives. */
function recordingClient(port: number, extra: Partial<ConstructorParameters<typeof InterceptClient>[0]> = {}) {
  const got: Got[] = [];
  let batches = 0;
  const errors: string[] = [];
  const client = new InterceptClient({
    servers: [{ host: LOOPBACK, port }],
    onReply: (pkt: TcpPacket, payloadLength: number, data: Buffer) => {
      got.push({ record: Buffer.from(pkt.buf.subarray(pkt.ip, pkt.end)), payloadLength, data: Buffer.from(data) });
    },
    onBatch: () => batches++,
    onError: (m) => errors.push(m),
    connectTimeoutMs: 2000,
    ...extra,
  });
  return { client, got, errors, batches: () => batches };
}

async function until(what: string, cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/** A port nothing listens on (bound then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, LOOPBACK, () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}


/**
 * A TCP relay to an intercept, so that one client connection can be cut while the others and
 * the intercept stay up. Each connection is known by the first bytes its client sent (the HELLO).
 */
async function tcpProxy(toPort: number) {
  const pairs: Array<{ client: net.Socket; upstream: net.Socket; hello: string }> = [];
  const s = net.createServer((c) => {
    const u = net.connect(toPort, LOOPBACK);
    const pair = { client: c, upstream: u, hello: '' };
    pairs.push(pair);
    c.on('error', () => undefined);
    u.on('error', () => undefined);
    c.pipe(u);
    u.pipe(c);
    c.once('data', (d: Buffer) => {
      pair.hello = d.toString('latin1');
    });
    c.on('close', () => u.destroy());
    u.on('close', () => c.destroy());
  });
  await new Promise<void>((r) => s.listen(0, LOOPBACK, () => r()));
  return {
    port: (s.address() as net.AddressInfo).port,
    /** Resets (RST) the client connection whose HELLO contains `tag`. */
    reset(tag: string): void {
      const p = pairs.find((x) => x.hello.includes(tag) && !x.client.destroyed);
      if (!p) throw new Error(`no live connection with ${tag}`);
      p.client.resetAndDestroy();
    },
    close: () => new Promise<void>((r) => {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      s.close(() => r());
    }),
  };
}

describe('intercept channel', () => {
  describe('frame parser', () => {
    const frames = [
      frame(MessageType.ROUTE_ADD, Buffer.from('0102030405060708090a0b0c0d0e', 'hex')),
      frame(MessageType.REPLY, Buffer.alloc(1500, 7)),
      frame(MessageType.ROUTE_DEL, Buffer.alloc(12, 1)),
      frame(MessageType.REPLY, Buffer.alloc(0)),
      frame(0x90, Buffer.alloc(65535, 3)), // largest body
      frame(MessageType.REPLY, Buffer.alloc(3, 9)),
    ];
    const stream = Buffer.concat(frames);
    const expected = frames.map((f) => `${f[0]}:${f.length - 4}:${f.subarray(4).toString('hex').slice(0, 64)}`);

    function parse(chunks: Buffer[]): string[] {
      const out: string[] = [];
      const p = new FrameParser((type, buf, start, end) => {
        out.push(`${type}:${end - start}:${buf.toString('hex', start, end).slice(0, 64)}`);
      });
      for (const c of chunks) p.push(c);
      expect(p.bufferedBytes, 'nothing left over').to.equal(0);
      return out;
    }

    it('parses many frames from one chunk, in place', () => {
      const seen: Buffer[] = [];
      const p = new FrameParser((_t, buf) => seen.push(buf));
      p.push(stream);
      expect(seen).to.have.length(frames.length);
      expect(seen.every((b) => b === stream), 'no copies').to.equal(true);
      expect(parse([stream])).to.deep.equal(expected);
    });

    it('parses a stream split byte by byte', () => {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
      expect(parse(chunks)).to.deep.equal(expected);
    });

    it('parses a stream split at every possible point, and at random points', () => {
      const small = Buffer.concat(frames.filter((f) => f.length < 2000));
      const smallExpected = frames.filter((f) => f.length < 2000)
        .map((f) => `${f[0]}:${f.length - 4}:${f.subarray(4).toString('hex').slice(0, 64)}`);
      for (let cut = 0; cut <= small.length; cut++) {
        expect(parse([small.subarray(0, cut), small.subarray(cut)]), `cut at ${cut}`).to.deep.equal(smallExpected);
      }
      let seed = 12345;
      const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
      for (let round = 0; round < 50; round++) {
        const chunks: Buffer[] = [];
        for (let pos = 0; pos < stream.length;) {
          const n = 1 + rand(round % 2 ? 9000 : 70);
          chunks.push(stream.subarray(pos, pos + n));
          pos += n;
        }
        expect(parse(chunks)).to.deep.equal(expected);
      }
    });

    it('stops when told to', () => {
      let n = 0;
      const p = new FrameParser(() => {
        if (++n === 2) p.stop();
      });
      p.push(stream);
      expect(n).to.equal(2);
    });
  });

  describe('route table and hold queue', () => {
    it('finds, refreshes, removes and evicts the oldest', () => {
      const t = new RouteTable(3, 2);
      const ip = parseIpv4('203.0.113.7');
      const tip = parseIpv4(TARGET);
      expect(t.add(ip, 1, tip, 80, 0, 0)).to.equal(-1);
      expect(t.add(ip, 2, tip, 80, 10, 0)).to.equal(-1);
      expect(t.add(ip, 2, tip, 81, 20, 1)).to.equal(-1); // same client, other target: chained
      expect(t.size).to.equal(3);
      expect(t.wantOf(t.find(ip, 2, tip, 80))).to.equal(10);
      expect(t.connOf(t.find(ip, 2, tip, 81))).to.equal(1);
      expect(t.find(ip, 3, tip, 80)).to.equal(-1);
      expect(t.add(ip, 1, tip, 80, 5, 2), 'refresh returns the previous owner').to.equal(0);
      const evicted: number[] = [];
      t.add(ip, 4, tip, 80, 0, 1, (c) => evicted.push(c)); // full: the oldest is now (ip,2,80)
      expect(evicted).to.deep.equal([0]);
      expect(t.find(ip, 2, tip, 80)).to.equal(-1);
      expect(t.find(ip, 1, tip, 80)).to.be.at.least(0);
      expect(t.remove(ip, 4, tip, 80, 0), 'not the owner').to.equal(false);
      expect(t.remove(ip, 4, tip, 80, 1)).to.equal(true);
      expect(t.removeConn(1)).to.equal(1);
      expect(t.size).to.equal(1);
    });

    it('grows up to its limit and keeps every route findable', () => {
      const t = new RouteTable(100_000, 16);
      const base = parseIpv4('203.0.113.0');
      for (let i = 0; i < 100_000; i++) t.add(base + (i & 255), 1024 + (i >> 8), 1, 80, 0, i % 7);
      expect(t.size).to.equal(100_000);
      for (let i = 0; i < 100_000; i += 97) expect(t.connOf(t.find(base + (i & 255), 1024 + (i >> 8), 1, 80))).to.equal(i % 7);
      expect(t.removeConn(3)).to.be.greaterThan(10_000);
      for (let i = 0; i < 100_000; i++) t.remove(base + (i & 255), 1024 + (i >> 8), 1, 80);
      expect(t.size).to.equal(0);
    });

    it('holds, hands out in arrival order, expires and overflows', () => {
      const q = new HoldQueue(3, 128);
      const b = Buffer.from('abcdef');
      q.add(b, 0, 1, 1, 10, 2, 80, 0);
      q.add(b, 1, 1, 1, 11, 2, 80, 1);
      q.add(b, 2, 1, 1, 10, 2, 80, 2);
      const out: string[] = [];
      expect(q.take(1, 10, 2, 80, (s, st, n) => out.push(s.toString('latin1', st, st + n)))).to.equal(2);
      expect(out).to.deep.equal(['a', 'c']);
      expect(q.count).to.equal(1);
      expect(q.expire(0.5)).to.equal(0);
      expect(q.expire(1)).to.equal(1);
      expect(q.count).to.equal(0);
      for (let i = 0; i < 3; i++) expect(q.add(b, 3 + i, 1, 1, 20 + i, 2, 80, 10)).to.equal(false);
      expect(q.add(b, 0, 1, 1, 30, 2, 80, 11), 'pushes the oldest out').to.equal(true);
      expect(q.take(1, 20, 2, 80, () => undefined)).to.equal(0);
      expect(q.take(1, 30, 2, 80, () => undefined)).to.equal(1);
    });
  });

  describe('what both ends share', () => {
    it('keeps each route on the channel it always had', () => {
      const ip = parseIpv4('203.0.113.7');
      const channels = Array.from({ length: 16 }, (_, i) => channelOfRoute(ip, 40000 + i, 4));
      expect(channels).to.deep.equal([0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 2, 2, 1, 2, 1, 0]);
      expect(channelOfRoute(ip, 40000, 1)).to.equal(0);
    });

    it('formats a route the same way on both ends', () => {
      expect(routeText(route('203.0.113.7', 40000))).to.equal(`203.0.113.7:40000 ← ${TARGET}:80`);
    });

    it('sniffs the handshake: our magic, byte by byte, or an ERROR where allowed', () => {
      const hello = encodeHello('t');
      const sniff = new HandshakeSniff(MessageType.HELLO);
      for (let i = 0; i < 8; i++) expect(sniff.check(hello.subarray(i, i + 1)), `byte ${i}`).to.equal(true);
      expect(sniff.done).to.equal(true);
      sniff.reset();
      expect(sniff.check(Buffer.from('GET / HTTP/1.1\r\n'))).to.equal(false);
      sniff.reset();
      const wrongMagic = Buffer.from(hello);
      wrongMagic.writeUInt32BE(0x12345678, 4);
      expect(sniff.check(wrongMagic.subarray(0, 5)), 'magic not complete yet').to.equal(true);
      expect(sniff.check(wrongMagic.subarray(5))).to.equal(false);
      const ack = new HandshakeSniff(MessageType.HELLO_ACK, MessageType.ERROR);
      expect(ack.check(hello)).to.equal(false);
      ack.reset();
      expect(ack.check(frame(MessageType.ERROR, Buffer.from('\u0000\u0003down')))).to.equal(true);
    });
  });

  describe('client and server on loopback', () => {
    let server: InterceptServer;
    let port: number;
    const clients: InterceptClient[] = [];
    const logs: string[] = [];

    beforeEach(async () => {
      logs.length = 0;
      server = new InterceptServer({ port: 0, host: LOOPBACK, holdMs: 300, log: (l, m) => logs.push(`${l}: ${m}`) });
      port = (await server.listen()).port;
    });

    afterEach(async () => {
      for (const c of clients.splice(0)) await c.close();
      await server.close();
    });

    function newClient(extra: Parameters<typeof recordingClient>[1] = {}) {
      const r = recordingClient(port, extra);
      clients.push(r.client);
      return r;
    }

    /**
     * The barrier for "nothing more arrives": every reply the intercept has sent (its `routed` count, raised
     * as it queues a reply for a tcpcopy) has reached one of the clients recorded in `gots`. After it, no
     * reply is on its way, so a client that has not got something will not get it later.
     */
    async function allDelivered(...gots: Got[][]): Promise<void> {
      await until('every reply the intercept sent to arrive', () => gots.reduce((n, g) => n + g.length, 0) >= server.stats().routed);
    }

    /** Another route of `like`'s client address that `client` sends on the same channel (one ordered connection). */
    function routeOnSameChannel(client: InterceptClient, like: Route): Route {
      for (let port = like.clientPort + 1; ; port++) {
        const r = { ...like, clientPort: port };
        if (client.channelOf(r) === client.channelOf(like)) return r;
      }
    }

    it('exchanges HELLO and learns the intercept', async () => {
      const { client } = newClient({ name: 'test tcpcopy', channelsPerIntercept: 1 });
      await client.connect();
      const info = client.intercepts[0]!;
      expect(info.version).to.equal(1);
      expect(info.address).to.equal(`${LOOPBACK}:${port}`);
      await until('server sees the client', () => server.stats().clients === 1);
      expect(logs.join('\n')).to.contain('test tcpcopy');
      expect(client.stats().connected).to.equal(1);
    });

    it('adds and removes routes; a reply reaches the right one of two clients only', async () => {
      const a = newClient();
      const b = newClient();
      await Promise.all([a.client.connect(), b.client.connect()]);
      const ra = route('203.0.113.7', 40000, 5);
      const rb = route('203.0.113.8', 40000, 0);
      a.client.add(ra);
      b.client.add(rb);
      await until('routes', () => server.stats().routes === 2);

      const payload = Buffer.from('hello world');
      const pa = reply(ra, { flags: TCP_ACK | TCP_PSH, payload });
      const pb = reply(rb, { flags: TCP_ACK | TCP_PSH, payload });
      // The capture hands over a frame buffer with a link header in front: dispatch reads in place.
      const framed = Buffer.concat([Buffer.alloc(14, 0xee), pa]);
      server.dispatch(framed, 14, pa.length);
      server.dispatch(pb, 0, pb.length);
      await until('replies', () => a.got.length === 1 && b.got.length === 1);
      await allDelivered(a.got, b.got);
      expect(server.stats().routed).to.equal(2);
      expect(a.got).to.have.length(1);
      expect(b.got).to.have.length(1);
      // a asked for 5 payload bytes: headers (20 + 32) and "hello"; the real length is still 11.
      expect(a.got[0].record.equals(pa.subarray(0, 52 + 5))).to.equal(true);
      expect(a.got[0].payloadLength).to.equal(11);
      expect(a.got[0].data.toString()).to.equal('hello');
      expect(b.got[0].record.equals(pb.subarray(0, 52))).to.equal(true);
      expect(b.got[0].payloadLength).to.equal(11);
      expect(b.got[0].data.length).to.equal(0);
      expect(a.batches()).to.be.at.least(1);

      // Removing a's route: its next reply is held, then counted unmatched; b is untouched.
      a.client.remove(ra);
      await until('route removed', () => server.stats().routes === 1);
      server.dispatch(pa, 0, pa.length);
      await allDelivered(a.got, b.got);
      expect(a.got).to.have.length(1);
      expect(b.got).to.have.length(1);
      expect(server.stats().holding).to.equal(1);
      await until('expiry', () => server.stats().unmatched === 1, 2000);
      const s = server.stats();
      expect(s.routed).to.equal(2);
      expect(s.captured).to.equal(3);
      expect(s.routesAdded).to.equal(2);
      expect(s.routesRemoved).to.equal(1);
    });

    it('hands out reply payloads that stay as they were after later reads of the channel', async () => {
      // The channel is read into one reused buffer: a payload a protocol keeps must be its own copy.
      const kept: Buffer[] = [];
      const { client } = newClient({ channelsPerIntercept: 1, onReply: (_pkt: TcpPacket, _len: number, data: Buffer) => kept.push(data) });
      await client.connect();
      const r = route('203.0.113.9', 40000, 16);
      client.add(r);
      await until('route', () => server.stats().routes === 1);
      const texts = ['first payload..!', 'second payload.!', 'third payload..!'];
      for (const [i, text] of texts.entries()) {
        const p = reply(r, { flags: TCP_ACK | TCP_PSH, payload: Buffer.from(text), seq: 5000 + 16 * i });
        server.dispatch(p, 0, p.length);
        await until(`reply ${i + 1}`, () => kept.length === i + 1); // one read each
      }
      expect(kept.map((b) => b.toString())).to.deep.equal(texts);
    });

    it('a ROUTE_DEL from another tcpcopy does not remove a route it does not own', async () => {
      const a = newClient();
      const b = newClient();
      await Promise.all([a.client.connect(), b.client.connect()]);
      const r = route('203.0.113.7', 40001);
      a.client.add(r);
      await until('route', () => server.stats().routes === 1);
      b.client.remove(r);
      // A ROUTE_ADD that b sends after it on the same connection is the barrier: once the intercept has
      // registered it, it has read the ROUTE_DEL.
      b.client.add(routeOnSameChannel(b.client, r));
      await until('b\'s ROUTE_ADD after its ROUTE_DEL', () => server.stats().routesAdded === 2);
      expect(server.stats().routesRemoved).to.equal(0);
      expect(server.stats().routes).to.equal(2);
    });

    it('holds a reply that beats its route and delivers it once when the route arrives', async () => {
      const { client, got } = newClient();
      await client.connect();
      const r = route('203.0.113.9', 41000, 0);
      const synAck = reply(r, { flags: TCP_SYN | TCP_ACK, options: synAckOptions(1460, 7, 100, 200) });
      server.dispatch(synAck, 0, synAck.length);
      expect(server.stats().holding).to.equal(1);
      client.add(r);
      await until('held reply', () => got.length === 1);
      await allDelivered(got);
      expect(got).to.have.length(1);
      expect(got[0].record.equals(synAck)).to.equal(true);
      const s = server.stats();
      expect(s.held).to.equal(1);
      expect(s.heldDelivered).to.equal(1);
      expect(s.holding).to.equal(0);
      // A second ROUTE_ADD for the same connection does not deliver it again.
      client.add(r);
      await until('the second ROUTE_ADD', () => server.stats().routesAdded === 2);
      await allDelivered(got);
      expect(got).to.have.length(1);
      expect(server.stats().routed).to.equal(1);
    });

    it('drops held replies that expired before their route came', async () => {
      const { client, got } = newClient();
      await client.connect();
      const r = route('203.0.113.10', 41000);
      const p = reply(r, { flags: TCP_SYN | TCP_ACK });
      server.dispatch(p, 0, p.length);
      await until('expiry', () => server.stats().unmatched === 1, 2000);
      client.add(r);
      await until('route', () => server.stats().routes === 1);
      await allDelivered(got);
      expect(got).to.have.length(0);
      expect(server.stats().holding).to.equal(0);
    });

    it('drops a client\'s routes when it disconnects', async () => {
      const a = newClient();
      await a.client.connect();
      for (let i = 0; i < 10; i++) a.client.add(route('203.0.113.11', 42000 + i));
      await until('routes', () => server.stats().routes === 10);
      await a.client.close();
      await until('routes dropped', () => server.stats().routes === 0);
      expect(server.stats().routesDisconnected).to.equal(10);
    });

    it('sends a burst of replies in one write and the client flushes once per chunk', async () => {
      const { client, got, batches } = newClient();
      await client.connect();
      const r = route('203.0.113.12', 43000);
      client.add(r);
      await until('route', () => server.stats().routes === 1);
      const before = server.stats().batches;
      for (let i = 0; i < 200; i++) {
        const p = reply(r, { seq: 1000 + i });
        server.dispatch(p, 0, p.length);
      }
      await until('burst', () => got.length === 200);
      expect(server.stats().batches - before, 'socket writes for the burst').to.equal(1);
      expect(batches()).to.be.at.least(1).and.at.most(5);
      expect(got.map((g) => g.record.readUInt32BE(24))).to.deep.equal(Array.from({ length: 200 }, (_, i) => 1000 + i));
    });

    it('ignores replies to pass-listed client addresses', async () => {
      await server.close();
      server = new InterceptServer({ port: 0, host: LOOPBACK, passlist: [parseIpv4('203.0.113.13')] });
      port = (await server.listen()).port;
      const { client, got } = newClient();
      await client.connect();
      const r = route('203.0.113.13', 44000);
      client.add(r);
      await until('route', () => server.stats().routes === 1);
      const p = reply(r);
      server.dispatch(p, 0, p.length);
      await allDelivered(got);
      expect(got).to.have.length(0);
      expect(server.stats().passed).to.equal(1);
      expect(server.stats().holding).to.equal(0);
    });

    it('drops and counts replies to a tcpcopy that does not read', async () => {
      await server.close();
      server = new InterceptServer({ port: 0, host: LOOPBACK, maxBufferedBytes: 256 * 1024, log: (l, m) => logs.push(`${l}: ${m}`) });
      port = (await server.listen()).port;
      // A hand-made client that says HELLO, registers a route and then stops reading.
      const sock = net.connect(port, LOOPBACK);
      await new Promise((r) => sock.once('connect', r));
      const r = route('203.0.113.14', 45000, 1400);
      const add = Buffer.alloc(4 + 14);
      writeRouteAddBody(add, writeFrameHeader(add, 0, MessageType.ROUTE_ADD, 14), r);
      sock.write(Buffer.concat([encodeHello('slow'), add]));
      await until('route', () => server.stats().routes === 1);
      sock.pause();
      const p = reply(r, { payload: Buffer.alloc(1400, 1) });
      for (let round = 0; round < 200 && server.stats().dropped === 0; round++) {
        for (let i = 0; i < 200; i++) server.dispatch(p, 0, p.length);
        await new Promise((res) => setImmediate(res));
      }
      const s = server.stats();
      expect(s.dropped).to.be.greaterThan(0);
      expect(logs.join('\n')).to.contain('does not keep up');
      sock.destroy();
    });

    it('tells a tcpcopy with another protocol version why it is refused', async () => {
      const sock = net.connect(port, LOOPBACK);
      const chunks: Buffer[] = [];
      sock.on('data', (c) => chunks.push(c));
      sock.write(encodeHello('future tcpcopy', 9, 9));
      await new Promise((r) => sock.once('close', r));
      const all = Buffer.concat(chunks);
      expect(all[0]).to.equal(MessageType.HELLO_ACK);
      const ack = decodeHelloAck(all, 4, all.length)!;
      expect(ack.status).to.equal(HelloStatus.VERSION_UNSUPPORTED);
      expect(ack.version).to.equal(1);
      expect(logs.join('\n')).to.match(/speaks protocol version 9, this intercept 1/);
    });

    it('closes a connection that does not start with HELLO', async () => {
      const sock = net.connect(port, LOOPBACK);
      sock.on('error', () => undefined);
      sock.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      await new Promise((r) => sock.once('close', r));
      expect(server.stats().clientsRejected).to.equal(1);
      expect(logs.join("\n")).to.contain("is not a tcpcopy of this project", logs.join("\n"));
    });

    it('reports a connection lost after start', async () => {
      const { client, errors } = newClient();
      await client.connect();
      await server.close();
      await until('error', () => errors.length === 1);
      expect(errors[0]).to.equal(`lost the connection to intercept at ${LOOPBACK}:${port}: intercept is shutting down; replies through it stop`);
    });

    it('sends routes added before connect() once connected', async () => {
      const { client } = newClient();
      client.add(route('203.0.113.15', 46000));
      client.add(route('203.0.113.15', 46001));
      client.remove(route('203.0.113.15', 46000));
      await client.connect();
      await until('routes', () => server.stats().routes === 1);
    });

    it('measures replies per second through the channel', async function () {
      this.timeout(30_000);
      const r = route('203.0.113.16', 47000);
      let n = 0;
      const client = new InterceptClient({ servers: `${LOOPBACK}:${port}`, onReply: () => { n++; } });
      clients.push(client);
      await client.connect();
      client.add(r);
      await until('route', () => server.stats().routes === 1);
      const p = reply(r); // a pure ACK with timestamps: 52 bytes
      const total = 500_000;
      const burst = 500; // a capture burst
      const t0 = performance.now();
      for (let sent = 0; sent < total; sent += burst) {
        for (let i = 0; i < burst; i++) server.dispatch(p, 0, p.length);
        await new Promise((res) => setImmediate(res));
      }
      await until('all replies', () => n === total, 20_000);
      const secs = (performance.now() - t0) / 1000;
      const rate = Math.round(total / secs);
      process.stderr.write(`      [intercept channel: ${total} replies of 52 bytes in ${secs.toFixed(2)} s = ${rate} replies/s ` +
        `on loopback, ${server.stats().batches} socket writes]\n`);
      expect(server.stats().dropped).to.equal(0);
    });
  });

  describe('parallel channels (-C) and lonely mode (-L)', () => {
    let server: InterceptServer;
    let port: number;
    const clients: InterceptClient[] = [];
    const extraServers: InterceptServer[] = [];
    const closers: Array<() => Promise<void>> = [];
    const logs: string[] = [];
    const log = (l: string, m: string) => logs.push(`${l}: ${m}`);

    beforeEach(async () => {
      logs.length = 0;
      server = new InterceptServer({ port: 0, host: LOOPBACK, holdMs: 300, log });
      port = (await server.listen()).port;
    });

    afterEach(async () => {
      for (const c of clients.splice(0)) await c.close();
      for (const s of extraServers.splice(0)) await s.close();
      for (const f of closers.splice(0)) await f();
      await server.close();
    });

    function newClient(extra: Parameters<typeof recordingClient>[1] = {}, to = port) {
      const r = recordingClient(to, extra);
      clients.push(r.client);
      return r;
    }

    /** Stops the intercept and starts a new one on the same port (same logs). */
    async function restartLater(): Promise<void> {
      logs.length = 0;
      server = new InterceptServer({ port, host: LOOPBACK, holdMs: 300, log });
      await server.listen();
    }

    /** Intercept's debug lines "route add|del <route> … by <peer> (<name> [channel k/N])": [route, channel index]. */
    function routeLog(kind: 'add' | 'del'): Array<[string, number]> {
      const out: Array<[string, number]> = [];
      const re = new RegExp(`^debug: route ${kind} (\\S+ ← \\S+) .*\\[channel (\\d+)/\\d+\\]\\)$`);
      for (const line of logs) {
        const m = re.exec(line);
        if (m) out.push([m[1], Number(m[2]) - 1]);
      }
      return out;
    }

    function owner(r: Route): number {
      const i = server.routes.find(r.clientIp, r.clientPort, r.targetIp, r.targetPort);
      return i < 0 ? -1 : server.routes.connOf(i);
    }

    it('rejects a channel count outside 1..16', () => {
      for (const n of [0, 17, 2.5]) {
        expect(() => new InterceptClient({ servers: LOOPBACK, channelsPerIntercept: n })).to.throw(RangeError, /from 1 to 16/);
      }
      expect(new InterceptClient({ servers: LOOPBACK }).channelsPerIntercept, 'default like tcpcopy').to.equal(2);
    });

    it('with logRoutes false, routes come and go without a log line each', async () => {
      const quietLogs: string[] = [];
      const quiet = new InterceptServer({ port: 0, host: LOOPBACK, logRoutes: false, log: (level, m) => quietLogs.push(`${level}: ${m}`) });
      extraServers.push(quiet);
      const { client } = newClient({ name: 'quiet' }, (await quiet.listen()).port);
      await client.connect();
      const r = route('203.0.113.9', 50123);
      client.add(r);
      await until('the route', () => quiet.stats().routes === 1);
      client.remove(r);
      await until('the route removed', () => quiet.stats().routesRemoved === 1);
      expect(quietLogs.filter((l) => /route (add|del)/.test(l)), quietLogs.join('\n')).to.deep.equal([]);
      expect(quietLogs.some((l) => l.includes('connected')), 'other lines still come').to.equal(true);
    });

    it('spreads routes over the channels; a route\'s add, del and replies stay on its channel', async () => {
      const N = 4;
      const { client, got, batches } = newClient({ channelsPerIntercept: N, name: 'spread' });
      await client.connect();
      expect(server.stats().clients, 'connect() resolves once every channel answered').to.equal(N);
      expect(client.stats()).to.include({ channels: N, channelsConnected: N, connected: 1, intercepts: 1 });

      const routes = Array.from({ length: 64 }, (_, i) => route(`203.0.113.${20 + (i % 8)}`, 50000 + i * 7));
      for (const r of routes) client.add(r);
      await until('routes', () => server.stats().routes === 64);

      // intercept's side: which connection owns each route.
      const byChannel = new Map<number, Set<number>>();
      for (const r of routes) {
        const c = client.channelOf(r);
        if (!byChannel.has(c)) byChannel.set(c, new Set());
        byChannel.get(c)!.add(owner(r));
      }
      expect([...byChannel.keys()].sort(), 'every channel carries routes').to.deep.equal([0, 1, 2, 3]);
      for (const owners of byChannel.values()) expect(owners.size, 'one connection per channel').to.equal(1);
      const conns = new Set([...byChannel.values()].map((s) => [...s][0]));
      expect(conns.size, 'a different connection for each channel').to.equal(N);
      // …and it is the connection that said HELLO as that channel.
      const adds = routeLog('add');
      expect(adds).to.have.length(64);
      for (const [text, ch] of adds) expect(ch, text).to.equal(client.channelOf(routes.find((r) => routeText(r) === text)!));

      // Replies come back on the owning connection; the client takes them from any of them.
      routes.forEach((r, i) => {
        const p = reply(r, { seq: 7000 + i });
        server.dispatch(p, 0, p.length);
      });
      await until('replies', () => got.length === 64);
      expect(got.map((g) => g.record.readUInt32BE(24)).sort((a, b) => a - b)).to.deep.equal(routes.map((_, i) => 7000 + i));
      expect(batches()).to.be.at.least(1);

      // intercept honours a ROUTE_DEL only from the connection owning the route: all 64 gone
      // means every removal went to the route's channel.
      for (const r of routes) client.remove(r);
      await until('routes removed', () => server.stats().routes === 0);
      expect(server.stats().routesRemoved).to.equal(64);
      for (const [text, ch] of routeLog('del')) expect(ch, text).to.equal(client.channelOf(routes.find((r) => routeText(r) === text)!));

      // Replies sent per connection, from intercept's disconnect lines.
      await client.close();
      await until('disconnects logged', () => logs.filter((l) => l.includes('disconnected')).length === N);
      const perChannel = new Array<number>(N).fill(0);
      for (const r of routes) perChannel[client.channelOf(r)]++;
      for (const line of logs.filter((l) => l.includes('disconnected'))) {
        const m = /\[channel (\d+)\/4\]\) disconnected: 0 route\(s\) dropped, (\d+) replies sent/.exec(line)!;
        expect(Number(m[2]), line).to.equal(perChannel[Number(m[1]) - 1]);
      }
    });

    it('sends routes added before connect() on their channel', async () => {
      const { client } = newClient({ channelsPerIntercept: 3 });
      const routes = Array.from({ length: 12 }, (_, i) => route('203.0.113.30', 52000 + i));
      for (const r of routes) client.add(r);
      client.remove(routes[0]);
      await client.connect();
      await until('routes', () => server.stats().routes === 11);
      expect(owner(routes[0])).to.equal(-1);
      const conns = new Map<number, number>();
      for (const r of routes.slice(1)) {
        const c = client.channelOf(r);
        expect(conns.get(c) ?? owner(r)).to.equal(owner(r));
        conns.set(c, owner(r));
      }
      expect(new Set(conns.values()).size).to.equal(conns.size);
    });

    it('without -L, a lost intercept is reported once, as before, and not reconnected', async () => {
      const { client, errors } = newClient({ channelsPerIntercept: 3, reconnectMinMs: 20, reconnectMaxMs: 40 });
      await client.connect();
      await server.close();
      await until('error', () => errors.length === 1);
      await restartLater();
      await tick(300);
      expect(errors).to.deep.equal([
        `lost the connection to intercept at ${LOOPBACK}:${port}: intercept is shutting down; replies through it stop`,
      ]);
      expect(server.stats().clientsAccepted, 'no reconnect').to.equal(0);
      expect(client.stats()).to.include({ connected: 0, channelsConnected: 0, reconnects: 0 });
      client.add(route('203.0.113.31', 53000));
      expect(client.stats().routesDropped).to.equal(1);
    });

    it('with -L, a restarted intercept gets the active routes again, not the removed ones, then the queued ones', async function () {
      this.timeout(6000);
      const N = 3;
      const { client, got, errors } = newClient({ channelsPerIntercept: N, keepRunning: true, reconnectMinMs: 50, reconnectMaxMs: 200 });
      await client.connect();
      const before = Array.from({ length: 30 }, (_, i) => route('203.0.113.40', 51000 + i, i % 3));
      for (const r of before) client.add(r);
      for (const r of before.slice(0, 10)) client.remove(r);
      await until('routes', () => server.stats().routes === 20);

      const t0 = performance.now();
      await server.close();
      await until('loss reported', () => errors.length === 1);
      expect(errors[0]).to.equal(`lost the connection to intercept at ${LOOPBACK}:${port}: intercept is shutting down; ` +
        'reconnecting (-L): routes are queued and registered again when it answers');
      // During the outage: five new routes, one old route removed, one new route added and removed.
      const queued = Array.from({ length: 5 }, (_, i) => route('203.0.113.41', 51000 + i, 7));
      for (const r of queued) client.add(r);
      client.add(queued[0]); // added again: registered once
      client.remove(before[10]);
      const gone = route('203.0.113.42', 51000);
      client.add(gone);
      client.remove(gone);
      // Queue entries, stale ones included (they are skipped on reconnect).
      expect(client.stats()).to.include({ routesQueued: 7, connected: 0, channelsConnected: 0 });
      await tick(150); // a few refused attempts

      await restartLater();
      await until('routes registered again', () => client.stats().connected === 1 && server.stats().routes === 24, 3000);
      const took = performance.now() - t0;
      await until('recovery reported', () => errors.length === 2);
      expect(errors[1]).to.match(new RegExp(`^reconnected to intercept at ${LOOPBACK}:${port} after \\d+\\.\\d s: ` +
        '19 route\\(s\\) registered again, 5 queued route\\(s\\) sent; replies flow again$'));
      for (const r of [...before.slice(0, 11), gone]) expect(owner(r), routeText(r)).to.equal(-1);
      for (const r of [...before.slice(11), ...queued]) expect(owner(r), routeText(r)).to.be.at.least(0);
      expect(server.routes.wantOf(server.routes.find(before[11].clientIp, before[11].clientPort, before[11].targetIp, 80)))
        .to.equal(11 % 3);
      expect(client.stats()).to.include({
        reconnects: N, routesReregistered: 19, routesQueueSent: 5, routesQueued: 0, routesQueueDropped: 0, routesDropped: 0,
      });
      // On each channel, the routes it had come before the queued ones.
      const adds = routeLog('add');
      const queuedText = new Set(queued.map(routeText));
      for (let c = 0; c < N; c++) {
        const order = adds.filter(([, ch]) => ch === c).map(([t]) => queuedText.has(t));
        expect(order.indexOf(true) === -1 || order.lastIndexOf(false) < order.indexOf(true), `channel ${c}`).to.equal(true);
      }
      // Replies flow again, for old and queued routes alike.
      for (const r of [before[20], queued[3]]) {
        const p = reply(r);
        server.dispatch(p, 0, p.length);
      }
      await until('replies', () => got.length === 2);
      process.stderr.write(`      [-L: intercept restarted, ${N} channels back and 24 routes registered ${took.toFixed(0)} ms after the loss]\n`);
    });

    it('with -L, one lost channel is reconnected while the intercept stays up', async () => {
      const proxy = await tcpProxy(port);
      closers.push(proxy.close);
      const { client, got, errors } = newClient({ channelsPerIntercept: 2, keepRunning: true, reconnectMinMs: 30, reconnectMaxMs: 60 },
        proxy.port);
      await client.connect();
      const routes = Array.from({ length: 20 }, (_, i) => route('203.0.113.43', 54000 + i * 3));
      for (const r of routes) client.add(r);
      await until('routes', () => server.stats().routes === 20);
      const victim = client.channelOf(routes[0]);
      const onVictim = routes.filter((r) => client.channelOf(r) === victim).length;
      proxy.reset(`[channel ${victim + 1}/2]`);
      await until('loss reported', () => errors.length === 1);
      expect(errors[0]).to.match(/^lost the connection to intercept at .*: connection reset; reconnecting \(-L\)/);
      await until('back', () => client.stats().reconnects === 1 && server.stats().routes === 20 && errors.length === 2);
      expect(server.stats().routesDisconnected, 'intercept had dropped that channel\'s routes').to.equal(onVictim);
      expect(errors[1]).to.contain(`${onVictim} route(s) registered again, 0 queued route(s) sent`);
      const p = reply(routes[0]);
      server.dispatch(p, 0, p.length);
      await until('reply', () => got.length === 1);
    });

    it('with -L, connect() resolves with a down intercept pending, and its queued routes go when it comes up', async () => {
      const down = await closedPort();
      const { client, got, errors } = newClient({ channelsPerIntercept: 2, keepRunning: true, reconnectMinMs: 50, reconnectMaxMs: 100 }, down);
      const r1 = route('203.0.113.44', 55000);
      const r2 = route('203.0.113.44', 55001);
      const r3 = route('203.0.113.44', 55002);
      client.add(r1);
      const t0 = performance.now();
      await client.connect();
      expect(performance.now() - t0).to.be.below(1000);
      expect(errors).to.deep.equal([`cannot reach intercept at ${LOOPBACK}:${down}: connection refused; start intercept there ` +
        'or fix -s (-L: tcpcopy goes on without it, tries again in the background and registers its routes when it answers)']);
      expect(client.stats()).to.include({ connected: 0, channelsConnected: 0 });
      expect(client.intercepts[0]).to.equal(null);
      client.add(r2);
      client.add(r3);
      client.remove(r3);
      await tick(120);
      const late = new InterceptServer({ port: down, host: LOOPBACK });
      extraServers.push(late);
      await late.listen();
      await until('routes', () => client.stats().connected === 1 && late.stats().routes === 2 && errors.length === 2, 3000);
      expect(errors[1]).to.match(new RegExp(`^connected to intercept at ${LOOPBACK}:${down} after \\d+\\.\\d s ` +
        '\\(it was not reachable at start\\): 2 queued route\\(s\\) sent$'));
      expect(late.routes.find(r3.clientIp, r3.clientPort, r3.targetIp, r3.targetPort)).to.equal(-1);
      const p = reply(r2);
      late.dispatch(p, 0, p.length);
      await until('reply', () => got.length === 1);
      expect(client.intercepts[0]).to.not.equal(null);
    });

    it('with -L, the route queue is bounded and what does not fit is counted', async () => {
      const { client, errors } = newClient({ channelsPerIntercept: 2, keepRunning: true, maxQueuedRoutes: 5, reconnectMinMs: 50, reconnectMaxMs: 100 });
      await client.connect();
      const old = Array.from({ length: 3 }, (_, i) => route('203.0.113.45', 56000 + i));
      for (const r of old) client.add(r);
      await until('routes', () => server.stats().routes === 3);
      await server.close();
      await until('loss', () => errors.length === 1);
      const more = Array.from({ length: 12 }, (_, i) => route('203.0.113.46', 56000 + i));
      for (const r of more) client.add(r);
      expect(client.stats()).to.include({ routesQueued: 5, routesQueueDropped: 7, routesDropped: 7 });
      await restartLater();
      await until('back', () => client.stats().connected === 1 && server.stats().routes === 8 && errors.length === 2, 3000);
      for (const r of more.slice(0, 5)) expect(owner(r), 'the first five were kept').to.be.at.least(0);
      for (const r of more.slice(5)) expect(owner(r), 'the rest were dropped').to.equal(-1);
      expect(errors[1]).to.contain('3 route(s) registered again, 5 queued route(s) sent, 7 dropped (queue full)');
      expect(client.stats().routesQueued).to.equal(0);
    });

    it('with -L, retries with a doubling, bounded delay and stops at close()', async () => {
      const attempts: number[] = [];
      const peer = await fakePeer((s) => {
        attempts.push(performance.now());
        s.destroy(); // like an intercept that is going down
      });
      closers.push(peer.close);
      const { client, errors } = newClient({ channelsPerIntercept: 1, keepRunning: true, reconnectMinMs: 20, reconnectMaxMs: 80 }, peer.port);
      await client.connect();
      await until('attempts', () => attempts.length >= 8, 3000);
      await client.close();
      const n = attempts.length;
      const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
      expect(gaps[0]).to.be.at.least(15);
      for (const g of gaps.slice(3)) expect(g, 'capped').to.be.within(60, 80 + 150);
      expect(errors, 'reported once, as pending at start').to.have.length(1);
      expect(errors[0]).to.contain('closed the connection without answering HELLO');
      await tick(200);
      expect(attempts.length, 'no attempt after close()').to.equal(n);
    });

    it('with -L, connect() still fails for something that is not an intercept', async () => {
      const peer = await fakePeer((s) => s.write('SSH-2.0-OpenSSH_9.2p1\r\n'));
      closers.push(peer.close);
      const c = new InterceptClient({ servers: `${LOOPBACK}:${peer.port}`, keepRunning: true, onError: () => undefined });
      clients.push(c);
      const err = await c.connect().then(() => null, (e: unknown) => e as InterceptConnectError);
      expect(err!.code).to.equal('NOT_INTERCEPT');
    });
  });

  describe('connect errors', () => {
    it('says clearly that nothing listens', async () => {
      const port = await closedPort();
      const c = new InterceptClient({ servers: `${LOOPBACK}:${port}` });
      const err = await c.connect().then(() => null, (e: unknown) => e as InterceptConnectError);
      expect(err).to.be.instanceOf(InterceptConnectError);
      expect(err!.name).to.equal('InterceptConnectError');
      expect(err!.code).to.equal('REFUSED');
      expect(err!.message).to.equal(`cannot reach intercept at ${LOOPBACK}:${port}: connection refused; start intercept there or fix -s`);
    });

    it('names every intercept that failed', async () => {
      const p1 = await closedPort();
      const p2 = await closedPort();
      const c = new InterceptClient({ servers: [`${LOOPBACK}:${p1}`, `${LOOPBACK}:${p2}`] });
      const err = await c.connect().then(() => null, (e: unknown) => e as Error);
      expect(err!.message).to.contain(`:${p1}: connection refused`).and.contain(`:${p2}: connection refused`);
    });

    it('reports a version mismatch', async () => {
      const peer = await fakePeer((s) => {
        s.once('data', () => s.end(encodeHelloAck({
          version: 3, minVersion: 2, status: HelloStatus.VERSION_UNSUPPORTED, maxPayload: 0, name: 'newer intercept',
        })));
      });
      try {
        const c = new InterceptClient({ servers: `${LOOPBACK}:${peer.port}` });
        const err = await c.connect().then(() => null, (e: unknown) => e as InterceptConnectError);
        expect(err!.code).to.equal('VERSION');
        expect(err!.message).to.equal(`intercept at ${LOOPBACK}:${peer.port} speaks channel protocol version 2 to 3, ` +
          'this tcpcopy 1: run the same release of tcpcopy and intercept');
      } finally {
        await peer.close();
      }
    });

    it('recognises a peer that is not an intercept', async () => {
      const peer = await fakePeer((s) => s.write('SSH-2.0-OpenSSH_9.2p1\r\n'));
      try {
        const c = new InterceptClient({ servers: `${LOOPBACK}:${peer.port}` });
        const err = await c.connect().then(() => null, (e: unknown) => e as InterceptConnectError);
        expect(err!.code).to.equal('NOT_INTERCEPT');
        expect(err!.message).to.contain(`${LOOPBACK}:${peer.port} is not an intercept: it answered "SSH-2.0-OpenSSH_9.2p1\\r\\n"`);
      } finally {
        await peer.close();
      }
    });

    it('gives up on a peer that never answers HELLO, in bounded time', async () => {
      const peer = await fakePeer(() => undefined);
      try {
        const c = new InterceptClient({ servers: `${LOOPBACK}:${peer.port}` });
        const t0 = Date.now();
        const err = await c.connect(300).then(() => null, (e: unknown) => e as InterceptConnectError);
        expect(Date.now() - t0).to.be.below(1500);
        expect(err!.code).to.equal('NOT_INTERCEPT');
        expect(err!.message).to.contain('did not answer HELLO within 0.3 s');
      } finally {
        await peer.close();
      }
    });

    it('checks the magic of HELLO_ACK', async () => {
      const peer = await fakePeer((s) => {
        const ack = encodeHelloAck({ version: 1, minVersion: 1, status: HelloStatus.OK, maxPayload: 0, name: '' });
        ack.writeUInt32BE(CHANNEL_MAGIC ^ 1, 4);
        s.write(ack);
      });
      try {
        const c = new InterceptClient({ servers: `${LOOPBACK}:${peer.port}` });
        const err = await c.connect().then(() => null, (e: unknown) => e as InterceptConnectError);
        expect(err!.code).to.equal('NOT_INTERCEPT');
      } finally {
        await peer.close();
      }
    });

    it('parses intercept addresses', () => {
      expect(parseInterceptAddresses('198.51.100.40, 198.51.100.41:4000')).to.deep.equal([
        { host: '198.51.100.40', port: 36524 }, { host: '198.51.100.41', port: 4000 },
      ]);
      expect(() => parseInterceptAddresses('198.51.100.40:70000')).to.throw(/port from 1 to 65535/);
    });
  });
});
