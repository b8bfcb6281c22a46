// `intercept doctor`: run on the assistant host with intercept's own options, it checks what the
// assistant needs: privileges to capture, ip_forward off, reverse-path filtering, the conntrack
// table, that intercept's packet sockets open the devices with the filter (compiled as intercept compiles
// it, for packets that start at the IP header), and whether an intercept answers on the channel port. One line per finding; exit 0 when all is well, 1 when something is wrong, 2 for bad usage.
import * as net from 'node:net';
import { CommanderError, type Command } from 'commander';
import { DEFAULT_INTERCEPT_PORT } from '@tcpcopy/core';
import { channelSecret } from '../channel-secret';
import { fail as failUsage, UsageError } from '../process-control';
import { checkCapture } from './capture-checks';
import { checkChannels } from './channel-check';
import { warn, type Finding } from './findings';
import { DoctorReport } from './doctor-report';
import { checkConntrack, checkIpForward, checkPrivileges, checkRpFilter, ipv4Devices, procFiles } from './system-checks';

const COMMAND = 'intercept';
const CONNECT_TIMEOUT_MS = 2000;

export const INTERCEPT_DOCTOR_HELP = `Usage: intercept doctor [-i <device>] [-F <bpf>] [-p <port>] [-b <addr>] [other intercept options]

Run on the assistant host, with intercept's options: checks what keeps the target's replies from
reaching tcpcopy, one line per finding (ok, warn, FAIL) with the command that fixes it:
  privileges (root or CAP_NET_RAW), net.ipv4.ip_forward (must be 0: the assistant is a black hole),
  reverse-path filtering, the nf_conntrack table, that the capture opens the devices with the
  filter and receive buffer (-B) as intercept opens them (from the IP header on: ether and vlan
  terms do not apply), and whether an intercept answers the channel protocol on the port (-p) now.
Run \`tcpcopy doctor\` with the replay's options on the online host: its probe checks the whole path.
Exit code: 0 all is well (warnings allowed), 1 something is wrong, 2 bad usage.
Example: intercept doctor -i eth0 -F "tcp and src port 8080"
`;

interface Settings {
  devices: string;
  filter: string;
  filterOrigin: string;
  /** -B, bytes: the receive buffer intercept asks for (the doctor warns when the kernel grants less). */
  bufferSize: number;
  port: number;
  /** Where this host's intercept is reached: the -b address, or loopback for 0.0.0.0. */
  host: string;
  /** --secret / TCPCOPY_SECRET: the running intercept is asked with it. */
  secret: string | null;
}

/** `buildCommand` is intercept's own command line, so that doctor takes the very same options. */
export async function interceptDoctor(argv: string[], buildCommand: () => Command): Promise<never> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(INTERCEPT_DOCTOR_HELP);
    process.exit(0);
  }
  const s = readSettings(argv, buildCommand());
  const report = new DoctorReport(COMMAND);
  const add = report.add.bind(report);
  const privileges = checkPrivileges(procFiles, process.getuid?.() ?? -1, 'capturing the replies');
  add(privileges, checkIpForward(procFiles));
  add(checkRpFilter(procFiles, s.devices === 'any' ? ipv4Devices() : s.devices.split(',').map((d) => d.trim())));
  add(checkConntrack(procFiles, 'intercept'));
  if (privileges.level === 'ok') {
    const method = { kind: 'packet-socket', devices: s.devices, filter: s.filter, filterOrigin: s.filterOrigin, bufferSize: s.bufferSize } as const;
    add(...await checkCapture({ method, windowMs: 0, what: 'replies' }));
  }
  add(await checkLocalIntercept(s));
  return report.finish();
}

function readSettings(argv: string[], program: Command): Settings {
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) failUsage(`${COMMAND} doctor`, `${err.message.replace(/^error: /, '')} (see intercept doctor --help)`, 2);
    throw err;
  }
  const o = program.opts<{ device: string; filter?: string; port: string; bind: string; secret?: string; bufferSize: string }>();
  let secret: string | null;
  try {
    secret = channelSecret(o.secret).secret;
  } catch (err) {
    if (err instanceof UsageError) failUsage(`${COMMAND} doctor`, err.message, 2);
    throw err;
  }
  const port = Number(o.port);
  if (!/^\d+$/.test(o.port) || port < 1 || port > 65535) failUsage(`${COMMAND} doctor`, `port "${o.port}" is out of range (give -p a port from 1 to 65535)`, 2);
  if (net.isIP(o.bind) !== 4) failUsage(`${COMMAND} doctor`, `bind address "${o.bind}" is not an IPv4 address (give -b an address of this host, or 0.0.0.0)`, 2);
  const bufferMiB = Number(o.bufferSize);
  if (!/^\d+$/.test(o.bufferSize) || bufferMiB < 1 || bufferMiB > 2047) failUsage(`${COMMAND} doctor`, `buffer size "${o.bufferSize}" is out of range (give -B a number of MiB from 1 to 2047)`, 2);
  if (o.device.trim() === '') failUsage(`${COMMAND} doctor`, 'no capture device given (give -i a device from `ip link`, or any)', 2);
  return {
    devices: o.device,
    // intercept's own default (intercept-main.ts).
    filter: o.filter ?? `tcp and not port ${port}`,
    filterOrigin: o.filter ? '-F' : 'the default',
    bufferSize: bufferMiB * 1024 * 1024,
    port,
    host: o.bind === '0.0.0.0' ? '127.0.0.1' : o.bind,
    secret,
  };
}

/** An intercept running here answers HELLO; none running yet is only a warning (doctor may run first). */
async function checkLocalIntercept(s: Settings): Promise<Finding> {
  const start = `intercept -i ${s.devices} ${s.filterOrigin === '-F' ? `-F "${s.filter}" ` : ''}${s.port === DEFAULT_INTERCEPT_PORT ? '' : `-p ${s.port}`}`.trim();
  const { clients, findings } = await checkChannels([{ host: s.host, port: s.port }], CONNECT_TIMEOUT_MS, () => undefined, start, s.secret);
  await Promise.all(clients.map((c) => c.close()));
  const f = findings[0];
  if (f.level === 'FAIL' && /connection refused/.test(f.text)) {
    return warn(f.subject, `no intercept is running on port ${s.port} yet (tcpcopy connects here)`, start);
  }
  return f;
}
