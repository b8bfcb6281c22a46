// The real tcpcopy command in LIVE mode (-i names devices) given bad input: exit code 2 and exactly one line
// "tcpcopy: <what is wrong> <how to fix it>" on stderr, nothing on stdout, no stack trace.
//
// Everything runs inside a network namespace of this spec's own (only lo, up), so no case ever opens or sends on
// a device of the host. A real intercept listens on that namespace's loopback for the cases whose error comes
// after tcpcopy has reached its intercept (the capture device and the filter are opened only then).
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { startNetnsIntercept, type NetnsIntercept } from './support/netns-intercept';
import { loudSkip, killPid, sh, escapeRegExp as escape, type Run } from './support/process';

const ROOT = path.resolve(__dirname, '../../../..');
const BIN = path.join(ROOT, 'core/cli/bin/tcpcopy.js');
const PCAP_FILE = path.join(ROOT, 'core/engine/test/fixtures/eth-us.pcap');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** The intercept this spec runs in its namespace, and a port nothing in that namespace listens on. */
const INTERCEPT_PORT = 36540;
const CLOSED_PORT = 36541;
const TARGET = '198.51.100.30';
const MAC_SRC = '02:c6:33:64:00:14';
const MAC_DST = '02:c6:33:64:00:1e';
/** One run is bounded by this; a tcpcopy that starts replaying instead of refusing is killed at the end of it. */
const RUN_TIMEOUT_MS = 15_000;




/** Exit code 2, exactly one stderr line "tcpcopy: ..." matching every pattern, nothing on stdout, no stack trace. */
function expectUserError(r: Run, ...patterns: RegExp[]): void {
  const context = `exit ${r.code ?? r.signal}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`;
  expect(r.code, context).to.equal(2);
  expect(r.stderr.endsWith('\n'), context).to.equal(true);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, context).to.have.length(1);
  expect(lines[0], context).to.match(/^tcpcopy: \S/);
  for (const p of patterns) expect(lines[0], context).to.match(p);
  expect(r.stderr, context).not.to.match(/\n\s+at |\bat .+:\d+:\d+\)?$|internal error|Error:/m);
  expect(r.stdout, context).to.equal('');
}


