import { expect } from 'chai';
import { frame } from '../src/wire/handshake';
import { PacketFramer, type FramedPacket } from '../src/wire/packet-framer';
import { hex, ok, packets, rng } from './wire-helpers';

function drain(framer: PacketFramer): FramedPacket[] {
  const out: FramedPacket[] = [];
  for (let p = framer.next(); p !== null; p = framer.next()) out.push(p);
  return out;
}

/** Payload and raw bytes of framed packets, as comparable hex. */
const shape = (list: FramedPacket[]) => list.map((p) => ({ seq: p.seq, payload: p.payload.toString('hex'), raw: p.raw.toString('hex') }));

describe('wire: PacketFramer', () => {
  const stream = Buffer.concat([
    frame(0, hex('0373656c6563742031')), // COM_QUERY select 1
    frame(1, Buffer.alloc(0)), // an empty packet
    frame(7, ok({ affectedRows: 3 })),
    frame(255, hex('0e')),
  ]);
  const expected = [
    { seq: 0, payload: '0373656c6563742031', raw: frame(0, hex('0373656c6563742031')).toString('hex') },
    { seq: 1, payload: '', raw: '00000001' },
    { seq: 7, payload: ok({ affectedRows: 3 }).toString('hex'), raw: frame(7, ok({ affectedRows: 3 })).toString('hex') },
    { seq: 255, payload: '0e', raw: '010000ff0e' },
  ];

  it('cuts a stream fed at once into packets, as views of the fed buffer', () => {
    const framer = new PacketFramer();
    framer.feed(stream);
    const got = drain(framer);
    expect(shape(got)).to.deep.equal(expected);
    expect(got.map((p) => p.packets)).to.deep.equal([1, 1, 1, 1]);
    expect(got[0].raw.buffer).to.equal(stream.buffer);
    expect(got[0].payload.buffer).to.equal(stream.buffer);
    expect(framer.buffered).to.equal(0);
  });

  it('gives the same packets when the stream is split in two at every byte position', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const framer = new PacketFramer();
      framer.feed(stream.subarray(0, cut));
      const got = drain(framer);
      framer.feed(stream.subarray(cut));
      got.push(...drain(framer));
      expect(shape(got), `cut at ${cut}`).to.deep.equal(expected);
    }
  });

  it('gives the same packets when fed one byte at a time, or in random chunks', () => {
    const framer = new PacketFramer();
    const got: FramedPacket[] = [];
    for (let i = 0; i < stream.length; i++) {
      framer.feed(stream.subarray(i, i + 1));
      got.push(...drain(framer));
    }
    expect(shape(got)).to.deep.equal(expected);

    const random = rng(7);
    for (let round = 0; round < 50; round++) {
      const f = new PacketFramer();
      const list: FramedPacket[] = [];
      for (let at = 0; at < stream.length; ) {
        const n = 1 + Math.floor(random() * 12);
        f.feed(stream.subarray(at, at + n));
        at += n;
        if (random() < 0.7) list.push(...drain(f));
      }
      list.push(...drain(f));
      expect(shape(list)).to.deep.equal(expected);
    }
  });

  it('never changes a packet it returned when more data is fed', () => {
    const framer = new PacketFramer();
    framer.feed(stream.subarray(0, 5));
    framer.feed(stream.subarray(5, 14));
    const first = framer.next()!;
    const before = first.raw.toString('hex');
    for (let i = 14; i < stream.length; i++) framer.feed(stream.subarray(i, i + 1));
    drain(framer);
    expect(first.raw.toString('hex')).to.equal(before);
  });

  it('joins a logical packet of 16 MiB + 10 bytes sent as two physical packets', function () {
    this.timeout(20000);
    const payload = Buffer.alloc(0xffffff + 10);
    for (let i = 0; i < payload.length; i += 4093) payload[i] = i & 0xff;
    const raw = Buffer.concat([frame(3, payload), frame(0, hex('0e'))]);
    expect(raw.length).to.equal(payload.length + 8 + 5);
    expect(raw.readUIntLE(0, 3)).to.equal(0xffffff);
    expect(raw[3]).to.equal(3);
    expect(raw[0xffffff + 7]).to.equal(4);

    const framer = new PacketFramer();
    // Split inside the second header and in the middle of the first payload.
    let at = 0;
    for (const cut of [1_000_000, 0xffffff + 5, 0xffffff + 6, raw.length]) {
      framer.feed(raw.subarray(at, cut));
      at = cut;
      if (cut < raw.length) expect(framer.next()).to.equal(null);
    }
    const logical = framer.next()!;
    expect(logical.seq).to.equal(3);
    expect(logical.packets).to.equal(2);
    expect(logical.payload.length).to.equal(payload.length);
    expect(logical.payload.equals(payload)).to.equal(true);
    expect(logical.raw.length).to.equal(payload.length + 8);
    expect(framer.next()!.payload.toString('hex')).to.equal('0e');
  });

  it('ends a logical packet with an empty packet when the payload is exactly 0xFFFFFF bytes', function () {
    this.timeout(20000);
    const payload = Buffer.alloc(0xffffff, 0x61);
    const raw = frame(0, payload);
    expect(raw.length).to.equal(0xffffff + 8);
    expect(raw.subarray(raw.length - 4).toString('hex')).to.equal('00000001');
    const framer = new PacketFramer();
    framer.feed(raw.subarray(0, raw.length - 1));
    expect(framer.next()).to.equal(null);
    framer.feed(raw.subarray(raw.length - 1));
    const logical = framer.next()!;
    expect(logical.payload.length).to.equal(0xffffff);
    expect(logical.raw.length).to.equal(raw.length);
  });

  it('fails on a logical packet above the limit as soon as its header says so, and drops what it holds', () => {
    const framer = new PacketFramer({ maxPacketSize: 100 });
    framer.feed(packets(0, [Buffer.alloc(100)]));
    expect(framer.next()!.payload.length).to.equal(100);
    framer.feed(hex('65000000')); // header of a 101-byte packet, no payload yet
    expect(framer.next()).to.equal(null);
    expect(framer.error).to.match(/exceeds the limit of 100/);
    expect(framer.buffered).to.equal(0);
    framer.feed(packets(0, [hex('01')]));
    expect(framer.next()).to.equal(null);
    expect(framer.buffered).to.equal(0);
    framer.reset();
    expect(framer.error).to.equal(null);
    framer.feed(packets(0, [hex('01')]));
    expect(framer.next()!.payload.toString('hex')).to.equal('01');
  });

  it('counts the continuation packets against the limit', () => {
    const framer = new PacketFramer({ maxPacketSize: 0xffffff + 5 });
    framer.feed(hex('ffffff00'));
    expect(framer.next()).to.equal(null);
    expect(framer.error).to.equal(null);
    framer.feed(Buffer.alloc(0xffffff));
    framer.feed(hex('06000001'));
    expect(framer.next()).to.equal(null);
    expect(framer.error).to.match(/exceeds/);
  });

  it('reports what it buffers and forgets it on reset', () => {
    const framer = new PacketFramer();
    framer.feed(hex('0500'));
    expect(framer.buffered).to.equal(2);
    framer.feed(hex('0000'));
    expect(framer.buffered).to.equal(4);
    framer.reset();
    expect(framer.buffered).to.equal(0);
    framer.feed(packets(0, [hex('aa')]));
    expect(framer.next()!.payload.toString('hex')).to.equal('aa');
  });

  it('rejects a bad limit', () => {
    expect(() => new PacketFramer({ maxPacketSize: -1 })).to.throw(RangeError);
  });
});
