// `tcpcopy doctor`: run on the online host with the replay's own options, it checks what the C tool's
// troubleshooting chapter has people check by hand, and sends one probe connection through the real
// path. Prints one line per finding; exit 0 when all is well, 1 when something is wrong, 2 for bad usage.
import {
  captureFilter,
  DEFAULT_INTERCEPT_PORT,
  formatIpv4,
  type InterceptAddress,
  OptionError,
  parseClientAddresses,
  parseTransfers,
  type Transfer,
} from '@tcpcopy/core';
import { fail as failUsage, UsageError } from '../process-control';
import { COMMAND, parseTcpcopyArgs } from '../tcpcopy-options';
import { checkCapture, type CaptureMethod } from './capture-checks';
import { checkChannels, interceptAddresses } from './channel-check';
import { fail, ok, warn } from './findings';
import { ProbeReplies, runProbes } from './probe';
import { DoctorReport } from './doctor-report';
import { checkRouteToTarget, coveringNetwork } from './route-checks';
import { checkConntrack, checkPrivileges, procFiles } from './system-checks';

/** How long the online port is watched for client packets, and how long a probe waits for its answer. */
const TRAFFIC_WINDOW_MS = 2000;
const PROBE_TIMEOUT_MS = 2000;
const CONNECT_TIMEOUT_MS = 2000;

export const TCPCOPY_DOCTOR_HELP = `Usage: tcpcopy doctor -x <spec> -s <intercept> [-c <list>] [-i <device>] [-F <bpf>] [other replay options]

Run on the online host, with the options of the replay: checks what keeps replayed traffic from
reaching the target, one line per finding (ok, warn, FAIL) with the command that fixes it:
  privileges (root or CAP_NET_RAW), this host's route to each target, the nf_conntrack table,
  the capture (devices, filter) and whether the online port sees packets within ${TRAFFIC_WINDOW_MS / 1000} s,
  the channel to each intercept (reachable, speaks the channel protocol), and a probe: a SYN from
  the first -c address to each target, sent like a replay's packets, whose answer must come back
  through intercept (SYN-ACK: the path works; RST: the target port is closed; nothing: the target's
  route for the fake clients, the assistant's forwarding or intercept's device or filter). A RST
  then frees the target's half-open connection. Takes under 10 s.
Run \`intercept doctor\` with intercept's options on the assistant host.
Exit code: 0 all is well (warnings allowed), 1 something is wrong, 2 bad usage.
Example: tcpcopy doctor -i eth0 -x 80-198.51.100.30:8080 -s 198.51.100.40 -c 203.0.113.x
`;

export async function tcpcopyDoctor(argv: string[]): Promise<never> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(TCPCOPY_DOCTOR_HELP);
    process.exit(0);
  }
  let setup: DoctorSetup;
  try {
    setup = readSetup(argv);
  } catch (err) {
    if (err instanceof UsageError || err instanceof OptionError || err instanceof RangeError) {
      failUsage(`${COMMAND} doctor`, err.message.replace('(see tcpcopy --help)', '(see tcpcopy doctor --help)'), 2);
    }
    throw err;
  }
  const report = new DoctorReport(COMMAND);
  await diagnose(setup, report);
  return report.finish();
}

interface DoctorSetup {
  transfers: Transfer[];
  intercepts: readonly InterceptAddress[];
  /** --secret / TCPCOPY_SECRET, for the channel. */
  secret: string | Buffer | null;
  clientAddresses: number[] | null;
  /** Live: how the replay would capture (raw socket or libpcap); null for a pcap file. */
  capture: CaptureMethod | null;
  /** Options the replay would refuse with this capture (e.g. -F with --capture raw); null when none. */
  captureConflict: string | null;
}

function readSetup(argv: string[]): DoctorSetup {
  const args = parseTcpcopyArgs(argv);
  if (!args) process.exit(0); // --version
  const r = args.replay;
  const transfers = parseTransfers(String(r.transfers));
  const clients = r.clientAddresses === undefined ? null : parseClientAddresses(String(r.clientAddresses));
  return {
    transfers,
    intercepts: interceptAddresses(String(r.intercepts), r.interceptPort ?? DEFAULT_INTERCEPT_PORT),
    secret: r.interceptSecret ?? null,
    clientAddresses: clients,
    ...liveCapture(r, transfers, args.offline),
  };
}

