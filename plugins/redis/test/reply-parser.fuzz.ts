// Fuzz properties of the RESP reply parser (src/reply-parser.ts: complete replies counted in the
// target's bytes, RESP2 and RESP3); run by robustness.spec.ts and `npm run fuzz`.
import { mutated, randomBytes, splits, type FuzzSuite } from '@tcpcopy/core/fuzz';
import { expect } from 'chai';
import fc from 'fast-check';
import { ReplyParser } from '../src/reply-parser';

/** Encoded RESP with the ranges of bulk bodies (and their CRLF): bytes intercept may leave out of a packet. */
interface Enc {
  parts: Buffer[];
  length: number;
  skippable: Array<[number, number]>;
}

/** A RESP value: how to write it, and the type byte of what it stands for (after any attributes). */
interface Value {
  w: (e: Enc) => void;
  type: string;
}

function put(e: Enc, s: string | Buffer): void {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  e.parts.push(b);
  e.length += b.length;
}

const lineChar = fc.constantFrom(...'abcOKERR 019.-+:,()#_'.split(''));
const line = fc.string({ unit: lineChar, maxLength: 20 });
const blob = fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a));

const simple: fc.Arbitrary<Value> = fc.tuple(fc.constantFrom('+', '-', ':', ',', '(', '#'), line)
  .map(([t, s]) => ({ w: (e: Enc) => put(e, `${t}${s}\r\n`), type: t }));
const nul: fc.Arbitrary<Value> = fc.constantFrom('_\r\n', '$-1\r\n', '*-1\r\n').map((s) => ({ w: (e: Enc) => put(e, s), type: s[0] }));
const bulk: fc.Arbitrary<Value> = fc.tuple(fc.constantFrom('$', '!', '='), blob).map(([t, data]) => ({
  type: t,
  w: (e: Enc) => {
    put(e, `${t}${data.length}\r\n`);
    e.skippable.push([e.length, e.length + data.length + 2]);
    put(e, data);
    put(e, '\r\n');
  },
}));
const streamedString: fc.Arbitrary<Value> = fc.array(fc.uint8Array({ minLength: 1, maxLength: 30 }).map((a) => Buffer.from(a)), { maxLength: 3 }).map((chunks) => ({
  type: '$',
  w: (e: Enc) => {
    put(e, '$?\r\n');
    for (const c of chunks) {
      put(e, `;${c.length}\r\n`);
      e.skippable.push([e.length, e.length + c.length + 2]);
      put(e, c);
      put(e, '\r\n');
    }
    put(e, ';0\r\n');
  },
}));

/** Values nested up to a few levels: aggregates (array, set, map, streamed), attributes before a value. */
const { value } = fc.letrec<{ value: Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    simple,
    nul,
    bulk,
    streamedString,
    fc.tuple(fc.constantFrom('*', '~'), fc.array(tie('value'), { maxLength: 3 })).map(([t, vs]) => ({
      type: t,
      w: (e: Enc) => {
        put(e, `${t}${vs.length}\r\n`);
        for (const v of vs) v.w(e);
      },
    })),
    fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 2 }).map((kvs) => ({
      type: '%',
      w: (e: Enc) => {
        put(e, `%${kvs.length}\r\n`);
        for (const [k, v] of kvs) {
          k.w(e);
          v.w(e);
        }
      },
    })),
    fc.array(tie('value'), { maxLength: 3 }).map((vs) => ({
      type: '*',
      w: (e: Enc) => {
        put(e, '*?\r\n');
        for (const v of vs) v.w(e);
        put(e, '.\r\n');
      },
    })),
    // An attribute describes the value after it and fills no slot.
    fc.tuple(tie('value'), tie('value'), tie('value')).map(([k, v, x]) => ({
      type: x.type,
      w: (e: Enc) => {
        put(e, '|1\r\n');
        k.w(e);
        v.w(e);
        x.w(e);
      },
    })),
  ),
}));

