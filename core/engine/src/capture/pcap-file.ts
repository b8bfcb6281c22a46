// Classic libpcap file format ("pcap"), reader and writer.
//
// Layout (https://www.tcpdump.org/manpages/pcap-savefile.5.html):
//   file header, 24 bytes: magic u32, version major u16, minor u16, thiszone i32,
//                          sigfigs u32, snaplen u32, linktype u32
//   then records:          ts_sec u32, ts_frac u32 (µs or ns), incl_len u32, orig_len u32,
//                          incl_len bytes of frame
// Every field is in the byte order of the writer; the magic tells which, and
// whether ts_frac is micro- (a1b2c3d4) or nanoseconds (a1b23c4d).
import * as fs from 'fs';

/** Link-layer header types (LINKTYPE_* values, as stored in the file) that tcpcopy decodes. */
export enum LinkType {
  ETHERNET = 1,
  RAW = 101,
  LINUX_SLL = 113,
  IPV4 = 228,
  /** What `tcpdump -i any` writes on current Linux (libpcap >= 1.10). */
  LINUX_SLL2 = 276,
}

const SUPPORTED_LINKTYPES: readonly number[] = [
  LinkType.ETHERNET, LinkType.RAW, LinkType.LINUX_SLL, LinkType.IPV4, LinkType.LINUX_SLL2,
];

// Names of the link types one is likely to meet, so that error messages can say what a file is.
const LINKTYPE_NAMES: { [n: number]: string } = {
  0: 'NULL (BSD loopback)', 1: 'ETHERNET', 6: 'IEEE802_5', 8: 'SLIP', 9: 'PPP', 10: 'FDDI',
  12: 'RAW (BSD DLT value)', 14: 'RAW (BSD DLT value)',
  50: 'PPP_HDLC', 51: 'PPP_ETHER', 101: 'RAW', 104: 'C_HDLC', 105: 'IEEE802_11',
  108: 'LOOP (OpenBSD loopback)', 113: 'LINUX_SLL', 119: 'IEEE802_11_PRISM',
  127: 'IEEE802_11_RADIOTAP', 147: 'USER0', 192: 'PPI', 195: 'IEEE802_15_4',
  220: 'USB_LINUX_MMAPPED', 228: 'IPV4', 229: 'IPV6', 239: 'NFLOG', 249: 'NETLINK',
  252: 'WIRESHARK_UPPER_PDU', 276: 'LINUX_SLL2',
};

/** Human name of a LINKTYPE_* number, e.g. 276 → "LINUX_SLL2", 999 → "unknown". */
export function linkTypeName(n: number): string {
  return LINKTYPE_NAMES[n] ?? 'unknown';
}

function supportedList(): string {
  return SUPPORTED_LINKTYPES.map((n) => `${n} (${LINKTYPE_NAMES[n]})`).join(', ');
}

/**
 * Any problem opening or reading a pcap file. `code` is stable and meant for programs:
 * ENOENT, EACCES, EISDIR, EIO, EMPTY, TRUNCATED_HEADER, PCAPNG, BAD_MAGIC,
 * UNSUPPORTED_LINKTYPE, BAD_RECORD, CLOSED. The message is for humans: what, where, how to fix.
 */
export class PcapFormatError extends Error {
  override name = 'PcapFormatError';
  constructor(
    readonly code: string,
    message: string,
    readonly path: string,
    /** Byte offset in the file the problem is at, when there is one. */
    readonly offset?: number,
  ) {
    super(message);
  }
}

