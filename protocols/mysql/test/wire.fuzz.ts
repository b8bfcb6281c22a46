/**
 * Fuzz properties of the MySQL wire decoders: random and mutated packets (bit flips, truncations,
 * corrupted length fields) into every parser, the framer, the reader and the tracker. Nothing may
 * throw, and what they keep stays bounded. Run with the fixed seed by wire-fuzz.spec.ts and with
 * random seeds by `npm run fuzz`.
 */
import type { FuzzSuite } from '@tcpcopy/core/fuzz';
import { expect } from 'chai';
import fc from 'fast-check';
import { Capability, Command, MariaDbCapability, ServerStatus } from '../src/wire/constants';
import {
  buildChangeUser,
  buildHandshakeResponse,
  isSslRequest,
  parseAuthMoreData,
  parseAuthSwitchRequest,
  parseChangeUser,
  parseGreeting,
  parseHandshakeResponse,
} from '../src/wire/handshake';
import { readLenencBytes, readLenencInt, readNulTerminated } from '../src/wire/lenenc';
import { PacketFramer } from '../src/wire/packet-framer';
import { ReplyReader } from '../src/wire/reply-reader';
import { isEofPacket, isProgressReport, parseEof, parseErr, parseOk } from '../src/wire/response';
import { ResponseTracker, type ResponseSummary } from '../src/wire/response-tracker';
import { CLI_SELECT_1, CLI_WITH_DB, CONNECTOR_SESSION, MYSQL2_SESSION, segmentsFrom } from './wire-fixtures';
import { binaryRow, columnCount, columnDef, eof, err, ok, okEof, packets, prepareOk, textRow } from './wire-helpers';

const SEED = 42;
const CAPTURES = [CLI_SELECT_1, CLI_WITH_DB, CONNECTOR_SESSION, MYSQL2_SESSION];

/** Logical payloads of one direction of the captures. */
function capturedPayloads(direction: 'c' | 's'): Buffer[] {
  const out: Buffer[] = [];
  for (const capture of CAPTURES) {
    const framer = new PacketFramer();
    for (const segment of segmentsFrom(capture, direction)) {
      framer.feed(segment);
      for (let p = framer.next(); p !== null; p = framer.next()) out.push(p.payload);
    }
  }
  return out;
}

const FULL_CAPS = 0xffffffff;
const CORPUS: Buffer[] = [
  ...capturedPayloads('s'),
  ...capturedPayloads('c'),
  buildChangeUser({ user: 'bob', authResponse: Buffer.alloc(20, 1), database: 'db', charset: 8, authPluginName: 'p', connectAttrs: Buffer.from('\x01a\x01b') }, FULL_CAPS),
  Buffer.concat([Buffer.of(0xfe), Buffer.from('caching_sha2_password\0'), Buffer.alloc(21, 3)]),
  Buffer.from('01030405', 'hex'),
  ok({ affectedRows: 70000, lastInsertId: 2 ** 33, info: 'info' }),
  okEof({ status: 0x4a }),
  err(1064, 'syntax'),
  eof(0x22),
  prepareOk(1, 2, 3, 4, true),
  columnCount(300, true),
  columnDef('column'),
  textRow(['x', null, 'y'.repeat(300)]),
  binaryRow([1, null, 3]),
];

interface Mutation {
  index: number;
  flips: Array<[number, number]>;
  overwrite: [number, number, Uint8Array] | null;
  cut: number | null;
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  index: fc.nat({ max: CORPUS.length - 1 }),
  flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { maxLength: 4 }),
  // A length-field corruption: a length-encoding marker (or 0/NUL) written over the packet, then bytes.
  overwrite: fc.option(fc.tuple(fc.nat(), fc.constantFrom(0x00, 0x01, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff), fc.uint8Array({ maxLength: 8 })), { nil: null }),
  cut: fc.option(fc.nat(), { nil: null }),
});

function mutate(source: Buffer, m: Mutation): Buffer {
  const out = Buffer.from(source);
  if (out.length > 0) {
    for (const [at, bit] of m.flips) out[at % out.length] ^= 1 << bit;
    if (m.overwrite !== null) {
      const [at, marker, rest] = m.overwrite;
      const start = at % out.length;
      out[start] = marker;
      for (let i = 0; i < rest.length && start + 1 + i < out.length; i++) out[start + 1 + i] = rest[i];
    }
  }
  return m.cut === null ? out : out.subarray(0, m.cut % (out.length + 1));
}

