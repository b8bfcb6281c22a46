// What a doctor found, and how it is printed: one line per finding, `ok`, `warn` or `FAIL` first,
// then what was checked or what is wrong, then the command that fixes it.

export type Level = 'ok' | 'warn' | 'FAIL';

export interface Finding {
  level: Level;
  /** The thing checked, short: "ip_forward", "intercept 198.51.100.40:36524", "probe ...". */
  subject: string;
  /** What was seen, or what is wrong. */
  text: string;
  /** Commands (or steps) that fix it, most likely first; printed after the line. */
  fixes?: string[];
}

export const ok = (subject: string, text: string): Finding => ({ level: 'ok', subject, text });
export const warn = (subject: string, text: string, ...fixes: string[]): Finding => ({ level: 'warn', subject, text, fixes });
export const fail = (subject: string, text: string, ...fixes: string[]): Finding => ({ level: 'FAIL', subject, text, fixes });

/** `FAIL  subject: text; fix: first` and, for further fixes, indented `or: ...` lines. */
export function formatFinding(f: Finding): string {
  const fixes = f.fixes ?? [];
  let line = `${f.level.padEnd(4)}  ${f.subject}: ${f.text}`;
  if (fixes.length > 0) line += `; fix: ${fixes[0]}`;
  for (const other of fixes.slice(1)) line += `\n      or: ${other}`;
  return line;
}

/** 0 when nothing failed (warnings are fine), 1 otherwise. */
export function exitCodeOf(findings: readonly Finding[]): number {
  return findings.some((f) => f.level === 'FAIL') ? 1 : 0;
}

/** The last line: how many problems and warnings. */
export function verdict(command: string, findings: readonly Finding[]): string {
  const failed = findings.filter((f) => f.level === 'FAIL').length;
  const warned = findings.filter((f) => f.level === 'warn').length;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (failed === 0) return `${command} doctor: all checks passed${warned ? ` (${plural(warned, 'warning')})` : ''}`;
  return `${command} doctor: ${plural(failed, 'problem')}, ${plural(warned, 'warning')}`;
}
