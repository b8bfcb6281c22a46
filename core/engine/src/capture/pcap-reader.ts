// Classic pcap files (see pcap-format.ts): the streaming reader.
import * as fs from 'fs';
import { linkTypeName, LinkType, SUPPORTED_LINK_TYPES } from '../decode/link-type';
import {
  FILE_HEADER_LEN,
  ioError,
  LIBPCAP_MAX_SNAPLEN,
  MAGIC_KUZNETZOV,
  MAGIC_NS,
  MAGIC_NS_SWAPPED,
  MAGIC_PCAPNG,
  MAGIC_US,
  MAGIC_US_SWAPPED,
  PcapFormatError,
  PcapRecordInPlace,
  RECORD_HEADER_LEN,
} from './pcap-format';

/** No real capture of our link types has bigger records. */
const MIN_RECORD_BOUND = LIBPCAP_MAX_SNAPLEN;
/** Cap on the bound even when the header claims a huge snaplen (some writers put 0x7fffffff). */
const MAX_RECORD_BOUND = 64 * 1024 * 1024;
const DEFAULT_CHUNK = 4 * 1024 * 1024;

function supportedList(): string {
  return SUPPORTED_LINK_TYPES.map((n) => `${n} (${linkTypeName(n)})`).join(', ');
}

export interface PcapReaderOptions {
  /** Size of the read buffer (default 4 MiB); it grows if one record does not fit. */
  chunkSize?: number;
}

/**
 * Streaming reader: reads the file in big chunks into one reusable buffer, so memory stays
 * flat however big the file is, and next() allocates nothing (a record's `data` view is made only
 * when read).
 */
export class PcapReader {
  linkType!: LinkType;
  snaplen = 0;
  /** Timestamps in the file are nanoseconds (magic a1b23c4d). */
  nanosecond = false;
  /** The file was written big-endian (relative to the fields, not the host). */
  bigEndian = false;
  versionMajor = 0;
  versionMinor = 0;
  /** Records returned by next() since open/rewind. */
  records = 0;
  /**
   * Set when next() returned null because the file ends inside a record (typically tcpdump
   * killed while writing): the records before it are fine, the caller should warn.
   */
  truncatedTail = false;
  /** File offset of the incomplete last record (valid when truncatedTail). */
  tailOffset = -1;
  /** How many bytes of that incomplete record are present. */
  tailBytes = 0;

  private fd = -1;
  private buf: Buffer;
  private pos = 0; // next unread byte in buf
  private end = 0; // valid bytes in buf
  private filePos = 0; // file offset of the next byte to read into buf
  private maxIncl = MIN_RECORD_BOUND;
  private readonly rec = new PcapRecordInPlace();

  private constructor(readonly path: string, opts: PcapReaderOptions) {
    this.buf = Buffer.allocUnsafe(Math.max(RECORD_HEADER_LEN, opts.chunkSize ?? DEFAULT_CHUNK));
  }

  /** Open a classic pcap file and check its header. Throws PcapFormatError. */
  static open(path: string, opts: PcapReaderOptions = {}): PcapReader {
    const r = new PcapReader(path, opts);
    r.openFile();
    return r;
  }

  /** File offset of the next record to be read. */
  get offset(): number {
    return this.filePos - this.end + this.pos;
  }

  /** A ready-made warning for a truncated tail, or null when the file ended cleanly. */
  tailWarning(): string | null {
    if (!this.truncatedTail) return null;
    return `${this.path}: the last record (at offset ${this.tailOffset}) is incomplete, only ` +
      `${this.tailBytes} bytes present; it was ignored after ${this.records} good records ` +
      `(the capture was probably stopped while writing)`;
  }

