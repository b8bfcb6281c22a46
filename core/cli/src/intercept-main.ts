// The `intercept` command: runs on the assistant host that the target routes its replies
// through, captures those replies and returns their headers to the tcpcopy that asked.
import * as net from 'node:net';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
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
import {
  DEFAULT_INTERCEPT_PORT,
  InterceptListenError,
  InterceptServer,
  LinkType,
  parseIpv4,
  type InterceptStats,
  LiveCapture,
  LiveCaptureError,
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
        'Example: intercept -i eth0 -F "tcp and src port 80" -d -l /var/log/intercept.log',
    )
    .option('-i, --device <dev[,dev]>', 'network device(s) to capture replies on, comma-separated; "any" captures on all of them', 'any')
    .option('-F, --filter <bpf>', 'pcap filter for the replies, e.g. "tcp and src port 80" (default: "tcp and not port <listen port>")')
    .option('-p, --port <n>', 'TCP port tcpcopy connects to', String(DEFAULT_INTERCEPT_PORT))
    .option('-b, --bind <addr>', 'local IP address to listen on for tcpcopy; 0.0.0.0 listens on all', '0.0.0.0')
    .option('-x, --passlist <ip,...>',
      'client addresses to leave alone: replies to them are never returned, held or counted as unmatched ' +
      '(this host\'s own peers, e.g. your ssh client, when the filter also catches their traffic)')
    .option('-l, --log <file>', 'append the log (connections, warnings, statistics) to this file instead of stderr')
    .option('-d, --daemon', 'run in the background, detached from the terminal, logging to -l (default ./intercept.log)')
    .option('-P, --pid-file <file>', 'write the process id to this file while running')
    .option('-B, --buffer-size <MiB>',
      'kernel capture buffer per device, in MiB; raise it if replies go missing under load (cap fixes the ' +
      'snaplen at 64 KiB and libpcap may size every buffer slot for that, so it holds fewer packets than its size suggests)', '64')
    .option('--stats-interval <s>', 'log the counters every this many seconds; 0 turns it off', '30')
    .option('-v, --verbose', 'also log every route added and removed')
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
  statsInterval: string;
  bufferSize: string;
  verbose?: boolean;
}

interface Settings {
  devices: string;
  filter: string;
  port: number;
  bind: string;
  passlist: number[];
  logFile: string | null;
  pidFile: string | null;
  statsIntervalS: number;
  bufferBytes: number;
  verbose: boolean;
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
  if (!/^\d+(\.\d+)?$/.test(o.statsInterval)) {
    throw new UsageError(`stats interval "${o.statsInterval}" is not a number of seconds (use 0 to turn it off)`);
  }
  if (!/^\d+$/.test(o.bufferSize) || Number(o.bufferSize) < 1 || Number(o.bufferSize) > 2047) {
    throw new UsageError(`buffer size "${o.bufferSize}" is out of range (give -B a number of MiB from 1 to 2047)`);
  }
  if (o.device.trim() === '') throw new UsageError('no capture device given (give -i a device from `ip link`, or any)');
  return {
    devices: o.device,
    filter: o.filter ?? `tcp and not port ${port}`,
    port,
    bind: o.bind,
    passlist,
    logFile: o.log ? path.resolve(o.log) : null,
    pidFile: o.pidFile ? path.resolve(o.pidFile) : null,
    statsIntervalS: Number(o.statsInterval),
    bufferBytes: Number(o.bufferSize) * 1024 * 1024,
    verbose: !!o.verbose,
  };
}

function statsLine(s: InterceptStats, capture: LiveCapture): string {
  const c = capture.stats();
  return `stats: captured ${s.captured} (capture saw ${c.packets}), routed ${s.routed}, held ${s.held} ` +
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

export async function main(argv: string[]): Promise<void> {
  const program = buildCommand();
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
    try {
      program.parse(argv, { from: 'user' });
    } catch (err) {
      if (err instanceof CommanderError) {
        if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help') process.exit(0);
        throw new UsageError(`${err.message.replace(/^error: /, '')} (see intercept --help)`);
      }
      throw err;
    }
    settings = validate(program.opts<Options>());
  } catch (err) {
    const d = describe(err);
    reportFailure(d.message, d.code);
    return;
  }

  if (program.opts<Options>().daemon && !daemonChild) {
    await daemonize(COMMAND, argv, settings.logFile, settings.pidFile);
    return;
  }

  let log: Logger;
  let capture: LiveCapture | null = null;
  let server: InterceptServer | null = null;
  try {
    if (settings.pidFile) checkPidFile(settings.pidFile, COMMAND);
    log = openLog(settings.logFile, settings.verbose);
    server = new InterceptServer({ port: settings.port, host: settings.bind, passlist: settings.passlist, log });
    capture = new LiveCapture({ device: settings.devices, filter: settings.filter, bufferSize: settings.bufferBytes });
    capture.start(server.onCapturedFrame);
    for (const w of capture.warnings) log('warn', w);
    await server.listen();
    if (settings.pidFile) writePidFile(settings.pidFile, COMMAND);
  } catch (err) {
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
  const timer = settings.statsIntervalS > 0
    ? setInterval(() => log('info', statsLine(srv.stats(), cap)), settings.statsIntervalS * 1000)
    : null;
  timer?.unref();

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      removePidFile(settings.pidFile);
      process.exit(0); // a second signal: do not wait any longer
    }
    stopping = true;
    log('info', `${signal}: stopping`);
    if (timer) clearInterval(timer);
    cap.close();
    srv.close().then(() => {
      log('info', statsLine(srv.stats(), cap));
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
