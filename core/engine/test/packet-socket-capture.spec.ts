// The pktcap addon for real (needs root, as intercept does): packets sent through the raw IP socket
// to loopback, captured by PacketSocketCapture with a libpcap-compiled filter on lo and on any.
import { expect } from 'chai';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as path from 'node:path';
import { LiveCaptureError } from '../src/capture/cap-addon';
import { PacketSocketCapture, type PacketSocketCaptureOptions } from '../src/capture/packet-socket-capture';
import { buildPacket } from '../src/compliance/packets';
import { LinkType } from '../src/decode/link-type';
import { TCP_ACK, TCP_PSH } from '../src/decode/tcp-packet';
import { RawSocketSink } from '../src/output/raw-socket-sink';

/** Ports of this run (a random high pair, so that loopback traffic of other tests never matches). */
const PORT = 20000 + Math.floor(Math.random() * 20000);
const OTHER_PORT = PORT + 1;
const CLIENT_PORT = PORT + 2;
const LOOPBACK = 0x7f000001;
const isRoot = process.getuid?.() === 0;

const packet = (dport: number, seq: number, payload: string | Buffer = 'pktcap'): Buffer =>
  buildPacket({ src: '127.0.0.1', sport: CLIENT_PORT, dst: '127.0.0.1', dport, seq, ack: 1, flags: TCP_ACK | TCP_PSH, payload });

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface Seen {
  bytes: Buffer;
  length: number;
  linkType: LinkType;
}

