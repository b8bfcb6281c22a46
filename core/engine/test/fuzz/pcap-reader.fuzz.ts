// Fuzz properties of the pcap reader (capture/pcap-reader.ts), with the writer as the source of
// valid files; run by pcap-reader-fuzz.spec.ts and `npm run fuzz`. Each input is written to a file
// in a temporary directory (the reader reads files), removed at exit.
import { expect } from 'chai';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PcapFormatError, type PcapRecord } from '../../src/capture/pcap-format';
import { PcapReader } from '../../src/capture/pcap-reader';
import { PcapWriter } from '../../src/capture/pcap-writer';
import { LinkType } from '../../src/decode/link-type';
import { untrusted, type FuzzSuite } from '../../src/fuzz';
import { LINK_TYPES } from './packets';

/** The codes PcapFormatError documents. */
const CODES = ['ENOENT', 'EACCES', 'EISDIR', 'EIO', 'EMPTY', 'TRUNCATED_HEADER', 'PCAPNG', 'BAD_MAGIC', 'UNSUPPORTED_LINKTYPE', 'BAD_RECORD', 'CLOSED'];

let dir: string | null = null;
let serial = 0;
/** A fresh file path in this process's temporary directory. */
function tempFile(): string {
  if (dir === null) {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-fuzz-pcap-'));
    dir = d;
    process.once('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  }
  return path.join(dir, `f${serial++ % 4}.pcap`);
}

interface Rec {
  data: Buffer;
  sec: number;
  /** Microseconds or nanoseconds, as the file's resolution. */
  frac: number;
  orig: number;
}

interface FileSpec {
  bigEndian: boolean;
  nanosecond: boolean;
  snaplen: number;
  linkType: LinkType;
  records: Rec[];
}

const u32 = fc.nat({ max: 0xffffffff });
const recordData = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 120 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 3000 }) },
).map((a) => Buffer.from(a));

const fileSpec: fc.Arbitrary<FileSpec> = fc.boolean().chain((nanosecond) => fc.record({
  bigEndian: fc.boolean(),
  nanosecond: fc.constant(nanosecond),
  snaplen: fc.constantFrom(262144, 65535, 1514, 96, 0x7fffffff),
  linkType: fc.constantFrom(...LINK_TYPES),
  records: fc.array(fc.record({
    data: recordData,
    sec: u32,
    frac: fc.nat({ max: nanosecond ? 999_999_999 : 999_999 }),
    orig: fc.nat({ max: 0xffff }),
  }), { maxLength: 12 }),
}));

/** The file's bytes, in either byte order (the writer only writes little-endian). Records keep their whole data. */
function fileBytes(f: FileSpec): Buffer {
  const magic = f.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4;
  const parts: Buffer[] = [];
  const h = Buffer.alloc(24);
  const w32 = (b: Buffer, v: number, at: number) => (f.bigEndian ? b.writeUInt32BE(v >>> 0, at) : b.writeUInt32LE(v >>> 0, at));
  const w16 = (b: Buffer, v: number, at: number) => (f.bigEndian ? b.writeUInt16BE(v, at) : b.writeUInt16LE(v, at));
  w32(h, magic, 0);
  w16(h, 2, 4);
  w16(h, 4, 6);
  w32(h, f.snaplen, 16);
  w32(h, f.linkType, 20);
  parts.push(h);
  for (const r of f.records) {
    const rh = Buffer.alloc(16);
    w32(rh, r.sec, 0);
    w32(rh, r.frac, 4);
    w32(rh, r.data.length, 8);
    w32(rh, Math.max(r.orig, r.data.length), 12);
    parts.push(rh, r.data);
  }
  return Buffer.concat(parts);
}

/** Reads every record (copies), or the error; checks the reader's invariants on the way. */
function readAll(file: string, size: number, chunkSize: number): { records: Array<PcapRecord & { data: Buffer }>; error: PcapFormatError | null; reader: PcapReader | null } {
  const records: Array<PcapRecord & { data: Buffer }> = [];
  let reader: PcapReader | null = null;
  try {
    reader = PcapReader.open(file, { chunkSize });
    let expectAt = 24;
    for (let rec = reader.next(); rec !== null; rec = reader.next()) {
      expect(rec.offset, 'records follow each other').to.equal(expectAt);
      expectAt = rec.offset + 16 + rec.data.length;
      expect(expectAt, 'a record lies inside the file').to.be.at.most(size);
      expect(rec.origLen).to.be.within(0, 0xffffffff);
      expect(records.length, 'one record per 16 bytes at most').to.be.below((size - 24) / 16);
      records.push({ ...rec, data: Buffer.from(rec.data) });
      // Memory: the read buffer never grows past what the file could fill.
      const held = (reader as unknown as { buf: Buffer }).buf.length;
      expect(held, 'read buffer').to.be.at.most(Math.max(chunkSize, 16, 2 * size));
    }
    if (reader.truncatedTail) {
      expect(reader.tailOffset, 'the incomplete record follows the last whole one').to.equal(expectAt);
      expect(reader.tailOffset + reader.tailBytes).to.equal(size);
      expect(reader.tailWarning()).to.contain(file);
    } else {
      expect(expectAt, 'the records cover the file').to.equal(size);
    }
    const held = (reader as unknown as { buf: Buffer }).buf.length;
    expect(held, 'read buffer').to.be.at.most(Math.max(chunkSize, 16, 2 * size));
    return { records, error: null, reader };
  } catch (err) {
    if (!(err instanceof PcapFormatError)) throw err;
    return { records, error: err, reader };
  } finally {
    reader?.close();
  }
}

