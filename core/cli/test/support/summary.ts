// A replay's counters as replay() returns them, every counter 0 unless a test says otherwise: the input
// of the status line's and the metrics' specs.
import type { EngineStats, ReplaySummary } from '@tcpcopy/core';

const ENGINE_ZERO: EngineStats = {
  capturedPackets: 0, capturedUnmatched: 0, capturedOnlineReplies: 0, capturedSkippedNoSession: 0, capturedDuplicates: 0,
  capturedRefusedMemory: 0, capturedSampledOut: 0, captureGaps: 0, captureGapBytes: 0, sessionsCreated: 0,
  sessionsFakedHandshake: 0, sessionsCompleted: 0, sessionsAborted: 0, sessionsReconstructed: 0, reconnectsGivenUp: 0,
  sessionsRefused: 0, handshakeTimeouts: 0, synsRefused: 0, sessionTimeouts: 0, idleTimeouts: 0, staleConnectionResets: 0,
  portReuses: 0, portCollisionsAvoided: 0, packetsSent: 0, bytesSent: 0, retransmissions: 0,
  fastRetransmissions: 0, windowProbes: 0, repliesReceived: 0, repliesUnmatched: 0, idleReleases: 0, protocolFaults: 0,
};

export function summaryWith(over: {
  seconds?: number;
  engine?: Partial<EngineStats>;
  kernelDrops?: number;
  tcpPackets?: number;
  failed?: number;
  protocol?: ReplaySummary['protocol'];
  requests?: ReplaySummary['requests'];
} = {}): ReplaySummary {
  return {
    seconds: over.seconds ?? 1,
    live: true,
    capture: {
      records: 0, tcpPackets: over.tcpPackets ?? 0, notIpv4: 0, notTcp: 0, fragments: 0, malformed: 0, truncatedBySnaplen: 0,
      truncatedFileTail: false, kernelDrops: over.kernelDrops ?? -1,
    },
    engine: { ...ENGINE_ZERO, ...over.engine } as EngineStats,
    unfinished: { sessions: [], more: 0 },
    protocol: over.protocol ?? { name: 'raw' },
    ...(over.requests ? { requests: over.requests } : {}),
    output: { sent: 0, failed: over.failed ?? 0, queued: 0 },
    intercept: {
      intercepts: 1, connected: 1, channels: 2, channelsConnected: 2, repliesReceived: 0, repliesMalformed: 0, batches: 0,
      routesAdded: 0, routesRemoved: 0, routesDropped: 0, bytesReceived: 0, reconnects: 0, routesReregistered: 0,
    } as ReplaySummary['intercept'],
  };
}
