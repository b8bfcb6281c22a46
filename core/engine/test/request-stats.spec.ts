// The request statistics protocols report (SessionProtocol.requestStats): percentiles within the
// histogram's bucket width of the exact ones, fixed memory whatever the number of samples, statuses
// counted and bounded.
import { expect } from 'chai';
import { LatencyHistogram, RequestStats, RequestTally } from '../src/index';

/** The exact percentile of sorted samples, by the same rank rule (the ceil(q·n)-th smallest). */
function exact(sorted: number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1];
}

/** A deterministic pseudo-random sequence (xorshift), so a failure can be replayed. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe('LatencyHistogram', () => {
  it('gives p50, p90 and p99 within 2.2 % of the exact values over six decades of latencies', () => {
    const next = random(12345);
    const h = new LatencyHistogram();
    const samples: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      // Log-uniform from 10 µs to 10 s: every bucket range gets exercised.
      const v = 0.01 * 10 ** (6 * next());
      samples.push(v);
      h.record(v);
    }
    samples.sort((a, b) => a - b);
    for (const q of [0.5, 0.9, 0.99]) {
      const want = exact(samples, q);
      const got = h.percentile(q);
      expect(Math.abs(got - want) / want, `p${q * 100}: ${got} vs ${want}`).to.be.at.most(0.022);
    }
    const s = h.summary();
    expect(s.count).to.equal(20_000);
    expect(s.min).to.equal(Math.round(samples[0] * 1000) / 1000);
    expect(s.max).to.equal(Math.round(samples[samples.length - 1] * 1000) / 1000);
    expect(s.p50!).to.be.at.most(s.p90!);
    expect(s.p90!).to.be.at.most(s.p99!);
  });

  it('keeps percentiles within the smallest and largest sample, and ignores negative and non-finite ones', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 10; i++) h.record(5);
    h.record(-1);
    h.record(NaN);
    h.record(Infinity);
    expect(h.count).to.equal(10);
    expect(h.summary()).to.deep.equal({ count: 10, min: 5, mean: 5, p50: 5, p90: 5, p99: 5, max: 5 });
  });

  it('says null for every figure while empty', () => {
    expect(new LatencyHistogram().summary()).to.deep.equal({ count: 0, min: null, mean: null, p50: null, p90: null, p99: null, max: null });
  });

  it('uses the same memory for a million samples as for one (fixed buckets)', () => {
    const h = new LatencyHistogram();
    const next = random(7);
    for (let i = 0; i < 1_000_000; i++) h.record(next() * 1000);
    expect(h.count).to.equal(1_000_000);
    // The only per-sample state is the bucket array: its size does not depend on the samples.
    const arrays = Object.values(h).filter((v) => v instanceof Uint32Array) as Uint32Array[];
    expect(arrays).to.have.length(1);
    expect(arrays[0].length).to.equal(544);
    expect(Math.abs(h.percentile(0.5) - 500) / 500).to.be.below(0.03);
  });
});

describe('RequestTally and RequestStats', () => {
  it('counts answers by status, numbers and words alike, and times only those with a latency', () => {
    const t = new RequestTally();
    t.record(200, 1.5);
    t.record('200', 2.5);
    t.record(404);
    t.record('OK', 3);
    expect(t.count).to.equal(4);
    expect(t.statusCounts()).to.deep.equal({ 200: 2, 404: 1, OK: 1 });
    expect(t.latency.count).to.equal(3);
  });

  it('counts statuses beyond the 64th distinct one as "other"', () => {
    const t = new RequestTally();
    for (let code = 0; code < 100; code++) t.record(code);
    const counts = t.statusCounts();
    expect(Object.keys(counts)).to.have.length(65);
    expect(counts.other).to.equal(36);
    expect(t.count).to.equal(100);
  });

  it('snapshots both sides as plain data', () => {
    const s = new RequestStats();
    s.online.record(200, 1);
    s.target.record(200, 2);
    s.target.record(500, 4);
    const snap = s.snapshot();
    expect(snap.requests).to.deep.equal({ online: 1, target: 2 });
    expect(snap.status).to.deep.equal({ online: { 200: 1 }, target: { 200: 1, 500: 1 } });
    expect(snap.latencyMs.online.count).to.equal(1);
    expect(snap.latencyMs.target.max).to.equal(4);
    expect(JSON.parse(JSON.stringify(snap))).to.deep.equal(snap);
  });
});
