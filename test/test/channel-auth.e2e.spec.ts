// Safe to deploy, end to end: the real tcpcopy and intercept commands in the namespace topology, started
// with the C tool's own command lines (README: `intercept -i DEV -F 'tcp and src port 80' -d` and
// `tcpcopy -x 80-TARGET:80 -s ASSISTANT -c 203.0.113.x`, with our addresses) plus a shared secret and --user.
// - The right secret (intercept's in TCPCOPY_SECRET, tcpcopy's on the command line) replays real HTTP
//   requests from a real load to nginx on the target; afterwards both run as nobody (/proc/PID/status), no
//   process of theirs is left as root, and the secret is not in tcpcopy's /proc/PID/cmdline.
// - A wrong secret and a missing one: tcpcopy exits 2 with one line saying why, with and without -L, and
//   intercept logs each refusal with the peer's address and the reason.
// - A tcpcopy with a secret and an intercept without one: tcpcopy exits 2 and says so.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  createTopology,
  INTERCEPT_BIN,
  isAlive,
  pacedLoad,
  requireRoot,
  settledCount,
  startNginx,
  TCPCOPY_BIN,
  withTimeout,
  type NginxHandle,
  type Topology,
} from '../src/harness';

const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const SECRET = 'e2e shared secret 7f3a';
const NOBODY = 65534;
const URL = 'http://198.51.100.20/blob/1k';

/** The uid and gid lines of /proc/PID/status (real, effective, saved, filesystem) and the groups, for every thread. */
function identity(pid: number): { uids: number[]; gids: number[]; groups: number[] } {
  const uids: number[] = [];
  const gids: number[] = [];
  const groups: number[] = [];
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    const status = fs.readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
    const field = (name: string): number[] =>
      (status.match(new RegExp(`^${name}:\\s*(.*)$`, 'm'))?.[1] ?? '').split(/\s+/).filter(Boolean).map(Number);
    uids.push(...field('Uid'));
    gids.push(...field('Gid'));
    groups.push(...field('Groups'));
  }
  return { uids, gids, groups };
}

/**
 * PIDs of the processes running `bin` in the network namespace of `pid` (pid included): by their command
 * line, or by the title a command that hid its --secret gave itself ("tcpcopy -x ...").
 */
