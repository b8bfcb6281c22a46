import { expect } from 'chai';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PcapFormatError, PcapRecord } from '../src/capture/pcap-format';
import { PcapReader } from '../src/capture/pcap-reader';
import { PcapWriter } from '../src/capture/pcap-writer';
import { LinkType, linkTypeName } from '../src/decode/link-type';

const FIXTURES = path.resolve(__dirname, '../../test/fixtures'); // dist/test → test/fixtures
const fixture = (name: string) => path.join(FIXTURES, name);

interface Rec { data: Buffer; origLen: number; timeUs: number; tsSec: number; tsFracNs: number; offset: number }

function copy(r: PcapRecord): Rec {
  return { data: Buffer.from(r.data), origLen: r.origLen, timeUs: r.timeUs, tsSec: r.tsSec, tsFracNs: r.tsFracNs, offset: r.offset };
}

function readAll(file: string, chunkSize?: number): { reader: PcapReader; recs: Rec[] } {
  const reader = PcapReader.open(file, { chunkSize });
  const recs: Rec[] = [];
  for (let r = reader.next(); r; r = reader.next()) recs.push(copy(r));
  reader.close();
  return { reader, recs };
}

/** A tool is usable when it runs; oracle tests skip otherwise. */
function have(tool: string): boolean {
  const r = spawnSync(tool, ['--version'], { stdio: 'ignore', timeout: 10000 });
  return !r.error && r.status === 0;
}

function run(tool: string, args: string[]): string {
  return execFileSync(tool, args, { encoding: 'utf8', timeout: 20000, stdio: ['ignore', 'pipe', 'ignore'] });
}

/** "1795261850.935035000" (any number of fraction digits) → [sec, fracNs]. */
function parseEpoch(s: string): [number, number] {
  const [sec, frac = ''] = s.trim().split('.');
  return [Number(sec), Number(frac.padEnd(9, '0').slice(0, 9))];
}

interface HandRec { sec: number; frac: number; data: Buffer; orig?: number; incl?: number }

/** Independent encoder for the tests: any byte order, any magic, any link type. */
function buildPcap(o: { be?: boolean; ns?: boolean; magic?: number; linkType?: number; snaplen?: number; recs?: HandRec[] }): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(24);
  const u32 = (b: Buffer, v: number, at: number) => (o.be ? b.writeUInt32BE(v >>> 0, at) : b.writeUInt32LE(v >>> 0, at));
  const u16 = (b: Buffer, v: number, at: number) => (o.be ? b.writeUInt16BE(v, at) : b.writeUInt16LE(v, at));
  u32(h, o.magic ?? (o.ns ? 0xa1b23c4d : 0xa1b2c3d4), 0);
  u16(h, 2, 4);
  u16(h, 4, 6);
  u32(h, o.snaplen ?? 65535, 16);
  u32(h, o.linkType ?? 1, 20);
  parts.push(h);
  for (const r of o.recs ?? []) {
    const rh = Buffer.alloc(16);
    u32(rh, r.sec, 0);
    u32(rh, r.frac, 4);
    u32(rh, r.incl ?? r.data.length, 8);
    u32(rh, r.orig ?? r.data.length, 12);
    parts.push(rh, r.data);
  }
  return Buffer.concat(parts);
}

/** A plausible Ethernet/IPv4/UDP frame, so that tcpdump and tshark print it normally. */
function udpFrame(i: number, payloadLen: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + payloadLen);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + 8 + payloadLen, 16);
  f[22] = 64;
  f[23] = 17;
  Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]).copy(f, 26);
  f.writeUInt16BE(10000 + i, 34);
  f.writeUInt16BE(53, 36);
  f.writeUInt16BE(8 + payloadLen, 38);
  for (let k = 0; k < payloadLen; k++) f[42 + k] = (i + k) & 0xff;
  return f;
}

function expectPcapError(fn: () => unknown, code: string, file: string): PcapFormatError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(PcapFormatError);
    const e = err as PcapFormatError;
    expect(e.code).to.equal(code);
    expect(e.message).to.contain(file);
    expect(e.path).to.equal(file);
    return e;
  }
  throw new Error(`expected PcapFormatError ${code}`);
}

