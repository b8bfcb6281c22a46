// The replay's counters for a person: the several lines tcpcopy prints at the end of a run (the figures
// of --report). While it runs, the status line (status-line.ts) says how it goes.
import type { TcpcopyReport } from './report';

/**
 * The end of a run for people: several lines, the report's figures (tcpcopy prints them at the end
 * whether or not --report writes them to a file), one log line each. `reportFile`: where the JSON went.
 */
export function formatEndSummary(r: TcpcopyReport, reportFile?: string | null): string[] {
  const c = r.connections;
  const p = r.packets;
  const cap = r.capture;
  const skipped = cap.notIpv4 + cap.notTcp + cap.fragments + cap.malformed + cap.truncatedBySnaplen;
  const passes = r.passes !== null ? `, ${r.passes} pass${r.passes === 1 ? '' : 'es'}` : '';
  const lines = [
    `replay ${r.end} after ${r.duration_s} s${passes} (exit ${r.exit_code})`,
    row('connections', `${c.captured} captured, ${c.replayed} replayed: ${c.completed} completed, ${c.failed} failed` +
      `${c.refused ? ` (${c.refused} refused by the protocol)` : ''}, ${c.faked_handshake} with a faked handshake`),
    row('packets', `${p.captured} captured, ${p.sent} sent, ${p.retransmitted} retransmitted, ${p.replies} replies from the target`),
    row('capture', `${cap.tcpPackets} TCP packets, ${skipped} skipped, ${r.engine.captureGaps} holes (${r.engine.captureGapBytes} bytes) lost` +
      (cap.kernelDrops >= 0 ? `, kernel drops ${cap.kernelDrops}` : '')),
    ...requestLines(r.protocol),
  ];
  const counters = Object.entries(r.protocol.counters).filter(([, v]) => v !== 0);
  if (counters.length > 0) lines.push(row(`${r.protocol.name}`, counters.map(([k, v]) => `${k} ${v}`).join(', ')));
  const u = r.unfinished;
  if (u.sessions.length > 0) {
    const named = u.sessions.slice(0, 5).map((x) => `${x.connection} (${x.reason})`);
    const more = u.sessions.length - named.length + u.more;
    lines.push(row('unfinished', `${named.join(', ')}${more > 0 ? ` and ${more} more` : ''}`));
  }
  if (reportFile) lines.push(row('report', reportFile));
  return lines;
}

const LABEL = 13;
const COLUMN = 9;

function row(label: string, text: string): string {
  return `  ${label.padEnd(LABEL)}${text}`;
}

/** Requests, statuses side by side, latency percentiles: for a protocol that frames requests. */
function requestLines(p: TcpcopyReport['protocol']): string[] {
  if (!p.requests || !p.status || !p.latency_ms) return [];
  const col = (label: string, ...cells: Array<string | number>) => `    ${label.padEnd(LABEL - 2)}${cells.map((x) => String(x).padStart(COLUMN)).join('')}`;
  const lines = [row(`${p.name}`, `${p.requests.online} requests answered online, ${p.requests.target} by the target`)];
  const codes = [...new Set([...Object.keys(p.status.online), ...Object.keys(p.status.target)])].sort();
  if (codes.length > 0) {
    lines.push(col('status', 'online', 'target'));
    for (const code of codes) lines.push(col(code, p.status.online[code] ?? 0, p.status.target[code] ?? 0));
  }
  const l = p.latency_ms;
  if (l.online.count > 0 || l.target.count > 0) {
    lines.push(col('latency ms', 'p50', 'p90', 'p99', 'max'));
    for (const side of ['online', 'target'] as const) {
      const s = l[side];
      if (s.count > 0) lines.push(col(side, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max)));
    }
  }
  return lines;
}

/** Three significant digits are what a person compares. */
function ms(v: number | null): string {
  if (v === null) return '-';
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
}
