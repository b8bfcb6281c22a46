import { Command, CommanderError } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  InterceptClient,
  LiveCaptureError,
  OptionError,
  PcapFormatError,
  PcapLiveSource,
  PcapReader,
  PcapSink,
  ProtocolLoadError,
  RawSocketLiveSource,
  RawSocketSink,
  Tokens,
  TransferTable,
  captureFilter,
  createReplayContainer,
  loadProtocol,
  parseClientAddresses,
  parseIpv4,
  parseProtocolOptions,
  parseTransfers,
  replayLive,
  replayOffline,
  type CaptureStats,
  type EngineConfig,
  type LiveSource,
  type PacketSink,
  type ReplayEngine,
} from '@tcpcopy/core';
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
import { BUILT_IN_PROTOCOLS } from './built-in-protocols';

const COMMAND = 'tcpcopy';
const DAEMON_CHILD_ENV = daemonChildEnv(COMMAND);
/** Exit code when -m stopped the replay. */
const EXIT_MEMORY = 3;
/** Warnings shown (without -v) from each source: the engine and the protocol module. */
const WARNING_BUDGET = 50;

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
        'Offline: tcpcopy -i online.pcap -x 80-198.51.100.30:80 -s 198.51.100.40 -c 203.0.113.x -a 10',
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
    .option('-k, --keepalive-timeout <s>', 'close a session idle this long (default: -t + 120)', number('-k', 1, 864_000, false))
    .option('-M, --mtu <bytes>', 'largest IP packet sent to the target; bigger captured segments are split', number('-M', 68, 65535), 1500)
    .option('-D, --mss <bytes>', 'MSS offered in faked handshakes', number('-D', 64, 65495), 1460)
    .option('-m, --memory-limit <MB>', 'live: stop cleanly before this process uses this much memory (new connections are refused near it)', number('-m', 16, 1_048_576), 1024)
    .option('-o, --output-device <dev>', 'send at the data link layer through libpcap on this Ethernet device (MACs in -x) instead of a raw IP socket')
    .option('-F, --filter <bpf>', 'live: pcap filter for the client packets (default: built from -x)')
    .option('-B, --buffer-size <MiB>', 'live: kernel capture buffer per device', number('-B', 1, 2047), 64)
    .option('-S, --snaplen <bytes>', 'live: bytes of each packet captured', number('-S', 160, 262144), 65535)
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
    .option('--gate-idle <ms>', 'release held requests once the target is quiet this long', number('--gate-idle', 1, 600_000), 500)
    .option('--summary <format>', 'print the counters at the end: text or json', 'text')
    .option('--stats-interval <s>', 'live: log the counters every this many seconds (0: never)', number('--stats-interval', 0, 86_400), 30)
    .option('-l, --log <file>', 'append warnings and statistics to this file instead of stderr')
    .option('-d, --daemon', 'run in the background, logging to -l (default ./tcpcopy.log)')
    .option('-P, --pid-file <file>', 'write the process id to this file while running')
    .option('-v, --verbose', 'report every warning, not only the first ones')
    .version(cliVersion(), '--version', 'print the version')
    .helpOption('-h, --help', 'show this help')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
}

interface Settings {
  offline: boolean;
  config: Partial<EngineConfig>;
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
  // -m guards the online host's memory during live capture; replayOffline has no such guard.
  const wrong = (offline ? ['filter', 'bufferSize', 'snaplen', 'capture', 'statsInterval', 'memoryLimit'] : ['speed', 'maxGap', 'times', 'tailTimeout']).filter(given);
  if (wrong.length) {
    const flag: Record<string, string> = {
      filter: '-F', bufferSize: '-B', snaplen: '-S', capture: '--capture', statsInterval: '--stats-interval', memoryLimit: '-m',
      speed: '-a', maxGap: '-I', times: '-T', tailTimeout: '--tail-timeout',
    };
    const list = wrong.map((w) => flag[w]).join(', ');
    throw new UsageError(`${list} ${wrong.length > 1 ? 'apply' : 'applies'} only to ${offline ? 'live capture' : 'a pcap file'}, and -i ${input} is ${offline ? 'a file' : 'a device'} ` +
      `(drop ${list}, or give -i ${offline ? 'a device' : 'a pcap file'})`);
  }
  return offline;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildCommand();
  const daemonChild = process.env[DAEMON_CHILD_ENV] === '1';
  delete process.env[DAEMON_CHILD_ENV];
  const startupFailure = (message: string, code: number): never => {
    if (daemonChild && process.send) {
      process.send({ error: message, code }, () => process.exit(code));
      return undefined as never;
    }
    fail(COMMAND, message, code);
  };
  let log: Logger = (_level, message) => process.stderr.write(`${COMMAND}: ${message}\n`);

