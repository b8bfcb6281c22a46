// The output queue on its own: positions, insertions ahead of unsent bytes, replacements, and what release keeps.
import { expect } from 'chai';
import { sumBytes } from '../src/decode/checksum';
import { chunkSum, OutQueue, type OutChunk } from '../src/session/out-queue';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** [pos, text, tag] of every held chunk, from position 0 up to the end. */
function layout(q: OutQueue): Array<[number, string, number]> {
  const out: Array<[number, string, number]> = [];
  for (let pos = 0; pos < q.endPos; ) {
    const c = q.chunkAt(pos);
    if (!c) {
      pos++;
      continue;
    }
    out.push([c.pos, c.data.toString('latin1'), c.tag]);
    pos = c.pos + c.data.length;
  }
  return out;
}

/** Checks the counters against the chunks: endPos is the end of the last chunk, bytes their total. */
function consistent(q: OutQueue): void {
  const l = layout(q);
  let at = l.length > 0 ? l[0][0] : q.endPos;
  let total = 0;
  for (const [pos, text] of l) {
    expect(pos, 'chunks are contiguous').to.equal(at);
    at += text.length;
    total += text.length;
  }
  expect(at, 'endPos').to.equal(q.endPos);
  expect(q.bytes, 'bytes').to.equal(total);
  expect(q.size, 'size').to.equal(l.length);
}

function queue(...items: Array<[string, number]>): OutQueue {
  const q = new OutQueue();
  for (const [text, tag] of items) q.push(b(text), tag, 0, -1);
  return q;
}

