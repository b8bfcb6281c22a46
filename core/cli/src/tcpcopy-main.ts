import { Command, CommanderError, Option } from 'commander';
import * as fs from 'node:fs';
import {
  InterceptClient,
  OptionError,
  PcapFormatError,
  PcapReader,
  ProtocolLoadError,
  RawSocketSink,
  ReplayEngine,
  Tokens,
  TransferTable,
  createReplayContainer,
  loadProtocol,
  parseProtocolOptions,
  parseClientAddresses,
  parseTransfers,
  replayOffline,
  type EngineConfig,
} from '@tcpcopy/core';

/** A user error: printed as one line, exit code 2. */
class UsageError extends Error {}

function positive(name: string, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > max) {
      throw new UsageError(`${name} ${value}: expected a number above 0, at most ${max}`);
    }
    return n;
  };
}

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new UsageError(`${name} ${value}: expected a whole number from ${min} to ${max}`);
    }
    return Number(value);
  };
}

export function buildCommand(): Command {
  return new Command('tcpcopy')
    .description(
      'Replays captured client traffic to a target server as live TCP sessions.\n' +
        'The target must route its replies for the client addresses to the host running intercept.\n' +
        'Example: tcpcopy -i capture.pcap -x 80-198.51.100.30:80 -s 198.51.100.40 -c 203.0.113.x',
    )
    .requiredOption('-i, --input <file>', 'pcap file to replay (classic pcap: Ethernet, Linux cooked or raw IP)')
    .requiredOption(
      '-x, --transfer <spec>',
      'what to replay where: [onlineIP:]onlinePort-targetIP:targetPort, several separated by commas',
    )
    .requiredOption('-s, --intercept <host[:port],...>', 'intercept server(s) that return the target\'s replies')
    .option('-p, --intercept-port <port>', 'intercept port when -s gives none', integer('-p', 1, 65535), 36524)
    .option('-c, --client-ip <list>', 'fake client addresses, e.g. 203.0.113.5,203.0.113.6 or 203.0.113.x (.1-.254)')
    .option('-a, --speed <factor>', 'replay this many times faster than captured', positive('-a', 1_000_000), 1)
    .option('-I, --max-gap <ms>', 'cut idle gaps in the capture longer than this many ms', integer('-I', 0, 86_400_000), 0)
    .option('-T, --times <n>', 'replay the file this many times; each pass uses other client ports', integer('-T', 1, 1_000_000), 1)
    .option('-O, --only-full', 'replay only connections whose handshake is in the capture (no faked handshakes)')
    .option('-t, --session-timeout <s>', 'give a session up when the target owes an answer this long', positive('-t'), 120)
    .option('-k, --keepalive-timeout <s>', 'close a session idle this long (default: -t + 120)', positive('-k'))
    .option('-M, --mtu <bytes>', 'largest IP packet sent to the target; bigger captured segments are split', integer('-M', 68, 65535), 1500)
    .option('-D, --mss <bytes>', 'MSS offered in faked handshakes', integer('-D', 64, 65495), 1460)
    .option('--protocol <name>', 'protocol module: a built-in name (raw, http), a path, or an npm package name', 'raw')
    .option('--protocol-opt <key=value>', 'an option for the protocol module (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--protocol-config <file>', 'protocol options as a JSON object (--protocol-opt adds to it)')
    .option('--tail-timeout <s>', 'after the capture ends, wait this long for sessions to finish', positive('--tail-timeout'), 30)
    .option('--gate-idle <ms>', 'release held requests once the target is quiet this long', integer('--gate-idle', 1, 600_000), 500)
    .option('--summary <format>', 'print a summary at the end: text or json', 'text')
    .option('-l, --log <file>', 'write warnings and the summary to this file instead of stderr')
    .addOption(new Option('-v, --verbose', 'report every warning, not only the first ones'))
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
}

function parseIntercepts(spec: string, defaultPort: number): Array<{ host: string; port: number }> {
  return spec.split(',').map((item) => {
    const part = item.trim();
    const m = /^([^:]+)(?::(\d+))?$/.exec(part);
    if (!m) throw new UsageError(`-s ${part}: expected host or host:port`);
    const port = m[2] ? Number(m[2]) : defaultPort;
    if (port < 1 || port > 65535) throw new UsageError(`-s ${part}: port outside 1-65535`);
    return { host: m[1], port };
  });
}

