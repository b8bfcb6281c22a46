import { expect } from 'chai';
import { Capability, Command, MariaDbCapability, ServerStatus } from '../src/wire/constants';
import { frame } from '../src/wire/handshake';
import { ReplyReader } from '../src/wire/reply-reader';
import { expectsResponse, ResponseTracker, type ResponseSummary, type ResponseTrackerOptions } from '../src/wire/response-tracker';
import { binaryRow, columnCount, columnDef, eof, err, hex, ok, okEof, packets, prepareOk, textRow } from './wire-helpers';

const BASE = (Capability.PROTOCOL_41 | Capability.TRANSACTIONS | Capability.SECURE_CONNECTION | Capability.MULTI_RESULTS | Capability.PS_MULTI_RESULTS) >>> 0;
const DEPRECATE = (BASE | Capability.DEPRECATE_EOF) >>> 0;
const MORE = ServerStatus.MORE_RESULTS_EXISTS | ServerStatus.AUTOCOMMIT;

/** A ReplyReader feeding a ResponseTracker, the way the session uses them. */
class Conn {
  readonly summaries: ResponseSummary[] = [];
  readonly tracker: ResponseTracker;
  readonly reader: ReplyReader;

  constructor(capabilities: number, options: ResponseTrackerOptions = {}) {
    this.tracker = new ResponseTracker(capabilities, { ...options, onResponse: (s) => this.summaries.push(s) });
    this.reader = new ReplyReader({ packet: (seq, length, head, continued) => this.tracker.packet(seq, length, head, continued) });
  }

  send(command: number, requestPackets?: number): this {
    this.tracker.expect(command, requestPackets);
    return this;
  }

  /** The server's packets, numbered from `firstSeq`. */
  reply(payloads: Buffer[], firstSeq = 1): this {
    this.reader.feed(packets(firstSeq, payloads));
    return this;
  }

  get last(): ResponseSummary {
    return this.summaries[this.summaries.length - 1];
  }
}

/** Feeds the packets one at a time, checking the response completes with the last one only. */
function completesAtLast(conn: Conn, payloads: Buffer[], firstSeq = 1): ResponseSummary {
  const before = conn.summaries.length;
  payloads.forEach((p, i) => {
    conn.reader.feed(frame(firstSeq + i, p));
    expect(conn.tracker.lost, `packet ${i}: ${conn.tracker.lostReason}`).to.equal(false);
    expect(conn.summaries.length - before, `after packet ${i}`).to.equal(i === payloads.length - 1 ? 1 : 0);
  });
  return conn.last;
}