describe('packet socket capture (pktcap addon)', function () {
  this.timeout(20_000);
  let capture: PacketSocketCapture | null = null;
  let sink: RawSocketSink | null = null;
  const seen: Seen[] = [];

  before(function () {
    if (!isRoot) this.skip(); // capturing needs root; intercept-cli.spec checks the error without it
  });

  afterEach(() => {
    capture?.close();
    sink?.close();
    capture = sink = null;
    seen.length = 0;
  });

  function start(opts: Partial<PacketSocketCaptureOptions> = {}): PacketSocketCapture {
    capture = new PacketSocketCapture({ device: 'lo', filter: `tcp and dst port ${PORT}`, ...opts });
    capture.start((frame, length, linkType) => {
      seen.push({ bytes: Buffer.from(frame.subarray(0, length)), length, linkType });
    });
    return capture;
  }

  function send(packets: Buffer[]): void {
    sink ??= new RawSocketSink();
    for (const p of packets) sink.send(p, 0, p.length, LOOPBACK);
  }

  for (const device of ['lo', 'any']) {
    it(`hands over each matching packet once, from its IP header, on ${device}`, async () => {
      const c = start({ device });
      expect([...c.linkTypes]).to.deep.equal([[device, LinkType.RAW]]);
      const wanted = [packet(PORT, 1), packet(PORT, 2, 'x'.repeat(1000))];
      // The other port is filtered out in the kernel; the last packet is the barrier.
      send([wanted[0], packet(OTHER_PORT, 3), wanted[1], packet(OTHER_PORT, 4)]);
      await until('both packets captured', () => seen.length >= 2);
      await until('the counters', () => c.stats().packets >= 2);
      // Loopback shows every packet twice (out and in): only one copy may come through.
      send([packet(PORT, 5)]);
      await until('the barrier captured', () => seen.some((s) => s.bytes.readUInt32BE(24) === 5));
      expect(seen.map((s) => s.bytes.readUInt32BE(24))).to.deep.equal([1, 2, 5]);
      expect(seen[0].bytes.equals(wanted[0])).to.equal(true);
      expect(seen[1].bytes.equals(wanted[1])).to.equal(true);
      expect(seen[1].length).to.equal(wanted[1].length);
      expect(seen.every((s) => s.linkType === LinkType.RAW)).to.equal(true);
      const stats = c.stats();
      expect(stats).to.include({ packets: 3, truncated: 0, drops: 0 });
      expect(stats.devices).to.have.length(1);
      expect(stats.devices[0]).to.include({ device, linkType: 'RAW', packets: 3 });
    });
  }

  it('cuts a packet longer than the snaplen and counts it as truncated', async () => {
    const c = start({ snaplen: 120 });
    const long = packet(PORT, 7, 'y'.repeat(500));
    send([long]);
    await until('the packet captured', () => seen.length === 1);
    expect(seen[0].length).to.equal(120);
    expect(seen[0].bytes.equals(long.subarray(0, 120))).to.equal(true);
    expect(c.stats()).to.include({ packets: 1, truncated: 1 });
  });

  it('counts what the kernel dropped with a full receive buffer: seen + dropped = sent', async () => {
    const c = start({ bufferSize: 65536 });
    // A child sends while this process is blocked in spawnSync and reads nothing: the buffer fills.
    const sent = 3000;
    const core = path.join(__dirname, '..');
    const script = `
      const { buildPacket } = require(${JSON.stringify(path.join(core, 'src', 'compliance', 'packets'))});
      const { RawSocketSink } = require(${JSON.stringify(path.join(core, 'src', 'output', 'raw-socket-sink'))});
      const sink = new RawSocketSink((m) => { console.error(m); process.exitCode = 1; });
      for (let i = 0; i < ${sent}; i++) {
        const p = buildPacket({ src: '127.0.0.1', sport: ${CLIENT_PORT}, dst: '127.0.0.1', dport: ${PORT}, seq: i, ack: 1, flags: 0x18, payload: 'drop' });
        sink.send(p, 0, p.length, 0x7f000001);
      }
      const wait = setInterval(() => {
        if (sink.stats.sent + sink.stats.failed < ${sent}) return;
        clearInterval(wait);
        sink.close();
        if (sink.stats.failed) { console.error('failed: ' + sink.stats.failed); process.exitCode = 1; }
      }, 5);
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15_000 });
    expect(r.status, r.stderr).to.equal(0);
    await until('every packet read or counted as dropped', () => {
      const s = c.stats();
      return s.packets + s.drops >= sent;
    });
    const s = c.stats();
    expect(s.drops, 'a 64 KiB buffer cannot hold 3000 packets').to.be.greaterThan(0);
    expect(s.packets + s.drops).to.equal(sent);
    expect(seen.length).to.equal(s.packets);
  });

  it('rejects a filter that does not compile, saying so in one line', () => {
    const c = new PacketSocketCapture({ device: 'lo', filter: 'tcp and prot 80' });
    expect(() => c.start(() => undefined)).to.throw(LiveCaptureError, /^filter "tcp and prot 80" does not compile: .+ \(see `man pcap-filter`/)
      .with.property('code', 'BAD_FILTER');
  });

  it('rejects a device that does not exist, naming the ones that do', () => {
    const c = new PacketSocketCapture({ device: 'nosuchdev0' });
    expect(() => c.start(() => undefined)).to.throw(LiveCaptureError, /^no network device "nosuchdev0" \(pick one of .*\blo\b.*; see `ip link`\)$/)
      .with.property('code', 'NO_DEVICE');
  });

  it('rejects bad options before opening anything', () => {
    expect(() => new PacketSocketCapture({ device: 'lo,lo' })).to.throw(LiveCaptureError, /names a device twice/);
    expect(() => new PacketSocketCapture({ device: 'any,lo' })).to.throw(LiveCaptureError, /has "any" and others/);
    expect(() => new PacketSocketCapture({ device: 'lo', bufferSize: 1000 })).to.throw(LiveCaptureError, /out of range/);
    expect(() => new PacketSocketCapture({ device: 'lo', snaplen: 60 })).to.throw(LiveCaptureError, /snaplen 60 is out of range/);
  });

  it('stops on close() and keeps its counters readable', async () => {
    const c = start();
    send([packet(PORT, 1)]);
    await until('the packet captured', () => seen.length === 1);
    c.close();
    c.close();
    send([packet(PORT, 2)]);
    // A packet that would have come through before close(), sent after it, to a capture that still listens.
    const witness = new PacketSocketCapture({ device: 'lo', filter: `tcp and dst port ${PORT}` });
    let witnessed = 0;
    witness.start(() => witnessed++);
    try {
      send([packet(PORT, 3)]);
      await until('the witness to see the last packet', () => witnessed >= 1);
    } finally {
      witness.close();
    }
    expect(seen).to.have.length(1);
    expect(c.stats()).to.include({ packets: 1, drops: 0 });
  });

  describe('on a real device, between two network namespaces', function () {
    const id = `${process.pid.toString(36)}${(Date.now() % 1e6).toString(36)}`.slice(-8);
    const nsA = `pkc-a-${id}`; // captures on its device va
    const nsB = `pkc-b-${id}`;
    const dist = path.join(__dirname, '..', 'src');
    let made = false;

    const sh = (...args: string[]): SpawnSyncReturns<string> => {
      const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', timeout: 10_000 });
      if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
      return r;
    };

    before(() => {
      sh('ip', 'netns', 'add', nsA);
      made = true;
      sh('ip', 'netns', 'add', nsB);
      sh('ip', 'link', 'add', 'va', 'netns', nsA, 'type', 'veth', 'peer', 'name', 'vb', 'netns', nsB);
      sh('ip', '-n', nsA, 'addr', 'add', '198.51.100.20/24', 'dev', 'va');
      sh('ip', '-n', nsB, 'addr', 'add', '198.51.100.30/24', 'dev', 'vb');
      for (const [ns, dev] of [[nsA, 'va'], [nsB, 'vb'], [nsA, 'lo'], [nsB, 'lo']]) sh('ip', '-n', ns, 'link', 'set', dev, 'up');
    });

    after(() => {
      if (!made) return;
      spawnSync('ip', ['netns', 'del', nsA]);
      spawnSync('ip', ['netns', 'del', nsB]);
    });

    /** A packet through a raw socket from `src` to `dst`:PORT, `seq` its sequence number (script text for a child). */
    const sendScript = (src: string, dst: string, seq: number): string => `
      const { buildPacket } = require(${JSON.stringify(path.join(dist, 'compliance', 'packets'))});
      const { RawSocketSink } = require(${JSON.stringify(path.join(dist, 'output', 'raw-socket-sink'))});
      const sink = new RawSocketSink((m) => { console.error(m); process.exitCode = 1; });
      const p = buildPacket({ src: '${src}', sport: ${CLIENT_PORT}, dst: '${dst}', dport: ${PORT}, seq: ${seq}, ack: 1, flags: 0x18, payload: 'dir' });
      sink.send(p, 0, p.length, p.readUInt32BE(16));
      const t = setInterval(() => { if (sink.stats.sent + sink.stats.failed >= 1) { clearInterval(t); sink.close(); } }, 2);
    `;

    it('sees what the host sends as well as what it receives, unless told to take incoming only', () => {
      // In nsA: one capture of each kind on va; A sends seq 1 out of va, then B sends seq 2 in.
      const script = `
        const { spawnSync } = require('node:child_process');
        const { PacketSocketCapture } = require(${JSON.stringify(path.join(dist, 'capture', 'packet-socket-capture'))});
        const seen = { both: [], in: [] };
        for (const direction of ['both', 'in']) {
          const c = new PacketSocketCapture({ device: 'va', filter: 'tcp and dst port ${PORT}', direction });
          c.start((frame) => seen[direction].push(frame.readUInt32BE(24)));
        }
        const run = (args) => { const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' }); if (r.status !== 0) throw new Error(r.stderr); };
        run([process.execPath, '-e', ${JSON.stringify(sendScript('198.51.100.20', '198.51.100.30', 1))}]);
        run(['ip', 'netns', 'exec', ${JSON.stringify(nsB)}, process.execPath, '-e', ${JSON.stringify(sendScript('198.51.100.30', '198.51.100.20', 2))}]);
        const end = Date.now() + 5000;
        const t = setInterval(() => {
          if ((seen.both.length < 2 || seen.in.length < 1) && Date.now() < end) return;
          console.log(JSON.stringify(seen));
          process.exit(0);
        }, 5);
      `;
      const r = spawnSync('ip', ['netns', 'exec', nsA, process.execPath, '-e', script], { encoding: 'utf8', timeout: 15_000 });
      expect(r.status, r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout)).to.deep.equal({ both: [1, 2], in: [2] });
    });

    it('says so when the device goes down, and captures again once it is back up', () => {
      const script = `
        const { spawnSync } = require('node:child_process');
        const { PacketSocketCapture } = require(${JSON.stringify(path.join(dist, 'capture', 'packet-socket-capture'))});
        const seen = [];
        const errors = [];
        const c = new PacketSocketCapture({ device: 'va', filter: 'tcp and dst port ${PORT}', onError: (m) => errors.push(m) });
        c.start((frame) => seen.push(frame.readUInt32BE(24)));
        const run = (args) => { const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' }); if (r.status !== 0) throw new Error(r.stderr); };
        const waitFor = (cond, then) => {
          const end = Date.now() + 5000;
          const t = setInterval(() => { if (!cond() && Date.now() < end) return; clearInterval(t); then(); }, 5);
        };
        run(['ip', 'link', 'set', 'va', 'down']);
        waitFor(() => errors.length > 0, () => {
          run(['ip', 'link', 'set', 'va', 'up']);
          // The veth pair needs a moment to carry packets again: B sends until one arrives.
          const end = Date.now() + 5000;
          const t = setInterval(() => {
            if (seen.length === 0 && Date.now() < end) {
              run(['ip', 'netns', 'exec', ${JSON.stringify(nsB)}, process.execPath, '-e', ${JSON.stringify(sendScript('198.51.100.30', '198.51.100.20', 10))}]);
              return;
            }
            clearInterval(t);
            console.log(JSON.stringify({ errors, seen: seen.slice(0, 1) }));
            process.exit(0);
          }, 50);
        });
      `;
      const r = spawnSync('ip', ['netns', 'exec', nsA, process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout) as { errors: string[]; seen: number[] };
      expect(out.errors).to.have.length(1);
      expect(out.errors[0]).to.match(/^capture on va: read failed: ENETDOWN .*capture resumes when it is up again/);
      expect(out.seen).to.deep.equal([10]);
    });
  });
});
