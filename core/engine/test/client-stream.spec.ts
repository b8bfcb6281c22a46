// The captured client stream on its own: segments kept in sequence order, duplicates and overlaps trimmed,
// acknowledged data dropped, all of it modulo 2^32.
import { expect } from 'chai';
import { sumBytes } from '../src/decode/checksum';
import { ClientStream } from '../src/session/client-stream';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** [seq, text] of every held segment, oldest first. */
function held(s: ClientStream): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let i = 0; i < s.size; i++) out.push([s.at(i).seq, s.at(i).data.toString('latin1')]);
  return out;
}

/** Every held segment: length, data, sum and the byte count agree. */
function consistent(s: ClientStream): void {
  let total = 0;
  for (let i = 0; i < s.size; i++) {
    const seg = s.at(i);
    expect(seg.data.length, `segment ${i} length`).to.equal(seg.length);
    expect(seg.sum, `segment ${i} sum`).to.equal(sumBytes(seg.data, 0, seg.data.length));
    if (i > 0) {
      const prev = s.at(i - 1);
      expect(((seg.seq - prev.seq) | 0) >= prev.length, `segment ${i} overlaps the one before`).to.equal(true);
    }
    total += seg.length;
  }
  expect(s.bytes).to.equal(total);
}

/** Adds text at seq with nothing sent yet (sentUpTo far behind). */
function add(s: ClientStream, seq: number, text: string, sentUpTo = (seq - 1000) >>> 0, serverBytes = 0): boolean {
  const src = b(text);
  return s.add(sentUpTo, seq >>> 0, src, 0, src.length, serverBytes);
}

