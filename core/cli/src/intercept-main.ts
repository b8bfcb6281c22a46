// The `intercept` command: runs on the assistant host that the target routes its replies
// through, captures those replies and returns their headers to the tcpcopy that asked.
import * as net from 'node:net';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { verboseForOldScripts } from './c-habits';
import { channelSecret, commandLineSecretWarning, daemonArgv, hideSecretFromTitle, SECRET_ENV } from './channel-secret';
import { CLI_VERSION } from './cli-version';
import { interceptDoctor } from './doctor/intercept-doctor';
import { LOG_FORMATS, type LogFormat } from './log';
import type { MetricsServer } from './metrics';
import { parseMetricsAddress, type MetricsAddress } from './metrics-address';
import {
  checkPidFile,
  daemonChildEnv,
  daemonize,
  fail,
  openLog,
  removePidFile,
  UsageError,
  writePidFile,
  type Logger,
} from './process-control';
import { dropPrivileges, resolveUser, type UnprivilegedUser } from './privileges';
import { interceptStatus, RateMeter, startStatusLine, statusIntervalSeconds, TerminalStatus } from './status-line';
import {
  DEFAULT_INTERCEPT_PORT,
  InterceptListenError,
  InterceptServer,
  LinkType,
  parseIpv4,
  type InterceptStats,
  LiveCaptureError,
  PacketSocketCapture,
} from '@tcpcopy/core';

const COMMAND = 'intercept';
const DAEMON_CHILD_ENV = daemonChildEnv(COMMAND);

export function buildCommand(): Command {
  return new Command('intercept')
    .description(
      'Captures the target server\'s replies to replayed connections and returns each one\'s IP and TCP ' +
        'headers (plus the payload bytes tcpcopy asks for) to the tcpcopy that registered the connection. ' +
        'Run it on the assistant host the target routes the fake client addresses through, with ' +
        'net.ipv4.ip_forward=0 there so that the replies go no further. Capturing needs root (or CAP_NET_RAW).\n\n' +
        'Example: intercept -i eth0 -F "tcp and src port 80" -d -l /var/log/intercept.log\n\n' +
        'Checking the assistant: intercept doctor <the same options> (see intercept doctor --help).',
    )
    .option('-i, --device <dev[,dev]>', 'network device(s) to capture replies on, comma-separated; "any" captures on all of them', 'any')
    .option('-F, --filter <bpf>', 'filter for the replies, e.g. "tcp and src port 80" (default: "tcp and not port <listen port>"); ' +
      'pcap-filter syntax applied to the IP packet: ether and vlan primitives do not apply')
    .option('-p, --port <n>', 'TCP port tcpcopy connects to', String(DEFAULT_INTERCEPT_PORT))
    .option('-b, --bind <addr>', 'local IP address to listen on for tcpcopy; 0.0.0.0 listens on all', '0.0.0.0')
    .option('-x, --passlist <ip,...>',
      'client addresses to leave alone: replies to them are never returned, held or counted as unmatched ' +
      '(this host\'s own peers, e.g. your ssh client, when the filter also catches their traffic)')
    .option('-l, --log <file>', 'append the log (connections, warnings, statistics) to this file instead of stderr')
    .option('-d, --daemon', 'run in the background, detached from the terminal, logging to -l (default ./intercept.log)')
    .option('-P, --pid-file <file>', 'write the process id to this file while running')
    .option('-B, --buffer-size <MiB>',
      'receive buffer of the capture socket per device, in MiB: replies wait there (kernel memory, used only while ' +
      'they wait; about 40,000 small replies at 16) until intercept reads them; raise it if the stats line at exit (or ' +
      'intercept_capture_kernel_drops_total) counts replies the kernel dropped (the bench lost none from 1 to 64, docs/benchmarks.md)', '16')
    .option('--stats-interval <s>', 'show the status line every this many seconds; 0 turns it off (default 1 on a terminal, where it is redrawn in place, else 30, as a log line)')
    .option('-q, --quiet', 'no status line')
    .option('--metrics <host:port>', 'serve Prometheus metrics (intercept_*) over HTTP at http://HOST:PORT/metrics')
    .option('--log-format <format>', 'the log\'s lines: text (for people) or json (one JSON object a line)', 'text')
    .option('--verbose', 'also log every route added and removed (-v among other options means this too, for older scripts)')
    .option('--secret <secret>', `serve only tcpcopys that prove they know this shared secret, and prove it to them ` +
      `(challenge-response); better in the environment: ${SECRET_ENV}=... intercept ..., since a command line is visible to every user in ps`)
    .option('--user <name>', 'once capture and the listening socket are open, stop being root and run as this user (e.g. nobody)')
    .version(CLI_VERSION, '-v, --version', 'print the version (as the C intercept\'s -v)')
    .helpOption('-h, --help', 'show this help')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
}

