// The real tcpcopy command replaying a pcap file (offline): -m is refused as a live-only option; an intercept
// that goes away mid-replay stops the replay (exit 1) unless -L, with which tcpcopy reconnects and finishes (exit 0);
// and a protocol module that logs a lot does not hide the engine's own warnings.
//
// The replays run as root in a network namespace of this spec's own, with a real intercept on its loopback and a
// veth pair carrying 198.51.100.1/24 whose far end has no address: packets to the "target" leave and go nowhere.
import { LinkType, PcapWriter } from '@tcpcopy/core';
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startNetnsIntercept, type NetnsIntercept } from './support/netns-intercept';
import { clientConnection, ethernet } from './support/packets';
import { loudSkip, killPid, sh, escapeRegExp as escape, type Run } from './support/process';

const ROOT = path.resolve(__dirname, '../../../..');
const BIN = path.join(ROOT, 'core/cli/bin/tcpcopy.js');
const GOOD = path.join(ROOT, 'core/engine/test/fixtures/eth-us.pcap');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const TARGET = '198.51.100.9';





/** Polls `cond` every 20 ms until it holds; throws with `what` (and `detail()`) after `ms`. */
async function waitFor(what: string, ms: number, cond: () => boolean, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${detail()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A pcap file of `frames`, each at its own time (seconds from the first). */
function writePcap(file: string, frames: Array<{ frame: Buffer; at: number }>): void {
  const w = PcapWriter.create(file, { linkType: LinkType.ETHERNET });
  const t0 = Date.UTC(2024, 0, 1) * 1000;
  for (const f of frames) w.write(f.frame, t0 + Math.round(f.at * 1e6));
  w.close();
}

/** One client connection to port 80 (handshake, one request, FIN), its packets 1 ms apart from `at` seconds on. */
function connection(sport: number, at: number): Array<{ frame: Buffer; at: number }> {
  const packets = clientConnection({ src: '192.0.2.7', sport, dst: '198.51.100.20', dport: 80, requests: [`GET /${sport} HTTP/1.1\r\nHost: t\r\n\r\n`] });
  return packets.map((p, i) => ({ frame: ethernet(p), at: at + i / 1000 }));
}

describe('tcpcopy command, offline', function () {
  this.timeout(60_000);
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-offline-'));
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('-m with a pcap file: exit 2, one line', () => {
    function run(args: string[]): Run {
      const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
      return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
    }
    // Nothing listens at -s: a tcpcopy that took -m would fail later, on the intercept, with another message.
    const args = (...extra: string[]) => ['-i', GOOD, '-x', '80-198.51.100.30:80', '-s', '127.0.0.1:9', '-c', '203.0.113.x', ...extra];

    function expectRefused(r: Run, flags: string): void {
      const context = `exit ${r.code ?? r.signal}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`;
      expect(r.code, context).to.equal(2);
      expect(r.stdout, context).to.equal('');
      const verb = flags.includes(',') ? 'apply' : 'applies';
      expect(r.stderr, context).to.equal(
        `tcpcopy: ${flags} ${verb} only to live capture, and -i ${GOOD} is a file (drop ${flags}, or give -i a device)\n`);
    }

    it('-m alone is refused by name', () => expectRefused(run(args('-m', '512')), '-m'));

    it('-m with another live-only option: both named', () => expectRefused(run(args('-B', '8', '-m', '512')), '-B, -m'));
  });

  describe('replays in a network namespace', function () {
    const id = `${process.pid.toString(36)}${(Date.now() % 1e6).toString(36)}`.slice(-8);
    const ns = `tcof-${id}`;
    let created = false;
    const intercepts: NetnsIntercept[] = [];
    const running = new Set<ChildProcess>();


    before(function () {
      if (!isRoot) return loudSkip(this, 'not root: cannot create a network namespace or send raw packets');
      if (spawnSync('ip', ['netns', 'list']).status !== 0) return loudSkip(this, '`ip netns` does not work here');
      sh('ip', 'netns', 'add', ns);
      created = true;
      sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
      sh('ip', '-n', ns, 'link', 'add', 'tca0', 'type', 'veth', 'peer', 'name', 'tcb0');
      // No IPv6 on tca0: its transmit counter then counts only what tcpcopy sends to the target.
      sh('ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.tca0.disable_ipv6=1');
      sh('ip', '-n', ns, 'addr', 'add', '198.51.100.1/24', 'dev', 'tca0');
      sh('ip', '-n', ns, 'link', 'set', 'tca0', 'up');
      sh('ip', '-n', ns, 'link', 'set', 'tcb0', 'up');
      // No ARP for the target: a fixed neighbour, so sends never wait on (or fail for) resolution.
      sh('ip', '-n', ns, 'neigh', 'add', TARGET, 'lladdr', '02:c6:33:64:00:09', 'dev', 'tca0', 'nud', 'permanent');
    });

    after(async () => {
      for (const p of running) killPid(p);
      for (const i of intercepts) await i.stop();
      if (created) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
    });

    async function intercept(port: number): Promise<NetnsIntercept> {
      const i = await startNetnsIntercept(ns, port);
      intercepts.push(i);
      return i;
    }

    /** tcpcopy inside the namespace; `done` resolves when it exits, or kills it after `limitMs`. */
    function tcpcopy(args: string[], limitMs: number): { proc: ChildProcess; out: Run; done: Promise<Run> } {
      const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, '-x', `80-${TARGET}:80`, '-c', '203.0.113.x', ...args],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      running.add(proc);
      const out: Run = { code: null, signal: null, stdout: '', stderr: '' };
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
      proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
      const timer = setTimeout(() => killPid(proc), limitMs);
      const done = new Promise<Run>((resolve) => proc.once('close', (code, signal) => {
        clearTimeout(timer);
        running.delete(proc);
        out.code = code;
        out.signal = signal;
        resolve(out);
      }));
      return { proc, out, done };
    }

    /**
     * Packets sent to the target so far by every tcpcopy of this spec: tca0's transmit counter, read through
     * `proc`, a process in the namespace.
     */
    function sentToTarget(proc: ChildProcess): number {
      try {
        const line = fs.readFileSync(`/proc/${proc.pid}/net/dev`, 'utf8').split('\n').find((l) => l.trim().startsWith('tca0:'));
        return line ? Number(line.split(':')[1].trim().split(/\s+/)[9]) : 0;
      } catch {
        return 0; // not in the namespace yet, or gone
      }
    }

    /** Waits until `t` has sent to the target (more than `before`): then it is past its connection to intercept. */
    async function replaying(t: { proc: ChildProcess; out: Run }, before: number): Promise<void> {
      await waitFor('tcpcopy to send to the target', 10_000, () => sentToTarget(t.proc) > before || t.proc.exitCode !== null, () => context(t.out));
      expect(t.proc.exitCode, context(t.out)).to.equal(null);
    }

    const context = (r: Run) => `exit ${r.code ?? r.signal}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`;

    function expectCleanLog(r: Run): void {
      for (const l of r.stderr.split('\n').filter(Boolean)) expect(l, context(r)).to.match(/^tcpcopy: /);
      expect(r.stderr, context(r)).not.to.match(/\n\s+at |internal error/);
    }

    it('the intercept goes away mid-replay (killed), no -L: tcpcopy stops at once, names the intercept, exit 1', async () => {
      const port = 36550;
      const address = `127.0.0.1:${port}`;
      const file = path.join(dir, 'sixty-seconds.pcap');
      writePcap(file, [...connection(40001, 0), ...connection(40002, 60)]); // a minute of capture: still running below
      const i = await intercept(port);
      const before = sentToTarget(i.proc);
      const t = tcpcopy(['-i', file, '-s', address, '--tail-timeout', '1'], 20_000);
      await replaying(t, before);
      process.kill(i.proc.pid!, 'SIGKILL');
      const killedAt = Date.now();
      const r = await t.done;
      expect(r.code, context(r)).to.equal(1);
      expect(Date.now() - killedAt, 'stopped at once, not at the end of the capture').to.be.below(10_000);
      expect(r.stderr, context(r)).to.match(new RegExp(`^tcpcopy: lost the connection to intercept at ${escape(address)}: `, 'm'));
      expect(r.stderr, context(r)).to.match(new RegExp(`^tcpcopy: stopping: intercept at ${escape(address)} is gone ` +
        `\\(start it again and rerun, or give -L to keep replaying and reconnect\\)$`, 'm'));
      expectCleanLog(r);
    });

    it('the intercept goes away mid-replay with -L: tcpcopy reconnects when it is back and ends the replay, exit 0', async () => {
      const port = 36551;
      const address = `127.0.0.1:${port}`;
      const file = path.join(dir, 'ten-seconds.pcap');
      writePcap(file, [...connection(40001, 0), ...connection(40002, 10)]);
      const first = await intercept(port);
      const before = sentToTarget(first.proc);
      const t = tcpcopy(['-i', file, '-s', address, '-L', '--tail-timeout', '1', '--summary', 'json'], 40_000);
      await replaying(t, before);
      process.kill(first.proc.pid!, 'SIGKILL');
      await waitFor('tcpcopy to report the loss', 10_000, () => /reconnecting \(-L\)/.test(t.out.stderr) || t.proc.exitCode !== null, () => context(t.out));
      expect(t.proc.exitCode, context(t.out)).to.equal(null);
      await intercept(port);
      await waitFor('tcpcopy to reconnect', 15_000, () => /reconnected to intercept/.test(t.out.stderr) || t.proc.exitCode !== null, () => context(t.out));
      expect(t.out.stderr, context(t.out)).to.match(new RegExp(`^tcpcopy: reconnected to intercept at ${escape(address)} after `, 'm'));
      const r = await t.done;
      expect(r.code, context(r)).to.equal(0);
      expect(r.stderr, context(r)).not.to.match(/stopping:/);
      const summary = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{')) ?? 'null');
      expect(summary?.engine?.sessionsCreated, context(r)).to.equal(2); // the connection captured after the reconnect too
      expect(summary?.intercept?.reconnects, context(r)).to.be.at.least(1);
      expectCleanLog(r);
    });

    it('a protocol that logs on every connection does not hide the engine\'s warnings', async () => {
      const port = 36552;
      const connections = 12; // 6 protocol lines each (5 and a suppression line): more than the 50 shown
      const file = path.join(dir, 'twelve.pcap');
      writePcap(file, Array.from({ length: connections }, (_, k) => connection(41000 + k, k / 100)).flat());
      const chatty = path.join(dir, 'chatty-protocol.js');
      fs.writeFileSync(chatty, `exports.protocol = {
  name: 'chatty',
  replyPayloadBytes: 0,
  createSession(ctx) {
    for (let i = 0; i < 1000; i++) ctx.log('chatter ' + i);
    return {};
  },
};\n`);
      await intercept(port);
      // The target never answers: every session ends in a handshake timeout (3 s with --syn-retries 1), an engine warning each.
      const r = await tcpcopy(['-i', file, '-s', `127.0.0.1:${port}`, '--protocol', chatty, '--tail-timeout', '20', '--syn-retries', '1'], 40_000).done;
      expect(r.code, context(r)).to.equal(0);
      const lines = r.stderr.split('\n').filter(Boolean);
      const engine = lines.filter((l) => /^tcpcopy: no handshake with the target for \S+ after 3000 ms/.test(l));
      expect(engine, context(r)).to.have.length(connections);
      const chatter = lines.filter((l) => /^tcpcopy: chatty \S+->\S+: /.test(l));
      expect(chatter, context(r)).to.have.length(50);
      for (let k = 0; k < connections; k++) {
        expect(chatter.filter((l) => l.includes(`:${41000 + k}->`)).length, `connection ${41000 + k}`).to.be.at.most(6);
      }
      expect(lines.filter((l) => l === 'tcpcopy: further messages of protocol chatty not shown (--verbose shows them)'), context(r)).to.have.length(1);
      expectCleanLog(r);
    });
  });
});
