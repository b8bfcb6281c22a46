import type { MysqlStats } from './shared';

/** How a server answered one command, as far as comparing goes. */
export interface Answer {
  error: boolean;
  errorCode: number;
  errorMessage: string;
  affectedRows: number;
}

/** Answers kept while the other side's is awaited; beyond it the oldest go uncompared. */
const MAX_KEPT = 4096;

/**
 * Compares, command by command, the target's answer with the online server's (when the capture has
 * the online replies): the same outcome, the same error, the same affected-row count. A statement
 * that failed only on the target is what a replay is run to find: it is counted and reported.
 */
export class AnswerComparison {
  private readonly online = new Map<number, Answer>();
  private readonly target = new Map<number, Answer>();

  constructor(
    private readonly stats: MysqlStats,
    /** Called for each answer that differs; `how` names the difference. */
    private readonly differs: (tag: number, how: string, online: Answer, target: Answer) => void,
  ) {}

  onlineAnswer(tag: number, a: Answer): void {
    const t = this.target.get(tag);
    if (t) {
      this.target.delete(tag);
      this.compare(tag, a, t);
    } else keep(this.online, tag, a);
  }

  targetAnswer(tag: number, a: Answer): void {
    const o = this.online.get(tag);
    if (o) {
      this.online.delete(tag);
      this.compare(tag, o, a);
    } else keep(this.target, tag, a);
  }

  clear(): void {
    this.online.clear();
    this.target.clear();
  }

  private compare(tag: number, o: Answer, t: Answer): void {
    const s = this.stats;
    s.answersCompared++;
    if (o.error && !t.error) {
      s.errorsOnlyOnline++;
      this.differs(tag, 'failed only online', o, t);
    } else if (!o.error && t.error) {
      s.errorsOnlyOnTarget++;
      this.differs(tag, 'failed only on the target', o, t);
    } else if (o.error) {
      if (o.errorCode === t.errorCode) s.answersSame++;
      else {
        s.errorsDiffer++;
        this.differs(tag, 'failed differently', o, t);
      }
    } else if (o.affectedRows !== t.affectedRows) {
      s.affectedRowsDiffer++;
      this.differs(tag, 'affected other rows', o, t);
    } else s.answersSame++;
  }
}

function keep(m: Map<number, Answer>, tag: number, a: Answer): void {
  if (m.size >= MAX_KEPT) m.delete(m.keys().next().value!);
  m.set(tag, a);
}