interface Options {
  device: string;
  filter?: string;
  port: string;
  bind: string;
  passlist?: string;
  log?: string;
  daemon?: boolean;
  pidFile?: string;
  statsInterval?: string;
  quiet?: boolean;
  metrics?: string;
  logFormat: string;
  bufferSize: string;
  verbose?: boolean;
  secret?: string;
  user?: string;
}

interface Settings {
  devices: string;
  filter: string;
  port: number;
  bind: string;
  passlist: number[];
  logFile: string | null;
  pidFile: string | null;
  /** undefined: by where the status line goes. */
  statsIntervalS: number | undefined;
  quiet: boolean;
  metrics: MetricsAddress | null;
  logFormat: LogFormat;
  bufferBytes: number;
  verbose: boolean;
  daemon: boolean;
  /** --secret or TCPCOPY_SECRET; null: tcpcopys are not authenticated. */
  secret: string | null;
  secretOnCommandLine: boolean;
  /** --user: whom to become once capture and the listening socket are open. */
  user: UnprivilegedUser | null;
}

function validate(o: Options): Settings {
  if (!/^\d+$/.test(o.port)) throw new UsageError(`port "${o.port}" is not a number (give -p a port from 1 to 65535)`);
  if (Number(o.port) < 1 || Number(o.port) > 65535) {
    throw new UsageError(`port ${o.port} is out of range (give -p a number from 1 to 65535)`);
  }
  const port = Number(o.port);
  if (net.isIP(o.bind) === 0) {
    throw new UsageError(`bind address "${o.bind}" is not an IP address (give -b an address of this host, or 0.0.0.0)`);
  }
  const passlist: number[] = [];
  for (const item of (o.passlist ?? '').split(',')) {
    const text = item.trim();
    if (!text) continue;
    const ip = parseIpv4(text);
    if (ip < 0) throw new UsageError(`pass list entry "${text}" is not an IPv4 address (give -x addresses like 192.0.2.10,192.0.2.11)`);
    passlist.push(ip);
  }
  if (o.statsInterval !== undefined && !/^\d+(\.\d+)?$/.test(o.statsInterval)) {
    throw new UsageError(`stats interval "${o.statsInterval}" is not a number of seconds (use 0 to turn it off)`);
  }
  if (!/^\d+$/.test(o.bufferSize) || Number(o.bufferSize) < 1 || Number(o.bufferSize) > 2047) {
    throw new UsageError(`buffer size "${o.bufferSize}" is out of range (give -B a number of MiB from 1 to 2047)`);
  }
  if (o.device.trim() === '') throw new UsageError('no capture device given (give -i a device from `ip link`, or any)');
  if (!(LOG_FORMATS as readonly string[]).includes(o.logFormat)) throw new UsageError(`--log-format ${o.logFormat}: expected ${LOG_FORMATS.join(' or ')}`);
  const secret = channelSecret(o.secret);
  return {
    daemon: !!o.daemon,
    secret: secret.secret,
    secretOnCommandLine: secret.onCommandLine,
    user: o.user !== undefined ? resolveUser(o.user, COMMAND) : null,
    devices: o.device,
    filter: o.filter ?? `tcp and not port ${port}`,
    port,
    bind: o.bind,
    passlist,
    logFile: o.log ? path.resolve(o.log) : null,
    pidFile: o.pidFile ? path.resolve(o.pidFile) : null,
    statsIntervalS: o.statsInterval === undefined ? undefined : Number(o.statsInterval),
    quiet: !!o.quiet,
    metrics: o.metrics === undefined ? null : parseMetricsAddress(o.metrics),
    logFormat: o.logFormat as LogFormat,
    bufferBytes: Number(o.bufferSize) * 1024 * 1024,
    verbose: !!o.verbose,
  };
}

