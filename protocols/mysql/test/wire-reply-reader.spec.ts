import { expect } from 'chai';
import { frame } from '../src/wire/handshake';
import { ReplyReader } from '../src/wire/reply-reader';
import { columnCount, columnDef, eof, hex, ok, packets, rng, textRow } from './wire-helpers';

interface Seen {
  seq: number;
  length: number;
  head: string;
  continued: boolean;
}

function recorder(): { seen: Seen[]; reader: ReplyReader } {
  const seen: Seen[] = [];
  // The head may be a reused buffer: copy it (here as hex) during the call.
  const reader = new ReplyReader({ packet: (seq, length, head, continued) => seen.push({ seq, length, head: head.toString('hex'), continued }) });
  return { seen, reader };
}

const longText = Buffer.alloc(100, 0x78);
const payloads = [columnCount(1), columnDef('a'), eof(), textRow([longText]), Buffer.alloc(0), eof(0x22)];
const stream = packets(1, payloads);
const expected: Seen[] = payloads.map((p, i) => ({ seq: i + 1, length: p.length, head: p.subarray(0, 64).toString('hex'), continued: false }));

describe('wire: ReplyReader', () => {
  it('reports each packet with the first 64 payload bytes', () => {
    const { seen, reader } = recorder();
    reader.feed(stream);
    expect(seen).to.deep.equal(expected);
    expect(seen[3].head.length).to.equal(128);
    expect(reader.lost).to.equal(false);
    expect(reader.atPacketBoundary).to.equal(true);
  });

  it('reports the same when the stream is split in two at every byte position', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const { seen, reader } = recorder();
      reader.feed(stream.subarray(0, cut));
      reader.feed(stream.subarray(cut));
      expect(seen, `cut at ${cut}`).to.deep.equal(expected);
    }
  });

  it('reports the same when fed one byte at a time and in random chunks', () => {
    const one = recorder();
    for (let i = 0; i < stream.length; i++) one.reader.feed(stream.subarray(i, i + 1));
    expect(one.seen).to.deep.equal(expected);
    const random = rng(3);
    for (let round = 0; round < 50; round++) {
      const r = recorder();
      for (let at = 0; at < stream.length; ) {
        const n = 1 + Math.floor(random() * 40);
        r.reader.feed(stream.subarray(at, at + n));
        at += n;
      }
      expect(r.seen).to.deep.equal(expected);
    }
  });

  it('reports a packet only once its last byte arrived', () => {
    const { seen, reader } = recorder();
    const one = frame(1, ok({ info: 'x'.repeat(80) }));
    reader.feed(one.subarray(0, one.length - 1));
    expect(seen).to.have.length(0);
    expect(reader.atPacketBoundary).to.equal(false);
    reader.feed(one.subarray(one.length - 1));
    expect(seen).to.have.length(1);
  });

  it('delivers whole packets up to the limit after wantWhole, and heads again after wantHeads', () => {
    const { seen, reader } = recorder();
    const big = Buffer.alloc(300, 0x41);
    reader.wantWhole(1000);
    expect(reader.headBytes).to.equal(1000);
    reader.feed(frame(0, big));
    reader.wantWhole(100);
    reader.feed(frame(1, big));
    reader.wantHeads();
    reader.feed(frame(2, big));
    expect(seen.map((s) => s.head.length / 2)).to.deep.equal([300, 100, 64]);
    expect(seen[0].head).to.equal(big.toString('hex'));
  });

  it('applies wantWhole called from the listener to the next packet of the same feed', () => {
    const heads: number[] = [];
    const reader: ReplyReader = new ReplyReader({
      packet: (_seq, _length, head) => {
        heads.push(head.length);
        reader.wantWhole(500);
      },
    });
    reader.feed(Buffer.concat([frame(0, Buffer.alloc(200)), frame(1, Buffer.alloc(200))]));
    expect(heads).to.deep.equal([64, 200]);
  });

  it('gathers a head split across feeds into its own buffer', () => {
    const { seen, reader } = recorder();
    reader.wantWhole(200);
    const p = frame(0, Buffer.from('0123456789'.repeat(15)));
    reader.feed(p.subarray(0, 10));
    reader.feed(p.subarray(10, 50));
    reader.feed(p.subarray(50, 120));
    reader.feed(p.subarray(120));
    expect(Buffer.from(seen[0].head, 'hex').toString()).to.equal('0123456789'.repeat(15));
  });

  describe('unknown bytes', () => {
    it('reports a packet whose payload past the head is unknown', () => {
      const { seen, reader } = recorder();
      const row = frame(4, textRow([Buffer.alloc(1000, 0x79)]));
      reader.feed(row.subarray(0, 70), row.length); // only the header and the head are known
      reader.feed(frame(5, eof()));
      expect(seen).to.deep.equal([
        { seq: 4, length: 1003, head: row.subarray(4, 68).toString('hex'), continued: false },
        { seq: 5, length: 5, head: eof().toString('hex'), continued: false },
      ]);
      expect(reader.lost).to.equal(false);
    });

    it('gives a short head when unknown bytes cut it', () => {
      const { seen, reader } = recorder();
      const row = frame(1, Buffer.alloc(100, 0x7a));
      reader.feed(row.subarray(0, 10), 50); // 6 payload bytes known, then unknown
      reader.feed(row.subarray(50)); // the rest known again: not part of the head any more
      expect(seen).to.have.length(1);
      expect(seen[0]).to.deep.include({ seq: 1, length: 100 });
      expect(seen[0].head).to.equal('7a'.repeat(6));
    });

    it('is lost when a header falls into unknown bytes, until reset', () => {
      const { seen, reader } = recorder();
      const two = packets(1, [ok(), ok()]);
      reader.feed(two.subarray(0, 13), 13); // first packet whole, second header unknown ...
      reader.feed(Buffer.alloc(0), 2);
      expect(reader.lost).to.equal(true);
      expect(reader.lostReason).to.match(/header/);
      reader.feed(two.subarray(15));
      expect(seen).to.have.length(1);
      reader.reset();
      expect(reader.lost).to.equal(false);
      reader.feed(frame(0, hex('0e')));
      expect(seen).to.have.length(2);
      expect(seen[1]).to.deep.equal({ seq: 0, length: 1, head: '0e', continued: false });
    });

    it('is lost when a header is cut by unknown bytes in the middle', () => {
      const { reader } = recorder();
      reader.feed(hex('0700'), 4);
      expect(reader.lost).to.equal(true);
    });

    it('treats a length shorter than the data as all known', () => {
      const { seen, reader } = recorder();
      reader.feed(frame(0, hex('0e')), 2);
      expect(seen).to.have.length(1);
    });
  });

  it('reports the parts of a 16 MiB + 1 logical packet, the second flagged as continued', function () {
    this.timeout(20000);
    const payload = Buffer.alloc(0xffffff + 1, 0x30);
    const raw = Buffer.concat([frame(1, payload), frame(3, ok())]);
    const { seen, reader } = recorder();
    for (let at = 0; at < raw.length; at += 1 << 20) reader.feed(raw.subarray(at, at + (1 << 20)));
    expect(seen).to.deep.equal([
      { seq: 1, length: 0xffffff, head: '30'.repeat(64), continued: false },
      { seq: 2, length: 1, head: '30', continued: true },
      { seq: 3, length: 7, head: ok().toString('hex'), continued: false },
    ]);
  });

  it('follows a 16 MiB packet whose payload is unknown, from its header alone', () => {
    const { seen, reader } = recorder();
    reader.feed(hex('ffffff01 00aabb'), 4 + 0xffffff);
    reader.feed(hex('00000002'));
    expect(seen).to.deep.equal([
      { seq: 1, length: 0xffffff, head: '00aabb', continued: false },
      { seq: 2, length: 0, head: '', continued: true },
    ]);
  });

  it('keeps only a small buffer after a large wantWhole', () => {
    const { seen, reader } = recorder();
    const store = () => (reader as unknown as { headStore: Buffer }).headStore.length;
    reader.wantWhole(1 << 20);
    reader.feed(frame(0, Buffer.alloc(1 << 20)));
    expect(seen[0].head.length / 2).to.equal(1 << 20);
    reader.wantHeads();
    reader.feed(frame(1, Buffer.alloc(1000)));
    expect(seen[1].head.length / 2).to.equal(64);
    expect(store()).to.be.at.most(64);
  });
});
