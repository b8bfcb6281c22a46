import * as fs from 'node:fs';
import { LiveCaptureError } from '../capture/cap-addon';
import { captureFilter } from '../capture/capture-filter';
import { CaptureStats } from '../capture/frame-decoder';
import { PcapLiveSource, RawSocketLiveSource, type LiveSource } from '../capture/live-source';
import { PcapFormatError } from '../capture/pcap-format';
import { PcapReader } from '../capture/pcap-reader';
import { createReplayContainer, Tokens } from '../container';
import { parseIpv4 } from '../decode/ip-address';
import { InterceptClient, InterceptConnectError, type InterceptChannelError } from '../intercept/intercept-client';
import type { PacketSink } from '../output/packet-sink';
import { PcapSink } from '../output/pcap-sink';
import { RawSocketSink } from '../output/raw-socket-sink';
import { DEFAULT_PROTOCOL } from '../protocol/protocol-driver';
import { loadProtocol, ProtocolLoadError } from '../protocol/protocol-loader';
import type { SessionProtocol } from '../protocol/session-protocol';
import { OptionError, parseClientAddresses, parseTransfers, TransferTable, type Transfer } from '../rewrite/address-map';
import type { EngineConfig } from '../session/engine-context';
import type { ReplayEngine } from '../session/replay-engine';
import { replayLive } from './live-replay';
import { replayOffline } from './offline-replay';
import { ReplayError, type ReplayErrorCode } from './replay-error';
import type { ReplayEnd, ReplayOptions, ReplaySummary } from './replay-options';

/** How long replay() waits for its intercepts to answer, ms. */
const CONNECT_TIMEOUT_MS = 5000;
const OFFLINE_ONLY = ['speed', 'maxGapMs', 'passes', 'tailTimeoutMs'] as const;
const LIVE_ONLY = ['capture', 'filter', 'bufferSize', 'snaplen', 'memoryLimitBytes'] as const;

/**
 * Replays a pcap file (`file`) or live traffic (`devices`, or every device) to a target, as the
 * tcpcopy command does, in one call: it checks the options, opens the file, the output and the
 * capture, connects to the intercepts, assembles the engine (in a tsyringe container, see
 * createReplayContainer), runs it, closes everything and resolves with the counters.
 *
 * Offline, the replay ends after the last pass; live, when `signal` aborts (or at the memory
 * limit). Either way it also ends when an intercept goes away without `keepRunning`, with end
 * `'intercept lost'`: without the intercept no reply comes back and every session would stall.
 *
 * @throws ReplayError (rejects with it) for bad options and what keeps the replay from starting:
 *   a pcap file that cannot be read, a protocol that does not load, no permission for the raw
 *   socket, a capture device that does not exist, an intercept that cannot be reached; `code` says
 *   which. Anything else is a bug.
 *
 * @example
 * const summary = await replay({
 *   file: 'online.pcap', transfers: '80-198.51.100.30:8080', intercepts: '198.51.100.40',
 *   clientAddresses: '203.0.113.x', speed: 10, warn: console.error,
 * });
 * console.log(summary.engine.sessionsCompleted);
 */