const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  mutationArb.map((m) => mutate(CORPUS[m.index], m)),
);

/** Runs every parser on `payload`; checks what comes back is no bigger than what went in. */
function parseAll(payload: Buffer, caps: number): void {
  const n = payload.length;
  for (const at of [0, 1, n >> 1, n - 1, n]) {
    const int = readLenencInt(payload, at);
    expect(int.next).to.be.at.most(n);
    const field = readLenencBytes(payload, at);
    expect(field.value.length).to.be.at.most(n);
    expect(readNulTerminated(payload, at).next).to.be.at.most(n);
  }
  const greeting = parseGreeting(payload);
  if (greeting) expect(greeting.scramble.length).to.be.at.most(n);
  isSslRequest(payload);
  const login = parseHandshakeResponse(payload);
  if (login) {
    expect(login.user.length + login.authResponse.length + (login.connectAttrs?.length ?? 0)).to.be.below(n);
    // Whatever parses builds again (unless a field cannot be encoded in that form).
    try {
      buildHandshakeResponse(login);
    } catch (e) {
      expect(e).to.be.instanceOf(RangeError);
    }
  }
  const sw = parseAuthSwitchRequest(payload);
  if (sw) expect(sw.rawPluginData.length).to.be.below(Math.max(n, 1));
  parseAuthMoreData(payload);
  const change = parseChangeUser(payload, caps);
  if (change) expect(change.user.length + change.authResponse.length + change.database.length).to.be.below(n);
  parseOk(payload, caps);
  const e = parseErr(payload);
  if (e) expect(e.message.length).to.be.at.most(512);
  parseEof(payload);
  isEofPacket(payload);
  isProgressReport(payload);
}