function statsLine(s: InterceptStats, capture: PacketSocketCapture): string {
  const c = capture.stats();
  return `stats: captured ${s.captured} (capture saw ${c.packets}, kernel dropped ${c.drops}, cut short ${c.truncated}), ` +
    `routed ${s.routed}, held ${s.held} ` +
    `(${s.heldDelivered} delivered, ${s.holding} holding), unmatched ${s.unmatched}, dropped ${s.dropped}, ` +
    `passed ${s.passed}, malformed ${s.malformed + s.notIpv4}; routes ${s.routes} (+${s.routesAdded} ` +
    `-${s.routesRemoved}, ${s.routesEvicted} evicted); tcpcopys ${s.clients}; ${s.batches} writes, ${s.bytesSent} bytes`;
}

/** One-line text of a start-up error, and whether it is the user's to fix (exit 2) or ours (1). */
function describe(err: unknown): { message: string; code: number } {
  if (err instanceof UsageError || err instanceof LiveCaptureError || err instanceof InterceptListenError) {
    return { message: err.message, code: 2 };
  }
  const e = err as Error;
  return { message: `internal error: ${e?.stack ?? e}`, code: 1 };
}

/**
 * argv (without node and the script) as intercept's settings; null when it asked for --help or
 * --version, which commander has printed. Throws UsageError for bad input.
 */
