// Every command line of the C tool's documentation runs unchanged on ours: each one (as printed in
// session-replay-tools/tcpcopy README.md and doc/*.md, commit 929511d, and intercept's README, which
// has none of its own) goes through our parsers and must give the replay the C tool would run.
// Placeholders (<filter>, <device>, ...) get sample values; the addresses are the README's own:
// nothing is sent anywhere (the live runs of these command lines are in test/test/channel-auth.e2e.spec.ts).
// Also the C habits around them: -v and --version answer the version, -h the help.
import { parseClientAddresses, parseTransfers } from '@tcpcopy/core';
import { expect } from 'chai';
import * as path from 'node:path';
import { parseInterceptArgs } from '../src/intercept-main';
import { parseTcpcopyArgs, type TcpcopyInvocation } from '../src/tcpcopy-options';
import { runCommand as run } from './support/commands';

const ROOT = path.resolve(__dirname, '../../../..');
const VERSION = (require(path.join(ROOT, 'core/cli/package.json')) as { version: string }).version;

/** Shell words of a command line: blanks split, '…' and "…" quote (all the C docs use). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /'([^']*)'|"([^"]*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** `./tcpcopy -x …` (or `sudo ./tcpcopy …`) → ['tcpcopy', ['-x', …]]. */
function command(line: string): { tool: 'tcpcopy' | 'intercept'; argv: string[] } {
  const w = words(line);
  if (w[0] === 'sudo') w.shift();
  const tool = path.basename(w[0]);
  if (tool !== 'tcpcopy' && tool !== 'intercept') throw new Error(`not a tcpcopy or intercept line: ${line}`);
  return { tool, argv: w.slice(1) };
}

/** The placeholders of the C docs' templates, with values of the kind they stand for. */
const PLACEHOLDERS: Record<string, string> = {
  '<filter>': 'tcp and src port 8080',
  '<device>': 'eth0',
  '<intercept server>': '61.135.233.161',
  '<ip range>': '62.135.200.x',
  '<online_port>': '80',
  '<online_machine_mac>': '00:13:21:B2:5E:42',
  '<target_machine_ip>': '121.55.111.148',
  '<target_machine_port>': '18080',
  '<next_hop_mac>': '00:0F:1F:03:F2:E6',
  '<intercept_machine_ip>': '10.110.12.162',
  '<output_network_interface>': 'eth1',
  '<capture_network_interface>': 'eth0',
};

function fill(line: string): string {
  let out = line;
  for (const [k, v] of Object.entries(PLACEHOLDERS)) out = out.split(k).join(v.includes(' ') ? `'${v}'` : v);
  return out.replace(/localServerPort-targetServerIP:targetServerPort/, '80-61.135.233.160:8080');
}

interface TcpcopyCase {
  where: string;
  line: string;
  expect: (a: TcpcopyInvocation) => void;
}

/** The replay the invocation asks for is one replay() accepts: -x and -c parse as @tcpcopy/core reads them. */
function replayable(a: TcpcopyInvocation): void {
  expect(parseTransfers(a.replay.transfers as string).length).to.be.at.least(1);
  if (a.replay.clientAddresses !== undefined) expect(parseClientAddresses(a.replay.clientAddresses as string).length).to.be.at.least(1);
}

/** Live on every device, as the C tool without -i: the raw socket, no file. */
function liveEverywhere(a: TcpcopyInvocation): void {
  expect(a.offline).to.equal(false);
  expect(a.replay.devices).to.equal(undefined);
  expect(a.replay.file).to.equal(undefined);
}