function processesOf(bin: string, pid: number): number[] {
  const netns = fs.readlinkSync(`/proc/${pid}/ns/net`);
  const title = `${path.basename(bin, '.js')} `;
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
    try {
      if (fs.readlinkSync(`/proc/${p}/ns/net`) !== netns) continue;
      const cmdline = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmdline.split('\0').includes(bin) || cmdline.startsWith(title)) out.push(p);
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

describe('channel authentication and --user, end to end (real tcpcopy and intercept, nginx)', function () {
  this.timeout(180_000);
  let topo: Topology;
  let online: NginxHandle;
  let target: NginxHandle;
  let interceptPid = 0;
  let interceptLog = '';

  /** tcpcopy on the online host, live on its interface (README form plus -i, which the namespaces need). */
  function tcpcopy(args: string[], env: Record<string, string> = {}) {
    return topo.spawn('online', process.execPath, [TCPCOPY_BIN, '-x', `80-${TARGET}:80`, '-s', ASSISTANT, '-c', '203.0.113.x',
      '-i', topo.hosts.online.iface, '--summary', 'json', ...args], { env });
  }

  /** Runs a tcpcopy that must be refused: its exit status and stderr, bounded. */
  async function refused(args: string[], env: Record<string, string> = {}) {
    const proc = tcpcopy(args, env);
    const status = await withTimeout(proc.exited, 30_000, 'the refused tcpcopy to exit').catch(async (e) => {
      await proc.stop('SIGKILL', 2000);
      throw e;
    });
    return { code: status.code, lines: proc.stderr().split('\n').filter(Boolean), pid: proc.pid };
  }

  /** intercept's log lines that refused the tcpcopy of `pid` ("tcpcopy pid N on HOST" is its HELLO name). */
  const refusals = (pid: number): string[] =>
    fs.readFileSync(interceptLog, 'utf8').split('\n').filter((l) => l.includes('refused tcpcopy from') && l.includes(`(tcpcopy pid ${pid} on `));

  before(async function () {
    requireRoot(this);
    topo = await createTopology();
    online = await startNginx(topo, 'online');
    target = await startNginx(topo, 'target');
    // README: `./intercept -i eth0 -F 'tcp and src port 8080' -d`, here port 80, the secret in the environment,
    // and --user nobody. The daemon's parent exits once the daemon is up.
    const dir = topo.mkdir('intercept');
    interceptLog = path.join(dir, 'intercept.log');
    const pidFile = path.join(dir, 'intercept.pid');
    const starter = topo.spawn('assistant', process.execPath, [INTERCEPT_BIN, '-i', topo.hosts.assistant.iface, '-F', 'tcp and src port 80', '-d',
      '-l', interceptLog, '-P', pidFile, '--user', 'nobody', '--stats-interval', '0'], { env: { TCPCOPY_SECRET: SECRET } });
    const started = await withTimeout(starter.exited, 20_000, 'intercept -d to start');
    expect(started.code, starter.stderr()).to.equal(0);
    expect(starter.stdout()).to.match(/running as a daemon, pid \d+/);
    interceptPid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    expect(isAlive(interceptPid)).to.equal(true);
  });

  after(async () => {
    if (interceptPid && isAlive(interceptPid)) {
      process.kill(interceptPid, 'SIGTERM');
      const end = Date.now() + 5000;
      while (isAlive(interceptPid) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      if (isAlive(interceptPid)) process.kill(interceptPid, 'SIGKILL');
    }
    await topo?.destroy();
  });

  it('the daemon intercept runs as nobody, and no intercept process of the run is left as root', () => {
    const pids = processesOf(INTERCEPT_BIN, interceptPid);
    expect(pids).to.deep.equal([interceptPid]); // the parent that daemonised is gone
    const id = identity(interceptPid);
    expect(id.uids.every((u) => u === NOBODY), `uids ${id.uids}`).to.equal(true);
    expect(id.gids.every((g) => g === NOBODY), `gids ${id.gids}`).to.equal(true);
    expect(id.groups).not.to.include(0);
    expect(fs.readFileSync(interceptLog, 'utf8')).to.contain(`running as user nobody (uid ${NOBODY}, gid ${NOBODY})`);
  });

  it('the right secret: real HTTP requests replayed to nginx; tcpcopy runs as nobody and its secret is not in ps', async () => {
    const proc = tcpcopy(['--secret', SECRET, '--user', 'nobody']);
    try {
      await proc.waitFor(/replaying /, { stream: 'stderr', timeoutMs: 15_000 });
      expect(proc.stderr()).to.contain('--secret on the command line can be read by every user of this host');
      expect(proc.stderr()).to.contain(`running as user nobody (uid ${NOBODY}, gid ${NOBODY})`);
      const cmdline = fs.readFileSync(`/proc/${proc.pid}/cmdline`, 'utf8');
      expect(cmdline).not.to.contain(SECRET);
      expect(cmdline).to.contain('--secret ***');
      const id = identity(proc.pid);
      expect(id.uids.every((u) => u === NOBODY), `uids ${id.uids}`).to.equal(true);
      expect(id.gids.every((g) => g === NOBODY), `gids ${id.gids}`).to.equal(true);
      expect(processesOf(TCPCOPY_BIN, proc.pid)).to.deep.equal([proc.pid]);

      const load = await pacedLoad(topo, { url: URL, requests: 200, rate: 100, conns: 10, tag: 'auth' });
      expect(load.code).to.equal(0);
      const count = (n: NginxHandle) => n.accessLog().filter((e) => e.uri.includes('?auth=')).length;
      expect(count(online)).to.equal(200);
      const replayed = await settledCount(() => count(target));
      expect(replayed, 'requests replayed to the target as nobody').to.equal(200);
    } finally {
      await proc.stop('SIGTERM', 10_000);
    }
    expect(proc.exitStatus()?.code, proc.stderr()).to.equal(0);
    const summary = JSON.parse(proc.stdout().split('\n').find((l) => l.startsWith('{'))!);
    expect(summary.intercept.repliesReceived).to.be.above(0);
    expect(summary.output.sent, 'packets sent through the raw socket opened as root').to.be.above(0);
    expect(summary.output.failed, 'sends that failed after root was dropped').to.equal(0);
    expect(fs.readFileSync(interceptLog, 'utf8')).to.match(new RegExp(`tcpcopy connected from 198\\.51\\.100\\.20:\\d+ \\(tcpcopy pid ${proc.pid} on .*\\) \\(authenticated\\)`));
  });

  for (const lonely of [false, true]) {
    it(`a wrong secret${lonely ? ' with -L' : ''}: exit 2, one line saying why; intercept logs the peer and the reason`, async () => {
      const r = await refused(lonely ? ['-L'] : [], { TCPCOPY_SECRET: 'not the secret' });
      expect(r.code, r.lines.join('\n')).to.equal(2);
      expect(r.lines, r.lines.join('\n')).to.have.length(1);
      expect(r.lines[0]).to.equal(`tcpcopy: intercept at ${ASSISTANT}:36524 refused this tcpcopy: authentication failed: ` +
        'tcpcopy\'s secret is not this intercept\'s (set the same TCPCOPY_SECRET or --secret on both hosts)');
      // One refusal per channel (-C 2), and no more: the process is gone, -L or not, so it did not retry.
      const logged = refusals(r.pid);
      expect(logged, fs.readFileSync(interceptLog, 'utf8')).to.have.length(2);
      for (const l of logged) expect(l).to.match(/warn refused tcpcopy from 198\.51\.100\.20:\d+ \(tcpcopy pid \d+ on .*\): wrong secret/);
    });
  }

  it('no secret: exit 2, told to set TCPCOPY_SECRET; intercept logs that it had none', async () => {
    const r = await refused([]);
    expect(r.code, r.lines.join('\n')).to.equal(2);
    expect(r.lines).to.have.length(1);
    expect(r.lines[0]).to.match(/^tcpcopy: intercept at 198\.51\.100\.40:36524 refused this tcpcopy: this intercept requires a shared secret: start tcpcopy with the intercept's secret in TCPCOPY_SECRET/);
    const logged = refusals(r.pid);
    expect(logged).to.have.length(2);
    expect(logged[0]).to.match(/refused tcpcopy from 198\.51\.100\.20:\d+ .*: it has no secret/);
  });

  it('a secret, and an intercept without one: exit 2, and it says the intercept checks no secret', async () => {
    // A second intercept, on another port, started without a secret.
    const plain = topo.spawn('assistant', process.execPath, [INTERCEPT_BIN, '-i', topo.hosts.assistant.iface, '-F', 'tcp and src port 9',
      '-p', '36600', '--stats-interval', '0'], { env: { TCPCOPY_SECRET: '' } });
    try {
      await plain.waitFor(/listening on/, { stream: 'stdout', timeoutMs: 10_000 });
      const r = await refused(['-p', '36600'], { TCPCOPY_SECRET: SECRET });
      expect(r.code, r.lines.join('\n')).to.equal(2);
      expect(r.lines).to.have.length(1);
      expect(r.lines[0]).to.equal(`tcpcopy: intercept at ${ASSISTANT}:36600 does not check a secret (it was started without ` +
        'TCPCOPY_SECRET or --secret), and this tcpcopy has one: give the intercept the same secret, or run tcpcopy without one');
      await plain.waitFor(/reports: this tcpcopy has a secret and this intercept none/, { stream: 'stderr', timeoutMs: 5000 });
    } finally {
      await plain.stop('SIGTERM', 5000);
    }
  });
});
