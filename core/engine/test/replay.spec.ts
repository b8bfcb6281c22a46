// replay(): a whole replay in one call. Offline, with a sink that records (no raw socket, no root) and an
// intercept of our own on loopback that answers HELLO and nothing else (the target never answers).
import { expect } from 'chai';
import * as net from 'node:net';
import * as path from 'node:path';
import { PcapFormatError } from '../src/capture/pcap-format';
import { PcapReader } from '../src/capture/pcap-reader';
import { ipv4Offset } from '../src/decode/link';
import { encodeHelloAck, HelloStatus } from '../src/intercept/channel-messages';
import { InterceptConnectError } from '../src/intercept/intercept-client';
import { RecordingSink } from '../src/output/packet-sink';
import { ProtocolLoadError } from '../src/protocol/protocol-loader';
import type { SessionProtocol } from '../src/protocol/session-protocol';
import { OptionError } from '../src/rewrite/address-map';
import { replay } from '../src/replay/replay';
import { ReplayError } from '../src/replay/replay-error';
import type { ReplayOptions, ReplayReadyInfo, ReplaySummary } from '../src/replay/replay-options';

const FIXTURE = path.resolve(__dirname, '../../test/fixtures/eth-us.pcap');

/** An intercept that answers HELLO on every connection; `drop()` closes every connection. */
async function fakeIntercept(): Promise<{ port: number; drop(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.once('data', () => s.write(encodeHelloAck({ version: 1, minVersion: 1, status: HelloStatus.OK, maxPayload: 0, name: 'fake' })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    drop: () => sockets.forEach((s) => s.destroy()),
    close: () => new Promise<void>((resolve) => {
      sockets.forEach((s) => s.destroy());
      server.close(() => resolve());
    }),
  };
}

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function rejection(p: Promise<unknown>): Promise<ReplayError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).to.be.instanceOf(ReplayError);
  return err as ReplayError;
}