/** The capture replay() opens: the IP raw socket, or libpcap when --capture pcap, -F or -S asks for it. */
function liveCapture(r: { devices?: string; capture?: string; filter?: string; snaplen?: number }, transfers: Transfer[], offline: boolean):
  Pick<DoctorSetup, 'capture' | 'captureConflict'> {
  if (offline) return { capture: null, captureConflict: null };
  const devices = r.devices ?? 'any';
  const how = r.capture ?? (r.filter !== undefined || r.snaplen !== undefined ? 'pcap' : 'raw');
  if (how === 'raw') {
    const given = r.filter !== undefined ? '-F' : r.snaplen !== undefined ? '-S' : null;
    return {
      capture: { kind: 'raw-socket', devices, transfers },
      captureConflict: given && `${given} applies to libpcap capture only, and --capture raw asks for the raw socket`,
    };
  }
  return {
    capture: { kind: 'pcap', devices, filter: r.filter ?? captureFilter(transfers), filterOrigin: r.filter ? '-F' : 'built from -x' },
    captureConflict: null,
  };
}

async function diagnose(s: DoctorSetup, report: DoctorReport): Promise<void> {
  const add = report.add.bind(report);
  const privileges = checkPrivileges(procFiles, process.getuid?.() ?? -1, 'the raw socket and the capture');
  add(privileges);
  const targets = distinctTargets(s.transfers);
  for (const ip of new Set(targets.map((t) => t.targetIp))) add(checkRouteToTarget(procFiles, ip));
  add(checkConntrack(procFiles, 'tcpcopy'));

  const ports = [...new Set(s.transfers.map((t) => t.onlinePort))].join(', ');
  const replies = new ProbeReplies();
  const targetPorts = [...new Set(targets.map((t) => t.targetPort))];
  const startIntercept = `intercept -i <device> -F "tcp and (${targetPorts.map((p) => `src port ${p}`).join(' or ')})"`;
  const [captureFindings, channels] = await Promise.all([
    s.capture && privileges.level === 'ok'
      ? checkCapture({ method: s.capture, windowMs: TRAFFIC_WINDOW_MS, what: `packets for port ${ports}` })
      : Promise.resolve(s.capture ? [] : [ok('traffic', '-i names a pcap file: no live capture to check')]),
    checkChannels(s.intercepts, CONNECT_TIMEOUT_MS, replies.onReply, startIntercept, s.secret),
  ]);
  if (s.captureConflict) add(fail('capture', s.captureConflict, 'drop it, or leave out --capture raw'));
  add(...captureFindings, ...channels.findings);

  try {
    if (privileges.level !== 'ok') {
      add(fail('probe', 'not sent: sending it needs root or CAP_NET_RAW (see privileges)'));
    } else if (!s.clientAddresses) {
      add(warn('probe', 'not sent: it needs a fake client address the target routes to the assistant', 'give -c, e.g. -c 203.0.113.x'));
    } else if (channels.clients.length === 0) {
      add(fail('probe', 'not sent: no intercept to bring the answer back (see above)'));
    } else {
      add(...await runProbes({
        targets,
        clientIp: s.clientAddresses[0],
        clientNetwork: coveringNetwork(s.clientAddresses),
        assistant: s.intercepts[0].host,
        clients: channels.clients,
        replies,
        timeoutMs: PROBE_TIMEOUT_MS,
      }));
    }
  } finally {
    await Promise.all(channels.clients.map((c) => c.close()));
  }
}

function distinctTargets(transfers: readonly Transfer[]): Array<{ targetIp: number; targetPort: number }> {
  const seen = new Map<string, { targetIp: number; targetPort: number }>();
  for (const t of transfers) seen.set(`${formatIpv4(t.targetIp)}:${t.targetPort}`, { targetIp: t.targetIp, targetPort: t.targetPort });
  return [...seen.values()];
}