describe('ClientStream', () => {
  it('keeps in-order segments as they come, with their server byte counts', () => {
    const s = new ClientStream();
    expect(add(s, 100, 'GET ', 0, 0)).to.equal(true);
    expect(add(s, 104, '/a\n', 0, 0)).to.equal(true);
    expect(add(s, 107, 'GET /b\n', 0, 300)).to.equal(true);
    expect(held(s)).to.deep.equal([[100, 'GET '], [104, '/a\n'], [107, 'GET /b\n']]);
    expect(s.at(2).serverBytes).to.equal(300);
    expect(s.end(0)).to.equal(114);
    consistent(s);
  });

  it('copies the bytes it keeps, from the given offset (capture buffers are reused)', () => {
    const s = new ClientStream();
    const frame = b('..headers..PAYLOAD!');
    expect(s.add(0, 500, frame, 11, 7, 0)).to.equal(true);
    frame.fill(0x2e);
    expect(held(s)).to.deep.equal([[500, 'PAYLOAD']]);
  });

  it('puts an early segment after the gap and fills the gap later, in order', () => {
    const s = new ClientStream();
    add(s, 100, 'aaaa');
    add(s, 110, 'cccc'); // 104-110 not captured yet
    add(s, 104, 'bbbbbb');
    expect(held(s)).to.deep.equal([[100, 'aaaa'], [104, 'bbbbbb'], [110, 'cccc']]);
    const s2 = new ClientStream();
    add(s2, 120, 'late');
    add(s2, 110, 'mid');
    add(s2, 100, 'first');
    expect(held(s2)).to.deep.equal([[100, 'first'], [110, 'mid'], [120, 'late']]);
    consistent(s);
    consistent(s2);
  });

  it('refuses an exact duplicate and a segment inside one already held', () => {
    const s = new ClientStream();
    add(s, 100, 'abcdef');
    expect(add(s, 100, 'abcdef')).to.equal(false);
    expect(add(s, 102, 'cd')).to.equal(false);
    expect(add(s, 100, 'a')).to.equal(false);
    expect(held(s)).to.deep.equal([[100, 'abcdef']]);
    expect(s.bytes).to.equal(6);
  });

  it('keeps only the new tail of a segment that overlaps the one before it', () => {
    const s = new ClientStream();
    add(s, 100, 'abcdef');
    expect(add(s, 103, 'defGHI')).to.equal(true);
    expect(held(s)).to.deep.equal([[100, 'abcdef'], [106, 'GHI']]);
    consistent(s);
  });

  it('keeps only the head of a segment that runs into the one after it', () => {
    const s = new ClientStream();
    add(s, 110, 'KLMN');
    expect(add(s, 106, 'ghijKL')).to.equal(true);
    expect(held(s)).to.deep.equal([[106, 'ghij'], [110, 'KLMN']]);
    consistent(s);
  });

  it('fills exactly the hole between two segments from a retransmission that covers both sides', () => {
    const s = new ClientStream();
    add(s, 100, 'aaaa');
    add(s, 108, 'cccc');
    expect(add(s, 102, 'aaBBBBcc')).to.equal(true);
    expect(held(s)).to.deep.equal([[100, 'aaaa'], [104, 'BBBB'], [108, 'cccc']]);
    expect(s.bytes).to.equal(12);
    consistent(s);
  });

  it('refuses a segment that starts inside one and ends inside the next, with no hole between them', () => {
    const s = new ClientStream();
    add(s, 100, 'aaaa');
    add(s, 104, 'bbbb');
    expect(add(s, 102, 'aabb')).to.equal(false);
    expect(s.size).to.equal(2);
  });

  it('trims what was already sent (sentUpTo) and refuses what is wholly sent', () => {
    const s = new ClientStream();
    expect(add(s, 100, 'abcdef', 106)).to.equal(false);
    expect(add(s, 100, 'abcdef', 200)).to.equal(false);
    expect(add(s, 100, 'abcdefgh', 106)).to.equal(true);
    expect(held(s)).to.deep.equal([[106, 'gh']]);
    expect(add(s, 104, 'efghij', 106)).to.equal(true);
    expect(held(s)).to.deep.equal([[106, 'gh'], [108, 'ij']]);
    consistent(s);
  });

  describe('across the wrap of sequence numbers', () => {
    const TOP = 0xfffffffc; // 4 bytes before 2^32

    it('orders segments on either side of 0 by sequence, not by value', () => {
      const s = new ClientStream();
      add(s, 2, 'cd'); // after the wrap, captured first
      add(s, TOP, 'wxyz'); // ends at 0
      add(s, 0, 'ab');
      expect(held(s)).to.deep.equal([[TOP, 'wxyz'], [0, 'ab'], [2, 'cd']]);
      expect(s.end(0)).to.equal(4);
      consistent(s);
    });

    it('trims overlaps and sent data that straddle 0', () => {
      const s = new ClientStream();
      add(s, TOP, 'wxyz');
      expect(add(s, TOP + 2, 'yzAB')).to.equal(true); // from 0xfffffffe to 2
      expect(held(s)).to.deep.equal([[TOP, 'wxyz'], [0, 'AB']]);
      const t = new ClientStream();
      expect(add(t, TOP, 'wxyzAB', 1)).to.equal(true); // sent up to 1: "wxyz" and "A" went
      expect(held(t)).to.deep.equal([[1, 'B']]);
      consistent(s);
      consistent(t);
    });

    it('end, find and release compare modulo 2^32', () => {
      const s = new ClientStream();
      add(s, TOP, 'wx');
      add(s, TOP + 2, 'yz');
      add(s, 0, 'ab');
      expect(s.end(7)).to.equal(2);
      expect(s.find(TOP + 3)).to.equal(1);
      expect(s.find(1)).to.equal(2);
      expect(s.find(2)).to.equal(-1);
      s.release(0); // the two segments before the wrap are acknowledged
      expect(held(s)).to.deep.equal([[0, 'ab']]);
      s.release(TOP); // an old acknowledgment: nothing
      expect(held(s)).to.deep.equal([[0, 'ab']]);
      s.release(2);
      expect(s.size).to.equal(0);
      expect(s.bytes).to.equal(0);
    });
  });

  describe('find', () => {
    it('gives the segment holding a sequence number, or the first after it, or -1', () => {
      const s = new ClientStream();
      add(s, 100, 'abcd');
      add(s, 110, 'efgh');
      expect(s.find(100)).to.equal(0);
      expect(s.find(103)).to.equal(0);
      expect(s.find(104), 'in the hole: the next segment').to.equal(1);
      expect(s.find(50), 'before all').to.equal(0);
      expect(s.find(113)).to.equal(1);
      expect(s.find(114)).to.equal(-1);
      expect(new ClientStream().find(0)).to.equal(-1);
    });

    it('counts from the oldest held segment after a release', () => {
      const s = new ClientStream();
      add(s, 100, 'ab');
      add(s, 102, 'cd');
      add(s, 104, 'ef');
      s.release(102);
      expect(s.find(104)).to.equal(1);
      expect(s.at(0).seq).to.equal(102);
    });
  });

  describe('release', () => {
    it('drops the segments that end at or before the acknowledgment, keeps one acknowledged in part', () => {
      const s = new ClientStream();
      add(s, 100, 'abcd');
      add(s, 104, 'efgh');
      add(s, 108, 'ijkl');
      s.release(103);
      expect(s.size).to.equal(3);
      s.release(104);
      expect(held(s)).to.deep.equal([[104, 'efgh'], [108, 'ijkl']]);
      s.release(110);
      expect(held(s)).to.deep.equal([[108, 'ijkl']]);
      expect(s.bytes).to.equal(4);
    });

    it('after a release, an old retransmission of released bytes is not taken again', () => {
      const s = new ClientStream();
      add(s, 100, 'abcd', 100);
      s.release(104);
      expect(add(s, 100, 'abcd', 104)).to.equal(false);
      expect(s.size).to.equal(0);
      expect(s.end(104)).to.equal(104);
    });

    it('stays right over many segments, when its storage is compacted', () => {
      const s = new ClientStream();
      for (let i = 0; i < 200; i++) add(s, 1000 + 3 * i, 'xyz', 0);
      s.release(1000 + 3 * 150);
      expect(s.size).to.equal(50);
      expect(s.at(0).seq).to.equal(1450);
      expect(s.find(1000 + 3 * 160 + 1)).to.equal(10);
      expect(add(s, 1000 + 3 * 199 + 2, 'zNEW', 1450)).to.equal(true); // "z" is held already
      expect(s.at(s.size - 1).data.toString()).to.equal('NEW');
      expect(s.end(0)).to.equal(1000 + 3 * 200 + 3);
      consistent(s);
    });
  });

  it('end(fallback) is the fallback when nothing is held', () => {
    const s = new ClientStream();
    expect(s.end(4242)).to.equal(4242);
    add(s, 10, 'ab');
    s.release(12);
    expect(s.end(99)).to.equal(99);
  });

  it('clear drops everything', () => {
    const s = new ClientStream();
    add(s, 10, 'ab');
    add(s, 20, 'cd');
    s.clear();
    expect(s.size).to.equal(0);
    expect(s.bytes).to.equal(0);
    expect(s.find(10)).to.equal(-1);
  });
});