// Deterministic pseudo-random numbers, so a failure can be reproduced.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('pcap-file', () => {
  let tmp: string;
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-pcap-')); });
  after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });
  const tmpFile = (name: string) => path.join(tmp, name);
  const put = (name: string, bytes: Buffer) => { const p = tmpFile(name); fs.writeFileSync(p, bytes); return p; };

  describe('round trip PcapWriter → PcapReader', () => {
    const rand = rng(42);
    const packets = Array.from({ length: 300 }, (_, i) => ({
      data: Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 1600) }, () => Math.floor(rand() * 256))),
      timeUs: 1_700_000_000_000_000 + i * 1_234_567 + Math.floor(rand() * 1000),
    }));

    it('keeps data, lengths and microsecond timestamps exactly', () => {
      const f = tmpFile('rt-us.pcap');
      const w = PcapWriter.create(f, { linkType: LinkType.ETHERNET });
      for (const p of packets) w.write(p.data, p.timeUs);
      w.close();
      expect(w.records).to.equal(packets.length);
      const { reader, recs } = readAll(f);
      expect(reader.linkType).to.equal(LinkType.ETHERNET);
      expect(reader.snaplen).to.equal(262144);
      expect(reader.nanosecond).to.equal(false);
      expect(reader.bigEndian).to.equal(false);
      expect([reader.versionMajor, reader.versionMinor]).to.deep.equal([2, 4]);
      expect(reader.records).to.equal(packets.length);
      expect(reader.truncatedTail).to.equal(false);
      expect(recs.length).to.equal(packets.length);
      recs.forEach((r, i) => {
        expect(r.data.equals(packets[i].data), `record ${i} data`).to.equal(true);
        expect(r.origLen).to.equal(packets[i].data.length);
        expect(r.timeUs).to.equal(packets[i].timeUs);
        expect(r.tsSec).to.equal(Math.floor(packets[i].timeUs / 1e6));
        expect(r.tsFracNs).to.equal((packets[i].timeUs % 1e6) * 1000);
      });
      expect(recs[0].offset).to.equal(24);
      expect(recs[1].offset).to.equal(24 + 16 + packets[0].data.length);
    });

    it('keeps nanosecond timestamps exactly', () => {
      const f = tmpFile('rt-ns.pcap');
      const w = PcapWriter.create(f, { linkType: LinkType.LINUX_SLL2, nanosecond: true, snaplen: 65535 });
      const fracs = [0, 1, 999, 1000, 123_456_789, 999_999_999];
      fracs.forEach((ns, i) => w.writeRecord({ data: packets[i].data, origLen: 2000, timeUs: 0, tsSec: 1_800_000_000 + i, tsFracNs: ns, offset: 0 }));
      w.write(packets[0].data, 1_700_000_000_123_456); // whole µs → ns ×1000
      w.write(packets[0].data, 5_999_999.9999); // 999999999.9 ns rounds up into the next second
      w.close();
      const { reader, recs } = readAll(f);
      expect(reader.nanosecond).to.equal(true);
      expect(reader.linkType).to.equal(LinkType.LINUX_SLL2);
      expect(reader.snaplen).to.equal(65535);
      fracs.forEach((ns, i) => {
        expect(recs[i].tsSec).to.equal(1_800_000_000 + i);
        expect(recs[i].tsFracNs).to.equal(ns);
        expect(recs[i].timeUs).to.equal((1_800_000_000 + i) * 1e6 + Math.floor(ns / 1000)); // rounded down
        expect(recs[i].origLen).to.equal(2000);
      });
      expect(recs[6].timeUs).to.equal(1_700_000_000_123_456);
      expect(recs[6].tsFracNs).to.equal(123_456_000);
      expect([recs[7].tsSec, recs[7].tsFracNs]).to.deep.equal([6, 0]);
    });

    it('cuts packets to the snaplen and keeps the wire length', () => {
      const f = tmpFile('snap.pcap');
      const w = PcapWriter.create(f, { linkType: LinkType.RAW, snaplen: 100 });
      w.write(Buffer.alloc(300, 7), 5_000_000);
      w.write(Buffer.alloc(50, 8), 6_000_000, 1500);
      w.close();
      const { recs } = readAll(f);
      expect(recs.map((r) => [r.data.length, r.origLen])).to.deep.equal([[100, 300], [50, 1500]]);
    });

    it('writes packets bigger than its buffer', () => {
      const f = tmpFile('bigpk.pcap');
      const w = PcapWriter.create(f, { linkType: LinkType.ETHERNET, bufferSize: 100 });
      for (const p of packets.slice(0, 50)) w.write(p.data, p.timeUs);
      w.close();
      w.close(); // idempotent
      const { recs } = readAll(f);
      expect(recs.length).to.equal(50);
      recs.forEach((r, i) => expect(r.data.equals(packets[i].data)).to.equal(true));
    });

    it('reads the same records whatever the chunk size (records straddling chunk ends)', () => {
      const f = tmpFile('chunks.pcap');
      const w = PcapWriter.create(f, { linkType: LinkType.ETHERNET });
      for (const p of packets) w.write(p.data, p.timeUs);
      w.close();
      const ref = readAll(f).recs;
      for (const chunk of [1, 17, 100, 1500, 4096, 65536]) {
        const { recs } = readAll(f, chunk);
        expect(recs.length, `chunk ${chunk}`).to.equal(ref.length);
        recs.forEach((r, i) => expect(r, `chunk ${chunk} record ${i}`).to.deep.equal(ref[i]));
      }
    });

    it('reuses one record object (callers must copy)', () => {
      const r = PcapReader.open(fixture('eth-us.pcap'));
      const a = r.next();
      const b = r.next();
      expect(a).to.equal(b);
      r.close();
      // Records are still buffered, but a closed reader serves none of them.
      expectPcapError(() => r.next(), 'CLOSED', fixture('eth-us.pcap'));
    });

    it('leaves each record in place in its buffer, and makes `data` only when read', () => {
      for (const chunk of [64, 1 << 20]) {
        const r = PcapReader.open(fixture('eth-us.pcap'), { chunkSize: chunk });
        const ref = PcapReader.open(fixture('eth-us.pcap'));
        let n = 0;
        for (let rec = r.next(), want = ref.next(); rec && want; rec = r.next(), want = ref.next(), n++) {
          const inPlace = rec.buffer.subarray(rec.start, rec.start + rec.length);
          expect(inPlace.equals(want.data), `chunk ${chunk} record ${n}`).to.equal(true);
          expect(rec.length).to.equal(want.data.length);
          expect(rec.data).to.equal(rec.data); // one view per record, made once
          expect(rec.data.equals(inPlace)).to.equal(true);
        }
        expect(n).to.equal(14);
        r.close();
        ref.close();
      }
    });

    for (const be of [false, true]) {
      for (const ns of [false, true]) {
        it(`reads hand-built ${be ? 'big' : 'little'}-endian ${ns ? 'nanosecond' : 'microsecond'} files`, () => {
          const recs: HandRec[] = [
            { sec: 1_600_000_000, frac: ns ? 999_999_999 : 999_999, data: Buffer.from('0123456789') },
            { sec: 0xfffffffe, frac: ns ? 1_500 : 1, data: Buffer.alloc(0), orig: 60 },
            { sec: 1, frac: 0, data: Buffer.alloc(70000, 0xab) },
          ];
          const f = put(`hand-${be}-${ns}.pcap`, buildPcap({ be, ns, linkType: 113, snaplen: 262144, recs }));
          const { reader, recs: got } = readAll(f);
          expect(reader.bigEndian).to.equal(be);
          expect(reader.nanosecond).to.equal(ns);
          expect(reader.linkType).to.equal(LinkType.LINUX_SLL);
          expect(reader.snaplen).to.equal(262144);
          expect(got.length).to.equal(3);
          got.forEach((g, i) => {
            const want = recs[i];
            expect(g.data.equals(want.data)).to.equal(true);
            expect(g.origLen).to.equal(want.orig ?? want.data.length);
            expect(g.tsSec).to.equal(want.sec);
            expect(g.tsFracNs).to.equal(ns ? want.frac : want.frac * 1000);
            expect(g.timeUs).to.equal(want.sec * 1e6 + (ns ? Math.floor(want.frac / 1000) : want.frac));
          });
        });
      }
    }

    it('rewinds and reopens to replay the file again', () => {
      const r = PcapReader.open(fixture('eth-us.pcap'));
      const first: Rec[] = [];
      for (let x = r.next(); x; x = r.next()) first.push(copy(x));
      expect(r.next()).to.equal(null); // stays at the end
      r.rewind();
      expect(r.records).to.equal(0);
      const second: Rec[] = [];
      for (let x = r.next(); x; x = r.next()) second.push(copy(x));
      expect(second).to.deep.equal(first);
      r.close();
      expectPcapError(() => r.next(), 'CLOSED', fixture('eth-us.pcap'));
      r.reopen();
      expect(copy(r.next()!)).to.deep.equal(first[0]);
      r.close();
      r.close(); // idempotent
    });
  });

  describe('against tcpdump, tshark and capinfos', () => {
    const cases: { file: string; linkType: LinkType; ns: boolean; firstSec: number; firstFracNs: number; firstLen: number }[] = [
      { file: 'eth-us.pcap', linkType: LinkType.ETHERNET, ns: false, firstSec: 1795261850, firstFracNs: 935035000, firstLen: 74 },
      { file: 'eth-ns.pcap', linkType: LinkType.ETHERNET, ns: true, firstSec: 1795261853, firstFracNs: 595203325, firstLen: 74 },
      { file: 'sll.pcap', linkType: LinkType.LINUX_SLL, ns: false, firstSec: 1795261858, firstFracNs: 900552000, firstLen: 76 },
      { file: 'sll2.pcap', linkType: LinkType.LINUX_SLL2, ns: false, firstSec: 1795261856, firstFracNs: 240994000, firstLen: 80 },
    ];
    for (const c of cases) {
      it(`reads ${c.file} (written by tcpdump) as tshark does`, function () {
        const { reader, recs } = readAll(fixture(c.file));
        expect(reader.linkType).to.equal(c.linkType);
        expect(reader.nanosecond).to.equal(c.ns);
        expect(reader.truncatedTail).to.equal(false);
        expect(recs.length).to.equal(14);
        expect([recs[0].tsSec, recs[0].tsFracNs, recs[0].data.length]).to.deep.equal([c.firstSec, c.firstFracNs, c.firstLen]);
        if (!have('tshark')) this.skip();
        const lines = run('tshark', ['-r', fixture(c.file), '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.len', '-e', 'frame.cap_len'])
          .trim().split('\n');
        expect(recs.length).to.equal(lines.length);
        lines.forEach((line, i) => {
          const [t, len, capLen] = line.split('\t');
          expect([recs[i].tsSec, recs[i].tsFracNs], `record ${i}`).to.deep.equal(parseEpoch(t));
          expect(recs[i].origLen).to.equal(Number(len));
          expect(recs[i].data.length).to.equal(Number(capLen));
        });
      });
    }

    for (const ns of [false, true]) {
      it(`writes ${ns ? 'nanosecond' : 'microsecond'} files that tcpdump and capinfos read`, function () {
        if (!have('tcpdump') || !have('capinfos')) this.skip();
        const f = tmpFile(`oracle-${ns}.pcap`);
        const w = PcapWriter.create(f, { linkType: LinkType.ETHERNET, nanosecond: ns });
        const times: number[] = [];
        for (let i = 0; i < 40; i++) {
          const t = 1_750_000_000_000_000 + i * 1_000_003 + (i % 7) * 111;
          times.push(t);
          w.write(udpFrame(i, i * 10), t);
        }
        w.close();
        expect(run('capinfos', ['-c', '-M', f])).to.match(/Number of packets:\s+40\b/);
        const out = run('tcpdump', ['-r', f, '-tt', '-nn', '--time-stamp-precision=nano']).trim().split('\n');
        expect(out.length).to.equal(40);
        out.forEach((line, i) => {
          expect(parseEpoch(line.split(' ')[0])).to.deep.equal([Math.floor(times[i] / 1e6), (times[i] % 1e6) * 1000]);
          expect(line).to.contain(`10.0.0.1.${10000 + i} > 10.0.0.2.53: `);
        });
      });
    }

    it('refuses the pcapng fixture that tshark reads, and reads its editcap conversion', function () {
      expectPcapError(() => PcapReader.open(fixture('eth.pcapng')), 'PCAPNG', fixture('eth.pcapng'));
      if (!have('editcap')) this.skip();
      const f = tmpFile('converted.pcap');
      run('editcap', ['-F', 'pcap', fixture('eth.pcapng'), f]);
      const a = readAll(f).recs.map((r) => [r.data, r.origLen, r.timeUs]);
      const b = readAll(fixture('eth-us.pcap')).recs.map((r) => [r.data, r.origLen, r.timeUs]);
      expect(a).to.deep.equal(b);
    });
  });

  describe('bad input', () => {
    const good = (recs: number) => buildPcap({
      recs: Array.from({ length: recs }, (_, i) => ({ sec: 1000 + i, frac: i, data: Buffer.alloc(60 + i, i) })),
    });

    it('missing file → ENOENT', () => {
      const f = tmpFile('nope.pcap');
      const e = expectPcapError(() => PcapReader.open(f), 'ENOENT', f);
      expect(e.message).to.contain(`cannot open ${f}: no such file`);
    });

    it('a directory → EISDIR', () => {
      expectPcapError(() => PcapReader.open(tmp), 'EISDIR', tmp);
    });

    it('empty file → EMPTY', () => {
      const f = put('empty.pcap', Buffer.alloc(0));
      expect(expectPcapError(() => PcapReader.open(f), 'EMPTY', f).message).to.contain('empty');
    });

    it('shorter than the 24-byte header → TRUNCATED_HEADER', () => {
      const f = put('short.pcap', good(0).subarray(0, 10));
      const e = expectPcapError(() => PcapReader.open(f), 'TRUNCATED_HEADER', f);
      expect(e.message).to.contain('10 bytes');
      const g = put('tiny.pcap', Buffer.from([0xd4, 0xc3]));
      expectPcapError(() => PcapReader.open(g), 'TRUNCATED_HEADER', g);
    });

    it('pcapng → PCAPNG with the editcap command', () => {
      const f = fixture('eth.pcapng');
      const e = expectPcapError(() => PcapReader.open(f), 'PCAPNG', f);
      expect(e.message).to.equal(`${f} is a pcapng file; tcpcopy reads classic pcap: convert it with ` +
        `\`editcap -F pcap ${f} out.pcap\` (or capture with \`tcpdump -w\`)`);
    });

    it('unknown magic → BAD_MAGIC', () => {
      const f = put('text.pcap', Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n'));
      const e = expectPcapError(() => PcapReader.open(f), 'BAD_MAGIC', f);
      expect(e.message).to.contain('0x20544547').and.contain('offset 0');
      const gz = put('cap.pcap.gz', Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(40)]));
      expect(expectPcapError(() => PcapReader.open(gz), 'BAD_MAGIC', gz).message).to.contain('gunzip');
    });

    it('unsupported link type → UNSUPPORTED_LINKTYPE naming it and the supported ones', () => {
      const f = put('wifi.pcap', buildPcap({ linkType: 105 }));
      const e = expectPcapError(() => PcapReader.open(f), 'UNSUPPORTED_LINKTYPE', f);
      expect(e.message).to.contain('link type 105 (IEEE802_11').and.contain('276 (LINUX_SLL2)').and.contain('1 (ETHERNET)');
      const g = put('weird.pcap', buildPcap({ linkType: 4242, be: true }));
      expect(expectPcapError(() => PcapReader.open(g), 'UNSUPPORTED_LINKTYPE', g).message).to.contain('4242 (unknown');
    });

    for (const [what, cut] of [['body', 30], ['header', 7], ['header (1 byte)', 1]] as const) {
      it(`truncated last record (${what}) → earlier records, then null with truncatedTail`, () => {
        const full = good(5);
        const lastAt = full.length - (16 + 64);
        const f = put(`trunc-${cut}.pcap`, full.subarray(0, lastAt + cut));
        const r = PcapReader.open(f, { chunkSize: 64 });
        let n = 0;
        while (r.next()) n++;
        expect(n).to.equal(4);
        expect(r.records).to.equal(4);
        expect(r.truncatedTail).to.equal(true);
        expect(r.tailOffset).to.equal(lastAt);
        expect(r.tailBytes).to.equal(cut);
        expect(r.tailWarning()).to.contain(f).and.contain(`offset ${lastAt}`);
        expect(r.next()).to.equal(null);
        r.close();
      });
    }

    it('a file ending exactly after a record is not truncated', () => {
      const r = PcapReader.open(put('clean.pcap', good(3)));
      while (r.next());
      expect(r.truncatedTail).to.equal(false);
      expect(r.tailWarning()).to.equal(null);
      r.close();
    });

    it('absurd incl_len → BAD_RECORD with the offset', () => {
      const head = good(3);
      const bad = buildPcap({ recs: [{ sec: 1, frac: 0, data: Buffer.alloc(100), incl: 0x7fffffff }] }).subarray(24);
      const f = put('corrupt.pcap', Buffer.concat([head, bad]));
      const r = PcapReader.open(f);
      expect(r.next()).to.not.equal(null);
      expect(r.next()).to.not.equal(null);
      expect(r.next()).to.not.equal(null);
      const e = expectPcapError(() => r.next(), 'BAD_RECORD', f);
      expect(e.offset).to.equal(head.length);
      expect(e.message).to.contain(`offset ${head.length}`).and.contain('2147483647').and.contain('1-3');
      r.close();
    });

    it('a byte-swapped header is not mistaken for huge records', () => {
      // Correct magic for the order, but a record written in the other order: incl_len is absurd.
      const le = good(1);
      le.writeUInt32BE(60, 24 + 8);
      const f = put('mixed.pcap', le);
      const r = PcapReader.open(f);
      expectPcapError(() => r.next(), 'BAD_RECORD', f);
      r.close();
    });
  });

  it('linkTypeName', () => {
    expect(linkTypeName(276)).to.equal('LINUX_SLL2');
    expect(linkTypeName(1)).to.equal('ETHERNET');
    expect(linkTypeName(31337)).to.equal('unknown');
  });
});
