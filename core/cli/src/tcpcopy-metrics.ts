// tcpcopy's Prometheus metrics (tcpcopy_*), read from the replay's counters when scraped.
import type { ReplaySummary } from '@tcpcopy/core';
import type { Registry } from 'prom-client';
import { counterFrom, gaugeFrom, processRegistry, type Samples } from './metrics';

/**
 * The registry of tcpcopy's metrics. `read` returns the counters now, or null before the replay runs
 * (the metrics then have no samples yet, only the process's).
 */
export function tcpcopyMetrics(read: () => ReplaySummary | null): Registry {
  const r = processRegistry('tcpcopy_');
  const from = <T>(pick: (s: ReplaySummary) => T | null): (() => T | null) => () => {
    const s = read();
    return s ? pick(s) : null;
  };
  const counter = (name: string, help: string, pick: (s: ReplaySummary) => Samples, labels?: string[]) =>
    counterFrom(r, `tcpcopy_${name}`, help, from(pick) as () => Samples, labels);
  const gauge = (name: string, help: string, pick: (s: ReplaySummary) => Samples) =>
    gaugeFrom(r, `tcpcopy_${name}`, help, from(pick) as () => Samples);

  counter('captured_packets_total', 'TCP packets the capture delivered (file or live)', (s) => s.capture.tcpPackets);
  counter('capture_dropped_packets_total', 'packets the kernel dropped before the raw socket read them (absent when libpcap or a file captures)',
    (s) => (s.capture.kernelDrops >= 0 ? s.capture.kernelDrops : null));
  counter('capture_holes_total', 'holes in captured client streams (packets the capture lost) skipped', (s) => s.engine.captureGaps);
  counter('capture_hole_bytes_total', 'bytes of those holes', (s) => s.engine.captureGapBytes);
  counter('refused_memory_packets_total', 'captured packets of new connections left out near the -m limit', (s) => s.engine.capturedRefusedMemory);

  counter('sessions_total', 'sessions (replayed client connections) started', (s) => s.engine.sessionsCreated);
  gauge('sessions_active', 'sessions started and not ended yet',
    (s) => Math.max(0, s.engine.sessionsCreated - s.engine.sessionsCompleted - s.engine.sessionsAborted));
  counter('sessions_closed_total', 'sessions ended by a close', (s) => s.engine.sessionsCompleted);
  counter('sessions_reset_total', 'sessions ended by a reset', (s) => s.engine.sessionsAborted);
  counter('sessions_idle_timeouts_total', 'sessions closed after -k of nothing to do', (s) => s.engine.idleTimeouts);
  counter('sessions_given_up_total', 'sessions given up, by reason', (s) => [
    [{ reason: 'handshake_timeout' }, s.engine.handshakeTimeouts],
    [{ reason: 'session_timeout' }, s.engine.sessionTimeouts],
    [{ reason: 'reconnects_given_up' }, s.engine.reconnectsGivenUp],
    [{ reason: 'protocol_refused' }, s.engine.sessionsRefused],
  ], ['reason']);
  counter('port_reuses_total', 'new client connections on the ports of a session still replaying (both replayed)',
    (s) => s.engine.portReuses);

  counter('packets_sent_total', 'packets sent to the target', (s) => s.engine.packetsSent);
  counter('payload_sent_bytes_total', 'payload bytes sent to the target', (s) => s.engine.bytesSent);
  counter('retransmissions_total', 'packets sent again (timeouts and fast retransmits)', (s) => s.engine.retransmissions);
  counter('send_errors_total', 'packets the output failed to send', (s) => s.output.failed);
  gauge('send_queued_packets', 'packets waiting in the output', (s) => s.output.queued);
  counter('replies_total', 'target replies received from intercept', (s) => s.engine.repliesReceived);
  counter('replies_unmatched_total', 'target replies that matched no session', (s) => s.engine.repliesUnmatched);
  // Protocols that frame requests: answered by the target, and online (as the capture shows; a pcap file).
  counter('requests_total', 'requests answered, by side: the target, or online (the capture)', (s) =>
    s.requests ? [[{ side: 'target' }, s.requests.requests.target], [{ side: 'online' }, s.requests.requests.online]] : null, ['side']);
  counter('request_statuses_total', 'requests answered, by side and status (HTTP code, MySQL OK/ERR)', (s) => s.requests
    ? (['target', 'online'] as const).flatMap((side) => Object.entries(s.requests!.status[side]).map(([status, n]) => [{ side, status }, n] as const))
    : null, ['side', 'status']);
  gaugeFrom(r, 'tcpcopy_request_latency_seconds', 'request to response, by side and quantile', from(latencies), ['side', 'quantile']);
  counter('protocol_events_total', 'the protocol module\'s own counters, by name', (s) => protocolCounters(s.protocol), ['protocol', 'counter']);

  gauge('intercept_channels_connected', 'connections to intercepts that are up', (s) => s.intercept.channelsConnected);
  counter('intercept_reconnects_total', 'intercept connections made again after a loss (-L)', (s) => s.intercept.reconnects);
  return r;
}

/** The latency percentiles of both sides, in seconds (none until a request was answered). */
function latencies(s: ReplaySummary): Samples {
  if (!s.requests) return null;
  const out: Array<readonly [Record<string, string>, number]> = [];
  for (const side of ['target', 'online'] as const) {
    const l = s.requests.latencyMs[side];
    for (const [quantile, ms] of [['0.5', l.p50], ['0.9', l.p90], ['0.99', l.p99]] as const) {
      if (ms !== null) out.push([{ side, quantile }, ms / 1000]);
    }
  }
  return out;
}

function protocolCounters(p: ReplaySummary['protocol']): Samples {
  return Object.entries(p)
    .filter((e): e is [string, number] => typeof e[1] === 'number')
    .map(([counter, value]) => [{ protocol: p.name, counter }, value] as const);
}