export async function replay(opts: ReplayOptions): Promise<ReplaySummary> {
  const offline = checkMode(opts);
  opts.signal?.throwIfAborted();
  const warn = opts.warn ?? ((): void => undefined);
  /** What was opened, closed in reverse order at the end (or when set-up fails). */
  const opened: Array<() => unknown> = [];
  const closeOpened = async (): Promise<void> => {
    for (const close of opened.reverse()) {
      try {
        await close();
      } catch {
        // Closing what failed to open, or is closed already.
      }
    }
  };
  // Ends the running replay: the caller's signal, or the loss of an intercept.
  const stopper = new AbortController();
  const stop = (): void => stopper.abort();
  let statsTimer: NodeJS.Timeout | null = null;
  try {
    // Everything that can be checked is checked before the network is touched.
    const reader = offline ? as('PCAP_FILE', isPcapError, () => PcapReader.open(opts.file!)) : null;
    if (reader) opened.push(() => reader.close());
    const transferList: readonly Transfer[] = typeof opts.transfers === 'string'
      ? as('BAD_OPTION', isOptionError, () => parseTransfers(opts.transfers as string))
      : opts.transfers;
    const transfers = new TransferTable(transferList);
    const clientAddresses = typeof opts.clientAddresses === 'string'
      ? as('BAD_OPTION', isOptionError, () => parseClientAddresses(opts.clientAddresses as string))
      : opts.clientAddresses ?? [];
    const config: Partial<EngineConfig> = { ...opts.engine };
    if (opts.localAddress !== undefined) config.localAddress = localAddress(opts.localAddress);
    const protocol = resolveProtocol(opts);

    const ownSink = opts.sink === undefined;
    const sink: PacketSink = opts.sink ?? as('OUTPUT', isOutputError, () =>
      opts.outputDevice !== undefined ? new PcapSink(opts.outputDevice, transferList, warn) : new RawSocketSink(warn));
    if (ownSink) opened.push(() => sink.close());

    let engine: ReplayEngine | undefined;
    let source: LiveSource | null = null;
    if (!offline) {
      const live = openLiveSource(opts, transferList, warn);
      source = live;
      opened.push(() => live.close());
      // Capture starts now, so that a bad device or filter is reported before the network is touched;
      // packets that come before the engine is ready are not replayed.
      as('CAPTURE', isCaptureError, () => live.start({
        handleCaptured: (pkt, now) => engine?.handleCaptured(pkt, now),
        flush: (now) => engine?.flush(now),
      }));
    }

    let lost = false;
    const onInterceptError = opts.onInterceptError ?? ((message: string): void => warn(message));
    const channel = as('BAD_OPTION', (e) => e instanceof RangeError, () => new InterceptClient({
      servers: opts.intercepts,
      defaultPort: opts.interceptPort,
      channelsPerIntercept: opts.channelsPerIntercept,
      keepRunning: !!opts.keepRunning,
      secret: opts.interceptSecret,
      onReply: (pkt, payloadLength, data) => engine?.handleReply(pkt, payloadLength, data),
      onBatch: () => engine?.flush(),
      onError: (message: string, err: InterceptChannelError) => {
        onInterceptError(message, err);
        // Without keepRunning no reply comes back any more: every session would only stall, so the replay ends.
        if (!opts.keepRunning && !lost) {
          lost = true;
          stop();
        }
      },
    }));
    opened.push(() => channel.close());
    try {
      await untilAborted(channel.connect(CONNECT_TIMEOUT_MS), opts.signal);
    } catch (err) {
      if (err instanceof InterceptConnectError) throw new ReplayError('INTERCEPT', err.message, { cause: err });
      throw err;
    }

    const parts = createReplayContainer();
    parts.registerInstance(Tokens.PacketSink, sink);
    parts.registerInstance(Tokens.TransferTable, transfers);
    parts.registerInstance(Tokens.RouteRegistry, channel);
    parts.registerInstance(Tokens.SessionProtocol, protocol);
    parts.registerInstance(Tokens.EngineConfig, config);
    parts.registerInstance(Tokens.ClientAddresses, clientAddresses);
    parts.registerInstance(Tokens.Warn, warn);
    if (opts.protocolLog) parts.registerInstance(Tokens.ProtocolLog, opts.protocolLog);
    const eng = parts.resolve(Tokens.ReplayEngine);
    engine = eng;

    const started = performance.now();
    let capture: CaptureStats = source ? source.stats : new CaptureStats();
    const summary = (extra: Pick<ReplaySummary, 'passes' | 'live' | 'end'>): ReplaySummary => ({
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      ...extra,
      capture: { ...(source ? source.stats : capture) },
      engine: { ...eng.stats },
      unfinished: { sessions: [...eng.unfinishedSessions.sessions], more: eng.unfinishedSessions.more },
      protocol: { name: protocol.name, ...protocol.stats?.() },
      ...(protocol.requestStats ? { requests: protocol.requestStats() } : {}),
      output: { ...sink.stats },
      intercept: channel.stats(),
    });

    opts.signal?.throwIfAborted();
    opts.onReady?.({
      mode: offline ? 'offline' : 'live',
      transfers: transfers.describe(),
      intercepts: channel.addresses.map((a) => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`)),
      protocol: protocol.name,
      ...(source ? { capture: source.describe() } : {}),
      stats: () => summary(offline ? {} : { live: true }),
    });

    const onStats = opts.onStats;
    if (onStats && opts.statsIntervalMs) {
      statsTimer = setInterval(() => {
        try {
          onStats(summary(offline ? {} : { live: true }));
        } catch (err) {
          warn(`onStats failed: ${(err as Error)?.message ?? err}`);
        }
      }, opts.statsIntervalMs);
    }
    if (opts.signal?.aborted) stop();
    else opts.signal?.addEventListener('abort', stop, { once: true });

    if (reader) {
      const result = await replayOffline(eng, {
        file: reader,
        speed: opts.speed,
        maxGapMs: opts.maxGapMs,
        times: opts.passes,
        tailTimeoutMs: opts.tailTimeoutMs,
        warn,
        signal: stopper.signal,
        onCapture: (stats) => (capture = stats),
      }).catch((err: unknown) => {
        throw isPcapError(err) ? new ReplayError('PCAP_FILE', (err as Error).message, { cause: err }) : err;
      });
      capture = result.capture;
      const end: ReplayEnd = lost ? 'intercept lost' : result.stopped ? 'stopped' : 'finished';
      return summary({ passes: result.passes, end });
    }

    const live = replayLive(eng, source!, { sourceStarted: true, memoryLimitBytes: opts.memoryLimitBytes, warn });
    if (stopper.signal.aborted) live.stop();
    else stopper.signal.addEventListener('abort', () => live.stop(), { once: true });
    const how = await live.done;
    return summary({ live: true, end: lost ? 'intercept lost' : how });
  } finally {
    if (statsTimer) clearInterval(statsTimer);
    opts.signal?.removeEventListener('abort', stop);
    await closeOpened();
  }
}

/** Offline when a file is given; refuses the options of the other mode. */
function checkMode(o: ReplayOptions): boolean {
  const offline = o.file !== undefined;
  if (offline && o.devices !== undefined) {
    throw new ReplayError('BAD_OPTION', `give either a file (offline) or devices (live), not both (file ${o.file}, devices ${o.devices})`);
  }
  const wrong = (offline ? LIVE_ONLY : OFFLINE_ONLY).filter((k) => o[k] !== undefined);
  if (wrong.length > 0) {
    throw new ReplayError('BAD_OPTION', `${wrong.join(', ')} ${wrong.length > 1 ? 'apply' : 'applies'} only to ` +
      (offline ? `live replay, and this one replays the file ${o.file} (drop ${wrong.join(', ')}, or give devices instead)`
        : 'replay from a file (drop them, or give a file)'));
  }
  if (o.capture !== undefined && o.capture !== 'raw' && o.capture !== 'pcap') {
    throw new ReplayError('BAD_OPTION', `capture ${String(o.capture)}: expected raw or pcap`);
  }
  return offline;
}

/** -H, as a host-order number. */
function localAddress(value: string | number): number {
  const n = typeof value === 'string' ? parseIpv4(value) : value;
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new ReplayError('BAD_OPTION', `-H ${value}: not an IPv4 address`);
  }
  return n;
}

function resolveProtocol(o: ReplayOptions): SessionProtocol {
  if (typeof o.protocol === 'string') {
    const name = o.protocol;
    return as('PROTOCOL', (e) => e instanceof ProtocolLoadError, () =>
      loadProtocol(name, o.protocolOptions ?? {}, { builtIns: o.protocolNames, from: o.protocolFrom }));
  }
  const protocol = o.protocol ?? DEFAULT_PROTOCOL;
  if (o.protocolOptions && Object.keys(o.protocolOptions).length > 0) {
    throw new ReplayError('BAD_OPTION', `protocolOptions apply to a protocol given by name (protocol ${protocol.name} is a module already)`);
  }
  return protocol;
}

/** The live capture: an IP raw socket, or libpcap (a filter or a snaplen implies it). */
function openLiveSource(o: ReplayOptions, transfers: readonly Transfer[], warn: (message: string) => void): LiveSource {
  const how = o.capture ?? (o.filter !== undefined || o.snaplen !== undefined ? 'pcap' : 'raw');
  if (how === 'raw') {
    if (o.filter !== undefined) throw new ReplayError('BAD_OPTION', '-F applies to libpcap capture only (drop it, or leave out --capture raw)');
    if (o.snaplen !== undefined) throw new ReplayError('BAD_OPTION', '-S applies to libpcap capture only (drop it, or leave out --capture raw)');
    if (o.devices !== undefined) checkDevices(o.devices);
    return new RawSocketLiveSource({ receiveBuffer: o.bufferSize, transfers, holdMs: o.captureHoldMs, warn });
  }
  if (o.captureHoldMs !== undefined) {
    throw new ReplayError('BAD_OPTION', '--capture-hold applies to raw socket capture only (drop it, or drop --capture pcap, -F and -S)');
  }
  return as('CAPTURE', isCaptureError, () => new PcapLiveSource({
    device: o.devices ?? 'any',
    filter: o.filter ?? captureFilter(transfers),
    bufferSize: o.bufferSize,
    snaplen: o.snaplen,
    warn,
  }));
}

/** The raw socket takes every device's packets; the devices named must exist all the same. */
function checkDevices(list: string): void {
  for (const dev of list.split(',').map((d) => d.trim())) {
    if (dev !== 'any' && !fs.existsSync(`/sys/class/net/${dev}`)) {
      const names = fs.readdirSync('/sys/class/net').sort().join(', ');
      const message = `no network device "${dev}" (pick one of ${names}; see \`ip link\`)`;
      throw new ReplayError('CAPTURE', message, { cause: new LiveCaptureError('NO_DEVICE', message, dev) });
    }
  }
}

/** Runs `fn`; an error that `is` accepts becomes a ReplayError with `code` and the same message. */
function as<T>(code: ReplayErrorCode, is: (err: unknown) => boolean, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (is(err)) throw new ReplayError(code, (err as Error).message, { cause: err });
    throw err;
  }
}

/** `promise`, or the signal's reason once it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

const isPcapError = (e: unknown): boolean => e instanceof PcapFormatError;
const isOptionError = (e: unknown): boolean => e instanceof OptionError;
const isCaptureError = (e: unknown): boolean => e instanceof LiveCaptureError;
/**
 * The outputs' own errors: a LiveCaptureError from the data-link device, or a plain Error saying
 * the raw socket cannot be opened or the MACs are missing (a TypeError and the like are bugs).
 */
const isOutputError = (e: unknown): boolean => e instanceof LiveCaptureError || (e instanceof Error && e.constructor === Error);