const TCPCOPY_LINES: TcpcopyCase[] = [
  {
    where: 'README.md, Running TCPCopy 3 (the template, with -c)',
    line: './tcpcopy -x localServerPort-targetServerIP:targetServerPort -s <intercept server> [-c <ip range>]'.replace(/\[(.*)\]/, '$1'),
    expect: (a) => {
      liveEverywhere(a);
      expect(a.replay).to.include({ transfers: '80-61.135.233.160:8080', intercepts: '61.135.233.161', clientAddresses: '62.135.200.x' });
    },
  },
  {
    where: 'README.md, Running TCPCopy 3 (the template, without the optional -c)',
    line: './tcpcopy -x localServerPort-targetServerIP:targetServerPort -s <intercept server> [-c <ip range>]'.replace(/\s*\[.*\]/, ''),
    expect: (a) => {
      liveEverywhere(a);
      expect(a.replay.clientAddresses).to.equal(undefined);
    },
  },
  {
    where: 'README.md, Running TCPCopy 3 (the example)',
    line: './tcpcopy -x 80-61.135.233.160:8080 -s 61.135.233.161 -c 62.135.200.x',
    expect: (a) => {
      liveEverywhere(a);
      expect(a.replay).to.include({ transfers: '80-61.135.233.160:8080', intercepts: '61.135.233.161', clientAddresses: '62.135.200.x' });
      expect(a.replay).to.include({ interceptPort: 36524, channelsPerIntercept: 2 });
      expect(parseClientAddresses('62.135.200.x')).to.have.length(254);
    },
  },
  {
    where: 'README.md, troubleshooting 2.2 (capture at the data link layer: -F and -i)',
    line: "./tcpcopy -x 80-61.135.233.160:8080 -s 61.135.233.161 -F 'tcp and dst port 80 and dst host 10.100.1.2' -i eth0",
    expect: (a) => {
      expect(a.offline).to.equal(false);
      expect(a.replay).to.include({ devices: 'eth0', filter: 'tcp and dst port 80 and dst host 10.100.1.2' });
    },
  },
  {
    where: 'doc/Usage.md, memcached (daemon)',
    line: './tcpcopy -x 11311-10.100.10.31:11311 -s 10.100.10.32 -d',
    expect: (a) => {
      liveEverywhere(a);
      expect(a.daemon).to.equal(true);
      expect(a.replay).to.include({ transfers: '11311-10.100.10.31:11311', intercepts: '10.100.10.32' });
    },
  },
  {
    where: 'doc/Usage.md, MySQL (daemon)',
    line: './tcpcopy -x 3306-172.168.0.17:3306 -s 172.168.0.18 -d',
    expect: (a) => {
      expect(a.daemon).to.equal(true);
      expect(a.replay).to.include({ transfers: '3306-172.168.0.17:3306', intercepts: '172.168.0.18' });
    },
  },
  {
    where: 'doc/Usage.md, sending at the data link layer (the template)',
    line: './tcpcopy -x <online_port>@<online_machine_mac>-<target_machine_ip>:<target_machine_port>@<next_hop_mac> -s <intercept_machine_ip> -o <output_network_interface> -i <capture_network_interface>',
    expect: (a) => {
      expect(a.replay).to.include({ outputDevice: 'eth1', devices: 'eth0' });
    },
  },
  {
    where: 'doc/Usage.md, sending at the data link layer (the example, with sudo)',
    line: 'sudo ./tcpcopy -x 80@00:13:21:B2:5E:42-121.55.111.148:18080@00:0F:1F:03:F2:E6 -s 10.110.12.162 -o eth1 -i eth0',
    expect: (a) => {
      expect(a.offline).to.equal(false);
      expect(a.replay).to.include({ outputDevice: 'eth1', devices: 'eth0', intercepts: '10.110.12.162' });
      const [t] = parseTransfers(a.replay.transfers as string);
      expect(t.targetPort).to.equal(18080);
    },
  },
  {
    where: 'doc/Pre-Warming.md, MySQL',
    line: './tcpcopy -x 3306-192.168.2.4:3306 -s 192.168.2.5',
    expect: (a) => {
      liveEverywhere(a);
      expect(a.daemon).to.equal(false);
      expect(a.replay).to.include({ transfers: '3306-192.168.2.4:3306', intercepts: '192.168.2.5' });
    },
  },
];

const INTERCEPT_LINES: Array<{ where: string; line: string; devices: string; filter: string; daemon: boolean }> = [
  { where: 'README.md, Running TCPCopy 2 (the template)', line: './intercept -F <filter> -i <device>', devices: 'eth0', filter: 'tcp and src port 8080', daemon: false },
  { where: 'README.md, Running TCPCopy 2 (the example)', line: "./intercept -i eth0 -F 'tcp and src port 8080' -d", devices: 'eth0', filter: 'tcp and src port 8080', daemon: true },
  { where: 'doc/Usage.md, memcached', line: "./intercept -i eth0 -F 'tcp and src port 11311' -d", devices: 'eth0', filter: 'tcp and src port 11311', daemon: true },
  { where: 'doc/Usage.md and doc/Pre-Warming.md, MySQL', line: "./intercept -i eth0 -F 'tcp and src port 3306' -d", devices: 'eth0', filter: 'tcp and src port 3306', daemon: true },
];

