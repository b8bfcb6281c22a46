// Fuzz properties of the HTTP response tracker (src/response-tracker.ts: the target's replies
// framed into responses and counted); run by fuzz.spec.ts and `npm run fuzz`.
import { FakeProtocolContext } from '@tcpcopy/core/compliance';
import { mutated, randomBytes, type FuzzSuite } from '@tcpcopy/core/fuzz';
import { expect } from 'chai';
import fc from 'fast-check';
import { MAX_HEAD } from '../src/byte-buf';
import { REQ_CONNECT, REQ_HEAD } from '../src/request-tags';
import { ResponseTracker } from '../src/response-tracker';
import { response, type Response } from './fuzz-messages';

/** Requests (HEAD or not) and a valid response to each; only the last may be close-delimited. */
const exchange = fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }).chain((heads) =>
  fc.tuple(fc.constant(heads), fc.tuple(...heads.map((h, i) => response(h, i === heads.length - 1)))));

function tracker(): { t: ResponseTracker; ctx: FakeProtocolContext } {
  const ctx = new FakeProtocolContext({ targetPort: 80 });
  return { t: new ResponseTracker(ctx), ctx };
}

/** Where each reply packet ends, and how many of its bytes intercept returned. */
const packets = fc.array(fc.record({ size: fc.integer({ min: 1, max: 300 }), hide: fc.nat({ max: 400 }) }), { minLength: 1, maxLength: 12 });

export const suite: FuzzSuite = {
  id: 'http-responses',
  decoder: 'HTTP response tracker (protocols/http/src/response-tracker.ts)',
  seed: 0x4772,
  properties: [
    {
      id: 'valid',
      name: 'counts every valid response (interim, sized, chunked, bodiless, close-delimited) whatever the packets, even when intercept left out body bytes',
      runs: 400,
      property: () =>
        fc.property(exchange, packets, ([heads, responses], plan) => {
          const { t, ctx } = tracker();
          for (const h of heads) t.requestSent(h ? REQ_HEAD : 0);
          const stream = Buffer.concat(responses.map((r) => r.bytes));
          // Body bytes counted by length, as offsets in the stream: intercept may return a packet without them.
          const skippable: Array<[number, number]> = [];
          let base = 0;
          for (const r of responses as Response[]) {
            for (const [s, e] of r.skippable) skippable.push([base + s, base + e]);
            base += r.bytes.length;
          }
          t.onConnect();
          for (let at = 0, i = 0; at < stream.length; i++) {
            const { size, hide } = plan[i % plan.length];
            const end = Math.min(stream.length, at + size);
            // Leave out the packet's tail when it lies inside one sized body.
            let shown = end;
            const cut = end - Math.min(hide, end - at - 1);
            if (skippable.some(([s, e]) => cut >= s && end <= e)) shown = cut;
            t.onTargetData(stream.subarray(at, shown), end - at, { gap: 0 });
            at = end;
          }
          if (responses[responses.length - 1].closeDelimited) t.onTargetClose();
          expect(t.lost, ctx.logs.join('\n')).to.equal(false);
          expect(t.completed).to.equal(heads.length);
          expect(t.finalHeadFor).to.equal(heads.length);
        }),
    },
    {
      id: 'untrusted',
      name: 'random and mutated replies, gaps, cut packets, closes and reconnects: never a throw, never more responses than requests, a bounded held head',
      runs: 1000,
      property: () =>
        fc.property(
          fc.array(fc.constantFrom(0, REQ_HEAD, REQ_CONNECT), { maxLength: 8 }),
          fc.oneof(exchange.map(([, rs]) => Buffer.concat(rs.map((r) => r.bytes))), randomBytes(300))
            .chain((s) => fc.oneof({ weight: 1, arbitrary: fc.constant(s) }, { weight: 4, arbitrary: mutated(fc.constant(s), 5) })),
          fc.array(fc.record({
            size: fc.integer({ min: 1, max: 200 }),
            unseen: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 3000 }) }),
            gap: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 500 }) }),
            event: fc.constantFrom('none', 'none', 'none', 'none', 'close', 'connect', 'request'),
          }), { minLength: 1, maxLength: 12 }),
          (flags, stream, plan) => {
            const { t, ctx } = tracker();
            let requested = 0;
            for (const f of flags) {
              t.requestSent(f);
              requested++;
            }
            t.onConnect();
            const held = (t as unknown as { res: { held: { len: number; buf: Buffer } } }).res.held;
            let done = 0;
            for (let at = 0, i = 0; at < stream.length; i++) {
              const step = plan[i % plan.length];
              const piece = stream.subarray(at, at + step.size);
              t.onTargetData(piece, piece.length + step.unseen, { gap: step.gap });
              at += piece.length;
              if (step.event === 'close') t.onTargetClose();
              else if (step.event === 'connect') t.onConnect();
              else if (step.event === 'request') {
                t.requestSent(0);
                requested++;
              }
              expect(t.completed, 'complete responses never decrease').to.be.at.least(done);
              done = t.completed;
              expect(t.completed, 'no more responses than requests').to.be.at.most(requested);
              expect(t.continued).to.be.at.most(requested);
              expect(t.finalHeadFor).to.be.at.most(requested);
              expect(held.len).to.be.at.most(MAX_HEAD);
              expect(held.buf.length).to.be.at.most(2 * MAX_HEAD);
            }
            expect(ctx.logs.length, 'framing is lost once at most').to.be.at.most(1);
            for (const l of ctx.logs) expect(l).to.match(/^cannot follow the target's responses any more: .+; requests now go by the online byte counts$/);
          },
        ),
    },
  ],
};