  try {
    try {
      program.parse(argv, { from: 'user' });
    } catch (err) {
      if (err instanceof CommanderError) {
        if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help') process.exit(0);
        if (err.code === 'commander.version') process.exit(0); // commander printed it
        throw new UsageError(`${err.message.replace(/^error: /, '')} (see tcpcopy --help)`);
      }
      throw err;
    }
    const o = program.opts();
    const given = (name: string) => program.getOptionValueSource(name) === 'cli';
    const offline = mode(o, given);
    if (o.summary !== 'text' && o.summary !== 'json') throw new UsageError(`--summary ${o.summary}: expected text or json`);
    const capture = o.capture ?? (given('filter') || given('snaplen') ? 'pcap' : 'raw');
    if (capture !== 'pcap' && capture !== 'raw') throw new UsageError(`--capture ${o.capture}: expected raw or pcap`);
    const logFile = o.log ? path.resolve(o.log) : null;
    const pidFile = o.pidFile ? path.resolve(o.pidFile) : null;
    if (o.daemon && !daemonChild) {
      await daemonize(COMMAND, argv, logFile, pidFile);
      return;
    }
    if (logFile) log = openLog(logFile, !!o.verbose);
    if (pidFile) checkPidFile(pidFile, COMMAND);

    // Everything that can be checked is checked before the network is touched.
    const reader = offline ? PcapReader.open(o.input) : null;
    const transferList = parseTransfers(o.transfer);
    const transfers = new TransferTable(transferList);
    const clientAddresses = o.clientIp !== undefined ? parseClientAddresses(o.clientIp) : [];
    let localAddress = 0;
    if (o.localAddress !== undefined) {
      localAddress = parseIpv4(o.localAddress);
      if (localAddress < 0) throw new UsageError(`-H ${o.localAddress}: not an IPv4 address`);
    }
    const protocolOpts = [...o.protocolOpt];
    if (o.mysqlUser.length > 0) {
      if (o.protocol !== 'mysql') throw new UsageError(`--mysql-user applies only to --protocol mysql (add --protocol mysql, or drop --mysql-user)`);
      for (const u of o.mysqlUser) protocolOpts.push(`user=${u}`);
    }
    const protocol = loadProtocol(o.protocol, parseProtocolOptions(protocolOpts, o.protocolConfig), { builtIns: BUILT_IN_PROTOCOLS });
    const config: Partial<EngineConfig> = {
      sessionTimeoutMs: o.sessionTimeout * 1000,
      keepaliveTimeoutMs: (o.keepaliveTimeout ?? o.sessionTimeout + 120) * 1000,
      gateIdleMs: o.gateIdle,
      mtu: o.mtu,
      mss: o.mss,
      onlyFullSessions: !!o.onlyFull,
      copies: o.copies,
      portFactor: o.portFactor,
      samplePercent: o.percent,
      gradual: !!o.gradual,
      noWait: o.wait === false,
      localAddress,
    };
    // A budget per source, so that a chatty protocol never crowds out the engine's own warnings.
    const budget = (what: string): ((m: string) => void) => {
      let shown = 0;
      return (m) => {
        if (o.verbose || shown < WARNING_BUDGET) log('warn', m);
        else if (shown === WARNING_BUDGET) log('warn', `further ${what} not shown (-v shows them)`);
        shown++;
      };
    };
    const engineWarn = budget('warnings');
    const protocolWarn = budget(`messages of protocol ${protocol.name}`);
    const warn = engineWarn;

    const sink: PacketSink = o.outputDevice ? new PcapSink(o.outputDevice, transferList, warn) : new RawSocketSink(warn);
    let engine: ReplayEngine | undefined;
    let source: LiveSource | null = null;
    if (!offline) {
      if (capture === 'raw') {
        for (const flag of ['filter', 'snaplen'].filter(given)) {
          throw new UsageError(`${flag === 'filter' ? '-F' : '-S'} applies to libpcap capture only (drop it, or leave out --capture raw)`);
        }
        if (o.input !== undefined) checkDevices(o.input);
        source = new RawSocketLiveSource({ receiveBuffer: o.bufferSize * 2 ** 20, warn });
      } else {
        source = new PcapLiveSource({ device: o.input ?? 'any', filter: o.filter ?? captureFilter(transferList), bufferSize: o.bufferSize * 2 ** 20, snaplen: o.snaplen, warn });
      }
      // Capture starts now, so that a bad device or filter is reported before the network is touched;
      // packets that come before the engine is ready are not replayed.
      source.start({
        handleCaptured: (pkt, now) => engine?.handleCaptured(pkt, now),
        flush: (now) => engine?.flush(now),
      });
    }

    /** The intercept whose loss (without -L) ends the replay. */
    let lostIntercept: string | null = null;
    /** Ends the running replay when the intercept is lost; set once it runs. */
    let stopLost: (() => void) | undefined;
    const channel = new InterceptClient({
      servers: o.intercept,
      defaultPort: o.interceptPort,
      channelsPerIntercept: o.channels,
      keepRunning: !!o.keepRunning,
      onReply: (pkt, payloadLength, data) => engine?.handleReply(pkt, payloadLength, data),
      onBatch: () => engine?.flush(),
      onError: (message, err) => {
        log('warn', message);
        // Without -L no reply comes back any more: every session would only stall, so the replay ends.
        if (!o.keepRunning && lostIntercept === null) {
          lostIntercept = err.address;
          stopLost?.();
        }
      },
    });
    await channel.connect(5000);

    const parts = createReplayContainer();
    parts.registerInstance(Tokens.PacketSink, sink);
    parts.registerInstance(Tokens.TransferTable, transfers);
    parts.registerInstance(Tokens.RouteRegistry, channel);
    parts.registerInstance(Tokens.SessionProtocol, protocol);
    parts.registerInstance(Tokens.EngineConfig, config);
    parts.registerInstance(Tokens.ClientAddresses, clientAddresses);
    parts.registerInstance(Tokens.Warn, warn);
    parts.registerInstance(Tokens.ProtocolLog, protocolWarn);
    engine = parts.resolve(Tokens.ReplayEngine);
    const eng = engine;

    const started = performance.now();
    const summary = (capture: CaptureStats, extra: Record<string, unknown>) => ({
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      ...extra,
      capture: { ...capture },
      engine: { ...eng.stats },
      protocol: { name: protocol.name, ...protocol.stats?.() },
      output: { ...sink.stats },
      intercept: channel.stats(),
    });
    const report = (s: ReturnType<typeof summary>): void => {
      if (o.summary === 'json') process.stdout.write(JSON.stringify(s) + '\n');
      else log('info', formatSummary(s));
    };
    const lostLine = (): string =>
      `stopping: intercept at ${lostIntercept} is gone (start it again and rerun, or give -L to keep replaying and reconnect)`;
    const shutdown = async (code: number): Promise<never> => {
      await channel.close();
      sink.close();
      removePidFile(pidFile);
      process.exit(code);
    };

    if (offline && reader) {
      let interrupted = false;
      const stop = (): void => {
        if (interrupted) process.exit(130);
        interrupted = true;
        log('info', 'interrupted: closing sessions');
        eng.closeAll();
        void shutdown(130);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // replayOffline cannot be stopped from outside: close the sessions and exit, as on SIGINT.
      stopLost = () => {
        log('warn', lostLine());
        eng.closeAll();
        void shutdown(1);
      };
      if (lostIntercept) return stopLost();
      if (pidFile) writePidFile(pidFile, COMMAND);
      const result = await replayOffline(eng, {
        file: reader,
        speed: o.speed,
        maxGapMs: o.maxGap,
        times: o.times,
        tailTimeoutMs: o.tailTimeout * 1000,
        warn,
      });
      report(summary(result.capture, { passes: result.passes }));
      await shutdown(0);
      return;
    }

    // Live.
    const live = replayLive(eng, source!, {
      sourceStarted: true,
      memoryLimitBytes: o.memoryLimit * 2 ** 20,
      statsIntervalMs: o.statsInterval * 1000,
      onStats: () => log('info', formatSummary(summary(source!.stats, { live: true }))),
      warn,
    });
    stopLost = () => live.stop();
    if (lostIntercept) live.stop();
    if (pidFile) writePidFile(pidFile, COMMAND);
    const ready = `${COMMAND}: replaying ${transfers.describe()} to intercept ${o.intercept}; capturing with ${source!.describe()}`;
    if (daemonChild && process.send) {
      process.send({ ready });
      process.disconnect?.();
    }
    if (!daemonChild || logFile) log('info', ready.replace(/^tcpcopy: /, ''));
    process.on('SIGINT', () => live.stop());
    process.on('SIGTERM', () => live.stop());
    const end = await live.done;
    if (lostIntercept) log('warn', lostLine());
    report(summary(source!.stats, { live: true, end: lostIntercept ? 'intercept lost' : end }));
    if (end === 'memory') {
      log('warn', `stopped at the -m limit of ${o.memoryLimit} MB (raise -m, or lower -n)`);
      await shutdown(EXIT_MEMORY);
    }
    await shutdown(lostIntercept ? 1 : 0);
  } catch (err) {
    const e = err as Error;
    const userError =
      err instanceof UsageError ||
      err instanceof OptionError ||
      err instanceof PcapFormatError ||
      err instanceof ProtocolLoadError ||
      err instanceof LiveCaptureError ||
      e?.name === 'InterceptConnectError' ||
      /raw IP socket|raw-socket|MACs in -x|send on/.test(e?.message ?? '');
    if (userError) startupFailure(e.message, 2);
    log('warn', `internal error: ${e?.stack ?? err}`);
    process.exit(1);
  }
}

/** The CLI package's version, as --version prints it. */
function cliVersion(): string {
  return (require('../../package.json') as { version: string }).version;
}

/** --capture raw takes every device's packets; the devices named must exist all the same. */
function checkDevices(list: string): void {
  for (const dev of list.split(',').map((d) => d.trim())) {
    if (dev !== 'any' && !fs.existsSync(`/sys/class/net/${dev}`)) {
      const names = fs.readdirSync('/sys/class/net').sort().join(', ');
      throw new UsageError(`no network device "${dev}" (pick one of ${names}; see \`ip link\`)`);
    }
  }
}

function formatSummary(s: {
  seconds: number; capture: Record<string, unknown>; engine: Record<string, number>; protocol: Record<string, unknown>; passes?: unknown;
}): string {
  const { name, ...counters } = s.protocol;
  const protocolPart = Object.keys(counters).length > 0
    ? `; ${name}: ${Object.entries(counters).map(([k, v]) => `${k} ${v}`).join(', ')}`
    : '';
  const e = s.engine;
  const c = s.capture as Record<string, number>;
  const skipped = (c.notIpv4 ?? 0) + (c.notTcp ?? 0) + (c.fragments ?? 0) + (c.malformed ?? 0) + (c.truncatedBySnaplen ?? 0);
  return (
    `${s.passes !== undefined ? `passes ${s.passes}, ` : ''}${s.seconds} s; sessions ${e.sessionsCreated}: closed ${e.sessionsCompleted}, ` +
    `reset ${e.sessionsAborted}, faked handshakes ${e.sessionsFakedHandshake}, handshake timeouts ${e.handshakeTimeouts}; ` +
    `sent ${e.packetsSent} packets, ${e.bytesSent} payload bytes, retransmitted ${e.retransmissions}; ` +
    `replies ${e.repliesReceived}; capture: ${c.tcpPackets} TCP packets, ${skipped} skipped ` +
    `(not IPv4 ${c.notIpv4}, not TCP ${c.notTcp}, fragments ${c.fragments}, malformed ${c.malformed}, cut by snaplen ${c.truncatedBySnaplen}), ` +
    `lost by the capture ${e.captureGaps} holes / ${e.captureGapBytes} bytes` +
    (c.kernelDrops >= 0 ? `, kernel drops ${c.kernelDrops}` : '') +
    protocolPart
  );
}
