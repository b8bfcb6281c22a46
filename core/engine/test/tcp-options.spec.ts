// TCP option parsing on its own (RFC 9293 §3.1, RFC 7323, RFC 2018): what is read, what is skipped, what is malformed.
import { expect } from 'chai';
import { blankOption, OPT_NOP, TcpOptions } from '../src/decode/tcp-options';

const hex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');

/**
 * Options placed after `lead` bytes of something else (so offsets are absolute positions in the buffer)
 * and before 16 bytes of payload (so nothing is read past the option area's end by luck).
 */
function parse(options: Buffer, lead = 20): { o: TcpOptions; buf: Buffer } {
  const buf = Buffer.concat([Buffer.alloc(lead, 0xaa), options, Buffer.alloc(16, 0x08)]);
  return { o: new TcpOptions().parse(buf, lead, lead + options.length), buf };
}

describe('TcpOptions', () => {
  it('reads a Linux SYN: MSS, SACK permitted, timestamps, NOP, window scale', () => {
    const { o, buf } = parse(hex('020405b4 0402 080a 0001e240 00000000 01 030307'));
    expect(o.valid).to.equal(true);
    expect(o.mss).to.equal(1460);
    expect(o.sackPermitted).to.equal(true);
    expect(o.hasTimestamp).to.equal(true);
    expect(o.tsVal).to.equal(123456);
    expect(o.tsEcr).to.equal(0);
    expect(o.tsOffset, 'absolute position of TSval').to.equal(20 + 8);
    expect(buf.readUInt32BE(o.tsOffset)).to.equal(123456);
    expect(o.wscale).to.equal(7);
    expect(o.sackOffset).to.equal(-1);
  });

  it('reads timestamps with their full 32-bit values', () => {
    const { o } = parse(hex('0101 080a fffffffe 80000000'));
    expect(o.tsVal).to.equal(0xfffffffe);
    expect(o.tsEcr).to.equal(0x80000000);
    expect(o.tsOffset).to.equal(24);
  });

  it('reads SACK blocks: where they start and how many', () => {
    const { o, buf } = parse(hex('0101 0512 00000064 000000c8 0000012c 00000190 0101'));
    expect(o.valid).to.equal(true);
    expect(o.sackBlocks).to.equal(2);
    expect(o.sackOffset).to.equal(24);
    expect(buf.readUInt32BE(o.sackOffset + 8)).to.equal(300);
    const three = parse(hex('0101 051a' + '00000001'.repeat(6))).o;
    expect(three.sackBlocks).to.equal(3);
  });

  it('caps the window scale at 14 (RFC 7323 §2.3)', () => {
    expect(parse(hex('030310 00')).o.wscale).to.equal(14);
    expect(parse(hex('03030e 00')).o.wscale).to.equal(14);
    expect(parse(hex('030300 00')).o.wscale).to.equal(0);
  });

  it('stops at End of Option List: what follows is padding', () => {
    const { o } = parse(hex('020405b4 00 030307 0000'));
    expect(o.mss).to.equal(1460);
    expect(o.wscale, 'after EOL').to.equal(-1);
    expect(o.valid).to.equal(true);
  });

  it('skips options it does not know, and known ones of the wrong length, and goes on', () => {
    const { o } = parse(hex('1e04 abcd' + '0203 05' + '0806 00000001' + '020405b4'));
    expect(o.valid).to.equal(true);
    expect(o.hasTimestamp, 'timestamps of length 6').to.equal(false);
    expect(o.mss, 'the MSS of length 4 after them').to.equal(1460);
    const wrongWscale = parse(hex('0304 0707 020405dc')).o;
    expect(wrongWscale.wscale).to.equal(-1);
    expect(wrongWscale.mss).to.equal(1500);
  });

  describe('malformed option areas', () => {
    it('a length below 2', () => {
      expect(parse(hex('0201 0000')).o.valid).to.equal(false);
      expect(parse(hex('0200 0000')).o.valid).to.equal(false);
    });

    it('a length running past the end of the option area, even when the buffer goes on', () => {
      const { o } = parse(hex('0101 080a 00000001')); // 10 bytes announced, 6 present before the end
      expect(o.valid).to.equal(false);
      expect(o.hasTimestamp).to.equal(false);
    });

    it('a kind in the last byte with no room for its length', () => {
      const { o } = parse(hex('010101 02'));
      expect(o.valid).to.equal(false);
    });

    it('keeps what it read before the damage', () => {
      const { o } = parse(hex('020405b4 0309 0000'));
      expect(o.mss).to.equal(1460);
      expect(o.valid).to.equal(false);
    });
  });

  it('an empty option area and one of NOPs only: nothing, and valid', () => {
    for (const area of [Buffer.alloc(0), hex('01010101')]) {
      const { o } = parse(area);
      expect(o.valid).to.equal(true);
      expect([o.mss, o.wscale, o.tsOffset, o.sackOffset, o.sackBlocks]).to.deep.equal([-1, -1, -1, -1, 0]);
      expect(o.sackPermitted).to.equal(false);
    }
  });

  it('parsing again forgets the previous packet (one object is reused)', () => {
    const o = new TcpOptions();
    const full = hex('020405b4 0402 080a 00000009 00000008 01 030307');
    o.parse(full, 0, full.length);
    expect(o.hasTimestamp).to.equal(true);
    o.parse(hex('0201'), 0, 2);
    expect(o.valid).to.equal(false);
    o.parse(hex('01010101'), 0, 4);
    expect(o.valid, 'valid again').to.equal(true);
    expect([o.mss, o.wscale, o.tsOffset, o.tsVal, o.tsEcr, o.sackOffset]).to.deep.equal([-1, -1, -1, 0, 0, -1]);
    expect(o.sackPermitted).to.equal(false);
  });

  it('reads only inside [start, end)', () => {
    const buf = hex('080a 00000001 00000002 020405b4');
    const o = new TcpOptions().parse(buf, 10, 14);
    expect(o.mss).to.equal(1460);
    expect(o.hasTimestamp).to.equal(false);
    o.parse(buf, 0, 10);
    expect(o.tsVal).to.equal(1);
    expect(o.mss).to.equal(-1);
  });

  it('blankOption turns an option into NOPs, and the parser then skips it', () => {
    const { o, buf } = parse(hex('0101 050a 00000064 000000c8 0101 080a 00000005 00000006'));
    expect(o.sackBlocks).to.equal(1);
    blankOption(buf, o.sackOffset - 2, 10);
    expect(buf.subarray(22, 32).every((x) => x === OPT_NOP)).to.equal(true);
    const again = new TcpOptions().parse(buf, 20, 20 + 24);
    expect(again.sackOffset).to.equal(-1);
    expect(again.tsVal, 'the option after it is untouched').to.equal(5);
    expect(again.valid).to.equal(true);
  });

  describe('timestampValue (one field, per reply)', () => {
    it("reads TSval of Linux's NOP, NOP, timestamp layout, full 32-bit", () => {
      const buf = Buffer.concat([Buffer.alloc(20, 0xaa), hex('0101080a fffffffe 00000007'), Buffer.alloc(16, 0x08)]);
      expect(new TcpOptions().timestampValue(buf, 20, 32)).to.equal(0xfffffffe);
    });

    it('parses any other layout, and says -1 when there is no timestamp', () => {
      const o = new TcpOptions();
      const sack = Buffer.concat([Buffer.alloc(20), hex('0101050a 00000001 00000002 0101080a 00000009 00000000')]);
      expect(o.timestampValue(sack, 20, sack.length), 'after a SACK block').to.equal(9);
      const reversed = Buffer.concat([Buffer.alloc(20), hex('080a 00000011 00000000 0101')]);
      expect(o.timestampValue(reversed, 20, reversed.length), 'timestamp first, NOPs after').to.equal(0x11);
      const none = Buffer.concat([Buffer.alloc(20), hex('01010402')]);
      expect(o.timestampValue(none, 20, none.length)).to.equal(-1);
      expect(o.timestampValue(none, 20, 20), 'no options at all').to.equal(-1);
      const cut = Buffer.concat([Buffer.alloc(20), hex('0101080a 00000005')]);
      expect(o.timestampValue(cut, 20, cut.length), 'a timestamp option cut short').to.equal(-1);
    });
  });
});
