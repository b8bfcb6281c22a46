// intercept's Prometheus metrics (intercept_*), read from the server's and the capture's counters when scraped.
import type { InterceptStats, PacketSocketCaptureStats } from '@tcpcopy/core';
import type { Registry } from 'prom-client';
import { counterFrom, gaugeFrom, processRegistry } from './metrics';

export function interceptMetrics(stats: () => InterceptStats, capture: () => PacketSocketCaptureStats): Registry {
  const r = processRegistry('intercept_');
  const counter = (name: string, help: string, pick: (s: InterceptStats) => number) =>
    counterFrom(r, `intercept_${name}`, help, () => pick(stats()));
  const gauge = (name: string, help: string, pick: (s: InterceptStats) => number) =>
    gaugeFrom(r, `intercept_${name}`, help, () => pick(stats()));

  counterFrom(r, 'intercept_captured_packets_total', 'packets the capture sockets delivered', () => capture().packets);
  counterFrom(r, 'intercept_capture_kernel_drops_total', 'packets the kernel dropped because a capture socket\'s receive buffer (-B) was full',
    () => capture().drops);
  counterFrom(r, 'intercept_capture_truncated_packets_total', 'captured packets longer than a read slot, cut short', () => capture().truncated);
  counter('replies_total', 'target replies captured', (s) => s.captured);
  counter('replies_routed_total', 'replies sent to the tcpcopy that registered their connection', (s) => s.routed);
  counter('replies_held_total', 'replies held until their route arrived', (s) => s.held);
  counter('replies_unmatched_total', 'replies that never found a route', (s) => s.unmatched);
  counter('replies_dropped_total', 'replies dropped because their tcpcopy was backed up', (s) => s.dropped);
  counter('replies_passed_total', 'replies to pass-listed addresses, ignored', (s) => s.passed);
  counter('malformed_packets_total', 'captured packets that are not IPv4 TCP or do not decode', (s) => s.malformed + s.notIpv4);
  gauge('replies_holding', 'replies in the hold queue now', (s) => s.holding);
  gauge('routes', 'routes (replayed connections) registered now', (s) => s.routes);
  counter('routes_added_total', 'routes registered', (s) => s.routesAdded);
  counter('routes_removed_total', 'routes removed', (s) => s.routesRemoved);
  counter('routes_evicted_total', 'routes dropped because the table was full', (s) => s.routesEvicted);
  gauge('tcpcopys_connected', 'tcpcopy connections now', (s) => s.clients);
  counter('tcpcopys_accepted_total', 'tcpcopy connections accepted', (s) => s.clientsAccepted);
  counter('tcpcopys_rejected_total', 'connections closed because they did not speak the channel protocol', (s) => s.clientsRejected);
  counter('channel_writes_total', 'writes to tcpcopys', (s) => s.batches);
  counter('channel_sent_bytes_total', 'bytes sent to tcpcopys', (s) => s.bytesSent);
  return r;
}