/** A top-level reply: counted (an error when it is a - or !), or a push, which is not. */
const topLevel = fc.oneof(
  { weight: 5, arbitrary: value.map((v) => ({ v, push: false })) },
  {
    weight: 1,
    arbitrary: fc.array(value, { maxLength: 3 }).map((vs) => ({
      v: { type: '>', w: (e: Enc) => { put(e, `>${vs.length}\r\n`); for (const x of vs) x.w(e); } },
      push: true,
    })),
  },
);

interface Stream {
  bytes: Buffer;
  skippable: Array<[number, number]>;
  /** isError of each counted reply, in order. */
  replies: boolean[];
}

const replyStream: fc.Arbitrary<Stream> = fc.array(topLevel, { minLength: 1, maxLength: 8 }).map((tops) => {
  const e: Enc = { parts: [], length: 0, skippable: [] };
  for (const t of tops) t.v.w(e);
  return {
    bytes: Buffer.concat(e.parts),
    skippable: e.skippable,
    replies: tops.filter((t) => !t.push).map((t) => t.v.type === '-' || t.v.type === '!'),
  };
});

function run(stream: Buffer, plan: ReadonlyArray<{ size: number; unseen: number }>): { replies: boolean[]; lost: string } {
  const replies: boolean[] = [];
  const p = new ReplyParser({ reply: (isError) => replies.push(isError) });
  for (let at = 0, i = 0; at < stream.length; i++) {
    const { size, unseen } = plan[i % plan.length];
    const piece = stream.subarray(at, at + size);
    p.feed(piece, piece.length + unseen);
    at += piece.length + unseen;
    const depth = (p as unknown as { depth: number }).depth;
    expect(depth, 'nesting is bounded').to.be.within(0, 512);
  }
  return { replies, lost: p.lostReason };
}

export const suite: FuzzSuite = {
  id: 'resp-replies',
  decoder: 'RESP reply parser (plugins/redis/src/reply-parser.ts)',
  seed: 0x7e5a,
  properties: [
    {
      id: 'valid',
      name: 'counts every valid RESP2/RESP3 reply (nested, streamed, attributes; pushes not), errors flagged, whatever the packets, even with bulk bytes left out',
      runs: 500,
      property: () =>
        fc.property(replyStream, fc.array(fc.record({ size: fc.integer({ min: 1, max: 60 }), hide: fc.nat({ max: 200 }) }), { minLength: 1, maxLength: 10 }), (s, plan) => {
          const replies: boolean[] = [];
          const p = new ReplyParser({ reply: (isError) => replies.push(isError) });
          for (let at = 0, i = 0; at < s.bytes.length; i++) {
            const { size, hide } = plan[i % plan.length];
            const end = Math.min(s.bytes.length, at + size);
            let shown = end;
            const cut = end - Math.min(hide, end - at - 1);
            if (s.skippable.some(([a, b]) => cut >= a && end <= b)) shown = cut;
            p.feed(s.bytes.subarray(at, shown), end - at);
            at = end;
          }
          expect(p.lost, p.lostReason).to.equal(false);
          expect(replies).to.deep.equal(s.replies);
        }),
    },
    {
      id: 'untrusted',
      name: 'random and mutated replies: never a throw, bounded nesting, and the same replies and verdict however the packets are cut',
      runs: 1500,
      property: () =>
        fc.property(
          fc.oneof({ weight: 1, arbitrary: replyStream.map((s) => s.bytes) }, { weight: 4, arbitrary: mutated(replyStream.map((s) => s.bytes), 4) }, { weight: 1, arbitrary: randomBytes(200) }),
          splits(40),
          (stream, sizes) => {
            const whole = run(stream, [{ size: stream.length || 1, unseen: 0 }]);
            const pieces = run(stream, sizes.map((size) => ({ size, unseen: 0 })));
            expect(pieces).to.deep.equal(whole);
            // Packets with bytes intercept did not return: the parser skips them in a body or gives up, never throws.
            run(stream, sizes.map((size, i) => ({ size, unseen: i % 3 === 0 ? size : 0 })));
          },
        ),
    },
  ],
};
