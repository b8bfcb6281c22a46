// The ones-complement sums on their own, against a plain reference (RFC 1071: 16-bit big-endian words, an
// odd last byte padded with zero), for every alignment and length the engine meets; and SpanReader, which sums
// and copies spans of the capture's buffer.
import { expect } from 'chai';
import { finishSum, foldSum, sumBytes } from '../src/decode/checksum';
import { SpanReader } from '../src/decode/span-reader';

/** RFC 1071 the slow way: one word at a time, folded as it goes. */
function referenceSum(buf: Buffer, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) {
    sum += (buf[i] << 8) | (i + 1 < end ? buf[i + 1] : 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return sum;
}

describe('checksum sums', () => {
  const buf = Buffer.alloc(70_000);
  let x = 0x12345678;
  for (let i = 0; i < buf.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    buf[i] = x >>> 24;
  }

  it('sumBytes folds to the reference sum for every start alignment and lengths 0-80', () => {
    for (let start = 0; start < 9; start++) {
      for (let len = 0; len <= 80; len++) {
        expect(foldSum(sumBytes(buf, start, start + len)), `start ${start}, length ${len}`).to.equal(referenceSum(buf, start, start + len));
      }
    }
  });

  it('sumBytes stays exact for the largest segments and with a starting sum', () => {
    for (const len of [1447, 1448, 9001, 65_535, 69_999]) {
      expect(foldSum(sumBytes(buf, 1, 1 + len)), `length ${len}`).to.equal(referenceSum(buf, 1, 1 + len));
    }
    const head = sumBytes(buf, 0, 20);
    expect(foldSum(sumBytes(buf, 20, 1500, head))).to.equal(referenceSum(buf, 0, 1500));
  });

  it('sums of parts combine into the sum of the whole (even split points)', () => {
    const whole = finishSum(sumBytes(buf, 3, 1203));
    const parts = finishSum(sumBytes(buf, 3, 403) + sumBytes(buf, 403, 1203));
    expect(parts).to.equal(whole);
  });

  it('all-ones bytes: the accumulator never overflows', () => {
    const ones = Buffer.alloc(65_536, 0xff);
    expect(foldSum(sumBytes(ones, 0, ones.length))).to.equal(0xffff);
  });

  describe('SpanReader', () => {
    it('sums to the reference for every start alignment, lengths 0-80 and the largest segments', () => {
      const reader = new SpanReader();
      for (let start = 0; start < 9; start++) {
        for (let len = 0; len <= 80; len++) {
          expect(foldSum(reader.sum(buf, start, start + len)), `start ${start}, length ${len}`).to.equal(referenceSum(buf, start, start + len));
        }
      }
      for (const len of [1447, 1448, 9001, 65_535, 69_999]) {
        expect(foldSum(reader.sum(buf, 1, 1 + len)), `length ${len}`).to.equal(referenceSum(buf, 1, 1 + len));
      }
    });

    it('copies exactly the span into a Buffer of its own, which later changes to the source leave alone', () => {
      const reader = new SpanReader();
      const source = Buffer.from(buf.subarray(0, 4096));
      for (const [start, end] of [[0, 0], [0, 1], [3, 303], [1000, 2448], [4095, 4096]]) {
        const copy = reader.copy(source, start, end);
        expect(Buffer.isBuffer(copy)).to.equal(true);
        expect(copy.equals(source.subarray(start, end)), `[${start}, ${end})`).to.equal(true);
      }
      const kept = reader.copy(source, 10, 20);
      const before = Buffer.from(kept);
      source.fill(0);
      expect(kept.equals(before)).to.equal(true);
    });

    it('reads the buffer it is given, not the one it read before (views into the middle of an ArrayBuffer included)', () => {
      const reader = new SpanReader();
      const other = Buffer.from(buf.subarray(100, 400));
      const inside = buf.subarray(1000, 1300);
      expect(foldSum(reader.sum(buf, 100, 400))).to.equal(referenceSum(buf, 100, 400));
      other[7] ^= 0xff;
      expect(foldSum(reader.sum(other, 0, 300))).to.equal(referenceSum(other, 0, 300));
      expect(reader.copy(other, 0, 300).equals(other)).to.equal(true);
      expect(foldSum(reader.sum(inside, 5, 205))).to.equal(referenceSum(buf, 1005, 1205));
      expect(reader.copy(inside, 5, 205).equals(buf.subarray(1005, 1205))).to.equal(true);
      expect(foldSum(reader.sum(buf, 100, 400))).to.equal(referenceSum(buf, 100, 400));
    });
  });
});
