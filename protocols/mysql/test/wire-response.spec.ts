import { expect } from 'chai';
import { Capability } from '../src/wire/constants';
import { isEofPacket, isProgressReport, parseEof, parseErr, parseOk } from '../src/wire/response';
import { eof, err, hex, ok } from './wire-helpers';

const CAPS_41 = Capability.PROTOCOL_41 | Capability.TRANSACTIONS;

describe('wire: OK packet', () => {
  it('parses affected rows, last insert id, status and warnings, ignoring the info after them', () => {
    const payload = ok({ affectedRows: 300, lastInsertId: 70000, status: 0x4003, warnings: 2, info: 'Records: 2  Duplicates: 0' });
    expect(parseOk(payload, CAPS_41)).to.deep.equal({ header: 0, affectedRows: 300, lastInsertId: 70000, status: 0x4003, warnings: 2 });
  });

  it('parses a captured OK with session-state changes (USE wt)', () => {
    expect(parseOk(hex('0000000240000000050103027774'), CAPS_41 | Capability.SESSION_TRACK)).to.deep.equal({
      header: 0,
      affectedRows: 0,
      lastInsertId: 0,
      status: 0x4002,
      warnings: 0,
    });
  });

  it('parses the 0xFE-headed OK that ends a result set under CLIENT_DEPRECATE_EOF', () => {
    expect(parseOk(hex('fe000002000000'), CAPS_41)).to.deep.include({ header: 0xfe, status: 2 });
  });

  it('reads status alone without PROTOCOL_41 when TRANSACTIONS is set, and neither without both', () => {
    expect(parseOk(hex('0001000300'), Capability.TRANSACTIONS)).to.deep.include({ affectedRows: 1, status: 3, warnings: 0 });
    expect(parseOk(hex('000100'), 0)).to.deep.include({ affectedRows: 1, status: 0 });
  });

  it('returns null when truncated or not an OK packet', () => {
    const payload = ok({ affectedRows: 0x10000, lastInsertId: 5 });
    for (let n = 0; n < payload.length; n++) expect(parseOk(payload.subarray(0, n), CAPS_41), `length ${n}`).to.equal(null);
    expect(parseOk(hex('ff0000000000'), CAPS_41)).to.equal(null);
    expect(parseOk(hex('00ff00000000'), CAPS_41)).to.equal(null);
  });
});

describe('wire: ERR packet', () => {
  it('parses code, SQL state and message (captured: table does not exist)', () => {
    const payload = hex('ff7a042334325330325461626c65202777742e6e6f70652720646f65736e2774206578697374');
    expect(parseErr(payload)).to.deep.equal({ code: 1146, sqlState: '42S02', message: "Table 'wt.nope' doesn't exist" });
  });

  it('parses an ERR without SQL state (sent before PROTOCOL_41 is agreed)', () => {
    expect(parseErr(err(1040, 'Too many connections', null))).to.deep.equal({ code: 1040, sqlState: null, message: 'Too many connections' });
  });

  it('bounds the message', () => {
    expect(parseErr(err(1064, 'x'.repeat(5000)))!.message.length).to.equal(512);
    expect(parseErr(err(1064, 'x'.repeat(5000)), 10)!.message).to.equal('x'.repeat(10));
  });

  it('returns null when truncated or not ERR', () => {
    expect(parseErr(hex('ff01'))).to.equal(null);
    expect(parseErr(hex('00010203'))).to.equal(null);
    expect(parseErr(hex('ff0100'))).to.deep.equal({ code: 1, sqlState: null, message: '' });
  });

  it("recognises MariaDB's progress report", () => {
    expect(isProgressReport(hex('ffffff01010203'))).to.equal(true);
    expect(isProgressReport(err(1064, 'x'))).to.equal(false);
    expect(isProgressReport(hex('ffff'))).to.equal(false);
  });
});

describe('wire: EOF packet', () => {
  it('is 0xFE and shorter than 9 bytes', () => {
    expect(isEofPacket(eof())).to.equal(true);
    expect(isEofPacket(hex('fe'))).to.equal(true);
    expect(isEofPacket(hex('fe0000000000000000'))).to.equal(false);
    expect(isEofPacket(hex('00000002000000'))).to.equal(false);
    expect(isEofPacket(Buffer.alloc(0))).to.equal(false);
    expect(isEofPacket(0xfe, 5)).to.equal(true);
    expect(isEofPacket(0xfe, 9)).to.equal(false);
    expect(isEofPacket(0x00, 5)).to.equal(false);
  });

  it('parses warnings and status', () => {
    expect(parseEof(eof(0x0022, 3))).to.deep.equal({ warnings: 3, status: 0x22 });
    expect(parseEof(hex('fe'))).to.deep.equal({ warnings: 0, status: 0 });
  });

  it('returns null when truncated or not EOF', () => {
    expect(parseEof(hex('fe00'))).to.equal(null);
    expect(parseEof(hex('fe000002'))).to.equal(null);
    expect(parseEof(hex('fe0000020000000000'))).to.equal(null);
    expect(parseEof(ok())).to.equal(null);
  });
});
