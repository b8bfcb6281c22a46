// tcpcopy's command line: the options, and argv turned into the options of @tcpcopy/core's replay() plus
// what only the command does (log, pid file, daemon, summary format). Bad input is a UsageError.
import { Command, CommanderError, Option } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_CAPTURE_HOLD_MS, parseProtocolOptions, ProtocolLoadError, type ReplayOptions } from '@tcpcopy/core';
import { BUILT_IN_PROTOCOLS } from './built-in-protocols';
import { verboseForOldScripts } from './c-habits';
import { channelSecret, SECRET_ENV } from './channel-secret';
import { CLI_VERSION } from './cli-version';
import { resolveUser, type UnprivilegedUser } from './privileges';
import { LOG_FORMATS, type LogFormat } from './log';
import { parseMetricsAddress, type MetricsAddress } from './metrics-address';
import { UsageError } from './process-control';
import { resolveReportPath } from './report';

export const COMMAND = 'tcpcopy';

/** What the command line asks for: a replay, and how the command runs around it. */
export interface TcpcopyInvocation {
  /** replay()'s options, without the callbacks (the command adds its own). */
  replay: ReplayOptions;
  /** -i names a file. */
  offline: boolean;
  /** --summary. */
  summary: 'text' | 'json';
  /** --report, absolute (its directory checked). */
  reportFile: string | null;
  /** -l, absolute. */
  logFile: string | null;
  /** -P, absolute. */
  pidFile: string | null;
  /** -d. */
  daemon: boolean;
  /** --verbose (or -v among other options). */
  verbose: boolean;
  /** -s as given, for the start-up line. */
  intercept: string;
  /** -m, MB (live). */
  memoryLimitMb: number;
  /** --secret came on the command line (warn, hide it from ps, keep it off a daemon's command line). */
  secretOnCommandLine: boolean;
  /** --user: whom to become once the sockets are open. */
  user: UnprivilegedUser | null;
  /** --stats-interval, seconds (0: no status line); undefined: by where the line goes (status-line.ts). */
  statsIntervalS: number | undefined;
  /** -q: no status line. */
  quiet: boolean;
  /** --metrics HOST:PORT. */
  metrics: MetricsAddress | null;
  /** --log-format. */
  logFormat: LogFormat;
}

function number(name: string, min: number, max: number, integer = true) {
  return (value: string): number => {
    const n = Number(value);
    const ok = integer ? /^\d+$/.test(value) : /^\d+(\.\d+)?$/.test(value);
    if (!ok || n < min || n > max) {
      throw new UsageError(`${name} ${value}: expected ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`);
    }
    return n;
  };
}

