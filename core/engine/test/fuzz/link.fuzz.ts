// Fuzz properties of the link layer (decode/link.ts: ipv4Offset): Ethernet with VLAN tags, Linux
// cooked v1/v2, raw IP; run by link-fuzz.spec.ts and `npm run fuzz`.
import { expect } from 'chai';
import fc from 'fast-check';
import { ipv4Offset } from '../../src/decode/link';
import { LinkType } from '../../src/decode/link-type';
import { mutated, randomBytes, type FuzzSuite } from '../../src/fuzz';
import { linkHeaderBytes, LINK_TYPES, validFrame, VLAN_TPIDS } from './packets';

/** Link types: ours, and numbers we do not read (which must give -1). */
const anyLinkType = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...LINK_TYPES) },
  { weight: 1, arbitrary: fc.nat({ max: 0xffff }) },
) as fc.Arbitrary<LinkType>;

const untrustedFrame = fc.oneof(
  { weight: 1, arbitrary: randomBytes(96) },
  { weight: 4, arbitrary: mutated(validFrame.map((f) => f.frame), 3) },
);

/** The length a caller passes: the frame's, less (a snaplen), or more than the buffer holds. */
const lengthFor = (frame: Buffer) => fc.oneof(fc.constant(frame.length), fc.nat({ max: frame.length }), fc.integer({ min: frame.length, max: frame.length + 100 }));

/** What a non-negative answer must satisfy: a chain of ≤ 4 VLAN tags ending in the IPv4 ethertype, 20 bytes of IP present. */
function checkOffset(linkType: LinkType, frame: Buffer, length: number, off: number): void {
  const len = Math.min(length, frame.length);
  expect(off, 'an offset or -1').to.satisfy((o: number) => o === -1 || (Number.isInteger(o) && o >= 0));
  if (off < 0) return;
  expect(off + 20, 'an IPv4 header fits in the captured bytes').to.be.at.most(len);
  const hdr = linkHeaderBytes(linkType);
  if (linkType === LinkType.RAW || linkType === LinkType.IPV4) {
    expect(off).to.equal(0);
    expect(frame[0] >> 4).to.equal(4);
    return;
  }
  expect(LINK_TYPES, 'only the link types we read').to.include(linkType);
  const tags = (off - hdr) / 4;
  expect(tags, 'whole VLAN tags after the link header').to.be.oneOf([0, 1, 2, 3, 4]);
  const typeAt = linkType === LinkType.ETHERNET ? 12 : linkType === LinkType.LINUX_SLL ? 14 : 0;
  for (let i = 0; i < tags; i++) {
    const at = i === 0 ? typeAt : hdr + 4 * (i - 1) + 2;
    expect(VLAN_TPIDS).to.include(frame.readUInt16BE(at));
  }
  expect(frame.readUInt16BE(tags === 0 ? typeAt : off - 2), 'the IPv4 ethertype').to.equal(0x0800);
}

export const suite: FuzzSuite = {
  id: 'link',
  decoder: 'link layer (decode/link.ts)',
  seed: 0x11c0,
  properties: [
    {
      id: 'valid',
      name: 'finds the IPv4 header behind every link header and up to 4 VLAN tags, and refuses a 5th',
      runs: 300,
      property: () =>
        fc.property(validFrame, ({ linkType, frame, ipOffset }) => {
          expect(ipv4Offset(linkType, frame, frame.length)).to.equal(ipOffset);
        }),
    },
    {
      id: 'untrusted',
      name: 'random and mutated frames: -1 or a consistent offset within the captured bytes, never a throw',
      runs: 1500,
      property: () =>
        fc.property(anyLinkType, untrustedFrame.chain((f) => fc.tuple(fc.constant(f), lengthFor(f))), (linkType, [frame, length]) => {
          checkOffset(linkType, frame, length, ipv4Offset(linkType, frame, length));
        }),
    },
    {
      id: 'bounds',
      name: 'reads nothing past the length given: the bytes after it do not change the answer',
      runs: 800,
      property: () =>
        fc.property(anyLinkType, untrustedFrame, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 64 }), (linkType, frame, cut, tail) => {
          const length = cut % (frame.length + 1);
          const a = ipv4Offset(linkType, frame, length);
          const other = Buffer.concat([frame.subarray(0, length), tail]);
          expect(ipv4Offset(linkType, other, length)).to.equal(a);
        }),
    },
    {
      id: 'in-place',
      name: 'a frame read in place inside a larger buffer (start): the same answer, shifted by start',
      runs: 500,
      property: () =>
        fc.property(anyLinkType, untrustedFrame, fc.nat(), fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }),
          (linkType, frame, cut, head, tail) => {
            const length = cut % (frame.length + 1);
            const a = ipv4Offset(linkType, frame, length);
            const big = Buffer.concat([head, frame.subarray(0, length), tail]);
            expect(ipv4Offset(linkType, big, length, head.length)).to.equal(a < 0 ? -1 : a + head.length);
          }),
    },
  ],
};
