// tcpcopy --report FILE: the end-of-run summary as one JSON document (docs/report.schema.json says
// its shape, docs/report.md what each field means), built from replay()'s counters and written
// atomically, so a reader never sees half a report.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { LatencySummary, ReplayEnd, ReplayOptions, ReplaySummary } from '@tcpcopy/core';
import { CLI_VERSION } from './cli-version';
import { UsageError } from './process-control';

/** Bumped when a field changes meaning or goes away (new fields do not bump it). */
export const REPORT_VERSION = 1;

export interface RequestSides<T> {
  online: T;
  target: T;
}

/** The report, as docs/report.schema.json describes it. */
export interface TcpcopyReport {
  report_version: number;
  tool: { name: 'tcpcopy'; version: string; node: string; host: string };
  /** The arguments tcpcopy was given, passwords and secrets masked. */
  command_line: string[];
  /** What was replayed how: the replay options that shape the figures. */
  options: Record<string, unknown>;
  started_at: string;
  ended_at: string;
  duration_s: number;
  end: ReplayEnd;
  exit_code: number;
  connections: {
    /** Client connections taken from the capture (per -T pass). */
    captured: number;
    /** Sessions replayed to the target: captured × -n copies. */
    replayed: number;
    /** Closed cleanly. */
    completed: number;
    /** Ended with a reset: the client's own, a timeout, a give-up, a refusal, or still open at the end. */
    failed: number;
    /** Of the failed ones: refused by the protocol (a login it never saw, say). */
    refused: number;
    /** Replayed with a faked handshake (their start was not captured). */
    faked_handshake: number;
  };
  packets: {
    /** TCP packets the capture handed to the engine (both directions). */
    captured: number;
    /** Packets sent to the target (retransmissions included). */
    sent: number;
    retransmitted: number;
    /** The target's replies that intercept returned. */
    replies: number;
  };
  protocol: {
    name: string;
    /** The protocol's own counters (--summary json's protocol fields). */
    counters: Record<string, unknown>;
    /** Present when the protocol frames requests. */
    requests?: RequestSides<number>;
    status?: RequestSides<Record<string, number>>;
    latency_ms?: RequestSides<LatencySummary>;
  };
  /** --summary json's parts, unchanged. */
  passes: number | null;
  engine: ReplaySummary['engine'];
  capture: ReplaySummary['capture'];
  output: ReplaySummary['output'];
  intercept: ReplaySummary['intercept'];
  unfinished: ReplaySummary['unfinished'];
}

/** The report of a replay that could not start (end "failed"): what was asked, and why it failed. */
export interface TcpcopyFailureReport {
  report_version: number;
  tool: TcpcopyReport['tool'];
  command_line: string[];
  options: Record<string, unknown>;
  started_at: string;
  ended_at: string;
  duration_s: number;
  end: 'failed';
  exit_code: number;
  /** The one line tcpcopy printed. */
  error: string;
}

/** What the command knows besides the counters. */
export interface ReportRun {
  /** tcpcopy's arguments (without node and the script). */
  argv: readonly string[];
  /** The replay options the arguments were turned into. */
  replay: ReplayOptions;
  offline: boolean;
  startedAt: Date;
  endedAt: Date;
  exitCode: number;
}

/** The report of a replay that failed before it ran (the intercept unreachable, a capture that cannot open, ...). */
export function buildFailureReport(run: ReportRun, error: string): TcpcopyFailureReport {
  return { ...reportHeader(run), end: 'failed', exit_code: run.exitCode, error };
}

/** What every report starts with: the tool, what it was asked, and when. */
function reportHeader(run: ReportRun) {
  return {
    report_version: REPORT_VERSION,
    tool: { name: 'tcpcopy' as const, version: CLI_VERSION, node: process.version, host: os.hostname() },
    command_line: maskSecrets(run.argv),
    options: reportedOptions(run.replay, run.offline),
    started_at: run.startedAt.toISOString(),
    ended_at: run.endedAt.toISOString(),
    duration_s: Math.round(run.endedAt.getTime() - run.startedAt.getTime()) / 1000,
  };
}

export function buildReport(summary: ReplaySummary, run: ReportRun): TcpcopyReport {
  const e = summary.engine;
  const copies = Math.max(1, run.replay.engine?.copies ?? 1);
  const { name, ...counters } = summary.protocol;
  const protocol: TcpcopyReport['protocol'] = { name, counters };
  const r = summary.requests;
  if (r) {
    protocol.requests = { ...r.requests };
    protocol.status = { online: { ...r.status.online }, target: { ...r.status.target } };
    protocol.latency_ms = { online: { ...r.latencyMs.online }, target: { ...r.latencyMs.target } };
  }
  return {
    ...reportHeader(run),
    end: summary.end ?? 'stopped',
    exit_code: run.exitCode,
    connections: {
      captured: Math.ceil(e.sessionsCreated / copies),
      replayed: e.sessionsCreated,
      completed: e.sessionsCompleted,
      failed: e.sessionsAborted,
      refused: e.sessionsRefused,
      faked_handshake: e.sessionsFakedHandshake,
    },
    packets: { captured: e.capturedPackets, sent: e.packetsSent, retransmitted: e.retransmissions, replies: e.repliesReceived },
    protocol,
    passes: summary.passes ?? null,
    engine: { ...e },
    capture: { ...summary.capture },
    output: { ...summary.output },
    intercept: { ...summary.intercept },
    unfinished: { sessions: summary.unfinished.sessions.map((s) => ({ ...s })), more: summary.unfinished.more },
  };
}