export function buildCommand(): Command {
  return new Command(COMMAND)
    .description(
      'Copies client traffic, live from a network device or from a pcap file, to a target server as real TCP sessions.\n' +
        'The target must route its replies for the client addresses to the host running intercept.\n' +
        'Live:    tcpcopy -i eth0 -x 80-198.51.100.30:80 -s 198.51.100.40 -c 203.0.113.x\n' +
        'Offline: tcpcopy -i online.pcap -x 80-198.51.100.30:80 -s 198.51.100.40 -c 203.0.113.x -a 10\n' +
        'Nothing reaches the target? tcpcopy doctor <the same options> checks the path (see tcpcopy doctor --help).',
    )
    .option('-i, --input <file|device>', 'a pcap file to replay, or the device(s) to capture on live (comma-separated, or any); without it, live on every device')
    .requiredOption('-x, --transfer <spec>',
      'what to replay where: [onlineIP:]onlinePort[@srcMAC]-targetIP:targetPort[@nextHopMAC], several separated by commas; the MACs are for -o')
    .requiredOption('-s, --intercept <host[:port],...>', 'intercept server(s) that return the target\'s replies')
    .option('-p, --intercept-port <port>', 'intercept port when -s gives none', number('-p', 1, 65535), 36524)
    .option('-C, --channels <n>', 'parallel connections to each intercept', number('-C', 1, 16), 2)
    .option('-L, --keep-running', 'keep replaying when an intercept goes away, and reconnect to it')
    .option('-c, --client-ip <list>', 'fake client addresses, e.g. 203.0.113.5,203.0.113.6 or 203.0.113.x (.1-.254)')
    .option('-H, --local-address <ip>', 'the address that replaces a loopback client address (127.0.0.1) before -c')
    .option('-n, --copies <n>', 'replay every connection n times at once (amplification), each copy on other client ports', number('-n', 1, 1023), 1)
    .option('-f, --port-factor <n>', 'move client ports by n x 2048, so several tcpcopy instances never share a port', number('-f', 0, 31), 0)
    .option('-r, --percent <n>', 'replay this percentage of connections (each connection whole or not at all)', number('-r', 1, 100), 100)
    .option('-g, --gradual', 'ramp the replayed percentage up from 1% by 1% a second')
    .option('-W, --no-wait', 'send each request without waiting for the target\'s response to the previous one')
    .option('-O, --only-full', 'replay only connections whose handshake was captured (no faked handshakes)')
    .option('-t, --session-timeout <s>', 'give a session up when the target owes an answer this long', number('-t', 1, 86_400, false), 120)
    .option('--syn-retries <n>', 'SYNs sent again to a silent target before a session is given up, 1, 2, 4... s apart (as net.ipv4.tcp_syn_retries): 4 gives up after 31 s, 2 after 7 s', number('--syn-retries', 0, 6), 4)
    .option('-k, --keepalive-timeout <s>', 'close a session idle this long (default: -t + 120)', number('-k', 1, 864_000, false))
    .option('-M, --mtu <bytes>', 'largest IP packet sent to the target; bigger captured segments are split', number('-M', 68, 65535), 1500)
    .option('-D, --mss <bytes>', 'MSS offered in faked handshakes', number('-D', 64, 65495), 1460)
    .option('-m, --memory-limit <MB>', 'live: stop cleanly before this process uses this much memory (new connections are refused near it)', number('-m', 16, 1_048_576), 1024)
    .option('-o, --output-device <dev>', 'send at the data link layer through libpcap on this Ethernet device (MACs in -x) instead of a raw IP socket')
    .option('-F, --filter <bpf>', 'live: pcap filter for the client packets (default: built from -x)')
    .option('-B, --buffer-size <MiB>', 'live: kernel capture buffer: the raw socket\'s receive buffer, or libpcap\'s per device with --capture pcap', number('-B', 1, 2047), 64)
    .option('-S, --snaplen <bytes>', 'live: bytes of each packet captured', number('-S', 160, 262144), 65535)
    .option('--capture-hold <ms>', 'live, raw capture: after a read that emptied the capture socket, let it fill this long before the next one (a packet is replayed up to this much later, for far fewer wake-ups of tcpcopy; 0: every packet as it comes)',
      number('--capture-hold', 0, 1000), DEFAULT_CAPTURE_HOLD_MS)
    .option('--capture <how>', 'live: "raw" (an IP raw socket, the default: it lost nothing in our load tests) or "pcap" (libpcap with a kernel filter; -F or -S imply it)')
    .option('-a, --speed <factor>', 'offline: replay this many times faster than captured', number('-a', 0.001, 1_000_000, false), 1)
    .option('-I, --max-gap <ms>', 'offline: cut idle gaps in the capture longer than this many ms', number('-I', 0, 86_400_000), 0)
    .option('-T, --times <n>', 'offline: replay the file this many times; each pass uses other client ports', number('-T', 1, 1_000_000), 1)
    .option('--tail-timeout <s>', 'offline: after the capture ends, wait this long for sessions to finish', number('--tail-timeout', 0.1, 86_400, false), 30)
    .option('--protocol <name>', 'protocol module: a built-in name (raw, http, mysql), a path, or an npm package name', 'raw')
    .option('--protocol-opt <key=value>', 'an option for the protocol module (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--protocol-config <file>', 'protocol options as a JSON object (--protocol-opt adds to it)')
    .option('--mysql-user <user:password>', 'with --protocol mysql: the password of a user at the TARGET, to log in with (repeatable)',
      (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--idle-release <ms>', 'release held requests once the target is quiet this long', number('--idle-release', 1, 600_000), 500)
    // The option's former name, still taken (scripts written for it keep working).
    .addOption(new Option('--gate-idle <ms>').argParser(number('--gate-idle', 1, 600_000)).hideHelp())
    .option('--summary <format>', 'print the counters at the end: text or json', 'text')
    .option('--report <file>', 'write the end-of-run report (connections, packets, requests by status, latencies) to this JSON file (docs/report.md)')
    .option('--stats-interval <s>', 'show the status line every this many seconds (0: never; default 1 on a terminal, where it is redrawn in place, else 30, as a log line)',
      number('--stats-interval', 0, 86_400, false))
    .option('-q, --quiet', 'no status line')
    .option('--metrics <host:port>', 'serve Prometheus metrics (tcpcopy_*) over HTTP at http://HOST:PORT/metrics')
    .option('--log-format <format>', 'the log\'s lines: text (for people) or json (one JSON object a line)', 'text')
    .option('-l, --log <file>', 'append warnings and statistics to this file instead of stderr')
    .option('-d, --daemon', 'run in the background, logging to -l (default ./tcpcopy.log)')
    .option('-P, --pid-file <file>', 'write the process id to this file while running')
    .option('--verbose', 'report every warning, not only the first ones (-v among other options means this too, for older scripts)')
    .option('--secret <secret>', `authenticate to the intercept(s) with this shared secret (challenge-response, both ways); ` +
      `better in the environment: ${SECRET_ENV}=... tcpcopy ..., since a command line is visible to every user in ps`)
    .option('--user <name>', 'once the sockets are open, stop being root and run as this user (e.g. nobody)')
    .version(CLI_VERSION, '-v, --version', 'print the version (as the C tool\'s -v)')
    .helpOption('-h, --help', 'show this help')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
}

/**
 * argv (without node and the script) as a replay to run; null when it asked for --help or
 * --version, which commander has printed. Throws UsageError for bad input that can be told
 * from the command line alone; replay() checks the rest (the file, -x, -c, the protocol, ...).
 */
export function parseTcpcopyArgs(argv: string[]): TcpcopyInvocation | null {
  const program = buildCommand();
  try {
    program.parse(verboseForOldScripts(argv, program), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return null;
      throw new UsageError(`${err.message.replace(/^error: /, '')} (see tcpcopy --help)`);
    }
    throw err;
  }
  const o = program.opts();
  const given = (name: string): boolean => program.getOptionValueSource(name) === 'cli';
  const offline = mode(o, given);
  if (o.summary !== 'text' && o.summary !== 'json') throw new UsageError(`--summary ${o.summary}: expected text or json`);
  if (o.capture !== undefined && o.capture !== 'pcap' && o.capture !== 'raw') throw new UsageError(`--capture ${o.capture}: expected raw or pcap`);
  if (!LOG_FORMATS.includes(o.logFormat)) throw new UsageError(`--log-format ${o.logFormat}: expected ${LOG_FORMATS.join(' or ')}`);
  const metrics = o.metrics !== undefined ? parseMetricsAddress(o.metrics) : null;

  const secret = channelSecret(o.secret);
  const protocolOpts: string[] = [...o.protocolOpt];
  if (o.mysqlUser.length > 0) {
    if (o.protocol !== 'mysql') throw new UsageError(`--mysql-user applies only to --protocol mysql (add --protocol mysql, or drop --mysql-user)`);
    for (const u of o.mysqlUser) protocolOpts.push(`user=${u}`);
  }
  let protocolOptions: Record<string, string>;
  try {
    protocolOptions = parseProtocolOptions(protocolOpts, o.protocolConfig);
  } catch (err) {
    if (err instanceof ProtocolLoadError) throw new UsageError(err.message);
    throw err;
  }

  const replay: ReplayOptions = {
    transfers: o.transfer,
    intercepts: o.intercept,
    interceptPort: o.interceptPort,
    channelsPerIntercept: o.channels,
    keepRunning: !!o.keepRunning,
    ...(secret.secret !== null ? { interceptSecret: secret.secret } : {}),
    clientAddresses: o.clientIp,
    localAddress: o.localAddress,
    protocol: o.protocol,
    protocolOptions,
    protocolNames: BUILT_IN_PROTOCOLS,
    engine: {
      sessionTimeoutMs: o.sessionTimeout * 1000,
      // Given up when the next SYN would go: after 1 + 2 + ... + 2^n s.
      handshakeTimeoutMs: (2 ** (o.synRetries + 1) - 1) * 1000,
      keepaliveTimeoutMs: (o.keepaliveTimeout ?? o.sessionTimeout + 120) * 1000,
      idleReleaseMs: o.gateIdle ?? o.idleRelease,
      mtu: o.mtu,
      mss: o.mss,
      onlyFullSessions: !!o.onlyFull,
      copies: o.copies,
      portFactor: o.portFactor,
      samplePercent: o.percent,
      gradual: !!o.gradual,
      noWait: o.wait === false,
    },
    outputDevice: o.outputDevice,
  };
  if (offline) {
    Object.assign(replay, { file: o.input, speed: o.speed, maxGapMs: o.maxGap, passes: o.times, tailTimeoutMs: o.tailTimeout * 1000 });
  } else {
    // Without -i, live on every device (as the C tool: the raw socket sees them all).
    Object.assign(replay, {
      devices: o.input,
      capture: o.capture,
      filter: o.filter,
      bufferSize: o.bufferSize * 2 ** 20,
      snaplen: given('snaplen') ? o.snaplen : undefined,
      captureHoldMs: given('captureHold') ? o.captureHold : undefined,
      memoryLimitBytes: o.memoryLimit * 2 ** 20,
    });
  }
  return {
    replay,
    offline,
    summary: o.summary,
    reportFile: o.report !== undefined ? resolveReportPath(o.report) : null,
    logFile: o.log ? path.resolve(o.log) : null,
    pidFile: o.pidFile ? path.resolve(o.pidFile) : null,
    daemon: !!o.daemon,
    verbose: !!o.verbose,
    intercept: o.intercept,
    memoryLimitMb: o.memoryLimit,
    secretOnCommandLine: secret.onCommandLine,
    user: o.user !== undefined ? resolveUser(o.user, COMMAND) : null,
    statsIntervalS: o.statsInterval,
    quiet: !!o.quiet,
    metrics,
    logFormat: o.logFormat,
  };
}

/** Offline when -i names a file; live when it names devices. Flags of the other mode are refused. */
function mode(o: Record<string, unknown>, given: (name: string) => boolean): boolean {
  const input = o.input as string | undefined;
  let offline = false;
  if (input === undefined) {
    // As the C tool: no -i is a live replay, and the raw socket sees every device.
  } else try {
    offline = fs.statSync(input).isFile();
  } catch {
    offline = input.includes('/') || /\.(pcap|cap|pcapng|dump)$/i.test(input);
  }
  // -m guards the online host's memory during live capture; an offline replay has no such guard.
  const wrong = (offline ? ['filter', 'bufferSize', 'snaplen', 'capture', 'captureHold', 'memoryLimit'] : ['speed', 'maxGap', 'times', 'tailTimeout']).filter(given);
  if (wrong.length) {
    const flag: Record<string, string> = {
      filter: '-F', bufferSize: '-B', snaplen: '-S', capture: '--capture', captureHold: '--capture-hold', memoryLimit: '-m',
      speed: '-a', maxGap: '-I', times: '-T', tailTimeout: '--tail-timeout',
    };
    const list = wrong.map((w) => flag[w]).join(', ');
    throw new UsageError(`${list} ${wrong.length > 1 ? 'apply' : 'applies'} only to ${offline ? 'live capture' : 'a pcap file'}, and -i ${input} is ${offline ? 'a file' : 'a device'} ` +
      `(drop ${list}, or give -i ${offline ? 'a device' : 'a pcap file'})`);
  }
  return offline;
}