export const suite: FuzzSuite = {
  id: 'mysql-wire',
  decoder: 'MySQL wire (protocols/mysql/src/wire: packets, framer, reply reader, response tracker)',
  seed: SEED,
  properties: [
    {
      id: 'parsers',
      name: 'every parser is total on random and mutated packets',
      runs: 5000,
      property: () => {
        return fc.property(bytesArb, fc.integer({ min: 0, max: 0xffffffff }), (payload, caps) => {
          parseAll(payload, caps);
        });
      },
    },
    {
      id: 'framer-round-trip',
      name: 'the framer gives back exactly the framed payloads, however the stream is chunked',
      runs: 500,
      property: () => {
        return fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 10 }), (payloads, chunks) => {
          const stream = packets(0, payloads.map((p) => Buffer.from(p)));
          const framer = new PacketFramer();
          const got: string[] = [];
          for (let at = 0, i = 0; at < stream.length; i++) {
            const n = chunks[i % chunks.length];
            framer.feed(stream.subarray(at, at + n));
            at += n;
            for (let p = framer.next(); p !== null; p = framer.next()) got.push(p.payload.toString('hex'));
          }
          expect(got).to.deep.equal(payloads.map((p) => Buffer.from(p).toString('hex')));
          expect(framer.buffered).to.equal(0);
        });
      },
    },
    {
      id: 'framer-bounded',
      name: 'the framer stays bounded on corrupted streams',
      runs: 1000,
      property: () => {
        const max = 1000;
        return fc.property(fc.array(bytesArb, { maxLength: 8 }), fc.array(mutationArb, { maxLength: 3 }), fc.integer({ min: 1, max: 97 }), (payloads, mutations, chunk) => {
          let stream = packets(0, payloads);
          for (const m of mutations) stream = mutate(stream, { ...m, cut: m.cut === null ? null : m.cut + stream.length - 8 });
          const framer = new PacketFramer({ maxPacketSize: max });
          let fed = 0;
          for (let at = 0; at < stream.length; at += chunk) {
            const piece = stream.subarray(at, at + chunk);
            framer.feed(piece);
            fed += piece.length;
            for (let p = framer.next(); p !== null; p = framer.next()) {
              expect(p.payload.length).to.be.at.most(max);
              expect(p.raw.length).to.be.at.least(p.payload.length + 4);
              fed -= p.raw.length;
            }
            expect(framer.buffered).to.be.at.most(fed);
            if (framer.error !== null) expect(framer.buffered).to.equal(0);
          }
        });
      },
    },
    {
      id: 'reader-bounded',
      name: 'the reader stays bounded, heads within their limits, on random streams with unknown bytes',
      runs: 1000,
      property: () => {
        return fc.property(
          fc.array(fc.oneof(bytesArb.map((b) => packets(1, [b])), bytesArb), { maxLength: 8 }),
          fc.array(fc.record({ size: fc.integer({ min: 1, max: 80 }), unknown: fc.integer({ min: 0, max: 40 }), limit: fc.constantFrom(0, 1, 9, 64, 100, 5000) }), { minLength: 1, maxLength: 8 }),
          (parts, plan) => {
            const stream = Buffer.concat(parts);
            let limit = 64;
            let lostSeen = false;
            const reader: ReplyReader = new ReplyReader({
              packet: (seq, length, head) => {
                expect(lostSeen).to.equal(false);
                expect(seq).to.be.within(0, 255);
                expect(head.length).to.be.at.most(Math.min(length, limit));
              },
            });
            for (let at = 0, i = 0; at < stream.length; i++) {
              const step = plan[i % plan.length];
              // Head limits apply from the next packet: keep the largest seen as the bound.
              reader.wantWhole(step.limit);
              limit = Math.max(limit, step.limit);
              const known = stream.subarray(at, at + step.size);
              reader.feed(known, known.length + step.unknown);
              at += known.length + step.unknown;
              lostSeen = reader.lost;
              const store = (reader as unknown as { headStore: Buffer }).headStore.length;
              expect(store).to.be.at.most(Math.max(limit, 64));
            }
          },
        );
      },
    },
    {
      id: 'tracker-bounded',
      name: 'the tracker never throws and stays bounded on mutated response streams',
      runs: 2000,
      property: () => {
        const responses = [
          ok({ affectedRows: 1 }),
          err(1146, 'x'.repeat(400)),
          eof(0x22),
          okEof({ status: ServerStatus.MORE_RESULTS_EXISTS }),
          columnCount(2),
          columnCount(1, false),
          columnDef('a'),
          textRow(['1', null]),
          binaryRow([1, 2]),
          prepareOk(1, 1, 1),
          Buffer.from('fb2f746d70', 'hex'),
          Buffer.from('ffffff0101', 'hex'),
          Buffer.from('0103', 'hex'),
        ];
        const commands = [Command.COM_QUERY, Command.COM_STMT_PREPARE, Command.COM_STMT_EXECUTE, Command.COM_STMT_FETCH, Command.COM_PING, Command.COM_FIELD_LIST, Command.COM_SET_OPTION, Command.COM_STATISTICS, Command.COM_CHANGE_USER, Command.COM_STMT_CLOSE, 0x42];
        const eventArb = fc.oneof(
          fc.record({ command: fc.constantFrom(...commands) }),
          fc.record({ reply: fc.array(fc.nat({ max: responses.length - 1 }), { minLength: 1, maxLength: 6 }), mutation: fc.option(mutationArb, { nil: null }), seq: fc.constantFrom(0, 1, 2, 7) }),
        );
        return fc.property(
          fc.constantFrom(0, Capability.DEPRECATE_EOF, Capability.OPTIONAL_RESULTSET_METADATA | Capability.DEPRECATE_EOF),
          fc.constantFrom(0, MariaDbCapability.CACHE_METADATA | MariaDbCapability.PROGRESS),
          fc.array(eventArb, { maxLength: 20 }),
          (extra, mariadb, events) => {
            const summaries: ResponseSummary[] = [];
            const tracker = new ResponseTracker((Capability.PROTOCOL_41 | extra) >>> 0, { mariadbCapabilities: mariadb, maxPending: 8, maxErrorMessage: 100 });
            const reader = new ReplyReader({
              packet: (seq, length, head, continued) => {
                const wasLost = tracker.lost;
                const s = tracker.packet(seq, length, head, continued);
                if (s) {
                  expect(wasLost).to.equal(false);
                  summaries.push(s);
                }
              },
            });
            let packetsFed = 0;
            for (const event of events) {
              if ('command' in event) {
                tracker.expect(event.command);
              } else {
                let stream = packets(event.seq, event.reply.map((i) => responses[i]));
                if (event.mutation) stream = mutate(stream, event.mutation);
                packetsFed += event.reply.length + 4;
                reader.feed(stream);
              }
              expect(tracker.pending).to.be.at.most(8);
            }
            for (const s of summaries) {
              expect(s.errorMessage.length).to.be.at.most(100);
              expect(s.rows).to.be.at.most(packetsFed);
            }
          },
        );
      },
    },
    {
      id: 'tracker-valid',
      name: 'the tracker follows every well-formed response it is given, to the right counts',
      runs: 1000,
      property: () => {
        type Result = { ok: number } | { columns: number; rows: number };
        const resultArb: fc.Arbitrary<Result> = fc.oneof(
          fc.record({ ok: fc.nat({ max: 70000 }) }),
          fc.record({ columns: fc.integer({ min: 1, max: 3 }), rows: fc.nat({ max: 4 }) }),
        );
        return fc.property(
          fc.boolean(),
          fc.constantFrom(Command.COM_QUERY, Command.COM_STMT_EXECUTE),
          fc.array(resultArb, { minLength: 1, maxLength: 4 }),
          fc.boolean(),
          fc.integer({ min: 1, max: 50 }),
          (deprecateEof, command, results, endsInError, chunk) => {
            const caps = (Capability.PROTOCOL_41 | (deprecateEof ? Capability.DEPRECATE_EOF : 0)) >>> 0;
            const binary = command === Command.COM_STMT_EXECUTE;
            const payloads: Buffer[] = [];
            let rows = 0;
            let affected = 0;
            results.forEach((r, i) => {
              const more = i < results.length - 1 || endsInError;
              const status = more ? ServerStatus.MORE_RESULTS_EXISTS | 2 : 2;
              if ('ok' in r) {
                payloads.push(ok({ affectedRows: r.ok, status }));
                affected += r.ok;
                return;
              }
              payloads.push(columnCount(r.columns));
              for (let c = 0; c < r.columns; c++) payloads.push(columnDef(`c${c}`));
              if (!deprecateEof) payloads.push(eof());
              for (let k = 0; k < r.rows; k++) payloads.push(binary ? binaryRow(Array(r.columns).fill(k)) : textRow(Array(r.columns).fill(String(k))));
              payloads.push(deprecateEof ? okEof({ status }) : eof(status));
              rows += r.rows;
            });
            if (endsInError) payloads.push(err(1213, 'Deadlock found'));

            const summaries: ResponseSummary[] = [];
            const tracker = new ResponseTracker(caps, { onResponse: (s) => summaries.push(s) });
            const reader = new ReplyReader({ packet: (seq, length, head, continued) => tracker.packet(seq, length, head, continued) });
            tracker.expect(command);
            tracker.expect(Command.COM_PING);
            const stream = Buffer.concat([packets(1, payloads), packets(1, [ok()])]);
            for (let at = 0; at < stream.length; at += chunk) reader.feed(stream.subarray(at, at + chunk));

            expect(tracker.lost, tracker.lostReason).to.equal(false);
            expect(summaries).to.have.length(2);
            const [s, ping] = summaries;
            const anyResultSet = results.some((r) => 'columns' in r);
            expect(s.kind).to.equal(endsInError ? 'err' : anyResultSet ? 'resultset' : 'ok');
            expect(s.rows).to.equal(rows);
            expect(s.affectedRows).to.equal(affected);
            expect(ping.kind).to.equal('ok');
          },
        );
      },
    },
    {
      id: 'captured-mutated',
      name: 'reader and tracker survive the captured sessions mutated',
      runs: 1000,
      property: () => {
        const streams = CAPTURES.map((c) => Buffer.concat(segmentsFrom(c, 's').slice(2)));
        return fc.property(fc.nat({ max: streams.length - 1 }), fc.array(mutationArb, { maxLength: 3 }), fc.integer({ min: 1, max: 40 }), (index, mutations, chunk) => {
          let stream: Buffer = streams[index];
          for (const m of mutations) stream = mutate(stream, { ...m, cut: null });
          const tracker = new ResponseTracker(Capability.PROTOCOL_41 | Capability.DEPRECATE_EOF, { maxPending: 64 });
          for (let i = 0; i < 12; i++) tracker.expect(Command.COM_QUERY);
          const reader = new ReplyReader({ packet: (seq, length, head, continued) => tracker.packet(seq, length, head, continued) });
          for (let at = 0; at < stream.length; at += chunk) reader.feed(stream.subarray(at, at + chunk));
          expect(tracker.pending).to.be.at.most(12);
        });
      },
    },
  ],
};