/** Turn an fs error on `path` into a PcapFormatError with a plain-words message. */
function ioError(err: unknown, path: string, verb: string): PcapFormatError {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT':
      return new PcapFormatError('ENOENT', `cannot ${verb} ${path}: no such file (check the path; ` +
        `relative paths are resolved from ${process.cwd()})`, path);
    case 'EACCES':
    case 'EPERM':
      return new PcapFormatError('EACCES', `cannot ${verb} ${path}: permission denied ` +
        `(run tcpcopy as a user allowed to, or fix the file's owner/mode)`, path);
    case 'EISDIR':
      return new PcapFormatError('EISDIR', `cannot ${verb} ${path}: it is a directory, not a pcap file`, path);
    default:
      return new PcapFormatError(e.code ?? 'EIO', `cannot ${verb} ${path}: ${e.message}`, path);
  }
}

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const MAGIC_US_SWAPPED = 0xd4c3b2a1;
const MAGIC_NS_SWAPPED = 0x4d3cb2a1;
const MAGIC_PCAPNG = 0x0a0d0d0a; // palindromic: same in both byte orders
const MAGIC_KUZNETZOV = 0xa1b2cd34; // "modified pcap" of old Red Hat tcpdump
const FILE_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
/** libpcap's own MAXIMUM_SNAPLEN: no real capture of our link types has bigger records. */
const MIN_RECORD_BOUND = 262144;
/** Cap on the bound even when the header claims a huge snaplen (some writers put 0x7fffffff). */
const MAX_RECORD_BOUND = 64 * 1024 * 1024;
const DEFAULT_CHUNK = 4 * 1024 * 1024;

/**
 * One packet record. PcapReader.next() REUSES the same object for every record, and `data` is
 * a view into the reader's chunk buffer that the next call overwrites: copy what you keep
 * (`Buffer.from(rec.data)`), do not hold on to the record.
 */
export interface PcapRecord {
  /** The captured bytes (incl_len of them), starting with the link-layer header. */
  data: Buffer;
  /** Length of the packet on the wire (orig_len); more than data.length when cut by the snaplen. */
  origLen: number;
  /** Capture time, microseconds since the Unix epoch (nanosecond files are rounded down). */
  timeUs: number;
  /** Capture time, whole seconds since the epoch. */
  tsSec: number;
  /** Capture time, fraction of the second in nanoseconds (exact for both resolutions). */
  tsFracNs: number;
  /** Byte offset of this record's header in the file. */
  offset: number;
}

export interface PcapReaderOptions {
  /** Size of the read buffer (default 4 MiB); it grows if one record does not fit. */
  chunkSize?: number;
}