describe('the C tool\'s documented command lines, on our commands', () => {
  describe('tcpcopy', () => {
    for (const c of TCPCOPY_LINES) {
      it(`${c.where}: ${c.line}`, () => {
        const { tool, argv } = command(fill(c.line));
        expect(tool).to.equal('tcpcopy');
        const a = parseTcpcopyArgs(argv);
        expect(a, 'parsed as a replay, not help or version').not.to.equal(null);
        replayable(a!);
        c.expect(a!);
        expect(a!.verbose).to.equal(false);
        expect(a!.user).to.equal(null);
        expect(a!.replay.interceptSecret).to.equal(undefined);
      });
    }
  });

  describe('intercept', () => {
    for (const c of INTERCEPT_LINES) {
      it(`${c.where}: ${c.line}`, () => {
        const { tool, argv } = command(fill(c.line));
        expect(tool).to.equal('intercept');
        const s = parseInterceptArgs(argv);
        expect(s).not.to.equal(null);
        expect(s).to.include({ devices: c.devices, filter: c.filter, daemon: c.daemon, port: 36524, verbose: false, secret: null, user: null });
      });
    }
  });

  describe('the C habits around them', () => {
    for (const tool of ['tcpcopy', 'intercept'] as const) {
      it(`${tool} -h (README Note 11) prints the help and exits 0`, () => {
        const r = run(tool, ['-h']);
        expect(r.code, r.stderr).to.equal(0);
        expect(r.stdout).to.match(new RegExp(`^Usage: ${tool} `));
        expect(r.stdout).to.contain('-v, --version');
        expect(r.stdout).to.contain('--verbose');
      });

      for (const flag of ['-v', '--version']) {
        it(`${tool} ${flag} prints the version and exits 0, as the C ${tool}`, () => {
          const r = run(tool, [flag]);
          expect(r.code, r.stderr).to.equal(0);
          expect(r.stdout.trim()).to.equal(VERSION);
          expect(r.stderr).to.equal('');
        });
      }
    }

    it('--syn-retries N (as net.ipv4.tcp_syn_retries): SYNs 1, 2, 4... s apart, given up when the next would go', () => {
      const base = ['-x', '80-61.135.233.160:8080', '-s', '61.135.233.161'];
      expect(parseTcpcopyArgs(base)!.replay.engine?.handshakeTimeoutMs, 'default: 4 retries').to.equal(31_000);
      expect(parseTcpcopyArgs([...base, '--syn-retries', '2'])!.replay.engine?.handshakeTimeoutMs).to.equal(7000);
      expect(parseTcpcopyArgs([...base, '--syn-retries', '0'])!.replay.engine?.handshakeTimeoutMs).to.equal(1000);
    });

    it('--capture-hold MS reaches the live replay; without it the engine\'s default holds', () => {
      const base = ['-x', '80-61.135.233.160:8080', '-s', '61.135.233.161'];
      expect(parseTcpcopyArgs(base)!.replay.captureHoldMs).to.equal(undefined);
      expect(parseTcpcopyArgs([...base, '--capture-hold', '0'])!.replay.captureHoldMs).to.equal(0);
      expect(parseTcpcopyArgs([...base, '--capture-hold', '20'])!.replay.captureHoldMs).to.equal(20);
    });

    it('-v among other options still means --verbose (scripts written for our earlier -v keep working)', () => {
      const base = ['-x', '80-61.135.233.160:8080', '-s', '61.135.233.161'];
      expect(parseTcpcopyArgs([...base, '-v'])!.verbose).to.equal(true);
      expect(parseTcpcopyArgs([...base, '--verbose'])!.verbose).to.equal(true);
      expect(parseTcpcopyArgs([...base, '-Lv'])!.verbose).to.equal(true);
      expect(parseTcpcopyArgs([...base, '-Lv'])!.replay.keepRunning).to.equal(true);
      expect(parseTcpcopyArgs(base)!.verbose).to.equal(false);
      // A value that happens to be "-v" stays a value.
      const logged = parseTcpcopyArgs([...base, '-l', '-v'])!;
      expect(logged.verbose).to.equal(false);
      expect(path.basename(logged.logFile!)).to.equal('-v');
      expect(parseInterceptArgs(['-i', 'eth0', '-v'])!.verbose).to.equal(true);
      expect(parseInterceptArgs(['-i', 'eth0'])!.verbose).to.equal(false);
    });

    it('options the C tool has and we do not are refused by name, in one line (exit 2)', () => {
      // -U (session pool size) and -R (default RTT) exist in the C tcpcopy only; -s in the C intercept is its hash size.
      for (const [tool, argv, flag] of [
        ['tcpcopy', ['-x', '80-61.135.233.160:8080', '-s', '61.135.233.161', '-U', '4'], '-U'],
        ['tcpcopy', ['-x', '80-61.135.233.160:8080', '-s', '61.135.233.161', '-R', '20'], '-R'],
        ['intercept', ['-i', 'lo', '-s', '65536'], '-s'],
      ] as const) {
        const r = run(tool, [...argv]);
        expect(r.code, r.stderr).to.equal(2);
        const lines = r.stderr.split('\n').filter(Boolean);
        expect(lines).to.have.length(1);
        expect(lines[0]).to.match(new RegExp(`^${tool}: unknown option '${flag}' \\(see ${tool} --help\\)$`));
      }
    });
  });
});
