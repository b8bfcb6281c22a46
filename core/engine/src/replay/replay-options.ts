import type { CaptureStats } from '../capture/frame-decoder';
import type { InterceptAddress, InterceptChannelError, InterceptClientStats } from '../intercept/intercept-client';
import type { PacketSink } from '../output/packet-sink';
import type { ProtocolNames } from '../protocol/protocol-loader';
import type { RequestStatsSnapshot } from '../protocol/request-stats';
import type { ProtocolOptions, SessionProtocol } from '../protocol/session-protocol';
import type { Transfer } from '../rewrite/address-map';
import type { EngineConfig, EngineStats, UnfinishedSessions } from '../session/engine-context';

/**
 * Everything a replay needs, as the tcpcopy command's options say it (the flag each field stands
 * for is named). Offline when `file` is given, live otherwise.
 */
export interface ReplayOptions {
  // ---- What is replayed, where to.

  /** -i FILE: the pcap file to replay (offline). */
  file?: string;
  /** -i DEV[,DEV]: live, the device(s) to capture on, or `any`. Default: every device. */
  devices?: string;
  /** -x: what is replayed where, as `[ip:]port[@mac]-ip:port[@mac],...` or parsed. Required. */
  transfers: string | readonly Transfer[];
  /** -s: the intercept(s), as `host[:port],...` or addresses. Required. */
  intercepts: string | ReadonlyArray<string | InterceptAddress>;
  /** -p: the intercept port when `intercepts` gives none (36524). */
  interceptPort?: number;
  /** -C: connections to each intercept (2). */
  channelsPerIntercept?: number;
  /**
   * --secret / TCPCOPY_SECRET: authenticate the intercept channel both ways with this shared
   * secret (challenge-response; see docs/intercept-protocol.md). Default: no authentication.
   */
  interceptSecret?: string | Buffer;
  /**
   * -L: an intercept that goes away (or is down at the start) is reconnected and the replay goes
   * on. Without it, the loss of an intercept ends the replay (end `'intercept lost'`).
   */
  keepRunning?: boolean;
  /** -c: fake client addresses, as `203.0.113.x` / `a,b,...` or host-order numbers. Default: the captured ones. */
  clientAddresses?: string | readonly number[];
  /** -H: the address that replaces a loopback client address, dotted or a host-order number. */
  localAddress?: string | number;

  // ---- How.

  /**
   * --protocol: a SessionProtocol, or the name, path or package of a protocol module, loaded with
   * `protocolOptions`. Names are looked up in `protocolNames` (the short names belong to the
   * caller: tcpcopy gives raw, http and mysql). Default: raw (byte counts only).
   */
  protocol?: SessionProtocol | string;
  /** --protocol-opt / --protocol-config: the options of a protocol given by name. */
  protocolOptions?: ProtocolOptions;
  /** Short protocol names and the modules they stand for, as `{ http: '@tcpcopy/protocol-http' }`. */
  protocolNames?: ProtocolNames;
  /** Where protocol paths and package names are resolved from. Default: the current directory. */
  protocolFrom?: string;
  /** The engine settings: -t, -k, -n, -f, -r, -g, -W, -O, -M, -D, --idle-release (as EngineConfig fields). */
  engine?: Partial<EngineConfig>;
  /** -o: send Ethernet frames through libpcap on this device (MACs in the transfers) instead of a raw IP socket. */
  outputDevice?: string;
  /** Where the rewritten packets go instead of a raw IP socket or `outputDevice`; replay() does not close it. */
  sink?: PacketSink;

  // ---- Offline only.

  /** -a: replay this many times faster than captured (1). */
  speed?: number;
  /** -I: cut idle gaps in the capture to this many ms (0: keep them). */
  maxGapMs?: number;
  /** -T: passes over the file (1); each pass uses other client ports. */
  passes?: number;
  /** --tail-timeout: after each pass, wait at most this long (ms) for sessions to finish (30000). */
  tailTimeoutMs?: number;

  // ---- Live only.

