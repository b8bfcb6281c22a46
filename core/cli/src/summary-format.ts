// The replay's counters as one line for a person (tcpcopy --summary text, and --stats-interval in the log).
import type { ReplaySummary } from '@tcpcopy/core';

/** "passes 1, 2.5 s; sessions 9: closed 9, reset 0, ...; capture: ...; http: requests 12, ..." */
export function formatSummary(s: ReplaySummary): string {
  const { name, ...counters } = s.protocol;
  const protocolPart = Object.keys(counters).length > 0
    ? `; ${name}: ${Object.entries(counters).map(([k, v]) => `${k} ${v}`).join(', ')}`
    : '';
  const e = s.engine;
  const c = s.capture;
  const skipped = (c.notIpv4 ?? 0) + (c.notTcp ?? 0) + (c.fragments ?? 0) + (c.malformed ?? 0) + (c.truncatedBySnaplen ?? 0);
  return (
    `${s.passes !== undefined ? `passes ${s.passes}, ` : ''}${s.seconds} s; sessions ${e.sessionsCreated}: closed ${e.sessionsCompleted}, ` +
    `reset ${e.sessionsAborted}, faked handshakes ${e.sessionsFakedHandshake}, handshake timeouts ${e.handshakeTimeouts}; ` +
    `sent ${e.packetsSent} packets, ${e.bytesSent} payload bytes, retransmitted ${e.retransmissions}; ` +
    `replies ${e.repliesReceived}; capture: ${c.tcpPackets} TCP packets, ${skipped} skipped ` +
    `(not IPv4 ${c.notIpv4}, not TCP ${c.notTcp}, fragments ${c.fragments}, malformed ${c.malformed}, cut by snaplen ${c.truncatedBySnaplen}), ` +
    `lost by the capture ${e.captureGaps} holes / ${e.captureGapBytes} bytes` +
    (c.kernelDrops >= 0 ? `, kernel drops ${c.kernelDrops}` : '') +
    protocolPart +
    unfinishedPart(s.unfinished)
  );
}

/** "; unfinished: 203.0.113.7:40001->... (handshake timeout), ... and 12 more" (the first five named). */
function unfinishedPart(u: ReplaySummary['unfinished'] | undefined): string {
  if (!u || u.sessions.length === 0) return '';
  const named = u.sessions.slice(0, 5).map((x) => `${x.connection} (${x.reason})`);
  const more = u.sessions.length - named.length + u.more;
  return `; unfinished: ${named.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}
