import type { RouteRegistry } from '../intercept/route-registry';
import type { PacketSink } from '../output/packet-sink';
import type { SessionProtocol } from '../protocol/session-protocol';
import type { PacketBuilder, SegmentSpec } from '../rewrite/packet-builder';
import type { TimerWheel } from './timer-wheel';

/** Session-engine settings; the CLI's flags map onto these. Times in milliseconds. */
export interface EngineConfig {
  /** -t: give a session up when the target has not answered for this long while it owes an answer. */
  sessionTimeoutMs: number;
  /** -k: close a session that has had nothing to do for this long. */
  keepaliveTimeoutMs: number;
  /**
   * Give up a handshake after this long (--syn-retries: SYNs go again 1, 2, 4, 8... s apart, as a client's kernel
   * sends them, and the handshake is given up when the next one would go).
   */
  handshakeTimeoutMs: number;
  /** Release held client data when the target has been quiet this long (it answered shorter than the online server). */
  idleReleaseMs: number;
  /** -D: MSS offered in faked SYNs (captured SYNs keep the client's). */
  mss: number;
  /** -M: largest IP packet sent to the target; bigger captured segments are split. */
  mtu: number;
  /** -O: replay only connections whose SYN was captured. */
  onlyFullSessions: boolean;
  /** Keep a finished session this long to absorb late replies. */
  lingerMs: number;
  /** -n: replay every connection this many times at once, each copy on other client ports (1-1023). */
  copies: number;
  /** -f: moves every client port by factor × 2048, so several tcpcopy instances never share a port. */
  portFactor: number;
  /** -r: replay this percentage of connections (1-100), chosen per connection. */
  samplePercent: number;
  /** -g: ramp the sampled percentage up from 1 by 1 per second since the first packet. */
  gradual: boolean;
  /** -W: send every request without waiting for the previous response. */
  noWait: boolean;
  /** -H: the address that replaces a loopback client address (0: keep). */
  localAddress: number;
  /** A hole in the captured client stream (a packet the capture lost) is skipped after this long. */
  captureGapMs: number;
}

export const DEFAULT_ENGINE_CONFIG: EngineConfig = {
  sessionTimeoutMs: 120_000,
  keepaliveTimeoutMs: 240_000,
  handshakeTimeoutMs: 31_000, // --syn-retries 4: SYNs at 0, 1, 3, 7 and 15 s
  idleReleaseMs: 500,
  mss: 1460,
  mtu: 1500,
  onlyFullSessions: false,
  lingerMs: 2_000,
  copies: 1,
  portFactor: 0,
  samplePercent: 100,
  gradual: false,
  noWait: false,
  localAddress: 0,
  captureGapMs: 1_000,
};

/** Counters an engine keeps; every skip and give-up is counted, never silent. */
export class EngineStats {
  capturedPackets = 0;
  capturedUnmatched = 0;
  /** Captured packets of the online server to a replayed client (read by protocols that compare answers). */
  capturedOnlineReplies = 0;
  capturedSkippedNoSession = 0;
  capturedDuplicates = 0;
  /** Packets of new connections left out while memory was short (-m). */
  capturedRefusedMemory = 0;
  /** Connections left out by -r / -g sampling. */
  capturedSampledOut = 0;
  /** Holes in captured client streams (packets the capture lost) skipped, and their bytes. */
  captureGaps = 0;
  captureGapBytes = 0;
  sessionsCreated = 0;
  sessionsFakedHandshake = 0;
  sessionsCompleted = 0;
  sessionsAborted = 0;
  sessionsReconstructed = 0;
  /** Sessions given up after the target closed MAX_RECONNECTS connections with data left. */
  reconnectsGivenUp = 0;
  /** Connections the protocol would not resume (e.g. a login it never saw). */
  sessionsRefused = 0;
  handshakeTimeouts = 0;
  /** SYNs the target answered with an RST (nothing listening yet: a server down or restarting). */
  synsRefused = 0;
  sessionTimeouts = 0;
  idleTimeouts = 0;
  staleConnectionResets = 0;
  /**
   * New connections on the ports of a session still replaying (the client reused its port before the target
   * was done with the old one): the old session finishes on its own beside the new one.
   */
  portReuses = 0;
  portCollisionsAvoided = 0;
  packetsSent = 0;
  bytesSent = 0;
  retransmissions = 0;
  fastRetransmissions = 0;
  /** Zero-window probes sent (the target's window stayed shut with nothing in flight). */
  windowProbes = 0;
  repliesReceived = 0;
  repliesUnmatched = 0;
  idleReleases = 0;
  protocolFaults = 0;
}

/**
 * What a session needs from its engine.
 * @internal
 */
export interface EngineContext {
  readonly config: EngineConfig;
  readonly stats: EngineStats;
  readonly builder: PacketBuilder;
  readonly spec: SegmentSpec;
  readonly sink: PacketSink;
  readonly routes: RouteRegistry;
  readonly wheel: TimerWheel;
  readonly protocol: SessionProtocol;
  /** Our TCP timestamp clock (ms, wraps at 2^32): wall-clock based, so a later run's SYNs are newer than an earlier run's. */
  tsClock(now: number): number;
  /** Initial-sequence-number clock (4 µs ticks, RFC 6528 style): a later connection on the same ports starts after an earlier one. */
  isnClock(now: number): number;
  /** The session has ACKs to send: flushed once the current batch of replies is processed. */
  markAckPending(session: { flushAck(now: number): void }): void;
  /** The session queued a SYN: it is told when the SYN was handed out (synFlushed), for its timer. */
  synQueued(session: { synFlushed(now: number): void }): void;
  sessionFinished(session: object): void;
  warn(message: string): void;
  /** A handshake still without an answer a while after its first SYN: the first one of the run is told (its SYNs go on). */
  slowHandshake(connection: string, ms: number): void;
  /** A protocol's own message about a connection (kept apart from the engine's warnings). */
  protocolLog(message: string): void;
  /** A session that could not finish, and why (named in the summary; its counter is counted apart). */
  unfinished(connection: string, reason: UnfinishedReason): void;
}

/** Why a session could not finish. */
export type UnfinishedReason =
  | 'handshake timeout' | 'target refused' | 'session timeout' | 'reconnects given up' | 'protocol refused';

/** Sessions that could not finish, named (the first ones), and how many more there were. */
export interface UnfinishedSessions {
  sessions: Array<{ connection: string; reason: UnfinishedReason }>;
  more: number;
}
