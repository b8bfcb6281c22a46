// The commands' log: lines of text for a person (the default) or JSON lines for a collector
// (--log-format json, through pino), on stderr or appended to -l FILE. A status line drawn on the
// terminal is erased before a log line and drawn again after it, so that the two never mix.
import * as fs from 'node:fs';

export type LogLevel = 'info' | 'warn' | 'debug';
/** Structured figures that go with a message: JSON fields with --log-format json, left out of text lines. */
export type LogFields = Record<string, unknown>;
export type Logger = (level: LogLevel, message: string, fields?: LogFields) => void;
export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

/** What owns the terminal's last line (the status line): log lines on stderr are written above it. */
export interface TerminalLine {
  writeAbove(text: string): void;
}

export interface LogOptions {
  /** text (default) or json. */
  format?: LogFormat;
  /** The command's name: JSON lines carry it as `name`; text lines on stderr start with `<name>: ` when `prefixOnStderr`. */
  name?: string;
  /** Text on stderr as `<name>: message` (tcpcopy's habit) instead of timestamped lines (what -l files get). */
  prefixOnStderr?: boolean;
  /** The terminal's status line, when stderr is a terminal that shows one. */
  terminal?: TerminalLine;
}

/**
 * A logger writing to `fd` (2: stderr; or a -l file opened for appending). Debug lines only when
 * `verbose`. A write failure (a full disk, a closed stderr) never takes the process down.
 */
export function createLogger(fd: number, verbose: boolean, opts: LogOptions = {}): Logger {
  const terminal = fd === 2 ? opts.terminal : undefined;
  const write = (text: string): void => {
    try {
      if (terminal) terminal.writeAbove(text);
      else fs.writeSync(fd, text);
    } catch {
      // A full disk or a closed stderr must not take the process down.
    }
  };

  if (opts.format === 'json') {
    // Loaded only for JSON: pino takes tens of ms to load, which text logs need not pay.
    const pino = require('pino') as typeof import('pino');
    const json = pino({
      level: verbose ? 'debug' : 'info',
      base: opts.name ? { name: opts.name, pid: process.pid } : { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level names ("warn"), not pino's numbers: the lines are read by people's tools, not only by pino's.
      formatters: { level: (label) => ({ level: label }) },
    }, { write });
    return (level, message, fields) => (fields ? json[level](fields, message) : json[level](message));
  }

  const prefix = fd === 2 && opts.prefixOnStderr && opts.name ? `${opts.name}: ` : null;
  return (level, message) => {
    if (level === 'debug' && !verbose) return;
    write(prefix !== null ? `${prefix}${message}\n` : `${new Date().toISOString()} ${level} ${message}\n`);
  };
}
