// Fuzz properties of the HTTP request framer (src/request-framer.ts: the client's bytes cut into
// requests, filtered, rewritten); run by fuzz.spec.ts and `npm run fuzz`. fuzz.spec.ts also drives
// whole sessions (framer and tracker together) with its own seeded loops.
import { FakeProtocolContext } from '@tcpcopy/core/compliance';
import { chunked, mutated, randomBytes, splits, type FuzzSuite } from '@tcpcopy/core/fuzz';
import { expect } from 'chai';
import fc from 'fast-check';
import { parseOptions } from '../src';
import { MAX_HEAD } from '../src/byte-buf';
import { RequestFramer } from '../src/request-framer';
import { CONTINUE_TAG_BASE, RAW_TAG } from '../src/request-tags';
import { request, type Request } from './fuzz-messages';

/** Option sets: none, filters only, rewrites (with a filter). */
const OPTIONS: Array<Record<string, string>> = [
  {},
  { 'deny-url': '^/a', 'allow-method': 'GET,POST,PUT,HEAD,DELETE,OPTIONS,PATCH,PROPFIND,CONNECT' },
  { 'set-header': 'Host: t\nX-R: 1', 'remove-header': 'Accept', 'deny-header': 'X-Drop: .' },
];

const requests = fc.array(request, { minLength: 1, maxLength: 6 });
const streamOf = (rs: Request[]) => Buffer.concat(rs.flatMap((r) => [r.head, r.body]));

/** Client bytes: valid requests, mutated ones (with garbage, cuts, upgrades by chance), random bytes. */
const clientStream = fc.oneof(
  { weight: 1, arbitrary: requests.map(streamOf) },
  { weight: 4, arbitrary: mutated(requests.map(streamOf), 5) },
  { weight: 1, arbitrary: randomBytes(400) },
  {
    weight: 1,
    arbitrary: fc.tuple(requests, fc.constantFrom('Connection: upgrade\r\nUpgrade: websocket\r\n', 'Expect: 100-continue\r\n'), randomBytes(60))
      .map(([rs, extra, tail]) => Buffer.concat([Buffer.from(`GET /u HTTP/1.1\r\n${extra}\r\n`, 'latin1'), tail, streamOf(rs)])),
  },
);

/** True when `pieces`, in order, are disjoint ranges of `whole` (what a framer that only drops bytes emits). */
function inOrderRanges(whole: Buffer, pieces: readonly Buffer[]): boolean {
  let from = 0;
  for (const p of pieces) {
    if (p.length === 0) continue;
    const at = whole.indexOf(p, from);
    if (at < 0) return false;
    from = at + p.length;
  }
  return true;
}

function framer(options: Record<string, string>, sawHandshake: boolean): { f: RequestFramer; ctx: FakeProtocolContext; flags: number[] } {
  const ctx = new FakeProtocolContext({ sawHandshake });
  const flags: number[] = [];
  return { f: new RequestFramer(ctx, parseOptions(options), (fl) => flags.push(fl)), ctx, flags };
}

export const suite: FuzzSuite = {
  id: 'http-requests',
  decoder: 'HTTP request framer (protocols/http/src/request-framer.ts)',
  seed: 0x4771,
  properties: [
    {
      id: 'valid',
      name: 'forwards valid requests byte for byte, each with its number (its body waiting for 100 Continue when it asks), whatever the segmentation',
      runs: 400,
      property: () =>
        fc.property(requests, splits(120), (rs, sizes) => {
          const stream = streamOf(rs);
          const { f, ctx } = framer({}, true);
          for (const c of chunked(stream, sizes)) f.feed(Buffer.from(c));
          f.finish();
          expect(ctx.bytes().equals(stream), 'the same bytes').to.equal(true);
          const want: number[] = [];
          rs.forEach((r, i) => {
            for (let k = 0; k < r.head.length; k++) want.push(i + 1);
            for (let k = 0; k < r.body.length; k++) want.push(r.expectContinue ? CONTINUE_TAG_BASE + i + 1 : i + 1);
          });
          const got = ctx.emitted.flatMap((e) => Array<number>(e.data.length).fill(e.tag));
          expect(got).to.deep.equal(want);
          expect(f.forwarded).to.equal(rs.length);
          expect(ctx.logs).to.deep.equal([]);
        }),
    },
    {
      id: 'untrusted',
      name: 'random and mutated client streams, any options and segmentation: never a throw, valid tags, only captured bytes (unless rewritten), a bounded held head',
      runs: 1000,
      property: () =>
        fc.property(clientStream, splits(150), fc.nat({ max: OPTIONS.length - 1 }), fc.boolean(), (stream, sizes, o, sawHandshake) => {
          const { f, ctx, flags } = framer(OPTIONS[o], sawHandshake);
          const held = (f as unknown as { req: { held: { len: number; buf: Buffer } } }).req.held;
          for (const c of chunked(stream, sizes)) {
            f.feed(Buffer.from(c));
            expect(held.len, 'held head bytes').to.be.at.most(MAX_HEAD);
            expect(held.buf.length, 'held buffer').to.be.at.most(2 * MAX_HEAD);
          }
          f.finish();
          expect(flags.length).to.equal(f.forwarded);
          let last = 0;
          for (const e of ctx.emitted) {
            if (e.tag === RAW_TAG) continue;
            const k = e.tag > CONTINUE_TAG_BASE ? e.tag - CONTINUE_TAG_BASE : e.tag;
            expect(k, 'a forwarded request number').to.be.within(1, f.forwarded);
            expect(k, 'requests in order').to.be.at.least(last);
            last = k;
          }
          if (o < 2) expect(inOrderRanges(stream, ctx.emitted.map((e) => e.data)), 'only captured bytes, in order').to.equal(true);
          for (const l of ctx.logs) expect(l).to.match(/^skipped \d+ client bytes .+/);
        }),
    },
  ],
};
