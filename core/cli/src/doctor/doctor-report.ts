// A doctor's run: findings printed as they come, the verdict at the end, the exit code, and a hard
// deadline so that the doctor always answers within its bound even if a check hangs.
import { exitCodeOf, fail, formatFinding, verdict, type Finding } from './findings';

/** Every check is bounded on its own (about 6 s in all); this catches what is not. */
export const DOCTOR_DEADLINE_MS = 9500;

export class DoctorReport {
  readonly findings: Finding[] = [];
  private readonly deadline: NodeJS.Timeout;

  constructor(private readonly command: string, deadlineMs = DOCTOR_DEADLINE_MS) {
    this.deadline = setTimeout(() => {
      this.add(fail('doctor', `gave up after ${deadlineMs / 1000} s: a check did not finish (the findings above are complete)`));
      this.finish();
    }, deadlineMs);
    this.deadline.unref();
  }

  add(...list: Finding[]): void {
    for (const f of list) {
      this.findings.push(f);
      process.stdout.write(`${formatFinding(f)}\n`);
    }
  }

  /** Prints the verdict and exits: 0 when nothing failed, 1 otherwise. */
  finish(): never {
    clearTimeout(this.deadline);
    process.stdout.write(`${verdict(this.command, this.findings)}\n`);
    process.exit(exitCodeOf(this.findings));
  }
}