describe('OutQueue', () => {
  describe('push', () => {
    it('numbers chunks by stream position and counts what it holds', () => {
      const q = new OutQueue();
      q.push(b('GET /a\n'), 1, 100, 1234);
      q.push(b('GET /bb\n'), 2, 250, -1);
      expect(layout(q)).to.deep.equal([[0, 'GET /a\n', 1], [7, 'GET /bb\n', 2]]);
      expect(q.endPos).to.equal(15);
      const c = q.chunkAt(7)!;
      expect(c).to.include({ pos: 7, tag: 2, serverBytes: 250, sum: -1, released: false, readyOn: 0, ahead: false });
      expect(q.chunkAt(0)!.sum).to.equal(1234);
      consistent(q);
    });

    it('ignores an empty buffer: no chunk, no position', () => {
      const q = queue(['ab', 1]);
      q.push(Buffer.alloc(0), 2, 0, -1);
      expect(q.size).to.equal(1);
      expect(q.endPos).to.equal(2);
      q.push(b('c'), 3, 0, -1);
      expect(layout(q)).to.deep.equal([[0, 'ab', 1], [2, 'c', 3]]);
    });

    it('keeps the caller\'s buffer (no copy)', () => {
      const q = new OutQueue();
      const data = b('xyz');
      q.push(data, 1, 0, -1);
      expect(q.chunkAt(0)!.data).to.equal(data);
    });
  });

  describe('chunkAt', () => {
    it('finds the chunk holding a position, first and last byte included', () => {
      const q = queue(['aaa', 1], ['bb', 2]);
      expect(q.chunkAt(0)!.tag).to.equal(1);
      expect(q.chunkAt(2)!.tag).to.equal(1);
      expect(q.chunkAt(3)!.tag).to.equal(2);
      expect(q.chunkAt(4)!.tag).to.equal(2);
    });

    it('is undefined at and past the end, and before the first held chunk', () => {
      const q = queue(['aaa', 1], ['bb', 2]);
      expect(q.chunkAt(5)).to.equal(undefined);
      expect(q.chunkAt(500)).to.equal(undefined);
      q.release(3);
      expect(q.chunkAt(1), 'released').to.equal(undefined);
      expect(q.chunkAt(3)!.tag).to.equal(2);
      expect(new OutQueue().chunkAt(0)).to.equal(undefined);
    });
  });

  describe('insertAt', () => {
    it('inserts at a chunk boundary and moves what follows', () => {
      const q = queue(['one', 1], ['two', 2]);
      q.insertAt(3, [{ data: b('LOGIN'), tag: 9, serverBytes: 42 }]);
      expect(layout(q)).to.deep.equal([[0, 'one', 1], [3, 'LOGIN', 9], [8, 'two', 2]]);
      expect(q.endPos).to.equal(11);
      const c = q.chunkAt(3)!;
      expect(c).to.include({ serverBytes: 42, sum: -1, released: false, readyOn: 0, ahead: false });
      consistent(q);
    });

    it('inserts several chunks in their order, skipping empty ones', () => {
      const q = queue(['rest', 1]);
      q.insertAt(0, [
        { data: b('A'), tag: 7, serverBytes: 0 },
        { data: Buffer.alloc(0), tag: 8, serverBytes: 0 },
        { data: b('BB'), tag: 9, serverBytes: 0 },
      ]);
      expect(layout(q)).to.deep.equal([[0, 'A', 7], [1, 'BB', 9], [3, 'rest', 1]]);
      expect(q.size).to.equal(3);
      consistent(q);
    });

    it('at the end appends', () => {
      const q = queue(['x', 1]);
      q.insertAt(1, [{ data: b('yz'), tag: 2, serverBytes: 0 }]);
      expect(layout(q)).to.deep.equal([[0, 'x', 1], [1, 'yz', 2]]);
      q.push(b('!'), 3, 0, -1);
      expect(layout(q)).to.deep.equal([[0, 'x', 1], [1, 'yz', 2], [3, '!', 3]]);
      consistent(q);
    });

    it('with nothing to insert changes nothing', () => {
      const q = queue(['ab', 1], ['cd', 2]);
      q.insertAt(2, []);
      q.insertAt(2, [{ data: Buffer.alloc(0), tag: 5, serverBytes: 0 }]);
      expect(layout(q)).to.deep.equal([[0, 'ab', 1], [2, 'cd', 2]]);
      expect(q.endPos).to.equal(4);
      expect(q.bytes).to.equal(4);
    });

    it('marks the chunks `ahead` only when asked (emitNext), not for a prelude', () => {
      const q = queue(['req', 1]);
      q.insertAt(0, [{ data: b('pre'), tag: 5, serverBytes: 0 }]);
      q.insertAt(3, [{ data: b('next'), tag: 6, serverBytes: 0 }], true);
      expect(q.chunkAt(0)!.ahead).to.equal(false);
      expect(q.chunkAt(3)!.ahead).to.equal(true);
      expect(q.chunkAt(7)!.ahead).to.equal(false);
      expect(layout(q)).to.deep.equal([[0, 'pre', 5], [3, 'next', 6], [7, 'req', 1]]);
    });

    it('after a release, inserts among the held chunks only', () => {
      const q = queue(['aa', 1], ['bb', 2], ['cc', 3]);
      q.release(2);
      q.insertAt(4, [{ data: b('NN'), tag: 4, serverBytes: 0 }]);
      expect(layout(q)).to.deep.equal([[2, 'bb', 2], [4, 'NN', 4], [6, 'cc', 3]]);
      consistent(q);
    });
  });

  describe('replaceAt and dropAt', () => {
    it('replaceAt with longer bytes moves what follows and forgets the cached sum', () => {
      const q = new OutQueue();
      q.push(b('EXEC 1'), 1, 10, sumBytes(b('EXEC 1'), 0, 6));
      q.push(b('next'), 2, 20, -1);
      const c = q.chunkAt(0)!;
      q.replaceAt(0, b('EXECUTE 7 (int)'));
      expect(layout(q)).to.deep.equal([[0, 'EXECUTE 7 (int)', 1], [15, 'next', 2]]);
      expect(q.chunkAt(0), 'the same chunk, other bytes').to.equal(c);
      expect(c.sum).to.equal(-1);
      expect(c.serverBytes).to.equal(10);
      consistent(q);
    });

    it('replaceAt with shorter bytes moves what follows back', () => {
      const q = queue(['long request', 1], ['z', 2]);
      q.replaceAt(0, b('short'));
      expect(layout(q)).to.deep.equal([[0, 'short', 1], [5, 'z', 2]]);
      expect(q.endPos).to.equal(6);
      consistent(q);
    });

    it('dropAt (and replaceAt with nothing) takes the chunk out and closes the gap', () => {
      const q = queue(['a', 1], ['login', 2], ['b', 3], ['c', 4]);
      q.dropAt(1);
      expect(layout(q)).to.deep.equal([[0, 'a', 1], [1, 'b', 3], [2, 'c', 4]]);
      q.replaceAt(1, Buffer.alloc(0));
      expect(layout(q)).to.deep.equal([[0, 'a', 1], [1, 'c', 4]]);
      q.replaceAt(1, null);
      expect(layout(q)).to.deep.equal([[0, 'a', 1]]);
      expect(q.endPos).to.equal(1);
      consistent(q);
    });

    it('does nothing for a position that is not the start of a held chunk', () => {
      const q = queue(['abc', 1], ['def', 2]);
      q.replaceAt(1, b('XXXXXXXX'));
      q.dropAt(4);
      q.dropAt(6);
      q.dropAt(100);
      expect(layout(q)).to.deep.equal([[0, 'abc', 1], [3, 'def', 2]]);
      q.release(3);
      q.dropAt(0); // released: not held any more
      expect(layout(q)).to.deep.equal([[3, 'def', 2]]);
      consistent(q);
    });
  });

  describe('startOfTag', () => {
    it('goes back to the first held chunk of the same request', () => {
      const q = queue(['h1', 1], ['b1', 1], ['h2', 2], ['b2', 2], ['b2', 2]);
      expect(q.startOfTag(q.chunkAt(8)!)).to.equal(4);
      expect(q.startOfTag(q.chunkAt(4)!)).to.equal(4);
      expect(q.startOfTag(q.chunkAt(2)!)).to.equal(0);
    });

    it('stops at another tag: the same tag again later is another request', () => {
      const q = queue(['a', 1], ['b', 2], ['c', 1]);
      expect(q.startOfTag(q.chunkAt(2)!)).to.equal(2);
    });

    it('tag 0 (raw bytes) and negative tags have no request start: the chunk itself', () => {
      const q = queue(['a', 0], ['b', 0], ['c', -1], ['d', -1]);
      expect(q.startOfTag(q.chunkAt(1)!)).to.equal(1);
      expect(q.startOfTag(q.chunkAt(3)!)).to.equal(3);
    });

    it('does not go back past what was released', () => {
      const q = queue(['a', 1], ['b', 1], ['c', 1]);
      q.release(1); // "a" is acknowledged but the request is still open: kept
      expect(q.startOfTag(q.chunkAt(2)!)).to.equal(0);
      const other = queue(['a', 0], ['b', 1], ['c', 1]);
      other.release(1);
      expect(other.startOfTag(other.chunkAt(2)!)).to.equal(1);
    });

    it('a chunk no longer held answers its own position', () => {
      const q = queue(['a', 1], ['b', 2]);
      const a = q.chunkAt(0)!;
      q.release(1);
      expect(q.startOfTag(a)).to.equal(0);
      const stranger: OutChunk = { data: b('x'), pos: 77, tag: 1, serverBytes: 0, sum: -1, released: false, readyOn: 0, ahead: false };
      expect(q.startOfTag(stranger)).to.equal(77);
    });
  });

  describe('release', () => {
    it('drops chunks wholly acknowledged, keeps the one acknowledged in part', () => {
      const q = queue(['aaa', 0], ['bbb', 0], ['ccc', 0]);
      q.release(4);
      expect(layout(q)).to.deep.equal([[3, 'bbb', 0], [6, 'ccc', 0]]);
      q.release(6);
      expect(layout(q)).to.deep.equal([[6, 'ccc', 0]]);
      q.release(9);
      expect(q.size).to.equal(0);
      expect(q.bytes).to.equal(0);
      expect(q.endPos, 'positions go on').to.equal(9);
    });

    it('keeps every chunk of a request that is not wholly acknowledged, so a reconnect sends it again from its start', () => {
      const q = queue(['req1', 1], ['head', 2], ['body', 2], ['more', 2], ['req3', 3]);
      q.release(10); // inside the third chunk of request 2
      expect(layout(q)).to.deep.equal([[4, 'head', 2], [8, 'body', 2], [12, 'more', 2], [16, 'req3', 3]]);
      expect(q.bytes).to.equal(16);
      expect(q.startOfTag(q.chunkAt(10)!)).to.equal(4);
      q.release(16); // request 2 complete
      expect(layout(q)).to.deep.equal([[16, 'req3', 3]]);
      consistent(q);
    });

    it('at a request boundary, the request after it is not open', () => {
      const q = queue(['a', 1], ['b', 2]);
      q.release(1);
      expect(layout(q)).to.deep.equal([[1, 'b', 2]]);
    });

    it('keeps nothing back for raw bytes (tag 0)', () => {
      const q = queue(['x', 0], ['y', 0], ['z', 0]);
      q.release(2);
      expect(layout(q)).to.deep.equal([[2, 'z', 0]]);
    });

    it('releases nothing for a position at or before the first held byte', () => {
      const q = queue(['ab', 1], ['cd', 2]);
      q.release(0);
      q.release(-5);
      expect(q.size).to.equal(2);
      q.release(2);
      q.release(1); // an old acknowledgment
      expect(layout(q)).to.deep.equal([[2, 'cd', 2]]);
    });

    it('stays right over many chunks, when its storage is compacted', () => {
      const q = new OutQueue();
      for (let i = 0; i < 300; i++) q.push(b(`r${String(i).padStart(3, '0')}`), i + 1, i, -1); // 4 bytes each
      q.release(4 * 200);
      expect(q.size).to.equal(100);
      expect(q.bytes).to.equal(400);
      expect(q.chunkAt(4 * 200)!.data.toString()).to.equal('r200');
      expect(q.chunkAt(4 * 199)).to.equal(undefined);
      q.insertAt(4 * 250, [{ data: b('INS'), tag: 999, serverBytes: 0 }], true);
      expect(q.chunkAt(4 * 250)!.data.toString()).to.equal('INS');
      expect(q.chunkAt(4 * 250 + 3)!.data.toString()).to.equal('r250');
      q.dropAt(4 * 250);
      expect(q.chunkAt(4 * 250)!.data.toString()).to.equal('r250');
      q.release(4 * 299 + 2);
      expect(layout(q)).to.deep.equal([[4 * 299, 'r299', 300]]);
      consistent(q);
    });
  });

  describe('behind its first chunks (the compact backlog)', () => {
    it('holds what a slow target leaves queued: every chunk comes back with its bytes, tag, serverBytes and sum', () => {
      const q = new OutQueue();
      for (let i = 0; i < 1000; i++) q.push(b(`request ${i}\n`), i + 1, i * 10, i);
      expect(q.size).to.equal(1000);
      const l = layout(q);
      expect(l.length).to.equal(1000);
      expect(l[999]).to.deep.equal([l[998][0] + 'request 998\n'.length, 'request 999\n', 1000]);
      expect(q.chunkAt(l[500][0])).to.include({ serverBytes: 5000, sum: 500, released: false, readyOn: 0, ahead: false });
      consistent(q);
    });

    it('matches a plain list of chunks over random pushes, inserts, replacements, drops and releases', () => {
      let seed = 12345;
      const rand = (n: number): number => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return (seed >>> 8) % n;
      };
      type Model = { pos: number; text: string; tag: number; serverBytes: number; sum: number };
      const model: Model[] = [];
      let end = 0;
      const shiftFrom = (i: number, by: number): void => {
        for (let j = i; j < model.length; j++) model[j].pos += by;
        end += by;
      };
      const q = new OutQueue();
      let n = 0;
      const text = (len: number): string => String.fromCharCode(65 + (n++ % 26)).repeat(len);
      for (let step = 0; step < 3000; step++) {
        const op = rand(10);
        if (op < 5) {
          const t = text(rand(8) === 0 ? 2049 + rand(3000) : 1 + rand(300));
          const tag = rand(4);
          q.push(b(t), tag, step, step % 5 === 0 ? -1 : step);
          model.push({ pos: end, text: t, tag, serverBytes: step, sum: step % 5 === 0 ? -1 : step });
          end += t.length;
        } else if (op === 5 && model.length > 0) {
          const i = rand(model.length + 1);
          const at = i < model.length ? model[i].pos : end;
          const t = text(1 + rand(20));
          q.insertAt(at, [{ data: b(t), tag: 7, serverBytes: 3 }]);
          model.splice(i, 0, { pos: at, text: t, tag: 7, serverBytes: 3, sum: -1 });
          shiftFrom(i + 1, t.length);
        } else if (op === 6 && model.length > 0) {
          const i = rand(model.length);
          const t = rand(3) === 0 ? '' : text(1 + rand(40));
          q.replaceAt(model[i].pos, b(t));
          const by = t.length - model[i].text.length;
          if (t.length > 0) Object.assign(model[i], { text: t, sum: -1 });
          else model.splice(i, 1);
          shiftFrom(t.length > 0 ? i + 1 : i, by);
        } else if (op === 7 && model.length > 0) {
          // Acknowledged up to a point within the first few chunks, as a target's ACKs are.
          const i = rand(Math.min(model.length, 6));
          const pos = model[i].pos + rand(model[i].text.length + 1);
          q.release(pos);
          let k = 0;
          while (k < model.length && model[k].pos + model[k].text.length <= pos) k++;
          const openTag = k < model.length ? model[k].tag : 0;
          let drop = 0;
          while (drop < model.length && model[drop].pos + model[drop].text.length <= pos && !(openTag > 0 && model[drop].tag === openTag)) drop++;
          model.splice(0, drop);
        } else if (op === 8 && model.length > 0) {
          const c = model[rand(model.length)];
          const got = q.chunkAt(c.pos + rand(c.text.length))!;
          expect([got.pos, got.data.toString('latin1'), got.tag, got.serverBytes, got.sum], `step ${step}`).to.deep.equal([c.pos, c.text, c.tag, c.serverBytes, c.sum]);
        }
        expect([q.size, q.endPos, q.bytes], `step ${step}`).to.deep.equal([model.length, end, model.reduce((s, c) => s + c.text.length, 0)]);
        if (step % 97 === 0) {
          expect(layout(q).map(([pos, t, tag]) => [pos, t, tag]), `step ${step}`).to.deep.equal(model.map((c) => [c.pos, c.text, c.tag]));
        }
      }
    });
  });

  it('clear empties the queue but positions continue (they count across connections)', () => {
    const q = queue(['abc', 1], ['de', 2]);
    q.clear();
    expect(q.size).to.equal(0);
    expect(q.bytes).to.equal(0);
    expect(q.chunkAt(0)).to.equal(undefined);
    expect(q.endPos).to.equal(5);
    q.push(b('f'), 3, 0, -1);
    expect(q.chunkAt(5)!.data.toString()).to.equal('f');
  });

  describe('chunkSum', () => {
    it('uses the cached sum for the whole chunk, sums the bytes otherwise', () => {
      const data = b('hello, world');
      const q = new OutQueue();
      q.push(data, 1, 0, 0xabcd); // a made-up cached sum: proves it is the one used
      const c = q.chunkAt(0)!;
      expect(chunkSum(c, 0, data.length)).to.equal(0xabcd);
      expect(chunkSum(c, 0, 5)).to.equal(sumBytes(data, 0, 5));
      expect(chunkSum(c, 3, 9)).to.equal(sumBytes(data, 3, 12));
      c.sum = -1;
      expect(chunkSum(c, 0, data.length)).to.equal(sumBytes(data, 0, data.length));
    });
  });

  it('queues emptied and filled again never share chunks (the empty state is one shared array)', () => {
    const a = new OutQueue();
    const c = new OutQueue();
    a.insertAt(0, [{ data: b('LOGIN'), tag: 0, serverBytes: 0 }]);
    a.push(b('Q1'), 1, 0, -1);
    a.release(a.endPos);
    a.insertAt(a.endPos, [{ data: b('AGAIN'), tag: 0, serverBytes: 0 }]);
    expect(c.size, 'another queue stays empty').to.equal(0);
    expect(c.chunkAt(0)).to.equal(undefined);
    c.push(b('X'), 0, 0, -1);
    expect(layout(c)).to.deep.equal([[0, 'X', 0]]);
    expect(layout(a)).to.deep.equal([[7, 'AGAIN', 0]]);
    a.clear();
    expect(layout(c)).to.deep.equal([[0, 'X', 0]]);
  });
});
