// The C tool's command-line habits that clash with ours. The C tcpcopy and intercept print their
// version for -v; ours used -v for --verbose. Both keep working: -v given alone prints the version
// (the only way the C tools are ever run with -v, since they exit at once), and -v among other
// options still means --verbose (every script written for us so far). Help shows -v as the version.
import type { Command } from 'commander';

/**
 * argv with each -v that stands among other arguments turned into --verbose, for commander, where
 * -v is the version flag. Values of options are skipped (`-l -v` is a log file named -v), and -v in
 * a group of flags (`-dv`) is split out.
 */
export function verboseForOldScripts(argv: readonly string[], program: Command): string[] {
  if (argv.every((a) => a === '-v' || a === '--version')) return [...argv];
  const takesValue = new Set<string>();
  const isFlag = new Set<string>();
  for (const o of program.options) {
    for (const f of [o.short, o.long]) {
      if (!f) continue;
      if (o.required || o.optional) takesValue.add(f);
      else isFlag.add(f);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (a === '-v') {
      out.push('--verbose');
      continue;
    }
    if (/^-[A-Za-z]{2,}$/.test(a) && a.includes('v') && [...a.slice(1)].every((c) => c === 'v' || isFlag.has(`-${c}`))) {
      for (const c of a.slice(1)) out.push(c === 'v' ? '--verbose' : `-${c}`);
      continue;
    }
    out.push(a);
    if (takesValue.has(a) && i + 1 < argv.length) out.push(argv[++i]);
  }
  return out;
}