export async function main(argv: string[]): Promise<void> {
  const program = buildCommand();
  let log: (line: string) => void = (line) => process.stderr.write(`tcpcopy: ${line}\n`);
  try {
    try {
      program.parse(argv, { from: 'user' });
    } catch (err) {
      if (err instanceof CommanderError) {
        if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') {
          process.stdout.write(program.helpInformation());
          process.exit(0);
        }
        throw new UsageError(`${err.message.replace(/^error: /, '')} (see tcpcopy --help)`);
      }
      throw err;
    }
    const o = program.opts();
    if (o.log) {
      const fd = fs.openSync(o.log, 'a');
      log = (line) => fs.writeSync(fd, `${new Date().toISOString()} ${line}\n`);
    }
    // Check the capture before anything touches the network.
    const reader = PcapReader.open(o.input);
    const transfers = new TransferTable(parseTransfers(o.transfer));
    const clientAddresses = o.clientIp !== undefined ? parseClientAddresses(o.clientIp) : [];
    if (o.summary !== 'text' && o.summary !== 'json') throw new UsageError(`--summary ${o.summary}: expected text or json`);
    const intercepts = parseIntercepts(o.intercept, o.interceptPort);
    const protocol = loadProtocol(o.protocol, parseProtocolOptions(o.protocolOpt, o.protocolConfig));
    const config: Partial<EngineConfig> = {
      sessionTimeoutMs: o.sessionTimeout * 1000,
      keepaliveTimeoutMs: (o.keepaliveTimeout ?? o.sessionTimeout + 120) * 1000,
      gateIdleMs: o.gateIdle,
      mtu: o.mtu,
      mss: o.mss,
      onlyFullSessions: !!o.onlyFull,
    };
    let warnings = 0;
    const warn = (m: string): void => {
      if (o.verbose || warnings++ < 20) log(m);
    };

    const sink = new RawSocketSink(warn);
    let engine: ReplayEngine | undefined;
    const channel = new InterceptClient({
      servers: intercepts,
      onReply: (pkt, payloadLength, data) => engine?.handleReply(pkt, payloadLength, data),
      onBatch: () => engine?.flush(),
      onError: (message) => log(message),
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
    engine = parts.resolve(Tokens.ReplayEngine);

    const stop = (): void => {
      log('interrupted: closing sessions');
      engine?.closeAll();
      channel.close();
      sink.close();
      process.exit(130);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);

    const started = performance.now();
    const result = await replayOffline(engine, {
      file: reader,
      speed: o.speed,
      maxGapMs: o.maxGap,
      times: o.times,
      tailTimeoutMs: o.tailTimeout * 1000,
      warn,
    });
    const summary = {
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      passes: result.passes,
      capture: { ...result.capture },
      engine: { ...engine.stats },
      output: { ...sink.stats },
      intercept: channel.stats(),
    };
    if (o.summary === 'json') process.stdout.write(JSON.stringify(summary) + '\n');
    else log(formatSummary(summary));
    channel.close();
    sink.close();
    process.exit(0);
  } catch (err) {
    if (
      err instanceof UsageError ||
      err instanceof OptionError ||
      err instanceof PcapFormatError ||
      err instanceof ProtocolLoadError ||
      (err as Error)?.name === 'InterceptConnectError' ||
      /raw IP socket|raw-socket/.test((err as Error)?.message ?? '')
    ) {
      log((err as Error).message);
      process.exit(2);
    }
    log(`internal error: ${(err as Error)?.stack ?? err}`);
    process.exit(1);
  }
}

function formatSummary(s: {
  seconds: number;
  passes: number;
  capture: Record<string, unknown>;
  engine: Record<string, number>;
  output: Record<string, number>;
}): string {
  const e = s.engine;
  const c = s.capture as Record<string, number>;
  const skipped = (c.notIpv4 ?? 0) + (c.notTcp ?? 0) + (c.fragments ?? 0) + (c.malformed ?? 0) + (c.truncatedBySnaplen ?? 0);
  return (
    `passes ${s.passes}, ${s.seconds} s; sessions ${e.sessionsCreated}: closed ${e.sessionsCompleted}, ` +
    `reset ${e.sessionsAborted}, faked handshakes ${e.sessionsFakedHandshake}, handshake timeouts ${e.handshakeTimeouts}; ` +
    `sent ${e.packetsSent} packets, ${e.bytesSent} payload bytes, retransmitted ${e.retransmissions}; ` +
    `replies ${e.repliesReceived}; capture: ${c.tcpPackets} TCP packets, ${skipped} skipped ` +
    `(not IPv4 ${c.notIpv4}, not TCP ${c.notTcp}, fragments ${c.fragments}, malformed ${c.malformed}, cut by snaplen ${c.truncatedBySnaplen})`
  );
}
