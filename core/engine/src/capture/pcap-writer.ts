// Classic pcap files (see pcap-format.ts): the buffered writer.
import * as fs from 'fs';
import type { LinkType } from '../decode/link-type';
import {
  FILE_HEADER_LEN,
  ioError,
  LIBPCAP_MAX_SNAPLEN,
  MAGIC_NS,
  MAGIC_US,
  PcapFormatError,
  type PcapRecord,
  RECORD_HEADER_LEN,
} from './pcap-format';

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
    this.snaplen = opts.snaplen ?? LIBPCAP_MAX_SNAPLEN;
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