export function parseInterceptArgs(argv: string[]): Settings | null {
  const program = buildCommand();
  try {
    program.parse(verboseForOldScripts(argv, program), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return null;
      throw new UsageError(`${err.message.replace(/^error: /, '')} (see intercept --help)`);
    }
    throw err;
  }
  return validate(program.opts<Options>());
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'doctor') return interceptDoctor(argv.slice(1), buildCommand); // `intercept doctor`: checks the assistant
  const daemonChild = process.env[DAEMON_CHILD_ENV] === '1';
  delete process.env[DAEMON_CHILD_ENV];
  /** In the daemon child, start-up errors go back to the waiting parent. */
  const reportFailure = (message: string, code: number): never => {
    if (daemonChild && process.send) {
      process.send({ error: message, code }, () => process.exit(code));
      // Stay until the message is out; the callback exits.
      return undefined as never;
    }
    fail(COMMAND, message, code);
  };

  let settings: Settings;
  try {
    const parsed = parseInterceptArgs(argv);
    if (!parsed) process.exit(0); // --help or --version: commander printed it
    settings = parsed;
  } catch (err) {
    const d = describe(err);
    reportFailure(d.message, d.code);
    return;
  }

  if (settings.secretOnCommandLine) hideSecretFromTitle(COMMAND, argv);
  if (settings.daemon && !daemonChild) {
    if (settings.secretOnCommandLine) process.stderr.write(`${COMMAND}: ${commandLineSecretWarning(COMMAND)}\n`);
    // The daemon gets the secret in its environment, never on its command line.
    await daemonize(COMMAND, daemonArgv(argv, settings.secret, settings.secretOnCommandLine), settings.logFile, settings.pidFile);
    return;
  }

  let log: Logger;
  let capture: PacketSocketCapture | null = null;
  let server: InterceptServer | null = null;
  let metrics: MetricsServer | null = null;
  // The status line is redrawn in place on a terminal; elsewhere (a pipe, a file, a daemon) it is a log line.
  const terminal = !settings.quiet && !daemonChild && process.stderr.isTTY === true ? new TerminalStatus() : null;
  try {
    if (settings.pidFile) checkPidFile(settings.pidFile, COMMAND);
    log = openLog(settings.logFile, settings.verbose, { format: settings.logFormat, name: COMMAND, terminal: terminal ?? undefined });
    if (settings.secretOnCommandLine) log('warn', commandLineSecretWarning(COMMAND));
    server = new InterceptServer({
      port: settings.port, host: settings.bind, passlist: settings.passlist, log, logRoutes: settings.verbose, ...(settings.secret !== null ? { secret: settings.secret } : {}),
    });
    // AF_PACKET sockets: replies wait in kernel memory (-B), not in a libpcap ring in ours.
    capture = new PacketSocketCapture({
      device: settings.devices, filter: settings.filter, bufferSize: settings.bufferBytes, onError: (m) => log('warn', m),
    });
    capture.start(server.onCapturedFrame);
    for (const w of capture.warnings) log('warn', w);
    await server.listen();
    if (settings.metrics) {
      const [srv, cap] = [server, capture];
      // Loaded only with --metrics: prom-client takes tens of ms to load.
      const { MetricsServer } = require('./metrics') as typeof import('./metrics');
      const { interceptMetrics } = require('./intercept-metrics') as typeof import('./intercept-metrics');
      metrics = await MetricsServer.start(settings.metrics, interceptMetrics(() => srv.stats(), () => cap.stats()));
    }
    if (settings.pidFile) writePidFile(settings.pidFile, COMMAND);
    // Capture, the listening socket, the log and the pid file are open: --user drops root now.
    if (settings.user) {
      dropPrivileges(settings.user);
      log('info', `running as user ${settings.user.name} (uid ${settings.user.uid}, gid ${settings.user.gid}) from now on`);
    }
  } catch (err) {
    await metrics?.close();
    capture?.close();
    await server?.close();
    const d = describe(err);
    reportFailure(d.message, d.code);
    return;
  }

  const links = [...capture.linkTypes].map(([dev, lt]) => `${dev} (${LinkType[lt]})`).join(', ');
  const ready = `intercept: listening on ${settings.bind}:${settings.port} for tcpcopy; capturing on ${links} ` +
    `with filter "${settings.filter}"` + (settings.passlist.length ? `, ignoring replies to ${settings.passlist.length} pass-listed address(es)` : '');
  if (settings.logFile) log('info', ready.replace(/^intercept: /, '')); // else it is on stdout already
  if (daemonChild && process.send) {
    process.send({ ready });
    process.disconnect?.();
  } else {
    process.stdout.write(`${ready}\n`);
  }

  const cap = capture;
  const srv = server;
  const started = performance.now();
  const rate = new RateMeter();
  const status = startStatusLine({
    intervalS: settings.quiet ? 0 : statusIntervalSeconds(settings.statsIntervalS, terminal !== null),
    terminal,
    log,
    read: () => interceptStatus(srv.stats(), (performance.now() - started) / 1000, rate, process.memoryUsage.rss()),
  });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      removePidFile(settings.pidFile);
      process.exit(0); // a second signal: do not wait any longer
    }
    stopping = true;
    status.stop();
    log('info', `${signal}: stopping`);
    cap.close();
    const stopped = metrics ? metrics.close() : Promise.resolve();
    Promise.all([srv.close(), stopped]).then(() => {
      log('info', statsLine(srv.stats(), cap), { stats: { ...srv.stats(), capture: cap.stats().packets, captureDrops: cap.stats().drops } });
      removePidFile(settings.pidFile);
      process.exit(0);
    }, () => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('uncaughtException', (err) => {
    log('warn', `internal error: ${err.stack ?? err}`);
    removePidFile(settings.pidFile);
    process.exit(1);
  });
}
