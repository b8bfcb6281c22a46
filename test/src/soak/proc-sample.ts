// What the memory test, the soak and the online bench read from /proc and from nginx access logs.
import * as fs from 'node:fs';
import { LineTail } from '../harness/live-load';

/** Resident set size now (VmRSS of /proc/<pid>/status), in bytes; NaN once the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

export const MiB = 2 ** 20;

export function mib(bytes: number, digits = 1): string {
  return (bytes / MiB).toFixed(digits);
}

/** One RSS sample: seconds since the sampler started, bytes. */
export interface RssSample {
  t: number;
  rss: number;
}

/** Samples a process's VmRSS every `intervalMs` until stop() (or until the process is gone). */
export class RssSampler {
  readonly samples: RssSample[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = performance.now();

  constructor(readonly pid: number, intervalMs = 1000) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /** Takes a sample now (also done by the timer); returns it, or null once the process is gone. */
  sample(): RssSample | null {
    const rss = rssBytes(this.pid);
    if (Number.isNaN(rss)) return null;
    const s = { t: (performance.now() - this.t0) / 1000, rss };
    this.samples.push(s);
    return s;
  }

  /** Seconds since the sampler started. */
  elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Samples with from <= t < to. */
  between(from: number, to: number): RssSample[] {
    return this.samples.filter((s) => s.t >= from && s.t < to);
  }

  max(from = 0, to = Infinity): number {
    return Math.max(...this.between(from, to).map((s) => s.rss));
  }
}

/**
 * Counts access-log lines per tag (the query parameter name matched by `tagRe`, e.g. /[?&](soak_\w+)=/),
 * reading only what was appended since the last call.
 */
export class TagCounter {
  private readonly tail: LineTail;
  readonly counts = new Map<string, number>();

  constructor(file: string, private readonly tagRe: RegExp) {
    this.tail = new LineTail(file);
  }

  update(): Map<string, number> {
    this.tail.read((l) => {
      const m = this.tagRe.exec(l);
      if (m) this.counts.set(m[1], (this.counts.get(m[1]) ?? 0) + 1);
    });
    return this.counts;
  }

  get(tag: string): number {
    return this.counts.get(tag) ?? 0;
  }

  /** Sum over the tags `pick` accepts. */
  sum(pick: (tag: string) => boolean = () => true): number {
    let n = 0;
    for (const [tag, c] of this.counts) if (pick(tag)) n += c;
    return n;
  }
}
