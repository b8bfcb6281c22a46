import { expect } from 'chai';
import {
  encodeLenencBytes,
  encodeLenencInt,
  lenencIntSize,
  readLenencBytes,
  readLenencInt,
  readNulTerminated,
  writeLenencInt,
} from '../src/wire/lenenc';
import { hex } from './wire-helpers';

describe('wire: length-encoded integers', () => {
  const cases: Array<[number, string]> = [
    [0, '00'],
    [250, 'fa'],
    [251, 'fcfb00'],
    [0xffff, 'fcffff'],
    [0x10000, 'fd000001'],
    [0xffffff, 'fdffffff'],
    [0x1000000, 'fe0000000100000000'],
    [2 ** 40 + 5, 'fe0500000000010000'],
  ];
  for (const [value, bytes] of cases) {
    it(`${value} <-> ${bytes}`, () => {
      expect(encodeLenencInt(value).toString('hex')).to.equal(bytes);
      expect(lenencIntSize(value)).to.equal(bytes.length / 2);
      expect(readLenencInt(hex(`aa${bytes}bb`), 1)).to.deep.equal({ value, next: 1 + bytes.length / 2 });
    });
  }

  it('returns next -1 when truncated, for NULL (0xfb), for 0xff and out of range', () => {
    for (const bytes of ['', 'fc', 'fcff', 'fd0000', 'fe00000000000000', 'fb', 'ff']) {
      expect(readLenencInt(hex(bytes), 0).next, bytes).to.equal(-1);
    }
    expect(readLenencInt(hex('01'), 1).next).to.equal(-1);
    expect(readLenencInt(hex('01'), -1).next).to.equal(-1);
  });

  it('writes in place and refuses what it cannot encode', () => {
    const target = Buffer.alloc(6, 0xee);
    expect(writeLenencInt(300, target, 2)).to.equal(5);
    expect(target.toString('hex')).to.equal('eeeefc2c01ee');
    expect(() => encodeLenencInt(-1)).to.throw(RangeError);
    expect(() => encodeLenencInt(1.5)).to.throw(RangeError);
  });
});

describe('wire: strings', () => {
  it('reads a length-encoded string as a view', () => {
    const buf = hex('0003616263ff');
    const field = readLenencBytes(buf, 1);
    expect(field.value.toString()).to.equal('abc');
    expect(field.next).to.equal(5);
    expect(field.value.buffer).to.equal(buf.buffer);
  });

  it('rejects a length-encoded string longer than the buffer', () => {
    expect(readLenencBytes(hex('05616263'), 0).next).to.equal(-1);
    expect(readLenencBytes(hex('fc'), 0).next).to.equal(-1);
  });

  it('round-trips long strings with 2- and 3-byte lengths', () => {
    for (const n of [0, 250, 251, 70000]) {
      const data = Buffer.alloc(n, 0x61);
      const field = readLenencBytes(encodeLenencBytes(data), 0);
      expect(field.value.equals(data)).to.equal(true);
    }
  });

  it('reads NUL-terminated strings, and -1 without a NUL', () => {
    expect(readNulTerminated(hex('61620063'), 0)).to.deep.include({ next: 3 });
    expect(readNulTerminated(hex('61620063'), 0).value.toString()).to.equal('ab');
    expect(readNulTerminated(hex('00'), 0).value.length).to.equal(0);
    expect(readNulTerminated(hex('6162'), 0).next).to.equal(-1);
    expect(readNulTerminated(hex('6100'), 2).next).to.equal(-1);
  });
});