describe('wire: ResponseTracker', () => {
  describe('COM_QUERY', () => {
    it('completes on OK, with affected rows and last insert id', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY);
      expect(conn.tracker.pending).to.equal(1);
      conn.reply([ok({ affectedRows: 2, lastInsertId: 17, warnings: 1 })]);
      expect(conn.summaries).to.have.length(1);
      expect(conn.last).to.deep.include({ command: Command.COM_QUERY, kind: 'ok', affectedRows: 2, lastInsertId: 17, warnings: 1, rows: 0, results: 1 });
      expect(conn.tracker.pending).to.equal(0);
    });

    it('completes on ERR, with code, SQL state and message', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY).reply([err(1064, 'You have an error in your SQL syntax', '42000')]);
      expect(conn.last).to.deep.include({ kind: 'err', errorCode: 1064, sqlState: '42000', errorMessage: 'You have an error in your SQL syntax' });
    });

    it('bounds the error message', () => {
      const conn = new Conn(BASE, { maxErrorMessage: 8 }).send(Command.COM_QUERY).reply([err(1064, 'a long message')]);
      expect(conn.last.errorMessage).to.equal('a long m');
    });

    it('follows a result set without CLIENT_DEPRECATE_EOF: count, definitions, EOF, rows, EOF', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY);
      const s = completesAtLast(conn, [columnCount(2), columnDef('id'), columnDef('v'), eof(), textRow(['1', 'a']), textRow(['2', null]), textRow([null, 'c']), eof(0x22)]);
      expect(s).to.deep.include({ kind: 'resultset', rows: 3, status: 0x22, results: 1 });
    });

    it('follows a result set with CLIENT_DEPRECATE_EOF: no EOF after the definitions, an 0xFE OK at the end', () => {
      const conn = new Conn(DEPRECATE).send(Command.COM_QUERY);
      const s = completesAtLast(conn, [columnCount(2), columnDef('id'), columnDef('v'), textRow(['1', 'a']), textRow(['2', 'b']), okEof({ status: 0x22, warnings: 4 })]);
      expect(s).to.deep.include({ kind: 'resultset', rows: 2, status: 0x22, warnings: 4 });
    });

    it('follows an empty result set', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY);
      expect(completesAtLast(conn, [columnCount(1), columnDef('x'), eof(), eof()])).to.deep.include({ kind: 'resultset', rows: 0 });
      conn.send(Command.COM_QUERY);
      expect(completesAtLast(conn, [columnCount(1), columnDef('x'), eof(), err(1317, 'Query execution was interrupted', '70100')])).to.deep.include({ kind: 'err', errorCode: 1317 });
    });

    it('counts a text row starting with 0xFE of 9 bytes or more as a row (without DEPRECATE_EOF)', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY);
      const fakeRow = hex('fe0000000000000000ff');
      expect(completesAtLast(conn, [columnCount(1), columnDef('x'), eof(), fakeRow, eof()]).rows).to.equal(1);
    });

    it('counts a 16 MiB row starting with 0xFE as one row under DEPRECATE_EOF (continuation packets included)', () => {
      const conn = new Conn(DEPRECATE).send(Command.COM_QUERY).reply([columnCount(1), columnDef('big')]);
      // A row whose column is 2^24 bytes: 0xFE + 8-byte length, the payload otherwise unknown.
      const head = hex('ffffff03 fe 0000000100000000');
      conn.reader.feed(head, 4 + 0xffffff);
      conn.reader.feed(hex('09000004'), 4 + 9); // continuation: its 9 bytes unknown
      expect(conn.summaries).to.have.length(0);
      conn.reader.feed(frame(5, okEof()));
      expect(conn.tracker.lost, conn.tracker.lostReason).to.equal(false);
      expect(conn.last).to.deep.include({ kind: 'resultset', rows: 1 });
    });

    it('follows multi-results: result set, OK, result set (SERVER_MORE_RESULTS_EXISTS), without DEPRECATE_EOF', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY);
      const s = completesAtLast(conn, [
        columnCount(1),
        columnDef('a'),
        eof(MORE),
        textRow(['1']),
        eof(MORE),
        ok({ affectedRows: 3, status: MORE }),
        ok({ affectedRows: 4, lastInsertId: 9, status: MORE }),
        columnCount(1),
        columnDef('b'),
        eof(MORE),
        textRow(['2']),
        textRow(['3']),
        eof(0x0002),
      ]);
      expect(s).to.deep.include({ kind: 'resultset', rows: 3, affectedRows: 7, lastInsertId: 9, results: 4, status: 2 });
    });

    it('follows multi-results with DEPRECATE_EOF', () => {
      const conn = new Conn(DEPRECATE).send(Command.COM_QUERY);
      const s = completesAtLast(conn, [columnCount(1), columnDef('a'), textRow(['1']), okEof({ status: MORE }), ok({ affectedRows: 1, status: 2 })]);
      expect(s).to.deep.include({ kind: 'resultset', rows: 1, affectedRows: 1, results: 2 });
    });

    it('ends multi-results at an ERR', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY);
      expect(completesAtLast(conn, [ok({ affectedRows: 1, status: MORE }), err(1062, 'Duplicate entry', '23000')])).to.deep.include({ kind: 'err', affectedRows: 1, errorCode: 1062 });
    });

    it('reports a LOCAL INFILE request as other and is lost (not supported)', () => {
      const conn = new Conn(BASE | Capability.LOCAL_FILES).send(Command.COM_QUERY).reply([Buffer.concat([Buffer.of(0xfb), Buffer.from('/tmp/data.csv')])]);
      expect(conn.last).to.deep.include({ kind: 'other', command: Command.COM_QUERY });
      expect(conn.tracker.lost).to.equal(true);
      expect(conn.tracker.lostReason).to.match(/LOCAL INFILE/);
    });

    it('skips the definitions when the metadata flag says none follow (OPTIONAL_RESULTSET_METADATA)', () => {
      const caps = (DEPRECATE | Capability.OPTIONAL_RESULTSET_METADATA) >>> 0;
      const conn = new Conn(caps).send(Command.COM_QUERY);
      expect(completesAtLast(conn, [columnCount(2, false), textRow(['1', '2']), okEof()]).rows).to.equal(1);
      conn.send(Command.COM_QUERY);
      expect(completesAtLast(conn, [columnCount(2, true), columnDef('a'), columnDef('b'), textRow(['1', '2']), okEof()]).rows).to.equal(1);
    });

    it("ignores MariaDB's progress reports", () => {
      const conn = new Conn(BASE, { mariadbCapabilities: MariaDbCapability.PROGRESS }).send(Command.COM_QUERY);
      const progress = hex('ffffff 01 01 02 102700 0473746167');
      expect(completesAtLast(conn, [progress, progress, ok({ affectedRows: 5 })])).to.deep.include({ kind: 'ok', affectedRows: 5 });
    });
  });

  describe('COM_STMT_PREPARE', () => {
    it('with parameters and columns, without DEPRECATE_EOF', () => {
      const conn = new Conn(BASE).send(Command.COM_STMT_PREPARE);
      const s = completesAtLast(conn, [prepareOk(7, 2, 3), columnDef('?'), columnDef('?'), columnDef('?'), eof(), columnDef('a'), columnDef('b'), eof()]);
      expect(s).to.deep.include({ kind: 'ok', prepared: { statementId: 7, params: 3, columns: 2 } });
    });

    it('with parameters and columns, with DEPRECATE_EOF', () => {
      const conn = new Conn(DEPRECATE).send(Command.COM_STMT_PREPARE);
      const s = completesAtLast(conn, [prepareOk(8, 1, 2, 1), columnDef('?'), columnDef('?'), columnDef('a')]);
      expect(s).to.deep.include({ kind: 'ok', warnings: 1, prepared: { statementId: 8, params: 2, columns: 1 } });
    });

    it('with parameters only, with columns only, and with neither', () => {
      for (const caps of [BASE, DEPRECATE]) {
        const tail = caps === BASE ? [eof()] : [];
        const conn = new Conn(caps);
        conn.send(Command.COM_STMT_PREPARE);
        expect(completesAtLast(conn, [prepareOk(1, 0, 2), columnDef('?'), columnDef('?'), ...tail]).prepared).to.deep.equal({ statementId: 1, params: 2, columns: 0 });
        conn.send(Command.COM_STMT_PREPARE);
        expect(completesAtLast(conn, [prepareOk(2, 1, 0), columnDef('a'), ...tail]).prepared).to.deep.equal({ statementId: 2, params: 0, columns: 1 });
        conn.send(Command.COM_STMT_PREPARE);
        expect(completesAtLast(conn, [prepareOk(3, 0, 0)]).prepared).to.deep.equal({ statementId: 3, params: 0, columns: 0 });
      }
    });

    it('with the metadata flag saying none follow (OPTIONAL_RESULTSET_METADATA): only the EOFs', () => {
      const caps = (BASE | Capability.OPTIONAL_RESULTSET_METADATA) >>> 0;
      const conn = new Conn(caps).send(Command.COM_STMT_PREPARE);
      expect(completesAtLast(conn, [prepareOk(4, 2, 2, 0, false), eof(), eof()]).prepared).to.deep.equal({ statementId: 4, params: 2, columns: 2 });
      conn.send(Command.COM_STMT_PREPARE);
      expect(completesAtLast(conn, [prepareOk(5, 1, 1, 0, true), columnDef('?'), eof(), columnDef('a'), eof()]).prepared!.statementId).to.equal(5);
    });

    it('completes on ERR', () => {
      const conn = new Conn(BASE).send(Command.COM_STMT_PREPARE).reply([err(1146, "Table 'x' doesn't exist", '42S02')]);
      expect(conn.last).to.deep.include({ kind: 'err', errorCode: 1146 });
      expect(conn.last.prepared).to.equal(undefined);
    });
  });

  describe('COM_STMT_EXECUTE, COM_STMT_FETCH, COM_STMT_BULK_EXECUTE', () => {
    it('completes on OK and on ERR', () => {
      const conn = new Conn(BASE).send(Command.COM_STMT_EXECUTE).send(Command.COM_STMT_EXECUTE).send(Command.COM_STMT_BULK_EXECUTE);
      conn.reply([ok({ affectedRows: 1, lastInsertId: 3 })]);
      conn.reply([err(1048, "Column 'v' cannot be null", '23000')]);
      conn.reply([ok({ affectedRows: 100 })]);
      expect(conn.summaries.map((s) => [s.command, s.kind, s.affectedRows])).to.deep.equal([
        [Command.COM_STMT_EXECUTE, 'ok', 1],
        [Command.COM_STMT_EXECUTE, 'err', 0],
        [Command.COM_STMT_BULK_EXECUTE, 'ok', 100],
      ]);
    });

    it('follows a binary result set, with and without DEPRECATE_EOF', () => {
      const a = new Conn(BASE).send(Command.COM_STMT_EXECUTE);
      expect(completesAtLast(a, [columnCount(2), columnDef('a', 3), columnDef('b', 3), eof(), binaryRow([1, 2]), binaryRow([null, 4]), eof()]).rows).to.equal(2);
      const b = new Conn(DEPRECATE).send(Command.COM_STMT_EXECUTE);
      expect(completesAtLast(b, [columnCount(1), columnDef('a', 3), binaryRow([1]), okEof()])).to.deep.include({ kind: 'resultset', rows: 1 });
    });

    it('completes a cursor execute at the EOF after the definitions (SERVER_STATUS_CURSOR_EXISTS), then follows FETCH', () => {
      const conn = new Conn(BASE).send(Command.COM_STMT_EXECUTE);
      const cursor = ServerStatus.CURSOR_EXISTS | ServerStatus.AUTOCOMMIT;
      expect(completesAtLast(conn, [columnCount(1), columnDef('a', 3), eof(cursor)])).to.deep.include({ kind: 'resultset', rows: 0, status: cursor });
      conn.send(Command.COM_STMT_FETCH);
      expect(completesAtLast(conn, [binaryRow([1]), binaryRow([2]), eof(cursor)]).rows).to.equal(2);
      conn.send(Command.COM_STMT_FETCH);
      expect(completesAtLast(conn, [binaryRow([3]), eof(cursor | ServerStatus.LAST_ROW_SENT)])).to.deep.include({ rows: 1, kind: 'resultset' });
      conn.send(Command.COM_STMT_FETCH).reply([err(1421, 'The statement (1) has no open cursor.')]);
      expect(conn.last.kind).to.equal('err');
    });

    it('completes a cursor execute at the 0xFE OK after the definitions under DEPRECATE_EOF', () => {
      const conn = new Conn(DEPRECATE).send(Command.COM_STMT_EXECUTE);
      expect(completesAtLast(conn, [columnCount(2), columnDef('a', 3), columnDef('b', 3), okEof({ status: ServerStatus.CURSOR_EXISTS })])).to.deep.include({ rows: 0 });
      conn.send(Command.COM_STMT_FETCH);
      expect(completesAtLast(conn, [binaryRow([1, 2]), okEof({ status: ServerStatus.CURSOR_EXISTS | ServerStatus.LAST_ROW_SENT })]).rows).to.equal(1);
    });

    it('skips the definitions when MariaDB says the cached metadata still holds (CACHE_METADATA)', () => {
      const conn = new Conn(DEPRECATE, { mariadbCapabilities: MariaDbCapability.CACHE_METADATA }).send(Command.COM_STMT_EXECUTE);
      expect(completesAtLast(conn, [columnCount(2, false), binaryRow([1, 2]), okEof()]).rows).to.equal(1);
      conn.send(Command.COM_STMT_EXECUTE);
      expect(completesAtLast(conn, [columnCount(2, true), columnDef('a', 3), columnDef('b', 3), binaryRow([1, 2]), okEof()]).rows).to.equal(1);
    });

    it('follows multi-results of a procedure call (PS_OUT_PARAMS then OK)', () => {
      const conn = new Conn(DEPRECATE).send(Command.COM_STMT_EXECUTE);
      const out = ServerStatus.PS_OUT_PARAMS | MORE;
      expect(completesAtLast(conn, [columnCount(1), columnDef('o', 3), binaryRow([5]), okEof({ status: out }), ok({ status: 2 })])).to.deep.include({ rows: 1, results: 2 });
    });

    it('is lost on a binary row that does not start with 0x00', () => {
      const conn = new Conn(BASE).send(Command.COM_STMT_EXECUTE).reply([columnCount(1), columnDef('a', 3), eof(), hex('0100')]);
      expect(conn.tracker.lost).to.equal(true);
      expect(conn.tracker.lostReason).to.match(/binary row/);
    });
  });

  describe('simple commands', () => {
    const okOrErr = [Command.COM_PING, Command.COM_INIT_DB, Command.COM_RESET_CONNECTION, Command.COM_REFRESH, Command.COM_PROCESS_KILL, Command.COM_STMT_RESET];
    for (const command of okOrErr) {
      it(`command 0x${command.toString(16)} completes on OK or ERR`, () => {
        const conn = new Conn(BASE).send(command).send(command);
        conn.reply([ok()]).reply([err(1094, 'Unknown thread id: 99')]);
        expect(conn.summaries.map((s) => s.kind)).to.deep.equal(['ok', 'err']);
      });
    }

    it('is lost when an OK/ERR-only command gets something else', () => {
      const conn = new Conn(BASE).send(Command.COM_PING).reply([columnCount(1)]);
      expect(conn.tracker.lost).to.equal(true);
    });

    it('COM_SET_OPTION and COM_DEBUG complete on EOF (0xFE OK under DEPRECATE_EOF) or ERR', () => {
      for (const command of [Command.COM_SET_OPTION, Command.COM_DEBUG]) {
        const a = new Conn(BASE).send(command).send(command).reply([eof()]).reply([err(1227, 'Access denied')]);
        expect(a.summaries.map((s) => s.kind)).to.deep.equal(['eof', 'err']);
        const b = new Conn(DEPRECATE).send(command).reply([okEof()]);
        expect(b.last).to.deep.include({ kind: 'eof', status: 2 });
      }
    });

    it('COM_STATISTICS completes on its one string packet', () => {
      const conn = new Conn(BASE).send(Command.COM_STATISTICS).reply([Buffer.from('Uptime: 5  Threads: 1  Questions: 2')]);
      expect(conn.last).to.deep.include({ kind: 'other', command: Command.COM_STATISTICS });
    });

    it('COM_FIELD_LIST: definitions until EOF, or ERR', () => {
      const conn = new Conn(BASE).send(Command.COM_FIELD_LIST);
      expect(completesAtLast(conn, [columnDef('a'), columnDef('b'), eof()]).kind).to.equal('eof');
      conn.send(Command.COM_FIELD_LIST).reply([err(1146, 'no table')]);
      expect(conn.last.kind).to.equal('err');
      const d = new Conn(DEPRECATE).send(Command.COM_FIELD_LIST);
      expect(completesAtLast(d, [columnDef('a'), okEof()]).kind).to.equal('eof');
    });

    it('COM_CHANGE_USER: through an auth switch round to OK', () => {
      const conn = new Conn(BASE).send(Command.COM_CHANGE_USER);
      conn.reader.feed(frame(1, Buffer.concat([Buffer.of(0xfe), Buffer.from('mysql_native_password\0'), Buffer.alloc(21, 1)])));
      expect(conn.summaries).to.have.length(0);
      conn.reader.feed(frame(3, ok())); // the client's auth response took sequence id 2
      expect(conn.last).to.deep.include({ kind: 'ok', command: Command.COM_CHANGE_USER });
      conn.send(Command.COM_CHANGE_USER).reply([hex('0103'), ok()], 1);
      conn.send(Command.COM_CHANGE_USER).reply([err(1045, 'Access denied')]);
      expect(conn.summaries.map((s) => s.kind)).to.deep.equal(['ok', 'ok', 'err']);
      expect(conn.tracker.lost).to.equal(false);
    });

    it('an unknown command completes on an OK-, ERR- or EOF-looking packet', () => {
      const conn = new Conn(BASE).send(0x42).reply([hex('0a0b0c'), ok()]);
      expect(conn.last).to.deep.include({ command: 0x42, kind: 'ok' });
      conn.send(Command.COM_SHUTDOWN).reply([eof()]);
      expect(conn.last.kind).to.equal('eof');
      conn.send(Command.COM_TIME).reply([err(1047, 'Unknown command')]);
      expect(conn.last.kind).to.equal('err');
    });
  });

  describe('queue and consistency', () => {
    it('expects no response to COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA and COM_QUIT', () => {
      const tracker = new ResponseTracker(BASE);
      for (const command of [Command.COM_STMT_CLOSE, Command.COM_STMT_SEND_LONG_DATA, Command.COM_QUIT]) {
        expect(expectsResponse(command)).to.equal(false);
        expect(tracker.expectsResponse(command)).to.equal(false);
        expect(tracker.expect(command)).to.equal(false);
      }
      expect(tracker.pending).to.equal(0);
      expect(expectsResponse(Command.COM_QUERY)).to.equal(true);
    });

    it('answers pipelined commands in order, each from sequence id 1', () => {
      const conn = new Conn(DEPRECATE).send(Command.COM_STMT_PREPARE).send(Command.COM_STMT_CLOSE).send(Command.COM_STMT_EXECUTE).send(Command.COM_PING);
      expect(conn.tracker.pending).to.equal(3);
      conn.reader.feed(
        Buffer.concat([packets(1, [prepareOk(1, 1, 1), columnDef('?'), columnDef('a')]), packets(1, [columnCount(1), columnDef('a'), binaryRow([1]), okEof()]), packets(1, [ok()])]),
      );
      expect(conn.summaries.map((s) => [s.command, s.kind])).to.deep.equal([
        [Command.COM_STMT_PREPARE, 'ok'],
        [Command.COM_STMT_EXECUTE, 'resultset'],
        [Command.COM_PING, 'ok'],
      ]);
      expect(conn.tracker.pending).to.equal(0);
    });

    it('tracks the whole response when the stream is split at every byte position', () => {
      const stream = Buffer.concat([
        packets(1, [columnCount(2), columnDef('id'), columnDef('v'), eof(), textRow(['1', 'a']), textRow(['2', null]), eof(MORE), ok({ affectedRows: 2 })]),
        packets(1, [prepareOk(3, 1, 1), columnDef('?'), eof(), columnDef('a'), eof()]),
      ]);
      for (let cut = 0; cut <= stream.length; cut++) {
        const conn = new Conn(BASE).send(Command.COM_QUERY).send(Command.COM_STMT_PREPARE);
        conn.reader.feed(stream.subarray(0, cut));
        conn.reader.feed(stream.subarray(cut));
        expect(conn.tracker.lost, `cut ${cut}`).to.equal(false);
        expect(conn.summaries.map((s) => [s.kind, s.rows, s.affectedRows]), `cut ${cut}`).to.deep.equal([
          ['resultset', 2, 2],
          ['ok', 0, 0],
        ]);
      }
    });

    it('starts the response after a command of several packets', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY, 2).reply([ok()], 2);
      expect(conn.last.kind).to.equal('ok');
      expect(conn.tracker.lost).to.equal(false);
    });

    it('is lost on a sequence id out of order', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY).reply([columnCount(1)]);
      conn.reader.feed(frame(3, columnDef('a')));
      expect(conn.tracker.lost).to.equal(true);
      expect(conn.tracker.lostReason).to.equal('sequence id 3 where 2 was expected');
    });

    it('is lost when the first bytes of a packet are unknown', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY);
      conn.reader.feed(hex('07000001'), 4 + 7);
      expect(conn.tracker.lost).to.equal(true);
      expect(conn.tracker.lostReason).to.match(/unknown/);
    });

    it('is lost when an EOF cuts the definitions short', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY).reply([columnCount(3), columnDef('a'), eof()]);
      expect(conn.tracker.lost).to.equal(true);
    });

    it('reports an ERR with nothing pending as command -1 (the server closing the connection)', () => {
      const conn = new Conn(BASE).reply([err(4031, 'The client was disconnected by the server because of inactivity.')], 0);
      expect(conn.last).to.deep.include({ command: -1, kind: 'err', errorCode: 4031 });
      expect(conn.tracker.lost).to.equal(false);
      conn.reply([ok()]);
      expect(conn.tracker.lost).to.equal(true);
      expect(conn.tracker.lostReason).to.match(/no command/);
    });

    it('reports nothing more once lost, until reset', () => {
      const conn = new Conn(BASE).send(Command.COM_QUERY).reply([ok()], 5);
      expect(conn.tracker.lost).to.equal(true);
      conn.send(Command.COM_PING).reply([ok()]);
      expect(conn.summaries).to.have.length(0);
      conn.tracker.reset();
      conn.reader.reset();
      expect(conn.tracker.pending).to.equal(0);
      conn.send(Command.COM_PING).reply([ok()]);
      expect(conn.summaries).to.have.length(1);
    });

    it('gives up beyond the pending limit', () => {
      const tracker = new ResponseTracker(BASE, { maxPending: 3 });
      for (let i = 0; i < 3; i++) expect(tracker.expect(Command.COM_PING)).to.equal(true);
      expect(tracker.expect(Command.COM_PING)).to.equal(false);
      expect(tracker.lost).to.equal(true);
      expect(tracker.pending).to.equal(3);
    });

    it('checks the continuation flag against its own count, and defers a response ending on a 0xFFFFFF packet', () => {
      const tracker = new ResponseTracker(BASE);
      tracker.expect(0x42);
      expect(tracker.packet(1, 0xffffff, ok(), false)).to.equal(null);
      expect(tracker.packet(2, 0xffffff, Buffer.alloc(0), true)).to.equal(null);
      expect(tracker.packet(3, 0, Buffer.alloc(0), true)).to.deep.include({ kind: 'ok' });
      expect(tracker.pending).to.equal(0);
      const other = new ResponseTracker(BASE);
      other.expect(Command.COM_PING);
      other.packet(1, 7, ok(), true);
      expect(other.lost).to.equal(true);
    });

    it('keeps a long queue bounded while it drains', () => {
      const tracker = new ResponseTracker(BASE, { maxPending: 10_000 });
      let done = 0;
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 3000; i++) tracker.expect(Command.COM_PING);
        for (let i = 0; i < 3000; i++) if (tracker.packet(1, 7, ok(), false)) done++;
      }
      expect(done).to.equal(9000);
      expect(tracker.pending).to.equal(0);
      expect((tracker as unknown as { queue: unknown[] }).queue.length).to.be.below(3000);
    });
  });
});