describe('ClientStream: a segment across several holes', () => {
  it('fills every hole it covers, keeping what was held between them', () => {
    const s = new ClientStream();
    const bytes = Buffer.from('abcdefghijklmnopqrstuvwxyz0123');
    const add = (from: number, to: number) => s.add(1000, 1000 + from, bytes, from, to - from, 0);
    expect(add(15, 20)).to.equal(true);
    expect(add(25, 30)).to.equal(true);
    expect(add(10, 30)).to.equal(true);
    const held: string[] = [];
    for (let k = 0; k < s.size; k++) held.push(`${s.at(k).seq - 1000}:${s.at(k).data.toString('latin1')}`);
    expect(held).to.deep.equal(['10:klmno', '15:pqrst', '20:uvwxy', '25:z0123']);
    expect(s.bytes).to.equal(20);
    expect(add(10, 30), 'all held already').to.equal(false);
  });

  it('streams emptied and filled again never share segments (the empty state is one shared array)', () => {
    const a = new ClientStream();
    const c = new ClientStream();
    a.add(100, 100, b('abc'), 0, 3, 0);
    a.release(103);
    expect(a.size).to.equal(0);
    a.add(103, 105, b('xy'), 0, 2, 0);
    expect(c.size, 'another stream stays empty').to.equal(0);
    c.add(0, 0, b('q'), 0, 1, 0);
    expect(held(c)).to.deep.equal([[0, 'q']]);
    expect(held(a)).to.deep.equal([[105, 'xy']]);
    a.clear();
    expect(held(c)).to.deep.equal([[0, 'q']]);
  });
});