/** A PcapFormatError as documented: a known code, this file, a message that names it and its offset inside the file. */
function checkError(err: PcapFormatError, file: string, size: number): void {
  expect(CODES).to.include(err.code);
  expect(err.path).to.equal(file);
  expect(err.message).to.contain(file);
  if (err.offset !== undefined) expect(err.offset).to.be.within(0, size);
}

export const suite: FuzzSuite = {
  id: 'pcap-reader',
  decoder: 'pcap reader (capture/pcap-reader.ts)',
  seed: 0x9ca9,
  properties: [
    {
      id: 'round-trip',
      name: 'PcapWriter → PcapReader gives back every record (data cut to the snaplen, lengths, times), and writeRecord copies a file exactly',
      runs: 150,
      property: () =>
        fc.property(
          fc.constantFrom(...LINK_TYPES), fc.boolean(), fc.constantFrom(262144, 1514, 60),
          fc.array(fc.record({ data: recordData, timeUs: fc.nat({ max: 2 ** 32 * 1e6 - 1 }), orig: fc.nat({ max: 0xffff }) }), { maxLength: 12 }),
          fc.integer({ min: 16, max: 4096 }), fc.integer({ min: 40, max: 2048 }),
          (linkType, nanosecond, snaplen, recs, chunkSize, bufferSize) => {
            const a = tempFile();
            const w = PcapWriter.create(a, { linkType, snaplen, nanosecond, bufferSize });
            for (const r of recs) w.write(r.data, r.timeUs, r.orig);
            w.close();
            const size = fs.statSync(a).size;
            const got = readAll(a, size, chunkSize);
            expect(got.error).to.equal(null);
            expect(got.reader!.linkType).to.equal(linkType);
            expect(got.reader!.snaplen).to.equal(snaplen);
            expect(got.reader!.nanosecond).to.equal(nanosecond);
            expect(got.records.length).to.equal(recs.length);
            got.records.forEach((g, i) => {
              const r = recs[i];
              const incl = Math.min(r.data.length, snaplen);
              expect(g.data.equals(r.data.subarray(0, incl)), `record ${i} data`).to.equal(true);
              expect(g.origLen).to.equal(Math.max(r.orig, incl));
              expect(g.timeUs).to.equal(r.timeUs);
              expect(g.tsSec).to.equal(Math.floor(r.timeUs / 1e6));
            });
            // Read again, and write what was read: the same bytes.
            const r = PcapReader.open(a, { chunkSize });
            const b = tempFile();
            const copy = PcapWriter.create(b, { linkType, snaplen, nanosecond, bufferSize });
            for (let rec = r.next(); rec !== null; rec = r.next()) copy.writeRecord(rec);
            r.close();
            copy.close();
            expect(fs.readFileSync(b).equals(fs.readFileSync(a)), 'writeRecord copies exactly').to.equal(true);
          },
        ),
    },
    {
      id: 'byte-orders',
      name: 'reads files of either byte order and resolution exactly, whatever its chunk size; a file cut anywhere gives the whole records before the cut and a tail warning',
      runs: 150,
      property: () =>
        fc.property(fileSpec, fc.integer({ min: 16, max: 2048 }), fc.nat(), (spec, chunkSize, cutAt) => {
          const file = tempFile();
          const bytes = fileBytes(spec);
          fs.writeFileSync(file, bytes);
          const got = readAll(file, bytes.length, chunkSize);
          expect(got.error).to.equal(null);
          expect(got.reader!.bigEndian).to.equal(spec.bigEndian);
          expect(got.records.length).to.equal(spec.records.length);
          got.records.forEach((g, i) => {
            const r = spec.records[i];
            expect(g.data.equals(r.data)).to.equal(true);
            expect(g.tsSec).to.equal(r.sec);
            expect(g.tsFracNs).to.equal(spec.nanosecond ? r.frac : r.frac * 1000);
            expect(g.timeUs).to.equal(r.sec * 1e6 + (spec.nanosecond ? Math.floor(r.frac / 1000) : r.frac));
          });
          // Cut short (tcpdump killed while writing).
          const cut = 24 + (cutAt % (bytes.length - 23));
          fs.writeFileSync(file, bytes.subarray(0, cut));
          const part = readAll(file, cut, chunkSize);
          expect(part.error).to.equal(null);
          let whole = 0;
          for (let at = 24, i = 0; i < spec.records.length && at + 16 + spec.records[i].data.length <= cut; i++) {
            at += 16 + spec.records[i].data.length;
            whole++;
          }
          expect(part.records.length).to.equal(whole);
        }),
    },
    {
      id: 'untrusted',
      name: 'random and mutated files: records inside the file, or a PcapFormatError naming the file and the place; the read buffer stays within the file size',
      runs: 600,
      property: () =>
        fc.property(untrusted(fileSpec.map(fileBytes), { maxRandom: 200, maxEdits: 4 }), fc.integer({ min: 16, max: 1024 }), (bytes, chunkSize) => {
          const file = tempFile();
          fs.writeFileSync(file, bytes);
          const got = readAll(file, bytes.length, chunkSize);
          if (got.error) checkError(got.error, file, bytes.length);
        }),
    },
  ],
};
