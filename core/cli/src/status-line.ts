// The live status line of tcpcopy and intercept: what the replay is doing now, in one short line with a
// fixed order and units. On a terminal it is redrawn in place (log lines are written above it); anywhere
// else (a pipe, a file, daemon mode) it is one log line per interval. Figures are read from the
// commands' counters when the line is drawn: nothing is counted per packet here.
import * as fs from 'node:fs';
import type { InterceptStats, ReplaySummary } from '@tcpcopy/core';
import type { LogFields, Logger, TerminalLine } from './log';

/** What one drawing of the line says: the text, and the same figures as fields for JSON logs. */
export interface StatusReport {
  text: string;
  fields: LogFields;
}

/** Default interval: on a terminal a person watches, elsewhere a log grows. */
export const TERMINAL_INTERVAL_S = 1;
export const LOG_INTERVAL_S = 30;

/** Seconds between status lines: --stats-interval when given (0: none), else by where the line goes. */
export function statusIntervalSeconds(given: number | undefined, terminal: boolean): number {
  return given ?? (terminal ? TERMINAL_INTERVAL_S : LOG_INTERVAL_S);
}

const CLEAR_LINE = '\r\x1b[2K';

/**
 * The terminal's last line, kept for the status: redrawn in place, erased before a log line is
 * written and drawn again after it, so the two never mix.
 */
export class TerminalStatus implements TerminalLine {
  private shown = '';

  constructor(
    private readonly write: (text: string) => void = (text) => fs.writeSync(2, text),
    private readonly columns: () => number | undefined = () => process.stderr.columns,
  ) {}

  /** Replaces the line on screen with `text` (cut to the terminal's width: a wrapped line cannot be redrawn). */
  show(text: string): void {
    this.shown = this.fit(text);
    this.write(CLEAR_LINE + this.shown);
  }

  writeAbove(text: string): void {
    this.write(this.shown ? CLEAR_LINE + text + this.shown : text);
  }

  /** Erases the line and stops drawing it. */
  clear(): void {
    if (this.shown) this.write(CLEAR_LINE);
    this.shown = '';
  }

  private fit(text: string): string {
    const width = this.columns() ?? 0;
    return width > 1 && text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text;
  }
}

/**
 * Draws `read()` every `intervalS` seconds: on `terminal` when there is one, else as an info line in
 * `log`. `read` returns null while there is nothing to say yet. stop() erases the line.
 */
export function startStatusLine(opts: {
  intervalS: number;
  terminal: TerminalStatus | null;
  log: Logger;
  read: () => StatusReport | null;
}): { stop(): void } {
  if (opts.intervalS <= 0) return { stop: () => undefined };
  const timer = setInterval(() => {
    const report = opts.read();
    if (!report) return;
    if (opts.terminal) opts.terminal.show(report.text);
    else opts.log('info', report.text, { status: report.fields });
  }, opts.intervalS * 1000);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      opts.terminal?.clear();
    },
  };
}

/** Events per second over the last interval (between two readings). */
export class RateMeter {
  private lastCount = 0;
  private lastSeconds = 0;

  perSecond(count: number, seconds: number): number {
    const dt = seconds - this.lastSeconds;
    const rate = dt > 0 ? Math.max(0, count - this.lastCount) / dt : 0;
    this.lastCount = count;
    this.lastSeconds = seconds;
    return rate;
  }
}

/**
 * Requests answered by the target, and online (by the online server, when the capture holds its
 * replies: a pcap file), from a protocol that frames requests; null for one that does not.
 */
export function requestCounts(s: ReplaySummary): { answered: number; online: number } | null {
  return s.requests ? { answered: s.requests.requests.target, online: s.requests.requests.online } : null;
}

/** Why sessions were reset, in a fixed order, from the engine's give-up counters. */
function resetReasons(e: ReplaySummary['engine']): Record<string, number> {
  return {
    'handshake timeout': e.handshakeTimeouts,
    'session timeout': e.sessionTimeouts,
    'reconnects given up': e.reconnectsGivenUp,
    'protocol refused': e.sessionsRefused,
  };
}

