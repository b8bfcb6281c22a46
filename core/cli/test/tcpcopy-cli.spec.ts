// The real tcpcopy command (node core/cli/bin/tcpcopy.js) given bad input: user errors end with exit code 2 and
// exactly one line "tcpcopy: <what>" on stderr, no stack trace. Captures that are damaged but still replayable are
// not errors: as root, in a network namespace of its own with a real intercept, tcpcopy replays what it can, exits
// 0 and counts every skipped packet by kind in its --summary json.
import { LinkType, PcapWriter } from '@tcpcopy/core';
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ACK,
  ETH_IPV6,
  PSH,
  broken,
  clientConnection,
  ethernet,
  icmpEcho,
  ipv6Tcp,
  tcpPacket,
  udpPacket,
} from './support/packets';
import { startNetnsIntercept, type NetnsIntercept } from './support/netns-intercept';
import { loudSkip, sh, type Run } from './support/process';

const ROOT = path.resolve(__dirname, '../../../..');
const BIN = path.join(ROOT, 'core/cli/bin/tcpcopy.js');
const FIXTURES = path.join(ROOT, 'core/engine/test/fixtures');
const GOOD = path.join(FIXTURES, 'eth-us.pcap');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;


function run(args: string[]): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Exit code 2, exactly one stderr line "tcpcopy: ..." matching `pattern`, nothing on stdout, no stack trace. */
function expectUserError(r: Run, pattern: RegExp): void {
  const context = `exit ${r.code ?? r.signal}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`;
  expect(r.code, context).to.equal(2);
  expect(r.stderr.endsWith('\n'), context).to.equal(true);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, context).to.have.length(1);
  expect(lines[0]).to.match(/^tcpcopy: \S/);
  expect(lines[0]).to.match(pattern);
  expect(r.stderr).not.to.match(/\bat .+:\d+:\d+\)?$|internal error|Error:/m);
  expect(r.stdout, context).to.equal('');
}


