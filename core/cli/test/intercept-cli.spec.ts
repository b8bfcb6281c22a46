import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loudSkip, sh } from './support/process';

const ROOT = path.resolve(__dirname, '../../../..');
const BIN = path.join(ROOT, 'core/cli/bin/intercept.js');
/** @tcpcopy/core's public entry, for the scripts run with `node -e`. */
const CORE = require.resolve('@tcpcopy/core');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

function run(args: string[], opts: { prefix?: string[] } = {}) {
  const argv = [...(opts.prefix ?? []), process.execPath, BIN, ...args];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exactly one line on stderr, "intercept: <what> (<fix>)", and no stack trace. */
function expectOneLineError(r: ReturnType<typeof run>, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(2);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^intercept: .+ \(.+\)$/);
  expect(lines[0]).to.match(pattern);
  expect(r.stderr).not.to.match(/\n\s+at /);
}


describe('intercept command', () => {
  it('--help explains every option', () => {
    const r = run(['--help']);
    expect(r.code).to.equal(0);
    for (const opt of ['--device', '--filter', '--port', '--bind', '--passlist', '--log', '--daemon', '--pid-file',
      '--buffer-size', '--stats-interval', '--verbose']) {
      expect(r.stdout).to.contain(opt);
    }
    expect(r.stdout).to.contain('tcp and not port <listen port>');
  });

  it('rejects a port out of range', () => {
    expectOneLineError(run(['-p', '70000']), /port 70000 is out of range/);
  });

  it('rejects an unknown option', () => {
    expectOneLineError(run(['--frobnicate']), /unknown option '--frobnicate'/);
  });

  it('rejects an unknown device', () => {
    expectOneLineError(run(['-i', 'nosuchdev0', '-p', '36600']), /no network device "nosuchdev0".*ip link/);
  });

  it('rejects a filter that does not compile, quoting it', function () {
    if (!isRoot) return loudSkip(this, 'not root: a filter is only compiled on an open capture');
    expectOneLineError(run(['-F', 'tcp and prot 80', '-p', '36601']), /filter "tcp and prot 80" does not compile/);
  });

  it('says what to do without the right to capture', function () {
    if (!isRoot) {
      // Then this very run is the test.
      expectOneLineError(run(['-p', '36602']), /no permission to capture.*run as root/);
      return;
    }
    if (spawnSync('setpriv', ['--version']).status !== 0) return loudSkip(this, 'setpriv not installed');
    const r = run(['-p', '36602'], { prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] });
    expectOneLineError(r, /no permission to capture on any: .*\(run as root, or give node CAP_NET_RAW/);
  });

  describe('real capture in network namespaces', function () {
    this.timeout(30_000);
    const id = `${process.pid.toString(36)}${(Date.now() % 1e6).toString(36)}`.slice(-8);
    const nsI = `icli-i-${id}`; // the assistant host: intercept and the "tcpcopy"
    const nsT = `icli-t-${id}`; // the target: sends the reply
    const vethI = `vi${id}`;
    const vethT = `vt${id}`;
    const procs: ChildProcess[] = [];
    let ready = false;


    before(function () {
      if (!isRoot) return loudSkip(this, 'not root: cannot create network namespaces for the capture test');
      if (spawnSync('ip', ['netns', 'list']).status !== 0) return loudSkip(this, '`ip netns` does not work here');
      sh('ip', 'netns', 'add', nsI);
      sh('ip', 'netns', 'add', nsT);
      sh('ip', 'link', 'add', vethI, 'netns', nsI, 'type', 'veth', 'peer', 'name', vethT, 'netns', nsT);
      sh('ip', '-n', nsI, 'addr', 'add', '198.51.100.1/24', 'dev', vethI);
      sh('ip', '-n', nsT, 'addr', 'add', '198.51.100.2/24', 'dev', vethT);
      for (const [ns, dev] of [[nsI, vethI], [nsT, vethT], [nsI, 'lo'], [nsT, 'lo']]) sh('ip', '-n', ns, 'link', 'set', dev, 'up');
      // The target routes the fake client network through the assistant, which does not forward.
      sh('ip', '-n', nsT, 'route', 'add', '203.0.113.0/24', 'via', '198.51.100.1');
      sh('ip', 'netns', 'exec', nsI, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0');
      ready = true;
    });

    afterEach(() => {
      for (const p of procs.splice(0)) {
        if (p.exitCode === null && p.signalCode === null && p.pid) {
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    });

    after(() => {
      if (!ready) return;
      spawnSync('ip', ['netns', 'del', nsI]);
      spawnSync('ip', ['netns', 'del', nsT]);
    });

    /** Starts a process in a namespace (`ip netns exec` execs, so the PID is the program's). */
    function start(ns: string, args: string[]): { proc: ChildProcess; out: string[]; err: string[] } {
      const proc = spawn('ip', ['netns', 'exec', ns, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      procs.push(proc);
      const out: string[] = [];
      const err: string[] = [];
      let partial = '';
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
        const lines = (partial + d).split('\n');
        partial = lines.pop()!;
        out.push(...lines);
      });
      proc.stderr!.setEncoding('utf8').on('data', (d: string) => err.push(d));
      return { proc, out, err };
    }

    async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
      const end = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }

    // The "tcpcopy": registers 203.0.113.7:40000 ← 198.51.100.2:80 (5 payload bytes wanted) and
    // prints every reply it gets as JSON.
    const tcpcopyScript = `
      const { InterceptClient, parseIpv4 } = require(${JSON.stringify(CORE)});
      const c = new InterceptClient({
        servers: '127.0.0.1:' + process.argv[1],
        onReply: (pkt, payloadLength, data) => console.log(JSON.stringify({
          record: pkt.buf.toString('hex', pkt.ip, pkt.end), payloadLength, data: data.toString('latin1') })),
        onError: (m) => console.log(JSON.stringify({ error: m })),
      });
      c.connect().then(() => {
        c.add({ clientIp: parseIpv4('203.0.113.7'), clientPort: 40000, targetIp: parseIpv4('198.51.100.2'),
          targetPort: 80, payloadBytes: 5 });
        setTimeout(() => console.log('ready'), 200);
      }, (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(3); });
      process.on('SIGTERM', () => c.close().then(() => process.exit(0)));
    `;

    // The target: a PSH/ACK with timestamps and 11 payload bytes, to each port given, through a
    // raw socket with IP_HDRINCL; prints the packet it built for the first port.
    const senderScript = `
      const raw = require('raw-socket');
      function sum(b, s, e, init) { let x = init; for (let i = s; i < e; i += 2) x += (b[i] << 8) | (i + 1 < e ? b[i + 1] : 0); return x; }
      function fold(x) { while (x > 0xffff) x = (x & 0xffff) + (x >>> 16); return (~x) & 0xffff; }
      function build(dport) {
        const payload = Buffer.from('hello world');
        const b = Buffer.alloc(20 + 32 + payload.length);
        b[0] = 0x45; b.writeUInt16BE(b.length, 2); b.writeUInt16BE(0x1234, 4); b.writeUInt16BE(0x4000, 6);
        b[8] = 64; b[9] = 6;
        Buffer.from([198, 51, 100, 2]).copy(b, 12); Buffer.from([203, 0, 113, 7]).copy(b, 16);
        b.writeUInt16BE(fold(sum(b, 0, 20, 0)), 10);
        b.writeUInt16BE(80, 20); b.writeUInt16BE(dport, 22);
        b.writeUInt32BE(0x11223344, 24); b.writeUInt32BE(0x55667788, 28);
        b[32] = 8 << 4; b[33] = 0x18; b.writeUInt16BE(29200, 34);
        Buffer.from('0101080a0a0b0c0d01020304', 'hex').copy(b, 40);
        payload.copy(b, 52);
        const pseudo = 0xc633 + 0x6402 + 0xcb00 + 0x7107 + 6 + (b.length - 20);
        b.writeUInt16BE(fold(sum(b, 20, b.length, pseudo)), 36);
        return b;
      }
      const s = raw.createSocket({ protocol: raw.Protocol.TCP });
      s.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
      s.pauseRecv();
      const ports = process.argv.slice(1).map(Number);
      console.log(build(ports[0]).toString('hex'));
      let left = ports.length;
      for (const p of ports) {
        const b = build(p);
        s.send(b, 0, b.length, '203.0.113.7', (err) => {
          if (err) { console.error(err.message); process.exit(1); }
          if (--left === 0) { s.close(); process.exit(0); }
        });
      }
    `;

    async function replayOneReply(device: string[], port: number): Promise<void> {
      const ic = start(nsI, [process.execPath, BIN, '-p', String(port), '--stats-interval', '0', '-v', ...device]);
      await until('intercept to start', () => ic.out.some((l) => l.includes('listening on')) || ic.proc.exitCode !== null);
      expect(ic.proc.exitCode, ic.err.join('')).to.equal(null);
      const line = ic.out.find((l) => l.includes('listening on'))!;
      expect(line).to.match(new RegExp(`^intercept: listening on 0\\.0\\.0\\.0:${port} for tcpcopy; capturing on \\S+ \\((LINUX_SLL|ETHERNET|RAW)\\) ` +
        `with filter "tcp and not port ${port}"$`));

      const tc = start(nsI, [process.execPath, '-e', tcpcopyScript, String(port)]);
      await until('tcpcopy script to register its route', () => tc.out.includes('ready') || tc.proc.exitCode !== null);
      expect(tc.out, tc.err.join('')).to.include('ready');

      // 40000 is registered; 40001 is not and must reach nobody. A second reply to 40000, sent after it, is the
      // barrier: the intercept captures and handles the packets in the order sent, and its channel keeps that
      // order, so once the tcpcopy has the second one, anything done with the reply to 40001 has come before it.
      const sender = start(nsT, [process.execPath, '-e', senderScript, '40000', '40001', '40000']);
      await new Promise((r) => sender.proc.once('exit', r));
      expect(sender.proc.exitCode, sender.err.join('')).to.equal(0);
      const sent = Buffer.from(sender.out[0], 'hex');

      await until('the two replies to 40000 at the tcpcopy', () => tc.out.filter((l) => l.startsWith('{')).length >= 2);
      const replies = tc.out.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
      expect(replies, JSON.stringify(replies)).to.have.length(2);
      // IP header (20) + TCP header with options (32) + the 5 payload bytes asked for.
      expect(replies[0].record).to.equal(sent.subarray(0, 57).toString('hex'));
      expect(replies[0].payloadLength).to.equal(11);
      expect(replies[0].data).to.equal('hello');
      expect(replies[1], 'the barrier: the same reply to 40000 again').to.deep.equal(replies[0]);

      ic.proc.kill('SIGTERM');
      const code = await new Promise((r) => ic.proc.once('exit', (c) => r(c)));
      expect(code, ic.err.join('')).to.equal(0);
      // The intercept said goodbye: the tcpcopy heard it.
      await until('tcpcopy to see the intercept go', () => tc.out.some((l) => l.includes('shutting down')));
      // Its log (stderr) has the connection and the route.
      expect(ic.err.join('')).to.contain('tcpcopy connected from 127.0.0.1').and.contain('route add 203.0.113.7:40000');
      tc.proc.kill('SIGTERM');
    }

    it('returns exactly the reply\'s headers to the tcpcopy that registered its route (device any)', async () => {
      await replayOneReply([], 36611);
    });

    it('does the same on a named Ethernet device', async () => {
      await replayOneReply(['-i', vethI], 36612);
    });

    it('runs as a daemon with a pid file and a log, and stops cleanly on SIGTERM', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intercept-cli-'));
      const logFile = path.join(dir, 'intercept.log');
      const pidFile = path.join(dir, 'intercept.pid');
      let pid = 0;
      try {
        const r = spawnSync('ip', ['netns', 'exec', nsI, process.execPath, BIN, '-d', '-l', logFile, '-P', pidFile,
          '-p', '36613', '--stats-interval', '0'], { encoding: 'utf8', timeout: 20_000 });
        expect(r.status, r.stderr).to.equal(0);
        const m = /running as a daemon, pid (\d+), log in (\S+)/.exec(r.stdout);
        expect(m, r.stdout).to.not.equal(null);
        pid = Number(m![1]);
        expect(m![2]).to.equal(logFile);
        expect(fs.readFileSync(pidFile, 'utf8').trim()).to.equal(String(pid));
        expect(fs.readFileSync(logFile, 'utf8')).to.contain('listening on 0.0.0.0:36613');
        // A second one on the same pid file refuses to start, in one line.
        const again = spawnSync('ip', ['netns', 'exec', nsI, process.execPath, BIN, '-d', '-l', logFile, '-P', pidFile,
          '-p', '36614'], { encoding: 'utf8', timeout: 20_000 });
        expect(again.status).to.equal(2);
        expect(again.stderr.trim()).to.equal(`intercept: pid file ${pidFile} names running process ${pid} ` +
          '(another intercept? stop it, or use another -P)');
        process.kill(pid, 'SIGTERM');
        await until('the daemon to exit', () => {
          try {
            process.kill(pid, 0);
            return false;
          } catch {
            return true;
          }
        });
        pid = 0;
        expect(fs.existsSync(pidFile), 'pid file removed').to.equal(false);
        expect(fs.readFileSync(logFile, 'utf8')).to.contain('SIGTERM: stopping');
      } finally {
        if (pid) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
