// Fuzz properties of the RESP request parser (src/request-parser.ts: command boundaries in the
// client's bytes, lenient and strict); run by robustness.spec.ts and `npm run fuzz`.
// robustness.spec.ts also drives whole sessions with its own seeded loop.
import { chunked, mutated, randomBytes, splits, type FuzzSuite } from '@tcpcopy/core/fuzz';
import { expect } from 'chai';
import fc from 'fast-check';
import { NAME_BYTES, NEED_MORE, NOT_RESP, RequestParser } from '../src/request-parser';

interface Command {
  bytes: Buffer;
  argc: number;
  inline: boolean;
  /** First argument (multibulk), for the name the parser keeps. */
  first: Buffer;
  /** Strict mode accepts it (multibulk, a name-like first argument of 1 to 64 bytes). */
  strictOk: boolean;
}

const nameChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._|-:'.split(''));
const commandName = fc.oneof(
  fc.constantFrom('GET', 'set', 'HSET', 'auth', 'HELLO', 'MULTI', 'exec', 'CLIENT', 'JSON.SET', 'ft.search', 'XREADGROUP'),
  fc.string({ unit: nameChar, minLength: 1, maxLength: 70 }),
);
const arg = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 400 }) },
).map((a) => Buffer.from(a));

const multibulk: fc.Arbitrary<Command> = fc.tuple(commandName, fc.array(arg, { maxLength: 5 })).map(([name, rest]) => {
  const first = Buffer.from(name, 'latin1');
  const args = [first, ...rest];
  const bytes = Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((a) => [Buffer.from(`$${a.length}\r\n`), a, Buffer.from('\r\n')])]);
  return { bytes, argc: args.length, inline: false, first, strictOk: first.length <= 64 };
});

const inlineChar = fc.constantFrom(...'abcXYZ 019"\'\t-_*$'.split(''));
const inline: fc.Arbitrary<Command> = fc.tuple(fc.string({ unit: inlineChar, minLength: 1, maxLength: 60 }), fc.boolean())
  .filter(([text]) => !text.startsWith('*'))
  .map(([text, crlf]) => ({ bytes: Buffer.from(`${text}${crlf ? '\r\n' : '\n'}`, 'latin1'), argc: 0, inline: true, first: Buffer.alloc(0), strictOk: false }));

const commands = fc.array(fc.oneof({ weight: 3, arbitrary: multibulk }, { weight: 1, arbitrary: inline }), { minLength: 1, maxLength: 8 });

interface Step {
  /** Absolute stream offset after the command, or -1 for NOT_RESP. */
  end: number;
  argc: number;
  inline: boolean;
  name: string;
  error: string;
}

/** Feeds the chunks as the session does (advance until NEED_MORE); stops at the first NOT_RESP. */
function scan(parser: RequestParser, chunks: readonly Buffer[]): Step[] {
  const steps: Step[] = [];
  let base = 0;
  for (const c of chunks) {
    let pos = 0;
    while (pos < c.length) {
      const r = parser.advance(c, pos, c.length);
      if (r === NEED_MORE) break;
      if (r === NOT_RESP) {
        expect(parser.error, 'NOT_RESP says why').to.not.equal('');
        steps.push({ end: -1, argc: 0, inline: false, name: '', error: parser.error });
        return steps;
      }
      expect(r, 'a command ends after where the scan started, inside the chunk').to.be.within(pos + 1, c.length);
      expect(parser.argc).to.be.at.least(0);
      expect(parser.nameLength).to.be.at.least(0);
      steps.push({
        end: base + r, argc: parser.argc, inline: parser.inline,
        name: parser.name.toString('latin1', 0, Math.min(parser.nameLength, NAME_BYTES)), error: '',
      });
      pos = r;
    }
    base += c.length;
  }
  return steps;
}

const clientStream = fc.oneof(
  { weight: 1, arbitrary: commands.map((cs) => Buffer.concat(cs.map((c) => c.bytes))) },
  { weight: 4, arbitrary: mutated(commands.map((cs) => Buffer.concat(cs.map((c) => c.bytes))), 4) },
  { weight: 1, arbitrary: randomBytes(200) },
);

export const suite: FuzzSuite = {
  id: 'resp-requests',
  decoder: 'RESP request parser (plugins/redis/src/request-parser.ts)',
  seed: 0x7e59,
  properties: [
    {
      id: 'valid',
      name: 'finds the end, argument count and name of every valid command (multibulk with binary arguments, inline), in lenient and strict mode, whatever the segmentation',
      runs: 500,
      property: () =>
        fc.property(commands, splits(50), (cs, sizes) => {
          const stream = Buffer.concat(cs.map((c) => c.bytes));
          const steps = scan(new RequestParser(false), chunked(stream, sizes));
          let end = 0;
          expect(steps.map((s) => s.end)).to.deep.equal(cs.map((c) => (end += c.bytes.length)));
          cs.forEach((c, i) => {
            expect(steps[i].inline).to.equal(c.inline);
            if (c.inline) return;
            expect(steps[i].argc).to.equal(c.argc);
            expect(steps[i].name).to.equal(c.first.toString('latin1', 0, NAME_BYTES).toUpperCase());
          });
          // Strict mode (finding a command start mid-stream) accepts the multibulk commands with plausible names.
          const strictOnes = cs.filter((c) => c.strictOk);
          const strict = scan(new RequestParser(true), chunked(Buffer.concat(strictOnes.map((c) => c.bytes)), sizes));
          expect(strict.map((s) => s.argc)).to.deep.equal(strictOnes.map((c) => c.argc));
        }),
    },
    {
      id: 'untrusted',
      name: 'random and mutated streams, lenient and strict: never a throw, boundaries inside the chunk, and the same boundaries and verdict however the stream is cut',
      runs: 1500,
      property: () =>
        fc.property(clientStream, splits(30), fc.boolean(), (stream, sizes, strict) => {
          const whole = scan(new RequestParser(strict), [stream]);
          const pieces = scan(new RequestParser(strict), chunked(stream, sizes));
          expect(pieces).to.deep.equal(whole);
        }),
    },
  ],
};