/** A TCP port on 127.0.0.1 that nothing listens on (just released by the kernel). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function writePcap(file: string, frames: Buffer[], linkType: LinkType = LinkType.ETHERNET): void {
  const w = PcapWriter.create(file, { linkType });
  const t0 = Date.UTC(2024, 0, 1) * 1000;
  frames.forEach((f, i) => w.write(f, t0 + i * 1000)); // 1 ms apart
  w.close();
}

describe('tcpcopy command', function () {
  this.timeout(30_000);
  let dir: string;
  let noIntercept: string;
  /** Everything right but the part under test; nothing listens at -s, which is checked last. */
  const args = (over: Record<string, string> = {}, extra: string[] = []): string[] => {
    const o: Record<string, string> = { '-i': GOOD, '-x': '80-198.51.100.30:80', '-s': noIntercept, '-c': '203.0.113.x', ...over };
    return [...Object.entries(o).flat(), ...extra];
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-cli-'));
    noIntercept = `127.0.0.1:${await closedPort()}`;
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('user errors: exit 2, one line on stderr', () => {
    it('a missing file', () => {
      const file = path.join(dir, 'no-such.pcap');
      expectUserError(run(args({ '-i': file })), /^tcpcopy: cannot open \S*no-such\.pcap: no such file/);
    });

    it('an empty file', () => {
      const file = path.join(dir, 'empty.pcap');
      fs.writeFileSync(file, '');
      expectUserError(run(args({ '-i': file })), /empty\.pcap is empty \(0 bytes\), not a pcap file/);
    });

    it('a file cut inside its 24-byte header', () => {
      const file = path.join(dir, 'short-header.pcap');
      fs.writeFileSync(file, fs.readFileSync(GOOD).subarray(0, 10));
      expectUserError(run(args({ '-i': file })), /short-header\.pcap is truncated: it has 10 bytes but a pcap file header is 24 bytes/);
    });

    it('a pcapng file, with the command that converts it', () => {
      expectUserError(run(args({ '-i': path.join(FIXTURES, 'eth.pcapng') })), /eth\.pcapng is a pcapng file; .*editcap -F pcap /);
    });

    it('an unsupported link type (105, IEEE 802.11)', () => {
      const file = path.join(dir, 'wifi.pcap');
      writePcap(file, [Buffer.alloc(64)], 105 as LinkType);
      expectUserError(run(args({ '-i': file })), /wifi\.pcap: link type 105 \(IEEE802_11\b.*\) is not supported/);
    });

    describe('a bad -x', () => {
      const cases: Array<[string, RegExp]> = [
        ['80', /^tcpcopy: -x 80: no "-" between the online and the target side/],
        ['80-198.51.100.30', /^tcpcopy: -x 80-198\.51\.100\.30: the target needs an address and a port/],
        ['80-198.51.100.30:70000', /^tcpcopy: -x 80-198\.51\.100\.30:70000: target port 70000 is outside 1-65535/],
        ['80-198.51.300.30:80', /^tcpcopy: -x 80-198\.51\.300\.30:80: target address "198\.51\.300\.30" is not an IPv4 address/],
        ['70000-198.51.100.30:80', /^tcpcopy: -x 70000-198\.51\.100\.30:80: online port 70000 is outside 1-65535/],
        ['80-198.51.100.30:http', /^tcpcopy: -x 80-198\.51\.100\.30:http: target port "http" is not a port number/],
      ];
      for (const [spec, pattern] of cases) {
        it(`-x ${spec}`, () => expectUserError(run(args({ '-x': spec })), pattern));
      }
    });

    it('a bad -c', () => {
      expectUserError(run(args({ '-c': '203.0.113' })), /^tcpcopy: -c 203\.0\.113: not an IPv4 address/);
      expectUserError(run(args({ '-c': '203.0.113.256' })), /^tcpcopy: -c 203\.0\.113\.256: not an IPv4 address/);
    });

    it('an unknown option', () => {
      expectUserError(run(args({}, ['--frobnicate'])), /^tcpcopy: unknown option '--frobnicate'/);
    });

    it('-a 0', () => {
      expectUserError(run(args({ '-a': '0' })), /^tcpcopy: -a 0: expected a number/);
    });

    it('an intercept that nothing listens for', () => {
      expectUserError(run(args()), new RegExp(`^tcpcopy: cannot reach intercept at ${noIntercept.replace(/\./g, '\\.')}: connection refused`));
    });

    it('an unknown --protocol', () => {
      expectUserError(run(args({ '--protocol': 'no-such-protocol' })), /^tcpcopy: cannot load protocol "no-such-protocol"/);
    });

    it('--idle-release out of range, by its name and by its former name --gate-idle', () => {
      expectUserError(run(args({ '--idle-release': '0' })), /^tcpcopy: --idle-release 0: expected a whole number from 1 to 600000/);
      expectUserError(run(args({ '--gate-idle': '0' })), /^tcpcopy: --gate-idle 0: expected a whole number from 1 to 600000/);
    });

    it('--capture-hold out of range, with a pcap file, and with libpcap capture', () => {
      expectUserError(run(args({ '--capture-hold': '1001' })), /^tcpcopy: --capture-hold 1001: expected a whole number from 0 to 1000/);
      expectUserError(run(args({ '--capture-hold': '3' })), /^tcpcopy: --capture-hold applies only to live capture, and -i \S+ is a file/);
      expectUserError(run(args({ '-i': 'lo', '--capture': 'pcap', '--capture-hold': '3' })),
        /^tcpcopy: --capture-hold applies to raw socket capture only \(drop it, or drop --capture pcap, -F and -S\)/);
    });

    it('--syn-retries out of range', () => {
      expectUserError(run(args({ '--syn-retries': '7' })), /^tcpcopy: --syn-retries 7: expected a whole number from 0 to 6/);
    });

    it('--mysql-user without --protocol mysql, and one without a password', () => {
      expectUserError(run(args({}, ['--mysql-user', 'app:pw'])), /^tcpcopy: --mysql-user applies only to --protocol mysql/);
      expectUserError(run(args({ '--protocol': 'mysql' }, ['--mysql-user', 'app'])), /^tcpcopy: protocol "mysql" rejected its options: user=app: expected user:password/);
    });
  });

  it('--version prints the version and exits 0, whatever else is missing', () => {
    const r = run(['--version']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.match(/^\d+\.\d+\.\d+$/);
  });

  // Not errors: what cannot be replayed is skipped and counted. tcpcopy sends for real here (raw socket), so
  // it runs in a namespace of its own: loopback for the intercept, and a veth pair carrying 198.51.100.1/24
  // whose far end has no address, so packets to the "target" 198.51.100.9 leave and go nowhere.
  describe('damaged captures, replayed as root in a network namespace', function () {
    this.timeout(30_000);
    const id = `${process.pid.toString(36)}${(Date.now() % 1e6).toString(36)}`.slice(-8);
    const ns = `tccli-${id}`;
    const INTERCEPT_PORT = 36530;
    const TARGET = '198.51.100.9';
    let created = false;
    let intercept: NetnsIntercept | undefined;
    const live = new Set<ChildProcess>();


    function killPid(p: ChildProcess | undefined): void {
      if (p?.pid && p.exitCode === null && p.signalCode === null) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }

    before(async function () {
      if (!isRoot) return loudSkip(this, 'not root: cannot create a network namespace or send raw packets');
      if (spawnSync('ip', ['netns', 'list']).status !== 0) return loudSkip(this, '`ip netns` does not work here');
      sh('ip', 'netns', 'add', ns);
      created = true;
      sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
      sh('ip', '-n', ns, 'link', 'add', 'tca0', 'type', 'veth', 'peer', 'name', 'tcb0');
      sh('ip', '-n', ns, 'addr', 'add', '198.51.100.1/24', 'dev', 'tca0');
      sh('ip', '-n', ns, 'link', 'set', 'tca0', 'up');
      sh('ip', '-n', ns, 'link', 'set', 'tcb0', 'up');
      // No ARP for the target: a fixed neighbour, so sends never wait on (or fail for) resolution.
      sh('ip', '-n', ns, 'neigh', 'add', TARGET, 'lladdr', '02:c6:33:64:00:09', 'dev', 'tca0', 'nud', 'permanent');

      intercept = await startNetnsIntercept(ns, INTERCEPT_PORT);
    });

    after(async () => {
      for (const p of live) killPid(p);
      await intercept?.stop();
      if (created) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
    });

    /** tcpcopy inside the namespace, to the end (bounded), with --summary json. */
    async function replay(file: string): Promise<Run & { summary: any }> {
      const p = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, '-i', file, '-x', `80-${TARGET}:80`, '-c', '203.0.113.x',
        '-s', `127.0.0.1:${INTERCEPT_PORT}`, '--tail-timeout', '1', '--summary', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      live.add(p);
      let stdout = '';
      let stderr = '';
      p.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => killPid(p), 20_000);
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => p.once('close', (c, s) => resolve([c, s])));
      clearTimeout(timer);
      live.delete(p);
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      return { code, signal, stdout, stderr, summary: line ? JSON.parse(line) : null };
    }

    const request = (n: number) => `GET /r/${n} HTTP/1.1\r\nHost: t\r\n\r\n`;

    it('a capture whose last record is cut short: replays the complete records, warns once, exit 0', async () => {
      const frames = clientConnection({ src: '192.0.2.7', sport: 40001, dst: '198.51.100.20', dport: 80, requests: [request(1), request(2)] }).map((p) => ethernet(p));
      const file = path.join(dir, 'cut-tail.pcap');
      writePcap(file, frames);
      // Cut the last record (the FIN) in the middle of its frame.
      const size = fs.statSync(file).size;
      fs.truncateSync(file, size - 20);
      const r = await replay(file);
      const context = `exit ${r.code ?? r.signal}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`;
      expect(r.code, context).to.equal(0);
      expect(r.summary, context).to.be.an('object');
      const complete = frames.length - 1;
      expect(r.summary.capture, context).to.include({ records: complete, tcpPackets: complete, truncatedFileTail: true, malformed: 0 });
      expect(r.summary.engine.capturedPackets, context).to.equal(complete);
      expect(r.summary.engine.sessionsCreated, context).to.equal(1);
      expect(r.summary.engine.packetsSent, context).to.be.greaterThan(0);
      const lines = r.stderr.split('\n').filter(Boolean);
      const tailWarnings = lines.filter((l) => /incomplete|truncated|cut short|middle of a packet/i.test(l));
      expect(tailWarnings, context).to.have.length(1);
      expect(tailWarnings[0]).to.match(new RegExp(`^tcpcopy: .*cut-tail\\.pcap: the last record .* is incomplete`));
      for (const l of lines) expect(l, context).to.match(/^tcpcopy: /);
      expect(r.stderr).not.to.match(/\n\s+at |internal error/);
    });

    it('a capture with broken and foreign packets among good ones: exit 0, each kind counted exactly', async () => {
      const good = clientConnection({ src: '192.0.2.8', sport: 40002, dst: '198.51.100.20', dport: 80, requests: [request(1), request(2), request(3)] });
      const model = tcpPacket({ src: '192.0.2.9', sport: 40003, dst: '198.51.100.20', dport: 80, seq: 7, ack: 9, flags: ACK | PSH, payload: request(9) });
      const bare = tcpPacket({ src: '192.0.2.9', sport: 40003, dst: '198.51.100.20', dport: 80, seq: 7, ack: 9, flags: ACK }); // 40 bytes
      const malformed = [
        broken(model, (p) => (p[0] = 0x44)), // IHL 4: a 16-byte IPv4 header
        broken(bare, (p) => (p[0] = 0x4f)), // IHL 15: a 60-byte IPv4 header in a 40-byte packet
        broken(model, (p) => (p[32] = (4 << 4) | (p[32] & 0x0f))), // TCP data offset 4: a 16-byte TCP header
        broken(model, (p) => (p[32] = (15 << 4) | (p[32] & 0x0f))), // TCP data offset 15: 60 bytes, past the packet's end
        broken(model, (p) => p.writeUInt16BE(16, 2)), // total length 16: less than the IPv4 header
        broken(model, (p) => p.writeUInt16BE(30, 2)), // total length 30: no room for a TCP header
      ];
      const notTcp = [
        udpPacket('192.0.2.9', '198.51.100.20', 5353, 80, Buffer.from('not tcp')),
        udpPacket('192.0.2.9', '198.51.100.20', 5353, 53, Buffer.alloc(40)),
        icmpEcho('192.0.2.9', '198.51.100.20'),
      ];
      const notIpv4 = [ipv6Tcp(40004, 80), ipv6Tcp(40005, 80), ipv6Tcp(40006, 80, ''), ipv6Tcp(40007, 80)];
      const fragments = [
        tcpPacket({ src: '192.0.2.10', sport: 40008, dst: '198.51.100.20', dport: 80, seq: 1, ack: 1, flags: ACK | PSH, payload: request(10) }, { fragment: 0x2000 }), // MF, offset 0
        tcpPacket({ src: '192.0.2.10', sport: 40008, dst: '198.51.100.20', dport: 80, seq: 1, ack: 1, flags: ACK, payload: 'tail of it' }, { fragment: 185 }), // offset 1480
      ];
      // Interleaved: good packets between all the others, so every kind sits in the middle of a connection.
      const others = [
        ...malformed.map((p) => ethernet(p)),
        ...notTcp.map((p) => ethernet(p)),
        ...notIpv4.map((p) => ethernet(p, ETH_IPV6)),
        ...fragments.map((p) => ethernet(p)),
      ];
      const goodFrames = good.map((p) => ethernet(p));
      const frames: Buffer[] = [];
      for (let i = 0; i < Math.max(goodFrames.length, others.length); i++) {
        if (i < goodFrames.length) frames.push(goodFrames[i]);
        if (i < others.length) frames.push(others[i]);
      }
      const file = path.join(dir, 'mixed.pcap');
      writePcap(file, frames);

      const r = await replay(file);
      const context = `exit ${r.code ?? r.signal}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`;
      expect(r.code, context).to.equal(0);
      expect(r.summary, context).to.be.an('object');
      expect(r.summary.capture, context).to.deep.include({
        records: frames.length,
        tcpPackets: good.length,
        malformed: malformed.length,
        notTcp: notTcp.length,
        notIpv4: notIpv4.length,
        fragments: fragments.length,
        truncatedBySnaplen: 0,
        truncatedFileTail: false,
      });
      expect(r.summary.engine.capturedPackets, context).to.equal(good.length);
      expect(r.summary.engine.sessionsCreated, context).to.equal(1);
      for (const l of r.stderr.split('\n').filter(Boolean)) expect(l, context).to.match(/^tcpcopy: /);
      expect(r.stderr).not.to.match(/\n\s+at |internal error/);
    });
  });
});
