// The compact backlog on its own: first in, first out over block boundaries, large chunks kept as given,
// and views handed out never overwritten by what is pushed later.
import { expect } from 'chai';
import { ChunkBacklog } from '../src/session/chunk-backlog';

/** A chunk of `len` bytes all equal to `fill` (mod 256). */
const chunk = (len: number, fill: number): Buffer => Buffer.alloc(len, fill & 0xff);

describe('ChunkBacklog', () => {
  it('gives chunks back in order with their tag, serverBytes and sum, across block boundaries', () => {
    const b = new ChunkBacklog();
    const lens: number[] = [];
    for (let i = 0; i < 2000; i++) lens.push(1 + ((i * 7919) % 1999)); // 1..1999 bytes, never a block's size
    let total = 0;
    for (const [i, len] of lens.entries()) {
      b.push(chunk(len, i), i + 1, 2 ** 32 + i, i % 3 === 0 ? -1 : i);
      total += len;
    }
    expect(b.count).to.equal(2000);
    expect(b.bytes).to.equal(total);
    for (const [i, len] of lens.entries()) {
      const data = b.shift();
      expect(data.length, `chunk ${i}`).to.equal(len);
      expect(data.every((v) => v === (i & 0xff)), `chunk ${i}'s bytes`).to.equal(true);
      expect([b.tag, b.serverBytes, b.sum]).to.deep.equal([i + 1, 2 ** 32 + i, i % 3 === 0 ? -1 : i]);
    }
    expect(b.count).to.equal(0);
    expect(b.bytes).to.equal(0);
  });

  it('keeps a chunk larger than 2 KiB as given (no copy), in its place among the others', () => {
    const b = new ChunkBacklog();
    const big = chunk(70_000, 9);
    b.push(chunk(100, 1), 1, 0, -1);
    b.push(big, 2, 0, -1);
    b.push(chunk(100, 3), 3, 0, -1);
    expect(b.shift()[0]).to.equal(1);
    expect(b.shift()).to.equal(big);
    expect(b.tag).to.equal(2);
    expect(b.shift()[0]).to.equal(3);
  });

  it('a backlog that never empties keeps order over many large chunks', () => {
    const b = new ChunkBacklog();
    let pushed = 0;
    let shifted = 0;
    b.push(chunk(3000, 0), 0, 0, -1);
    pushed++;
    for (let round = 0; round < 2000; round++) {
      b.push(chunk(2049 + (pushed % 5), pushed), pushed, 0, -1);
      pushed++;
      const data = b.shift();
      expect([data.length, data[0], b.tag]).to.deep.equal([shifted === 0 ? 3000 : 2049 + (shifted % 5), shifted & 0xff, shifted]);
      shifted++;
    }
    expect(b.count).to.equal(1);
  });

  it('never writes over a chunk already shifted out, while filling or after emptying', () => {
    const b = new ChunkBacklog();
    b.push(chunk(1500, 1), 1, 0, -1);
    b.push(chunk(400, 2), 2, 0, -1);
    const first = b.shift();
    for (let i = 0; i < 50; i++) b.push(chunk(300, 100 + i), 10 + i, 0, -1);
    while (b.count > 0) b.shift();
    for (let i = 0; i < 50; i++) b.push(chunk(300, 200 + i), 100 + i, 0, -1);
    expect(first.length).to.equal(1500);
    expect(first.every((v) => v === 1)).to.equal(true);
  });

  it('interleaved pushes and shifts stay in order as the ring grows and wraps', () => {
    const b = new ChunkBacklog();
    let pushed = 0;
    let shifted = 0;
    for (let round = 0; round < 300; round++) {
      for (let k = 0; k < 1 + (round % 5); k++, pushed++) b.push(chunk(1 + (pushed % 300), pushed), pushed, pushed * 2, -1);
      for (let k = 0; k < 1 + ((round * 3) % 4) && b.count > 0; k++, shifted++) {
        const data = b.shift();
        expect([data.length, data[0], b.tag, b.serverBytes]).to.deep.equal([1 + (shifted % 300), shifted & 0xff, shifted, shifted * 2]);
      }
    }
    expect(b.count).to.equal(pushed - shifted);
  });
});