/** "(a 1, b 2)" of the non-zero entries, or "". */
function nonZero(counts: Record<string, number>): string {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).map(([why, n]) => `${why} ${n}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

const mib = (bytes: number): number => Math.round(bytes / 2 ** 20);
const rateText = (r: number): string => (r >= 100 ? r.toFixed(0) : r.toFixed(1));

/**
 * tcpcopy's line, e.g. "12.0 s; sessions 340: 3 active, 335 closed, 2 reset (handshake timeout 2);
 * sent 9000 packets, 0 send errors; requests answered 899; 75.0 requests/s; captured 12345 packets,
 * 0 dropped, 0 holes; RSS 54 MiB". Without request framing: replies and packets/s instead.
 */
export function replayStatus(s: ReplaySummary, rate: RateMeter, rssBytes: number): StatusReport {
  const e = s.engine;
  const active = Math.max(0, e.sessionsCreated - e.sessionsCompleted - e.sessionsAborted);
  const why = resetReasons(e);
  const requests = requestCounts(s);
  const perSecond = rate.perSecond(requests ? requests.answered : e.packetsSent, s.seconds);
  const unit = requests ? 'requests/s' : 'packets/s';
  const dropped = s.capture.kernelDrops >= 0 ? `, ${s.capture.kernelDrops} dropped` : '';
  const text =
    `${s.seconds.toFixed(1)} s; sessions ${e.sessionsCreated}: ${active} active, ${e.sessionsCompleted} closed` +
    `${e.idleTimeouts ? ` (idle timeout ${e.idleTimeouts})` : ''}, ${e.sessionsAborted} reset${nonZero(why)}; ` +
    `sent ${e.packetsSent} packets, ${s.output.failed} send errors; ` +
    (requests ? `requests answered ${requests.answered}${requests.online ? ` (online ${requests.online})` : ''}; ` : `replies ${e.repliesReceived} packets; `) +
    `${rateText(perSecond)} ${unit}; captured ${s.capture.tcpPackets} packets${dropped}, ${e.captureGaps} holes; RSS ${mib(rssBytes)} MiB`;
  return {
    text,
    fields: {
      seconds: s.seconds,
      sessions: { total: e.sessionsCreated, active, closed: e.sessionsCompleted, idleTimeouts: e.idleTimeouts, reset: e.sessionsAborted, why },
      packetsSent: e.packetsSent,
      sendErrors: s.output.failed,
      ...(requests ? { requests } : { replies: e.repliesReceived }),
      rate: { perSecond: Number(perSecond.toFixed(1)), unit },
      capture: { packets: s.capture.tcpPackets, dropped: s.capture.kernelDrops >= 0 ? s.capture.kernelDrops : null, holes: e.captureGaps },
      rssBytes,
    },
  };
}

/**
 * intercept's line, e.g. "12.0 s; replies 9000 captured, 8990 routed, 10 unmatched, 0 dropped;
 * tcpcopys 2, routes 340; 750 replies/s; RSS 150 MiB" (routes: the connections it answers for now).
 */
export function interceptStatus(s: InterceptStats, seconds: number, rate: RateMeter, rssBytes: number): StatusReport {
  const perSecond = rate.perSecond(s.routed, seconds);
  return {
    text: `${seconds.toFixed(1)} s; replies ${s.captured} captured, ${s.routed} routed, ${s.unmatched} unmatched, ${s.dropped} dropped; ` +
      `tcpcopys ${s.clients}, routes ${s.routes}; ${rateText(perSecond)} replies/s; RSS ${mib(rssBytes)} MiB`,
    fields: {
      seconds: Number(seconds.toFixed(3)),
      replies: { captured: s.captured, routed: s.routed, unmatched: s.unmatched, dropped: s.dropped },
      tcpcopys: s.clients,
      routes: s.routes,
      rate: { perSecond: Number(perSecond.toFixed(1)), unit: 'replies/s' },
      rssBytes,
    },
  };
}
