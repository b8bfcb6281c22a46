// Warnings shown per source: a chatty source (a protocol module logging on every connection) never crowds
// out another's (the engine's own warnings), and the log stays readable unless -v asks for everything.
import type { Logger } from './process-control';

/** Warnings shown (without -v) from each source. */
export const WARNING_BUDGET = 50;

/**
 * A warning function for one source: the first WARNING_BUDGET messages go to `log` (all of them
 * when `verbose`), then one line "further <what> not shown (--verbose shows them)", then nothing.
 * `what` is read when that line is written (a protocol's name is known only once it is loaded).
 */
export function warningBudget(log: Logger, verbose: boolean, what: () => string): (message: string) => void {
  let shown = 0;
  return (message) => {
    if (verbose || shown < WARNING_BUDGET) log('warn', message);
    else if (shown === WARNING_BUDGET) log('warn', `further ${what()} not shown (--verbose shows them)`);
    shown++;
  };
}
