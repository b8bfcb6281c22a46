/**
 * @tcpcopy/core/fuzz: what the fuzz properties of every decoder share. A decoder's properties
 * live in one module (`<decoder>.fuzz.ts` beside its specs) that exports a {@link FuzzSuite}; its
 * spec runs them with the suite's fixed seed ({@link fuzzSpec}, a few hundred inputs each, in
 * `npm test`), and `npm run fuzz` runs the same properties for minutes with random seeds. The
 * inputs are random bytes and valid inputs mutated ({@link mutated}: bit flips, bytes and length
 * fields overwritten, insertions, deletions, duplications, truncation).
 *
 * Needs fast-check (and mocha's globals for fuzzSpec), which are optional peer dependencies.
 *
 * @module @tcpcopy/core/fuzz
 */
import fc from 'fast-check';

/** One property of a decoder. */
export interface FuzzProperty {
  /** Short, stable key: `npm run fuzz -- --replay <suite id>/<id> ...`. */
  readonly id: string;
  /** What it checks, in words (the spec's test title). */
  readonly name: string;
  /** Inputs tried in `npm test` (keep the suite's whole time well under a second or two). */
  readonly runs: number;
  /** Builds the property (a fresh one for every run of fast-check; state is made inside). */
  readonly property: () => fc.IRawProperty<any>;
}

/** The properties of one decoder. */
export interface FuzzSuite {
  /** Short, stable key (`--only`). */
  readonly id: string;
  /** The decoder, as the report names it (with its file). */
  readonly decoder: string;
  /** Seed of the spec's runs: fixed, so `npm test` tries the same inputs every time. */
  readonly seed: number;
  readonly properties: readonly FuzzProperty[];
}

/**
 * Registers the suite's properties as mocha tests, each run with the suite's fixed seed. A failure
 * shows fast-check's report: the shrunk counterexample, and the seed and path that replay it.
 */
export function fuzzSpec(suite: FuzzSuite): void {
  describe(`${suite.decoder}: fuzz (fast-check, seed ${suite.seed})`, () => {
    for (const p of suite.properties) {
      it(`${p.name} (${p.runs} inputs)`, () => fc.assert(p.property(), { seed: suite.seed, numRuns: p.runs }));
    }
  });
}

// ---- inputs ---------------------------------------------------------------------------------

/** Values a corrupted length or count field is likely to hold: the edges decoders get wrong. */
export const INTERESTING_VALUES: readonly number[] = [
  0, 1, 2, 3, 4, 7, 8, 13, 14, 15, 16, 19, 20, 21, 24, 40, 60, 64, 0x7f, 0x80, 0xfe, 0xff, 0x100, 0x3ff,
  0x7fff, 0x8000, 0xfffe, 0xffff, 0x10000, 0x40000, 0x40001, 0xffffff, 0x1000000, 0x4000000, 0x4000001,
  0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
];

/** One change to a byte string; positions are taken modulo its length, so any number fits any input. */
export type Edit =
  | { readonly op: 'flip'; readonly at: number; readonly bit: number }
  | { readonly op: 'set'; readonly at: number; readonly value: number }
  /** A length-like field overwritten: `width` bytes, big- or little-endian. */
  | { readonly op: 'field'; readonly at: number; readonly width: 1 | 2 | 4; readonly le: boolean; readonly value: number }
  | { readonly op: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly op: 'delete'; readonly at: number; readonly count: number }
  | { readonly op: 'duplicate'; readonly at: number; readonly count: number }
  | { readonly op: 'truncate'; readonly at: number };

const fieldValue = fc.oneof(fc.constantFrom(...INTERESTING_VALUES), fc.nat({ max: 0xffffffff }));

/** An arbitrary Edit. */
export const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('field' as const), at: fc.nat(), width: fc.constantFrom(1 as const, 2 as const, 4 as const), le: fc.boolean(), value: fieldValue,
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('duplicate' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }) },
);

/** 1 to `max` edits. */
export function edits(max = 4): fc.Arbitrary<Edit[]> {
  return fc.array(edit, { minLength: 1, maxLength: max });
}

/** A copy of `input` with the edits applied in order (the input is not changed). */
export function applyEdits(input: Uint8Array, list: readonly Edit[]): Buffer {
  let b = Buffer.from(input);
  for (const e of list) {
    const n = b.length;
    switch (e.op) {
      case 'flip':
        if (n > 0) b[e.at % n] ^= 1 << e.bit;
        break;
      case 'set':
        if (n > 0) b[e.at % n] = e.value;
        break;
      case 'field': {
        if (n === 0) break;
        const at = e.at % n;
        for (let k = 0; k < e.width && at + k < n; k++) {
          const shift = 8 * (e.le ? k : e.width - 1 - k);
          b[at + k] = Math.floor(e.value / 2 ** shift) & 0xff;
        }
        break;
      }
      case 'insert': {
        const at = e.at % (n + 1);
        b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]);
        break;
      }
      case 'delete': {
        if (n === 0) break;
        const at = e.at % n;
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.count)]);
        break;
      }
      case 'duplicate': {
        if (n === 0) break;
        const at = e.at % n;
        const piece = b.subarray(at, at + e.count);
        b = Buffer.concat([b.subarray(0, at + piece.length), piece, b.subarray(at + piece.length)]);
        break;
      }
      case 'truncate':
        b = b.subarray(0, e.at % (n + 1));
        break;
    }
  }
  return b;
}

/** Random bytes, up to `maxLength`. */
export function randomBytes(maxLength = 512): fc.Arbitrary<Buffer> {
  return fc.uint8Array({ maxLength }).map((a) => Buffer.from(a.buffer, a.byteOffset, a.length));
}

/** Valid inputs from `valid`, each mutated by 1 to `maxEdits` edits. */
export function mutated(valid: fc.Arbitrary<Buffer>, maxEdits = 4): fc.Arbitrary<Buffer> {
  return fc.tuple(valid, edits(maxEdits)).map(([b, e]) => applyEdits(b, e));
}

/** What untrusted bytes look like: mostly mutated valid inputs, some valid ones, some random bytes. */
export function untrusted(valid: fc.Arbitrary<Buffer>, opts: { maxRandom?: number; maxEdits?: number } = {}): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 2, arbitrary: randomBytes(opts.maxRandom ?? 512) },
    { weight: 1, arbitrary: valid },
    { weight: 5, arbitrary: mutated(valid, opts.maxEdits ?? 4) },
  );
}

/** How a stream is cut into chunks: sizes used in turn (see {@link chunked}). */
export function splits(maxChunk = 64): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: 1, max: maxChunk }), { minLength: 1, maxLength: 12 });
}

/** `stream` cut into chunks of the given sizes, taken in turn (views, not copies). */
export function chunked(stream: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < stream.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]);
    out.push(stream.subarray(at, at + n));
    at += n;
  }
  return out;
}