  /** --capture: an IP raw socket (`raw`, the default) or libpcap (`pcap`, implied by `filter` or `snaplen`). */
  capture?: 'raw' | 'pcap';
  /** -F: the libpcap filter. Default: built from the transfers. */
  filter?: string;
  /** -B: the raw socket's receive buffer, or libpcap's kernel buffer per device, bytes (64 MiB). */
  bufferSize?: number;
  /** -S: bytes of each packet libpcap captures (65535). */
  snaplen?: number;
  /**
   * --capture-hold: raw capture only. After a read that emptied the capture socket, how long it fills before the
   * next read, ms: a packet is replayed up to this much later, for far fewer wake-ups (0: every packet as it comes).
   * Default 5 (DEFAULT_CAPTURE_HOLD_MS).
   */
  captureHoldMs?: number;
  /** -m: near this many bytes of memory no new connection is replayed; at it the replay ends (end `'memory'`). Default: no limit. */
  memoryLimitBytes?: number;

  // ---- Reporting and control.

  /** --stats-interval: call `onStats` this often (ms; 0 or absent: never). */
  statsIntervalMs?: number;
  /** Called every `statsIntervalMs` with the counters so far (no `end` yet). */
  onStats?: (summary: ReplaySummary) => void;
  /**
   * Called once everything is set up (file open, output and capture open, intercepts connected),
   * just before the replay starts. An exception thrown here ends the replay before it starts:
   * replay() closes what it opened and rejects with it.
   */
  onReady?: (info: ReplayReadyInfo) => void;
  /** Warnings of the engine, the capture, the output and the drivers. Default: dropped. */
  warn?: (message: string) => void;
  /** Messages of the protocol module (Tokens.ProtocolLog). Default: with `warn`. */
  protocolLog?: (message: string) => void;
  /** The intercept channel's problems and recoveries (a loss, a reconnect with -L). Default: with `warn`. */
  onInterceptError?: (message: string, err: InterceptChannelError) => void;
  /**
   * Ends the replay: sessions are closed, intercepts disconnected, and replay() resolves with end
   * `'stopped'`. Aborted before the replay starts (while it is being set up), replay() rejects with
   * the signal's reason.
   */
  signal?: AbortSignal;
}

/**
 * How a replay ended: `finished` (offline: every pass done), `stopped` (the signal), `memory` (the
 * live memory limit), `intercept lost` (an intercept went away without keepRunning).
 */
export type ReplayEnd = 'finished' | 'stopped' | 'memory' | 'intercept lost';

/** What replay() hands to `onReady`. */
export interface ReplayReadyInfo {
  mode: 'offline' | 'live';
  /** The transfers, as -x writes them. */
  transfers: string;
  /** The intercepts connected to, host:port. */
  intercepts: string[];
  /** The protocol module's name. */
  protocol: string;
  /** Live: what captures where (the raw socket, or libpcap's devices and filter). */
  capture?: string;
  /**
   * The counters so far, read on demand (a status line, a metrics scrape): a fresh copy per call, as
   * onStats gets them; still answers after the replay ended.
   */
  stats(): ReplaySummary;
}

/**
 * The counters of a replay: what replay() resolves with, what onStats gets, and what
 * `tcpcopy --summary json` prints.
 */
export interface ReplaySummary {
  /** Seconds since the replay started. */
  seconds: number;
  /** Offline: passes over the file begun. */
  passes?: number;
  /** Live. */
  live?: true;
  /** How the replay ended (absent in onStats' summaries). */
  end?: ReplayEnd;
  /** What the capture (file or live) delivered and skipped. */
  capture: CaptureStats;
  /** The sessions' counters. */
  engine: EngineStats;
  /** The first sessions that could not finish, by client connection, and why; `more` counts the rest. */
  unfinished: UnfinishedSessions;
  /** The protocol module's name and its own counters. */
  protocol: { name: string } & Record<string, unknown>;
  /** Requests answered online and by the target, by status, with latencies: from a protocol that frames requests (SessionProtocol.requestStats). */
  requests?: RequestStatsSnapshot;
  /** Packets sent to the target, failed, queued. */
  output: PacketSink['stats'];
  /** The intercept channel. */
  intercept: InterceptClientStats;
}