describe('replay(): a whole replay in one call', function () {
  this.timeout(20_000);
  let intercept: Awaited<ReturnType<typeof fakeIntercept>>;
  let options: (over?: Partial<ReplayOptions>) => ReplayOptions;
  let sink: RecordingSink;

  beforeEach(async () => {
    intercept = await fakeIntercept();
    sink = new RecordingSink();
    options = (over = {}) => ({
      file: FIXTURE,
      transfers: '80-198.51.100.30:80', // the fixture's server port is another: tests that replay give fixtureTransfer()
      intercepts: `127.0.0.1:${intercept.port}`,
      clientAddresses: '203.0.113.x',
      sink,
      speed: 100,
      tailTimeoutMs: 200,
      ...over,
    });
  });
  afterEach(() => intercept.close());

  it('replays a file and resolves with the counters tcpcopy --summary json prints', async () => {
    const ready: ReplayReadyInfo[] = [];
    const warnings: string[] = [];
    const s = await replay(options({ transfers: fixtureTransfer(), onReady: (i) => ready.push(i), warn: (m) => warnings.push(m) }));
    expect(Object.keys(s)).to.deep.equal(['seconds', 'passes', 'end', 'capture', 'engine', 'unfinished', 'protocol', 'output', 'intercept']);
    expect(s.end).to.equal('finished');
    expect(s.passes).to.equal(1);
    expect(s.capture).to.include({ tcpPackets: 14 });
    expect(s.engine.sessionsCreated).to.equal(1);
    expect(s.engine.packetsSent).to.be.greaterThan(0);
    expect(s.output.sent).to.equal(sink.stats.sent);
    expect(s.protocol).to.deep.equal({ name: 'raw' });
    expect(s.intercept.intercepts).to.equal(1);
    expect(ready).to.have.length(1);
    expect(ready[0]).to.include({ mode: 'offline', protocol: 'raw' });
    expect(ready[0].intercepts).to.deep.equal([`127.0.0.1:${intercept.port}`]);
    expect(ready[0].stats().engine.sessionsCreated, 'the counters on demand').to.equal(1);
    expect(warnings.join('\n')).to.match(/sessions still busy/); // the target never answers
  });

  it('takes a SessionProtocol object and passes its counters through', async () => {
    const protocol: SessionProtocol = { name: 'mine', replyPayloadBytes: 0, createSession: () => ({}), stats: () => ({ seen: 7 }) };
    const s = await replay(options({ transfers: fixtureTransfer(), protocol }));
    expect(s.protocol).to.deep.equal({ name: 'mine', seen: 7 });
  });

  it('a signal ends the replay at once: end "stopped"', async () => {
    const stop = new AbortController();
    const started = Date.now();
    const s = await replay(options({ transfers: fixtureTransfer(), speed: 0.001, signal: stop.signal, onReady: () => setTimeout(() => stop.abort(), 200) }));
    expect(s.end).to.equal('stopped');
    expect(Date.now() - started).to.be.below(5000);
  });

  it('aborted before it runs: rejects with the signal\'s reason', async () => {
    const stop = new AbortController();
    stop.abort(new Error('not now'));
    const err = await replay(options({ signal: stop.signal })).then(() => null, (e: unknown) => e as Error);
    expect(err?.message).to.equal('not now');
  });

  it('calls onStats every statsIntervalMs', async () => {
    const stats: ReplaySummary[] = [];
    const stop = new AbortController();
    await replay(options({
      transfers: fixtureTransfer(), speed: 0.001, statsIntervalMs: 50, signal: stop.signal,
      onStats: (s) => {
        stats.push(s);
        if (stats.length === 3) stop.abort();
      },
    }));
    expect(stats).to.have.length(3);
    expect(stats[0].end).to.equal(undefined);
    expect(stats[0].capture.records).to.be.a('number');
  });

  it('an intercept that goes away ends the replay (end "intercept lost"), and is reported', async () => {
    const errors: string[] = [];
    const s = await replay(options({
      transfers: fixtureTransfer(), speed: 0.001,
      onReady: () => setTimeout(() => intercept.drop(), 100),
      onInterceptError: (m) => errors.push(m),
    }));
    expect(s.end).to.equal('intercept lost');
    expect(errors.join('\n')).to.match(/lost the connection to intercept at 127\.0\.0\.1:\d+/);
  });

  describe('typed errors', () => {
    it('a file that is not there: PCAP_FILE, the PcapFormatError as cause', async () => {
      const err = await rejection(replay(options({ file: '/nonexistent/x.pcap' })));
      expect(err.code).to.equal('PCAP_FILE');
      expect(err.cause).to.be.instanceOf(PcapFormatError);
      expect((err.cause as PcapFormatError).code).to.equal('ENOENT');
    });

    it('a bad -x or -c: BAD_OPTION, the OptionError as cause', async () => {
      let err = await rejection(replay(options({ transfers: '80' })));
      expect(err.code).to.equal('BAD_OPTION');
      expect(err.cause).to.be.instanceOf(OptionError);
      expect(err.message).to.match(/^-x 80: no "-"/);
      err = await rejection(replay(options({ clientAddresses: '203.0.113' })));
      expect(err.code).to.equal('BAD_OPTION');
    });

    it('options of the other mode: BAD_OPTION', async () => {
      expect((await rejection(replay(options({ memoryLimitBytes: 1 << 30 })))).code).to.equal('BAD_OPTION');
      expect((await rejection(replay(options({ devices: 'lo' })))).code).to.equal('BAD_OPTION');
    });

    it('a protocol that does not load: PROTOCOL', async () => {
      const err = await rejection(replay(options({ protocol: 'no-such-protocol-module' })));
      expect(err.code).to.equal('PROTOCOL');
      expect(err.cause).to.be.instanceOf(ProtocolLoadError);
    });

    it('an intercept nothing listens for: INTERCEPT', async () => {
      const err = await rejection(replay(options({ intercepts: `127.0.0.1:${await closedPort()}` })));
      expect(err.code).to.equal('INTERCEPT');
      expect(err.cause).to.be.instanceOf(InterceptConnectError);
      expect(err.message).to.match(/^cannot reach intercept at 127\.0\.0\.1:\d+: connection refused/);
    });

    it('a bad intercept address: BAD_OPTION', async () => {
      expect((await rejection(replay(options({ intercepts: '127.0.0.1:99999' })))).code).to.equal('BAD_OPTION');
    });
  });
});

/** "PORT-198.51.100.30:80" for the server port of the fixture's connection. */
function fixtureTransfer(): string {
  const r = PcapReader.open(FIXTURE);
  try {
    const rec = r.next()!;
    const ip = ipv4Offset(r.linkType, rec.data, rec.data.length);
    const ihl = (rec.data[ip] & 0x0f) * 4;
    return `${rec.data.readUInt16BE(ip + ihl + 2)}-198.51.100.30:80`;
  } finally {
    r.close();
  }
}
