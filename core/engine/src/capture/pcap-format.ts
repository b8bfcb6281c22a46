// Classic libpcap file format ("pcap"): what the reader and the writer share.
//
// Layout (https://www.tcpdump.org/manpages/pcap-savefile.5.html):
//   file header, 24 bytes: magic u32, version major u16, minor u16, thiszone i32,
//                          sigfigs u32, snaplen u32, linktype u32
//   then records:          ts_sec u32, ts_frac u32 (µs or ns), incl_len u32, orig_len u32,
//                          incl_len bytes of frame
// Every field is in the byte order of the writer; the magic tells which, and
// whether ts_frac is micro- (a1b2c3d4) or nanoseconds (a1b23c4d).

export const MAGIC_US = 0xa1b2c3d4;
export const MAGIC_NS = 0xa1b23c4d;
export const MAGIC_US_SWAPPED = 0xd4c3b2a1;
export const MAGIC_NS_SWAPPED = 0x4d3cb2a1;
export const MAGIC_PCAPNG = 0x0a0d0d0a; // palindromic: same in both byte orders
export const MAGIC_KUZNETZOV = 0xa1b2cd34; // "modified pcap" of old Red Hat tcpdump
export const FILE_HEADER_LEN = 24;
export const RECORD_HEADER_LEN = 16;
/** libpcap's own MAXIMUM_SNAPLEN. */
export const LIBPCAP_MAX_SNAPLEN = 262144;

/**
 * Any problem opening, reading or writing a pcap file. `code` is stable and meant for programs:
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
export function ioError(err: unknown, path: string, verb: string): PcapFormatError {
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

const NO_BYTES = Buffer.alloc(0);

/**
 * A record as PcapReader.next() returns it: its bytes stay in place in the reader's buffer, at
 * buffer[start, start + length). A caller that decodes there (FrameDecoder's `start`) costs no
 * allocation per record; `data` makes the view on first use.
 */
export class PcapRecordInPlace implements PcapRecord {
  /** The reader's buffer; the captured bytes are at [start, start + length). Overwritten by the next read. */
  buffer: Buffer = NO_BYTES;
  start = 0;
  /** Captured bytes (incl_len). */
  length = 0;
  origLen = 0;
  timeUs = 0;
  tsSec = 0;
  tsFracNs = 0;
  offset = 0;
  private view: Buffer | null = null;

  get data(): Buffer {
    return (this.view ??= this.buffer.subarray(this.start, this.start + this.length));
  }

  /** @internal The reader points the record at its next bytes. */
  place(buffer: Buffer, start: number, length: number): void {
    this.buffer = buffer;
    this.start = start;
    this.length = length;
    this.view = null;
  }
}
