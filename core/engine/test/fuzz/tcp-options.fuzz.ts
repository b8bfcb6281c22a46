// Fuzz properties of the TCP option parser (decode/tcp-options.ts); run by tcp-options-fuzz.spec.ts
// and `npm run fuzz`.
import { expect } from 'chai';
import fc from 'fast-check';
import { TcpOptions } from '../../src/decode/tcp-options';
import { mutated, randomBytes, type FuzzSuite } from '../../src/fuzz';
import { tcpOptionList } from './packets';

/** What parse() found, as plain values. */
function result(o: TcpOptions): unknown[] {
  return [o.mss, o.wscale, o.sackPermitted, o.sackOffset, o.sackBlocks, o.tsOffset, o.tsVal, o.tsEcr, o.valid];
}

/** Every offset parse() reports lies in [start, end) with its whole field. */
function checkBounds(o: TcpOptions, start: number, end: number): void {
  expect(o.mss).to.be.within(-1, 0xffff);
  expect(o.wscale).to.be.within(-1, 14);
  if (o.sackOffset >= 0) {
    expect(o.sackOffset).to.be.at.least(start + 2);
    expect(o.sackOffset + 8 * o.sackBlocks, 'SACK blocks inside the option area').to.be.at.most(end);
  } else expect(o.sackBlocks).to.equal(0);
  if (o.tsOffset >= 0) {
    expect(o.tsOffset).to.be.at.least(start + 2);
    expect(o.tsOffset + 8, 'TSval and TSecr inside the option area').to.be.at.most(end);
  }
}

/** Option areas: valid lists, mutated ones, random bytes (at most 40 bytes, as in a TCP header). */
const optionBytes = fc.oneof(
  { weight: 1, arbitrary: randomBytes(40) },
  { weight: 1, arbitrary: tcpOptionList.map((l) => l.bytes) },
  { weight: 4, arbitrary: mutated(tcpOptionList.map((l) => l.bytes), 3).map((b) => b.subarray(0, 40)) },
);
const padding = fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a));

export const suite: FuzzSuite = {
  id: 'tcp-options',
  decoder: 'TCP options (decode/tcp-options.ts)',
  seed: 0x0b7,
  properties: [
    {
      id: 'valid',
      name: 'reads back every option of a valid list: MSS, window scale (at most 14), SACK-permitted, SACK blocks, timestamps',
      runs: 500,
      property: () =>
        fc.property(tcpOptionList, padding, (list, before) => {
          const buf = Buffer.concat([before, list.bytes, Buffer.alloc(8, 0xee)]);
          const start = before.length;
          const o = new TcpOptions().parse(buf, start, start + list.bytes.length);
          expect(o.valid).to.equal(true);
          // The last option of each kind wins, as the parser reads them in order.
          const last = <K extends string>(kind: K) => [...list.options].reverse().find((x) => x.kind === kind);
          const mss = last('mss');
          expect(o.mss).to.equal(mss && mss.kind === 'mss' ? mss.mss : -1);
          const ws = last('wscale');
          expect(o.wscale).to.equal(ws && ws.kind === 'wscale' ? Math.min(ws.shift, 14) : -1);
          expect(o.sackPermitted).to.equal(list.options.some((x) => x.kind === 'sackPermitted'));
          const sack = last('sack');
          expect(o.sackBlocks).to.equal(sack && sack.kind === 'sack' ? sack.blocks.length : 0);
          if (sack && sack.kind === 'sack') {
            sack.blocks.forEach(([l, r], i) => {
              expect(buf.readUInt32BE(o.sackOffset + 8 * i)).to.equal(l);
              expect(buf.readUInt32BE(o.sackOffset + 8 * i + 4)).to.equal(r);
            });
          }
          const ts = last('timestamp');
          expect(o.hasTimestamp).to.equal(ts !== undefined);
          if (ts && ts.kind === 'timestamp') {
            expect([o.tsVal, o.tsEcr]).to.deep.equal([ts.val, ts.ecr]);
            expect(buf.readUInt32BE(o.tsOffset)).to.equal(ts.val);
          }
          checkBounds(o, start, start + list.bytes.length);
        }),
    },
    {
      id: 'untrusted',
      name: 'random and mutated option areas: never a throw, every offset inside the area, a second parse agrees (no state kept)',
      runs: 2000,
      property: () =>
        fc.property(optionBytes, padding, (bytes, before) => {
          const buf = Buffer.concat([before, bytes]);
          const start = before.length;
          const o = new TcpOptions();
          o.parse(buf, start, buf.length);
          checkBounds(o, start, buf.length);
          const first = result(o);
          o.parse(Buffer.from('020405b4080a00000001000000020303070402', 'hex'), 0, 19);
          expect(result(o.parse(buf, start, buf.length))).to.deep.equal(first);
        }),
    },
    {
      id: 'bounds',
      name: 'reads nothing outside [start, end): the bytes around the area do not change the result',
      runs: 1000,
      property: () =>
        fc.property(optionBytes, padding, padding, fc.uint8Array({ minLength: 1, maxLength: 16 }), (bytes, before, after, noise) => {
          const a = Buffer.concat([before, bytes, after]);
          const b = Buffer.from(a);
          for (let i = 0; i < before.length; i++) b[i] ^= noise[i % noise.length] | 1;
          for (let i = before.length + bytes.length; i < b.length; i++) b[i] ^= noise[i % noise.length] | 1;
          const start = before.length;
          const end = start + bytes.length;
          expect(result(new TcpOptions().parse(b, start, end))).to.deep.equal(result(new TcpOptions().parse(a, start, end)));
        }),
    },
  ],
};