/**
 * Writes the report to `file` atomically: a temporary file in the same directory, flushed to disk,
 * then renamed over `file`. Throws with the system's error code on failure (the temporary file removed).
 */
export function writeReport(file: string, report: TcpcopyReport | TcpcopyFailureReport): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeSync(fd, JSON.stringify(report, null, 2) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Checked before the replay starts, so a long replay never ends without its report: the report's
 * directory must exist and be writable. Returns the absolute path; a UsageError says what to fix.
 */
export function resolveReportPath(file: string): string {
  const abs = path.resolve(file);
  const dir = path.dirname(abs);
  const refuse = (what: string, fix: string): never => {
    throw new UsageError(`--report ${file}: ${what} (${fix})`);
  };
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(dir);
  } catch {
    refuse(`directory ${dir} does not exist`, 'create it, or give a path in an existing directory');
  }
  if (!st!.isDirectory()) refuse(`${dir} is not a directory`, 'give a path in an existing directory');
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    refuse(`directory ${dir} is not writable`, 'give a path in a writable directory');
  }
  if (fs.statSync(abs, { throwIfNoEntry: false })?.isDirectory()) refuse('that is a directory', 'give a file name');
  return abs;
}

/** Option values that are secrets wholly (--secret S) or after a colon (--mysql-user USER:PASSWORD). */
const SECRET_FLAGS = new Set(['--secret']);
const USER_PASSWORD_FLAGS = new Set(['--mysql-user']);
const KEY_VALUE_FLAGS = new Set(['--protocol-opt']);
/** Protocol option names whose values are secrets. */
const SECRET_KEY = /pass|secret|token|auth|cred|key/i;
const MASK = '***';

/** The arguments with passwords and secrets replaced by ***, both as `--flag value` and `--flag=value`. */
export function maskSecrets(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (!SECRET_FLAGS.has(flag) && !USER_PASSWORD_FLAGS.has(flag) && !KEY_VALUE_FLAGS.has(flag)) {
      out.push(arg);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[i + 1];
    if (value === undefined) {
      out.push(arg);
      continue;
    }
    const masked = SECRET_FLAGS.has(flag) ? MASK : USER_PASSWORD_FLAGS.has(flag) ? maskAfterColon(value) : maskOption(value);
    if (eq > 0) out.push(`${flag}=${masked}`);
    else {
      out.push(flag, masked);
      i++;
    }
  }
  return out;
}

/** `key=value` of a protocol option, its value masked when it is a secret. */
function maskOption(kv: string): string {
  const eq = kv.indexOf('=');
  if (eq < 0) return kv;
  const key = kv.slice(0, eq);
  return `${key}=${maskedValue(key, kv.slice(eq + 1))}`;
}

function maskedValue(key: string, value: string): string {
  if (key === 'user') return maskAfterColon(value); // user=NAME:PASSWORD (mysql)
  return SECRET_KEY.test(key) ? MASK : value;
}

function maskAfterColon(value: string): string {
  const colon = value.indexOf(':');
  return colon < 0 ? value : `${value.slice(0, colon)}:${MASK}`;
}

/**
 * The replay options worth recording: everything but callbacks and parts, the channel secret (from
 * --secret or TCPCOPY_SECRET) and protocol option secrets masked.
 */
function reportedOptions(o: ReplayOptions, offline: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { mode: offline ? 'offline' : 'live' };
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || typeof v === 'function' || k === 'protocolNames' || k === 'sink' || k === 'signal') continue;
    if (k === 'interceptSecret') out[k] = MASK;
    else if (k === 'protocolOptions') {
      const masked: Record<string, string> = {};
      for (const [pk, pv] of Object.entries(v as Record<string, string>)) masked[pk] = maskedValue(pk, pv);
      out[k] = masked;
    } else if (k === 'protocol' && typeof v !== 'string') out[k] = (v as { name: string }).name;
    else if (v === null || typeof v !== 'object' || Array.isArray(v) || k === 'engine') out[k] = v;
  }
  return out;
}

/** writeReport, a failure told through `warn` (the replay's outcome stands; only its record is missing). */
export function saveReport(file: string, report: TcpcopyReport | TcpcopyFailureReport, warn: (message: string) => void): boolean {
  try {
    writeReport(file, report);
    return true;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    warn(`cannot write the report to ${file}: ${why} (check the disk and the directory's permissions)`);
    return false;
  }
}
