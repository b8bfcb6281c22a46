import { expect } from 'chai';
import * as path from 'path';
import { PcapReader } from '../src/capture/pcap-reader';
import { ipv4Offset, linkHeaderLength, writeEthernetHeader } from '../src/decode/link';
import { LinkType, linkTypeName } from '../src/decode/link-type';

const FIXTURES = path.resolve(__dirname, '../../test/fixtures');

// Minimal IPv4 header (version 4, IHL 5), 10.0.0.1 → 10.0.0.2, TCP.
const IPV4 = Buffer.from([0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
const IPV6 = Buffer.concat([Buffer.from([0x60, 0, 0, 0, 0, 0, 6, 64]), Buffer.alloc(32)]);
const ARP = Buffer.from('0001080006040001' + '00'.repeat(20), 'hex');

const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
const MACS = Buffer.from('ffffffffffff' + '020000000001', 'hex');
/** Ethernet frame: MACs, then each [tpid, tci] tag, then the ethertype and payload. */
const eth = (type: number, payload: Buffer, tags: number[] = []) =>
  Buffer.concat([MACS, ...tags.flatMap((tpid, i) => [u16(tpid), u16(100 + i)]), u16(type), payload]);
const sll = (proto: number, payload: Buffer) =>
  Buffer.concat([Buffer.from('0000030400060000000000000000', 'hex'), u16(proto), payload]);
const sll2 = (proto: number, payload: Buffer) =>
  Buffer.concat([u16(proto), Buffer.from('0000000000010304000600000000000000000000', 'hex').subarray(0, 18), payload]);

const off = (lt: LinkType, f: Buffer, len = f.length) => ipv4Offset(lt, f, len);

describe('link', () => {
  describe('ipv4Offset', () => {
    it('Ethernet', () => {
      expect(off(LinkType.ETHERNET, eth(0x0800, IPV4))).to.equal(14);
      expect(off(LinkType.ETHERNET, eth(0x0806, ARP))).to.equal(-1);
      expect(off(LinkType.ETHERNET, eth(0x86dd, IPV6))).to.equal(-1);
    });

    it('Ethernet with VLAN tags (802.1Q, 802.1ad, stacked)', () => {
      expect(off(LinkType.ETHERNET, eth(0x0800, IPV4, [0x8100]))).to.equal(18);
      expect(off(LinkType.ETHERNET, eth(0x0800, IPV4, [0x88a8, 0x8100]))).to.equal(22);
      expect(off(LinkType.ETHERNET, eth(0x0800, IPV4, [0x88a8, 0x8100, 0x8100, 0x8100]))).to.equal(30);
      expect(off(LinkType.ETHERNET, eth(0x0800, IPV4, [0x8100, 0x8100, 0x8100, 0x8100, 0x8100])), '5 tags').to.equal(-1);
      expect(off(LinkType.ETHERNET, eth(0x86dd, IPV6, [0x8100]))).to.equal(-1);
      expect(off(LinkType.ETHERNET, eth(0x0806, ARP, [0x88a8, 0x8100]))).to.equal(-1);
    });

    it('Linux cooked v1 (SLL) and v2 (SLL2)', () => {
      expect(sll(0x0800, IPV4).length).to.equal(16 + 20);
      expect(sll2(0x0800, IPV4).length).to.equal(20 + 20);
      expect(off(LinkType.LINUX_SLL, sll(0x0800, IPV4))).to.equal(16);
      expect(off(LinkType.LINUX_SLL, sll(0x86dd, IPV6))).to.equal(-1);
      expect(off(LinkType.LINUX_SLL, sll(0x8100, Buffer.concat([u16(5), u16(0x0800), IPV4])))).to.equal(20);
      expect(off(LinkType.LINUX_SLL2, sll2(0x0800, IPV4))).to.equal(20);
      expect(off(LinkType.LINUX_SLL2, sll2(0x0806, ARP))).to.equal(-1);
      expect(off(LinkType.LINUX_SLL2, sll2(0x8100, Buffer.concat([u16(5), u16(0x0800), IPV4])))).to.equal(24);
      // An Ethernet frame read as SLL2 has no 0x0800 at offset 0.
      expect(off(LinkType.LINUX_SLL2, eth(0x0800, IPV4))).to.equal(-1);
    });

    it('RAW and IPV4: the frame is the IP packet', () => {
      expect(off(LinkType.RAW, IPV4)).to.equal(0);
      expect(off(LinkType.RAW, IPV6)).to.equal(-1);
      expect(off(LinkType.IPV4, IPV4)).to.equal(0);
    });

    it('too short frames → -1', () => {
      expect(off(LinkType.ETHERNET, Buffer.alloc(0))).to.equal(-1);
      expect(off(LinkType.ETHERNET, eth(0x0800, IPV4).subarray(0, 13))).to.equal(-1);
      expect(off(LinkType.ETHERNET, eth(0x0800, IPV4).subarray(0, 14 + 19)), 'IP header cut').to.equal(-1);
      expect(off(LinkType.ETHERNET, eth(0x0800, IPV4, [0x8100]).subarray(0, 16)), 'tag cut').to.equal(-1);
      expect(off(LinkType.LINUX_SLL, sll(0x0800, IPV4).subarray(0, 15))).to.equal(-1);
      expect(off(LinkType.LINUX_SLL2, sll2(0x0800, IPV4).subarray(0, 39))).to.equal(-1);
      expect(off(LinkType.RAW, IPV4.subarray(0, 19))).to.equal(-1);
      expect(off(LinkType.RAW, Buffer.alloc(0))).to.equal(-1);
    });

    it('looks only at the first `length` bytes, and never past the buffer', () => {
      const f = eth(0x0800, IPV4);
      expect(off(LinkType.ETHERNET, f, 14 + 19)).to.equal(-1);
      expect(off(LinkType.ETHERNET, f, 1 << 20)).to.equal(14);
      expect(off(LinkType.ETHERNET, f.subarray(0, 20), 1 << 20)).to.equal(-1);
      // A frame inside a bigger buffer (as PcapReader hands out) works in place.
      const big = Buffer.concat([f, Buffer.alloc(100, 0xee)]);
      expect(off(LinkType.ETHERNET, big, f.length)).to.equal(14);
    });

    it('a frame in place inside a larger buffer (start): the offset is the buffer\'s, the bounds the frame\'s', () => {
      const frame = eth(0x0800, IPV4, [0x8100]);
      const buf = Buffer.concat([Buffer.alloc(7, 0x45), frame, Buffer.alloc(9, 0x45)]);
      expect(ipv4Offset(LinkType.ETHERNET, buf, frame.length, 7)).to.equal(7 + 18);
      // Cut one byte short of the 20 bytes of IP: not read past the frame into what follows it.
      expect(ipv4Offset(LinkType.ETHERNET, buf, frame.length - 1, 7)).to.equal(-1);
      const sllFrame = sll(0x0800, IPV4);
      const b2 = Buffer.concat([Buffer.alloc(3), sllFrame]);
      expect(ipv4Offset(LinkType.LINUX_SLL, b2, sllFrame.length, 3)).to.equal(3 + 16);
      const b3 = Buffer.concat([Buffer.alloc(5), sll2(0x0800, IPV4)]);
      expect(ipv4Offset(LinkType.LINUX_SLL2, b3, b3.length - 5, 5)).to.equal(5 + 20);
      const b4 = Buffer.concat([Buffer.alloc(2, 0x45), IPV4]);
      expect(ipv4Offset(LinkType.RAW, b4, IPV4.length, 2)).to.equal(2);
      expect(ipv4Offset(LinkType.RAW, b4, IPV4.length - 1, 2)).to.equal(-1);
      // A start past the buffer's end finds nothing.
      expect(ipv4Offset(LinkType.RAW, b4, 20, 40)).to.equal(-1);
    });

    it('unsupported link types → -1', () => {
      expect(ipv4Offset(105 as LinkType, eth(0x0800, IPV4), 34)).to.equal(-1);
    });

    for (const [file, lt] of [['eth-us.pcap', LinkType.ETHERNET], ['eth-ns.pcap', LinkType.ETHERNET],
      ['sll.pcap', LinkType.LINUX_SLL], ['sll2.pcap', LinkType.LINUX_SLL2]] as const) {
      it(`finds the IPv4 header in every frame of ${file} (tcpdump capture)`, () => {
        const r = PcapReader.open(path.join(FIXTURES, file));
        expect(r.linkType).to.equal(lt);
        let n = 0;
        for (let rec = r.next(); rec; rec = r.next(), n++) {
          const o = ipv4Offset(r.linkType, rec.data, rec.data.length);
          expect(o).to.equal(linkHeaderLength(lt));
          const ip = rec.data.subarray(o);
          expect(ip[0] >> 4).to.equal(4);
          expect(ip[9]).to.equal(6); // TCP
          expect([...ip.subarray(12, 20)]).to.deep.equal([127, 0, 0, 1, 127, 0, 0, 1]);
          expect(ip.readUInt16BE(2)).to.equal(rec.data.length - o); // IP total length fills the frame
        }
        expect(n).to.equal(14);
        r.close();
      });
    }
  });

  it('linkHeaderLength', () => {
    expect([LinkType.ETHERNET, LinkType.LINUX_SLL, LinkType.LINUX_SLL2, LinkType.RAW, LinkType.IPV4].map(linkHeaderLength))
      .to.deep.equal([14, 16, 20, 0, 0]);
  });

  it('linkTypeName', () => {
    expect(linkTypeName(113)).to.equal('LINUX_SLL');
    expect(linkTypeName(228)).to.equal('IPV4');
    expect(linkTypeName(12345)).to.equal('unknown');
  });

  describe('writeEthernetHeader', () => {
    const dst = Buffer.from('0a0b0c0d0e0f', 'hex');
    const src = Buffer.from('020000000001', 'hex');

    it('writes dst, src and the ethertype in place', () => {
      const buf = Buffer.alloc(4 + 14 + 20, 0xee);
      IPV4.copy(buf, 18);
      expect(writeEthernetHeader(buf, 4, dst, src, 0x0800)).to.equal(14);
      expect(buf.subarray(0, 4).toString('hex')).to.equal('eeeeeeee');
      expect(buf.subarray(4, 18).toString('hex')).to.equal('0a0b0c0d0e0f' + '020000000001' + '0800');
      expect(ipv4Offset(LinkType.ETHERNET, buf.subarray(4), 34)).to.equal(14);
      writeEthernetHeader(buf, 4, dst, src, 0x86dd);
      expect(buf.readUInt16BE(16)).to.equal(0x86dd);
    });

    it('rejects short MACs and a buffer without room', () => {
      expect(() => writeEthernetHeader(Buffer.alloc(14), 0, Buffer.alloc(5), src, 0x0800)).to.throw(RangeError);
      expect(() => writeEthernetHeader(Buffer.alloc(20), 7, dst, src, 0x0800)).to.throw(RangeError);
    });
  });
});
