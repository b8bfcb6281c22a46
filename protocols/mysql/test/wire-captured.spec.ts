import { expect } from 'chai';
import { Capability, Command } from '../src/wire/constants';
import { parseGreeting, parseHandshakeResponse } from '../src/wire/handshake';
import { PacketFramer } from '../src/wire/packet-framer';
import { ReplyReader } from '../src/wire/reply-reader';
import { parseOk } from '../src/wire/response';
import { ResponseTracker, type ResponseSummary } from '../src/wire/response-tracker';
import { CLI_SELECT_1, CLI_WITH_DB, CONNECTOR_SESSION, MYSQL2_SESSION, type Segment } from './wire-fixtures';

type Brief = [command: number, kind: string, rows: number, affectedRows: number, extra?: Record<string, unknown>];

/**
 * Replays a capture after its login (greeting, HandshakeResponse41, OK): each client segment's
 * commands are expected in the order seen, each server segment goes through a ReplyReader into the
 * tracker; `split` re-cuts every server segment into pieces of that many bytes.
 */
function replay(capture: Segment[], split = 0): { summaries: ResponseSummary[]; tracker: ResponseTracker } {
  const [[, greetingHex], [, loginHex], [, loginOkHex]] = capture;
  const greeting = parseGreeting(Buffer.from(greetingHex, 'hex').subarray(4))!;
  const login = parseHandshakeResponse(Buffer.from(loginHex, 'hex').subarray(4))!;
  const capabilities = (greeting.capabilities & login.capabilities) >>> 0;
  expect(parseOk(Buffer.from(loginOkHex, 'hex').subarray(4), capabilities)).to.not.equal(null);

  const summaries: ResponseSummary[] = [];
  const tracker = new ResponseTracker(capabilities, {
    mariadbCapabilities: greeting.mariadbCapabilities & login.mariadbCapabilities,
    onResponse: (s) => summaries.push(s),
  });
  const reader = new ReplyReader({ packet: (seq, length, head, continued) => tracker.packet(seq, length, head, continued) });
  const commands = new PacketFramer();
  for (const [direction, hex] of capture.slice(3)) {
    const bytes = Buffer.from(hex, 'hex');
    if (direction === 'c') {
      commands.feed(bytes);
      for (let p = commands.next(); p !== null; p = commands.next()) tracker.expect(p.payload[0]);
    } else if (split > 0) {
      for (let at = 0; at < bytes.length; at += split) reader.feed(bytes.subarray(at, at + split));
    } else {
      reader.feed(bytes);
    }
  }
  return { summaries, tracker };
}

const brief = (s: ResponseSummary): Brief => {
  const extra: Record<string, unknown> = {};
  if (s.prepared) extra.prepared = s.prepared;
  if (s.errorCode) extra.error = `${s.errorCode} ${s.sqlState} ${s.errorMessage}`;
  if (s.lastInsertId) extra.lastInsertId = s.lastInsertId;
  if (s.results > 1) extra.results = s.results;
  return Object.keys(extra).length > 0 ? [s.command, s.kind, s.rows, s.affectedRows, extra] : [s.command, s.kind, s.rows, s.affectedRows];
};

const { COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_PING } = Command;
const NO_TABLE = "1146 42S02 Table 'wt.nope' doesn't exist";

const cases: Array<[string, Segment[], Brief[]]> = [
  ['mariadb CLI: select 1', CLI_SELECT_1, [[COM_QUERY, 'resultset', 1, 0]]],
  [
    'mariadb CLI: insert, select, select, select',
    CLI_WITH_DB,
    [
      [COM_QUERY, 'ok', 0, 2, { lastInsertId: 1 }],
      [COM_QUERY, 'resultset', 2, 0],
      [COM_QUERY, 'resultset', 1, 0],
      [COM_QUERY, 'resultset', 1, 0],
    ],
  ],
  [
    'mariadb npm connector (DEPRECATE_EOF, CACHE_METADATA)',
    CONNECTOR_SESSION,
    [
      [COM_QUERY, 'ok', 0, 0],
      [COM_QUERY, 'resultset', 1, 0],
      [COM_QUERY, 'resultset', 2, 0, { results: 2 }],
      [COM_STMT_PREPARE, 'ok', 0, 0, { prepared: { statementId: 1, params: 2, columns: 2 } }],
      [COM_STMT_EXECUTE, 'resultset', 2, 0],
      [COM_STMT_PREPARE, 'ok', 0, 0, { prepared: { statementId: 2, params: 1, columns: 0 } }],
      [COM_STMT_EXECUTE, 'ok', 0, 1, { lastInsertId: 3 }],
      [COM_QUERY, 'ok', 0, 0],
      [COM_QUERY, 'err', 0, 0, { error: NO_TABLE }],
      [COM_PING, 'ok', 0, 0],
    ],
  ],
  [
    'mysql2 (EOF packets, multi-statements)',
    MYSQL2_SESSION,
    [
      [COM_QUERY, 'resultset', 2, 0, { results: 3 }],
      [COM_STMT_PREPARE, 'ok', 0, 0, { prepared: { statementId: 3, params: 2, columns: 2 } }],
      [COM_STMT_EXECUTE, 'resultset', 3, 0],
      [COM_STMT_PREPARE, 'ok', 0, 0, { prepared: { statementId: 4, params: 1, columns: 0 } }],
      [COM_STMT_EXECUTE, 'ok', 0, 0],
      [COM_STMT_PREPARE, 'err', 0, 0, { error: NO_TABLE }],
    ],
  ],
];

describe('wire: sessions captured from MariaDB 10.11', () => {
  it('the captures agree on the capabilities they were chosen for', () => {
    const deprecateEof = (capture: Segment[]) => parseHandshakeResponse(Buffer.from(capture[1][1], 'hex').subarray(4))!.capabilities & Capability.DEPRECATE_EOF;
    expect(deprecateEof(CONNECTOR_SESSION)).to.not.equal(0);
    expect(deprecateEof(MYSQL2_SESSION)).to.equal(0);
    expect(deprecateEof(CLI_WITH_DB)).to.equal(0);
  });

  for (const [name, capture, expected] of cases) {
    it(`${name}: every response tracked to its end`, () => {
      const { summaries, tracker } = replay(capture);
      expect(tracker.lost, tracker.lostReason).to.equal(false);
      expect(tracker.pending).to.equal(0);
      expect(summaries.map(brief)).to.deep.equal(expected);
    });

    it(`${name}: the same when the server's segments are cut into 1, 2, 3 and 7-byte pieces`, () => {
      for (const split of [1, 2, 3, 7]) {
        const { summaries, tracker } = replay(capture, split);
        expect(tracker.lost, `${split}: ${tracker.lostReason}`).to.equal(false);
        expect(summaries.map(brief), `pieces of ${split}`).to.deep.equal(expected);
      }
    });
  }
});