  private openFile(): void {
    const path = this.path;
    try {
      this.fd = fs.openSync(path, 'r');
    } catch (err) {
      throw ioError(err, path, 'open');
    }
    try {
      this.readHeader();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private readHeader(): void {
    const path = this.path;
    const h = Buffer.alloc(FILE_HEADER_LEN);
    let n: number;
    try {
      n = fs.readSync(this.fd, h, 0, FILE_HEADER_LEN, 0);
    } catch (err) {
      throw ioError(err, path, 'read');
    }
    if (n === 0) {
      throw new PcapFormatError('EMPTY', `${path} is empty (0 bytes), not a pcap file: was the ` +
        `capture stopped before it wrote anything? Capture again with \`tcpdump -w ${path}\``, path, 0);
    }
    if (n >= 4) {
      const magic = h.readUInt32LE(0);
      if (magic === MAGIC_US || magic === MAGIC_NS) this.bigEndian = false;
      else if (magic === MAGIC_US_SWAPPED || magic === MAGIC_NS_SWAPPED) this.bigEndian = true;
      else throw this.badMagic(h, magic);
      this.nanosecond = magic === MAGIC_NS || magic === MAGIC_NS_SWAPPED;
    }
    if (n < FILE_HEADER_LEN) {
      throw new PcapFormatError('TRUNCATED_HEADER', `${path} is truncated: it has ${n} bytes but a ` +
        `pcap file header is ${FILE_HEADER_LEN} bytes (at offset 0); the file was cut short — ` +
        `copy or capture it again`, path, n);
    }
    const be = this.bigEndian;
    this.versionMajor = be ? h.readUInt16BE(4) : h.readUInt16LE(4);
    this.versionMinor = be ? h.readUInt16BE(6) : h.readUInt16LE(6);
    this.snaplen = be ? h.readUInt32BE(16) : h.readUInt32LE(16);
    // The link type is the low 16 bits; newer writers may put FCS information in the top bits.
    const lt = (be ? h.readUInt32BE(20) : h.readUInt32LE(20)) & 0xffff;
    if (!SUPPORTED_LINK_TYPES.includes(lt)) {
      throw new PcapFormatError('UNSUPPORTED_LINKTYPE', `${path}: link type ${lt} (${linkTypeName(lt)}, ` +
        `header offset 20) is not supported; tcpcopy reads ${supportedList()}. Capture on an ` +
        `Ethernet interface, or on all interfaces with \`tcpdump -i any -w FILE\``, path, 20);
    }
    this.linkType = lt as LinkType;
    this.maxIncl = Math.min(MAX_RECORD_BOUND, Math.max(this.snaplen, MIN_RECORD_BOUND));
    this.resetPosition();
  }

  private badMagic(h: Buffer, magic: number): PcapFormatError {
    const path = this.path;
    if (magic === MAGIC_PCAPNG) {
      return new PcapFormatError('PCAPNG', `${path} is a pcapng file; tcpcopy reads classic pcap: ` +
        `convert it with \`editcap -F pcap ${path} out.pcap\` (or capture with \`tcpdump -w\`)`, path, 0);
    }
    const hex = magic.toString(16).padStart(8, '0');
    let hint = `convert it with \`editcap -F pcap ${path} out.pcap\` if Wireshark can read it`;
    if (h[0] === 0x1f && h[1] === 0x8b) hint = `it looks gzip-compressed: \`gunzip\` it first`;
    else if (magic === MAGIC_KUZNETZOV || magic === 0x34cdb2a1) {
      hint = `it is the old "modified pcap" format: convert it with \`editcap -F pcap ${path} out.pcap\``;
    }
    return new PcapFormatError('BAD_MAGIC', `${path} is not a pcap file: magic number 0x${hex} at offset 0 ` +
      `(expected a1b2c3d4 or a1b23c4d, in either byte order); ${hint}`, path, 0);
  }

  private resetPosition(): void {
    this.filePos = FILE_HEADER_LEN;
    this.pos = 0;
    this.end = 0;
    this.records = 0;
    this.truncatedTail = false;
    this.tailOffset = -1;
    this.tailBytes = 0;
  }

  /** Go back to the first record (to replay the file again), keeping the file open. */
  rewind(): void {
    if (this.fd < 0) throw this.closedError();
    this.resetPosition();
  }

  /** Close and open the file again (it may have been replaced or grown), then start at the first record. */
  reopen(): void {
    this.close();
    this.openFile();
  }

  close(): void {
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      fs.closeSync(fd);
    }
  }

  private closedError(): PcapFormatError {
    return new PcapFormatError('CLOSED', `${this.path}: the reader is closed; call reopen() first`, this.path);
  }

  /**
   * Make at least `need` unread bytes available at buf[pos]; false at end of file.
   * Moves the unread tail to the front of the buffer, so earlier `data` views become invalid.
   */
  private fill(need: number): boolean {
    if (this.fd < 0) throw this.closedError();
    let avail = this.end - this.pos;
    // A record longer than the buffer: grow for it, but never past what the file still holds, so
    // that a corrupt captured length (up to the 64 MiB bound) costs no allocation for bytes that
    // are not there. Such a record then ends the file as a truncated tail.
    const grow = need > this.buf.length ? Math.min(Math.max(need, this.buf.length * 2), avail + this.bytesLeftInFile()) : 0;
    if (grow > this.buf.length) {
      const bigger = Buffer.allocUnsafe(grow);
      this.buf.copy(bigger, 0, this.pos, this.end);
      this.buf = bigger;
    } else if (this.pos > 0) {
      this.buf.copyWithin(0, this.pos, this.end);
    }
    this.pos = 0;
    this.end = avail;
    while (avail < need) {
      let n: number;
      try {
        n = fs.readSync(this.fd, this.buf, this.end, this.buf.length - this.end, this.filePos);
      } catch (err) {
        throw ioError(err, this.path, 'read');
      }
      if (n === 0) return false;
      this.end += n;
      this.filePos += n;
      avail += n;
    }
    return true;
  }

  /** Bytes of the file after those read so far (it may have grown since it was opened). */
  private bytesLeftInFile(): number {
    let size: number;
    try {
      size = fs.fstatSync(this.fd).size;
    } catch (err) {
      throw ioError(err, this.path, 'read');
    }
    return Math.max(0, size - this.filePos);
  }

  /**
   * The next record, or null at the end of the file (check truncatedTail then).
   * The returned object and its bytes are reused by the next call: copy what you keep.
   */
  next(): PcapRecordInPlace | null {
    if (this.fd < 0) throw this.closedError(); // or it would go on serving what is buffered
    if (this.end - this.pos < RECORD_HEADER_LEN && !this.fill(RECORD_HEADER_LEN)) {
      return this.atEnd();
    }
    const buf = this.buf;
    const p = this.pos;
    let tsSec: number, frac: number, incl: number, orig: number;
    if (this.bigEndian) {
      tsSec = read32be(buf, p); frac = read32be(buf, p + 4);
      incl = read32be(buf, p + 8); orig = read32be(buf, p + 12);
    } else {
      tsSec = read32le(buf, p); frac = read32le(buf, p + 4);
      incl = read32le(buf, p + 8); orig = read32le(buf, p + 12);
    }
    if (incl > this.maxIncl) {
      const off = this.offset;
      const keep = this.records > 0
        ? `the ${this.records} records before it are readable: \`editcap -r ${this.path} out.pcap 1-${this.records}\``
        : `no record before it is readable`;
      throw new PcapFormatError('BAD_RECORD', `${this.path}: corrupt record at offset ${off}: captured ` +
        `length ${incl} is more than the limit ${this.maxIncl} (snaplen ${this.snaplen}); the file is ` +
        `damaged from there on (${keep}; \`pcapfix\` may repair the rest)`, this.path, off);
    }
    const total = RECORD_HEADER_LEN + incl;
    if (this.end - this.pos < total && !this.fill(total)) return this.atEnd();
    const start = this.pos; // fill() may have moved the record to the front of the buffer
    const rec = this.rec;
    rec.offset = this.offset;
    rec.place(this.buf, start + RECORD_HEADER_LEN, incl);
    rec.origLen = orig;
    rec.tsSec = tsSec;
    if (this.nanosecond) {
      rec.tsFracNs = frac;
      rec.timeUs = tsSec * 1e6 + Math.floor(frac / 1000); // < 2^53: exact
    } else {
      rec.tsFracNs = frac * 1000;
      rec.timeUs = tsSec * 1e6 + frac;
    }
    this.pos = start + total;
    this.records++;
    this.truncatedTail = false;
    return rec;
  }

  private atEnd(): null {
    const left = this.end - this.pos;
    this.truncatedTail = left > 0;
    this.tailOffset = left > 0 ? this.offset : -1;
    this.tailBytes = left;
    return null;
  }
}

// Header fields read by hand: fill() has made the 16 bytes present, so Buffer's checked reads are not needed.
function read32le(b: Buffer, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

function read32be(b: Buffer, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}
