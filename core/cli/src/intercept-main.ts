// The `intercept` command: runs on the assistant host that the target routes its replies
// through, captures those replies and returns their headers to the tcpcopy that asked.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
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

/** Bad input: one line "intercept: <what> (<how to fix>)" on stderr, exit code 2. */
class UsageError extends Error {}

/** Set in the environment of the process a daemonising intercept starts. */
const DAEMON_CHILD_ENV = 'TCPCOPY_INTERCEPT_DAEMON_CHILD';
const DAEMON_START_TIMEOUT_MS = 15_000;

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

type Logger = (level: 'info' | 'warn' | 'debug', message: string) => void;

function openLog(file: string | null, verbose: boolean): Logger {
  let fd = 2;
  if (file) {
    try {
      fd = fs.openSync(file, 'a');
    } catch (err) {
      throw new UsageError(`cannot open log file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} ` +
        '(check the directory exists and is writable, or change -l)');
    }
  }
  return (level, message) => {
    if (level === 'debug' && !verbose) return;
    try {
      fs.writeSync(fd, `${new Date().toISOString()} ${level} ${message}\n`);
    } catch {
      // A full disk or a closed stderr must not take the capture down.
    }
  };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Refuses to start over the pid file of a running process. */
function checkPidFile(file: string): void {
  let old = NaN;
  try {
    old = Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    return; // no pid file: fine
  }
  if (Number.isInteger(old) && old > 0 && old !== process.pid && pidAlive(old)) {
    throw new UsageError(`pid file ${file} names running process ${old} (another intercept? stop it, or use another -P)`);
  }
}

function writePidFile(file: string): void {
  checkPidFile(file);
  try {
    fs.writeFileSync(file, `${process.pid}\n`);
  } catch (err) {
    throw new UsageError(`cannot write pid file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (fix -P)`);
  }
}

function removePidFile(file: string | null): void {
  if (!file) return;
  try {
    if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
  } catch {
    // Already gone.
  }
}

function statsLine(s: InterceptStats, capture: LiveCapture): string {
  const c = capture.stats();
  return `stats: captured ${s.captured} (capture saw ${c.packets}), routed ${s.routed}, held ${s.held} ` +
    `(${s.heldDelivered} delivered, ${s.holding} holding), unmatched ${s.unmatched}, dropped ${s.dropped}, ` +
    `passed ${s.passed}, malformed ${s.malformed + s.notIpv4}; routes ${s.routes} (+${s.routesAdded} ` +
    `-${s.routesRemoved}, ${s.routesEvicted} evicted); tcpcopys ${s.clients}; ${s.batches} writes, ${s.bytesSent} bytes`;
}

/** Prints the one-line error and exits. */
function fail(message: string, code: number): never {
  process.stderr.write(`intercept: ${message}\n`);
  process.exit(code);
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
 * Daemon mode, parent side: start this same command detached, with stdout/stderr on the log,
 * wait until it says it runs (or why it could not start), report that and return.
 */
function daemonize(argv: string[], s: Settings): Promise<never> {
  const logFile = s.logFile ?? path.resolve('intercept.log');
  let fd: number;
  try {
    fd = fs.openSync(logFile, 'a');
  } catch (err) {
    fail(`cannot open log file ${logFile}: ${(err as NodeJS.ErrnoException).code} (check the directory, or change -l)`, 2);
  }
  const script = process.argv[1];
  // Paths are made absolute: the daemon runs in / so that it does not pin the current directory.
  const args = [...process.execArgv, script, ...argv, '--log', logFile];
  if (s.pidFile) args.push('--pid-file', s.pidFile);
  const child = spawn(process.execPath, args, {
    detached: true,
    cwd: '/',
    stdio: ['ignore', fd, fd, 'ipc'],
    env: { ...process.env, [DAEMON_CHILD_ENV]: '1' },
  });
  return new Promise<never>(() => {
    const timer = setTimeout(() => {
      fail(`the daemon (pid ${child.pid}) did not report within ${DAEMON_START_TIMEOUT_MS / 1000} s; see ${logFile}`, 1);
    }, DAEMON_START_TIMEOUT_MS);
    child.on('message', (m: { ready?: string; error?: string; code?: number }) => {
      clearTimeout(timer);
      if (m.error !== undefined) fail(m.error, m.code ?? 2);
      process.stdout.write(`${m.ready}\nintercept: running as a daemon, pid ${child.pid}, log in ${logFile}\n`);
      child.disconnect();
      child.unref();
      process.exit(0);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      fail(`the daemon exited while starting (${signal ?? `exit code ${code}`}); see ${logFile}`, 1);
    });
  });
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
    fail(message, code);
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
    await daemonize(argv, settings);
    return;
  }

  let log: Logger;
  let capture: LiveCapture | null = null;
  let server: InterceptServer | null = null;
  try {
    if (settings.pidFile) checkPidFile(settings.pidFile);
    log = openLog(settings.logFile, settings.verbose);
    server = new InterceptServer({ port: settings.port, host: settings.bind, passlist: settings.passlist, log });
    capture = new LiveCapture({ device: settings.devices, filter: settings.filter, bufferSize: settings.bufferBytes });
    capture.start(server.onCapturedFrame);
    for (const w of capture.warnings) log('warn', w);
    await server.listen();
    if (settings.pidFile) writePidFile(settings.pidFile);
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