/**
 * Streaming reader: reads the file in big chunks into one reusable buffer, so memory stays
 * flat however big the file is, and next() allocates nothing but the `data` view.
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
  private readonly rec: PcapRecord = { data: Buffer.alloc(0), origLen: 0, timeUs: 0, tsSec: 0, tsFracNs: 0, offset: 0 };

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
    if (!SUPPORTED_LINKTYPES.includes(lt)) {
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
    if (need > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
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

  /**
   * The next record, or null at the end of the file (check truncatedTail then).
   * The returned object and its `data` are reused by the next call: copy what you keep.
   */
  next(): PcapRecord | null {
    if (this.fd < 0) throw this.closedError(); // or it would go on serving what is buffered
    if (this.end - this.pos < RECORD_HEADER_LEN && !this.fill(RECORD_HEADER_LEN)) {
      return this.atEnd();
    }
    const buf = this.buf;
    const p = this.pos;
    let tsSec: number, frac: number, incl: number, orig: number;
    if (this.bigEndian) {
      tsSec = buf.readUInt32BE(p); frac = buf.readUInt32BE(p + 4);
      incl = buf.readUInt32BE(p + 8); orig = buf.readUInt32BE(p + 12);
    } else {
      tsSec = buf.readUInt32LE(p); frac = buf.readUInt32LE(p + 4);
      incl = buf.readUInt32LE(p + 8); orig = buf.readUInt32LE(p + 12);
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
    rec.data = this.buf.subarray(start + RECORD_HEADER_LEN, start + total);
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

export interface PcapWriterOptions {
  linkType: LinkType;
  /** Written in the header; longer packets are cut to it (orig_len keeps the real length). Default 262144. */
  snaplen?: number;
  /** Write nanosecond timestamps (magic a1b23c4d). Default false: microseconds. */
  nanosecond?: boolean;
  /** Size of the write buffer, default 1 MiB. */
  bufferSize?: number;
}

/** Buffered pcap writer, little-endian. Call close() (or flush()) or the tail is lost. */
export class PcapWriter {
  readonly linkType: LinkType;
  readonly snaplen: number;
  readonly nanosecond: boolean;
  /** Records written so far. */
  records = 0;
  private fd: number;
  private buf: Buffer;
  private len = 0;
  private filePos = 0;

  private constructor(readonly path: string, fd: number, opts: PcapWriterOptions) {
    this.fd = fd;
    this.linkType = opts.linkType;
    this.snaplen = opts.snaplen ?? MIN_RECORD_BOUND;
    this.nanosecond = opts.nanosecond ?? false;
    this.buf = Buffer.allocUnsafe(Math.max(FILE_HEADER_LEN + RECORD_HEADER_LEN, opts.bufferSize ?? 1024 * 1024));
    const b = this.buf;
    b.writeUInt32LE(this.nanosecond ? MAGIC_NS : MAGIC_US, 0);
    b.writeUInt16LE(2, 4);
    b.writeUInt16LE(4, 6);
    b.writeInt32LE(0, 8); // thiszone: always UTC
    b.writeUInt32LE(0, 12); // sigfigs
    b.writeUInt32LE(this.snaplen, 16);
    b.writeUInt32LE(this.linkType, 20);
    this.len = FILE_HEADER_LEN;
  }

  /** Create (or truncate) `path` and write the file header. Throws PcapFormatError on I/O errors. */
  static create(path: string, opts: PcapWriterOptions): PcapWriter {
    let fd: number;
    try {
      fd = fs.openSync(path, 'w');
    } catch (err) {
      throw ioError(err, path, 'create');
    }
    return new PcapWriter(path, fd, opts);
  }

  /** Append a packet captured at `timeUs` (µs since the epoch; a fraction is kept in ns files). */
  write(data: Buffer, timeUs: number, origLen: number = data.length): void {
    let sec = Math.floor(timeUs / 1e6);
    const fracUs = timeUs - sec * 1e6;
    let frac = this.nanosecond ? Math.round(fracUs * 1000) : Math.floor(fracUs);
    if (frac >= (this.nanosecond ? 1e9 : 1e6)) { sec++; frac = 0; } // rounded up to the next second
    this.writeRaw(data, sec, frac, origLen);
  }

  /** Append a record read by PcapReader, keeping its timestamp to the nanosecond. */
  writeRecord(rec: PcapRecord): void {
    this.writeRaw(rec.data, rec.tsSec, this.nanosecond ? rec.tsFracNs : Math.floor(rec.tsFracNs / 1000), rec.origLen);
  }

  private writeRaw(data: Buffer, sec: number, frac: number, origLen: number): void {
    if (this.fd < 0) throw new PcapFormatError('CLOSED', `${this.path}: the writer is closed`, this.path);
    const incl = Math.min(data.length, this.snaplen);
    if (this.len + RECORD_HEADER_LEN + incl > this.buf.length) this.flush();
    const b = this.buf;
    let p = this.len;
    b.writeUInt32LE(sec >>> 0, p);
    b.writeUInt32LE(frac >>> 0, p + 4);
    b.writeUInt32LE(incl, p + 8);
    b.writeUInt32LE(Math.max(origLen, incl) >>> 0, p + 12);
    p += RECORD_HEADER_LEN;
    if (p + incl <= b.length) {
      data.copy(b, p, 0, incl);
      this.len = p + incl;
    } else {
      // Bigger than the whole buffer: write the header, then the data straight from the caller.
      this.len = p;
      this.flush();
      this.writeAll(data, incl);
    }
    this.records++;
  }

  private writeAll(b: Buffer, n: number): void {
    let done = 0;
    try {
      while (done < n) {
        const w = fs.writeSync(this.fd, b, done, n - done, this.filePos);
        done += w;
        this.filePos += w;
      }
    } catch (err) {
      throw ioError(err, this.path, 'write');
    }
  }

  /** Write buffered records to the file. */
  flush(): void {
    if (this.len > 0 && this.fd >= 0) {
      this.writeAll(this.buf, this.len);
      this.len = 0;
    }
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      this.flush();
    } finally {
      const fd = this.fd;
      this.fd = -1;
      fs.closeSync(fd);
    }
  }
}
