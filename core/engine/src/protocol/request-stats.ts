// Per-request outcomes a protocol that frames requests reports (SessionProtocol.requestStats): how
// many requests each side answered, with which status, and how fast, in fixed memory.

/** Smallest latency told apart from the next (ms): 1 µs. Smaller values count as this. */
const MIN_MS = 0.001;
/** Buckets per doubling: each bucket is 2^(1/16) wide, so a percentile is within ±2.2 % of the truth. */
const PER_OCTAVE = 16;
/** Octaves from 1 µs: up to 2^34 µs, about 4.8 hours; longer latencies count in the last bucket. */
const OCTAVES = 34;
const BUCKETS = PER_OCTAVE * OCTAVES;
/** Distinct statuses kept per side; any further one is counted under "other". */
const MAX_STATUSES = 64;

/** Latency percentiles in milliseconds; null while nothing was measured. */
export interface LatencySummary {
  /** Latencies measured (a request whose timing is unknown counts in `requests` only). */
  count: number;
  min: number | null;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

/** What {@link RequestStats.snapshot} returns: plain data, ready for JSON. */
export interface RequestStatsSnapshot {
  /** Requests answered: online (by the online server, as the capture shows) and by the target. */
  requests: { online: number; target: number };
  /** Answers by status (HTTP: "200", "404", ...; MySQL: "OK", "ERR"), per side. */
  status: { online: Record<string, number>; target: Record<string, number> };
  /**
   * Online: request to response by the capture's timestamps; target: request sent to response
   * complete, by the wall clock.
   */
  latencyMs: { online: LatencySummary; target: LatencySummary };
}

/**
 * Latencies in a fixed-size histogram of logarithmic buckets (544 counters, whatever the number
 * of samples): percentiles are read from the bucket they fall in, within the bucket's width.
 */
export class LatencyHistogram {
  private readonly buckets = new Uint32Array(BUCKETS);
  private n = 0;
  private sum = 0;
  private lo = Infinity;
  private hi = -Infinity;

  /** Samples recorded. */
  get count(): number {
    return this.n;
  }

  /** One latency, ms; negative or non-finite values (a clock that went back) are ignored. */
  record(ms: number): void {
    if (!(ms >= 0) || ms === Infinity) return;
    this.buckets[bucketOf(ms)]++;
    this.n++;
    this.sum += ms;
    if (ms < this.lo) this.lo = ms;
    if (ms > this.hi) this.hi = ms;
  }

  /**
   * The latency below which a share `q` (0..1) of the samples fall: the middle of its bucket,
   * kept within the smallest and largest sample. NaN when there is none.
   */
  percentile(q: number): number {
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.buckets[i];
      if (seen >= rank) return Math.min(this.hi, Math.max(this.lo, MIN_MS * 2 ** ((i + 0.5) / PER_OCTAVE)));
    }
    return this.hi;
  }

  summary(): LatencySummary {
    if (this.n === 0) return { count: 0, min: null, mean: null, p50: null, p90: null, p99: null, max: null };
    return {
      count: this.n,
      min: round(this.lo),
      mean: round(this.sum / this.n),
      p50: round(this.percentile(0.5)),
      p90: round(this.percentile(0.9)),
      p99: round(this.percentile(0.99)),
      max: round(this.hi),
    };
  }
}

/** Requests of one side (online or target): counted by status, with their latencies. */
export class RequestTally {
  private total = 0;
  private readonly statuses = new Map<string | number, number>();
  readonly latency = new LatencyHistogram();

  get count(): number {
    return this.total;
  }

  /**
   * One answered request: its status (a number or a short word) and, when known, its latency in ms.
   * Beyond 64 distinct statuses, new ones are counted as "other".
   */
  record(status: string | number, latencyMs?: number): void {
    this.total++;
    let key: string | number = status;
    if (!this.statuses.has(key) && this.statuses.size >= MAX_STATUSES) key = 'other';
    this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1);
    if (latencyMs !== undefined) this.latency.record(latencyMs);
  }

  statusCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of this.statuses) out[String(k)] = (out[String(k)] ?? 0) + v;
    return out;
  }
}

/**
 * The requests of a protocol instance, both sides. A protocol makes one (with its factory, shared
 * by its sessions), records each answer in `online` or `target`, and returns `snapshot()` from
 * SessionProtocol.requestStats.
 */
export class RequestStats {
  readonly online = new RequestTally();
  readonly target = new RequestTally();

  snapshot(): RequestStatsSnapshot {
    return {
      requests: { online: this.online.count, target: this.target.count },
      status: { online: this.online.statusCounts(), target: this.target.statusCounts() },
      latencyMs: { online: this.online.latency.summary(), target: this.target.latency.summary() },
    };
  }
}

function bucketOf(ms: number): number {
  if (ms <= MIN_MS) return 0;
  const i = Math.floor(Math.log2(ms / MIN_MS) * PER_OCTAVE);
  return i < BUCKETS ? i : BUCKETS - 1;
}

/** Microsecond precision is all a latency report needs. */
function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