describe('tcpcopy command, live mode: bad input', function () {
  this.timeout(30_000);
  const id = `${process.pid.toString(36)}${(Date.now() % 1e6).toString(36)}`.slice(-8);
  const ns = `tclv-${id}`;
  let created = false;
  let intercept: NetnsIntercept | undefined;
  const running = new Set<ChildProcess>();


  before(async function () {
    if (!isRoot) return loudSkip(this, 'not root: cannot create a network namespace for the live-mode cases');
    if (spawnSync('ip', ['netns', 'list']).status !== 0) return loudSkip(this, '`ip netns` does not work here');
    sh('ip', 'netns', 'add', ns);
    created = true;
    sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    intercept = await startNetnsIntercept(ns, INTERCEPT_PORT);
  });

  after(async () => {
    for (const p of running) killPid(p);
    await intercept?.stop();
    if (created) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
  });

  /** tcpcopy inside the namespace (optionally as another user through setpriv), to its end, bounded. */
  async function run(args: string[], opts: { asNobody?: boolean } = {}): Promise<Run> {
    const prefix = opts.asNobody ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'] : [];
    // `ip netns exec` and setpriv both exec, so the PID is tcpcopy's own.
    const p = spawn('ip', ['netns', 'exec', ns, ...prefix, process.execPath, BIN, ...args], { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => killPid(p), RUN_TIMEOUT_MS);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => p.once('close', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    running.delete(p);
    return { code, signal, stdout, stderr };
  }

  /** Everything right but the part under test: capture on lo, replay port 80, the namespace's intercept. */
  const args = (over: Record<string, string> = {}, extra: string[] = []): string[] => {
    const o: Record<string, string> = {
      '-i': 'lo',
      '-x': `80-${TARGET}:80`,
      '-s': `127.0.0.1:${INTERCEPT_PORT}`,
      '-c': '203.0.113.x',
      ...over,
    };
    return [...Object.entries(o).flat(), ...extra];
  };
  const withMacs = `80@${MAC_SRC}-${TARGET}:80@${MAC_DST}`;

  describe('the capture device', () => {
    it('an unknown device: names it, lists the devices there are and points at `ip link`', async () => {
      expectUserError(await run(args({ '-i': 'nosuchdev0' })),
        /^tcpcopy: no network device "nosuchdev0"/, /\(pick one of [^)]*\blo\b[^)]*; see `ip link`\)$/);
    });

    it('an unknown device in a device list', async () => {
      expectUserError(await run(args({ '-i': 'lo,nosuchdev0' })), /^tcpcopy: no network device "nosuchdev0" \(pick one of .*see `ip link`\)$/);
    });
  });

  it('a filter that does not compile: quotes it and points at pcap-filter', async () => {
    expectUserError(await run(args({ '-F': 'tcp and and' })),
      /^tcpcopy: filter "tcp and and" does not compile: /, /\(see `man pcap-filter`; quote the whole filter as one argument\)$/);
  });

  describe('no permission (user nobody)', () => {
    before(function () {
      if (spawnSync('setpriv', ['--version']).status !== 0) loudSkip(this, 'setpriv not installed');
    });

    it('raw IP socket output: says to run as root or grant CAP_NET_RAW', async () => {
      expectUserError(await run(args(), { asNobody: true }),
        /^tcpcopy: cannot open a raw IP socket: operation not permitted; run as root or grant CAP_NET_RAW$/);
    });

    it('the same with --capture raw', async () => {
      expectUserError(await run(args({ '--capture': 'raw' }), { asNobody: true }),
        /^tcpcopy: cannot open a raw IP socket: operation not permitted; run as root or grant CAP_NET_RAW$/);
    });

    it('data-link output (-o lo): says to run as root or which capabilities to give node', async () => {
      expectUserError(await run(args({ '-o': 'lo', '-x': withMacs }), { asNobody: true }),
        /^tcpcopy: no permission to \w+ on lo: /, /\(run as root, or give node CAP_NET_RAW and CAP_NET_ADMIN: setcap cap_net_raw,cap_net_admin\+eip .*\)$/);
    });
  });

  it('an unreachable intercept: names the address, says to start intercept there or fix -s', async () => {
    const address = `127.0.0.1:${CLOSED_PORT}`;
    expectUserError(await run(args({ '-s': address })),
      new RegExp(`^tcpcopy: cannot reach intercept at ${escape(address)}: connection refused; start intercept there or fix -s$`));
  });

  describe('flags of the other mode', () => {
    it('-a (offline only) with a device', async () => {
      expectUserError(await run(args({ '-a': '2' })), /^tcpcopy: -a applies only to a pcap file, and -i lo is a device \(drop -a, or give -i a pcap file\)$/);
    });

    it('several offline-only flags with a device, all named', async () => {
      expectUserError(await run(args({ '-a': '2', '-T': '3', '-I': '10', '--tail-timeout': '1' })),
        /^tcpcopy: -a, -I, -T, --tail-timeout apply only to a pcap file, and -i lo is a device \(drop -a, -I, -T, --tail-timeout, or give -i a pcap file\)$/);
    });

    it('-F (live only) with a pcap file', async () => {
      expectUserError(await run(args({ '-i': PCAP_FILE, '-F': 'tcp port 80' })),
        new RegExp(`^tcpcopy: -F applies only to live capture, and -i ${escape(PCAP_FILE)} is a file \\(drop -F, or give -i a device\\)$`));
    });

    it('--capture raw and -B (live only) with a pcap file', async () => {
      expectUserError(await run(args({ '-i': PCAP_FILE, '--capture': 'raw', '-B': '8' })),
        new RegExp(`^tcpcopy: -B, --capture apply only to live capture, and -i ${escape(PCAP_FILE)} is a file \\(drop -B, --capture, or give -i a device\\)$`));
    });
  });

  describe('-x MACs and -o', () => {
    it('a bad source MAC: quotes it and shows what a MAC looks like', async () => {
      expectUserError(await run(args({ '-x': `80@zz-${TARGET}:80@${MAC_DST}` })),
        /^tcpcopy: -x 80@zz-198\.51\.100\.30:80@02:c6:33:64:00:1e: source MAC "zz" is not a MAC address like 02:00:5e:00:53:01$/);
    });

    it('a bad next-hop MAC', async () => {
      expectUserError(await run(args({ '-o': 'lo', '-x': `80@${MAC_SRC}-${TARGET}:80@02:c6:33:64:00` })),
        /^tcpcopy: -x \S+: next-hop MAC "02:c6:33:64:00" is not a MAC address like 02:00:5e:00:53:01$/);
    });

    it('-o on a device that does not exist', async () => {
      expectUserError(await run(args({ '-o': 'nosuchdev0', '-x': withMacs })),
        /^tcpcopy: no network device "nosuchdev0" to send on \(see `ip link`\)$/);
    });

    it('-o without MACs in -x: shows the form to use', async () => {
      expectUserError(await run(args({ '-o': 'lo' })),
        /^tcpcopy: -o lo sends Ethernet frames: give both MACs in -x, as port@srcMAC-198\.51\.100\.30:80@nextHopMAC$/);
    });

    it('-o with only the source MAC in -x', async () => {
      expectUserError(await run(args({ '-o': 'lo', '-x': `80@${MAC_SRC}-${TARGET}:80` })),
        /^tcpcopy: -o lo sends Ethernet frames: give both MACs in -x, as port@srcMAC-198\.51\.100\.30:80@nextHopMAC$/);
    });
  });
});
