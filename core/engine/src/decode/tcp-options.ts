/**
 * TCP options (RFC 9293 §3.1, RFC 7323): MSS, window scale, SACK-permitted,
 * SACK blocks and timestamps. Parsed into one reusable object; `tsOffset` is
 * the absolute buffer position of the TSval field so it can be patched in place.
 */

export const OPT_EOL = 0;
export const OPT_NOP = 1;
export const OPT_MSS = 2;
export const OPT_WSCALE = 3;
export const OPT_SACK_PERMITTED = 4;
export const OPT_SACK = 5;
export const OPT_TIMESTAMP = 8;

export class TcpOptions {
  mss = -1;
  wscale = -1;
  sackPermitted = false;
  /** Buffer offset of the SACK option's first block, or -1. */
  sackOffset = -1;
  sackBlocks = 0;
  /** Buffer offset of TSval (TSecr follows at +4), or -1 when absent. */
  tsOffset = -1;
  tsVal = 0;
  tsEcr = 0;
  /** False when the option area was malformed (a length running past the header). */
  valid = true;

  reset(): void {
    this.mss = -1;
    this.wscale = -1;
    this.sackPermitted = false;
    this.sackOffset = -1;
    this.sackBlocks = 0;
    this.tsOffset = -1;
    this.tsVal = 0;
    this.tsEcr = 0;
    this.valid = true;
  }

  get hasTimestamp(): boolean {
    return this.tsOffset >= 0;
  }

  /**
   * TSval of the timestamp option in buf[start, end), or -1 when there is none. Segments after the
   * handshake nearly always carry Linux's layout (NOP, NOP, timestamp, and nothing else): read directly,
   * without a parse per reply; anything else is parsed (and this object then holds all of it).
   */
  timestampValue(buf: Buffer, start: number, end: number): number {
    if (end - start === 12 && buf[start] === OPT_NOP && buf[start + 1] === OPT_NOP && buf[start + 2] === OPT_TIMESTAMP && buf[start + 3] === 10) {
      return ((buf[start + 4] << 24) | (buf[start + 5] << 16) | (buf[start + 6] << 8) | buf[start + 7]) >>> 0;
    }
    this.parse(buf, start, end);
    return this.tsOffset >= 0 ? this.tsVal : -1;
  }

  /** Parses the options in buf[start, end) (the bytes after the 20-byte TCP header). */
  parse(buf: Buffer, start: number, end: number): this {
    this.reset();
    let i = start;
    while (i < end) {
      const kind = buf[i];
      if (kind === OPT_EOL) break;
      if (kind === OPT_NOP) {
        i++;
        continue;
      }
      if (i + 1 >= end) {
        this.valid = false;
        break;
      }
      const len = buf[i + 1];
      if (len < 2 || i + len > end) {
        this.valid = false;
        break;
      }
      switch (kind) {
        case OPT_MSS:
          if (len === 4) this.mss = buf.readUInt16BE(i + 2);
          break;
        case OPT_WSCALE:
          if (len === 3) this.wscale = Math.min(buf[i + 2], 14);
          break;
        case OPT_SACK_PERMITTED:
          this.sackPermitted = true;
          break;
        case OPT_SACK:
          this.sackOffset = i + 2;
          this.sackBlocks = (len - 2) >> 3;
          break;
        case OPT_TIMESTAMP:
          if (len === 10) {
            this.tsOffset = i + 2;
            this.tsVal = buf.readUInt32BE(i + 2);
            this.tsEcr = buf.readUInt32BE(i + 6);
          }
          break;
      }
      i += len;
    }
    return this;
  }
}

/** Overwrites an option's bytes with NOPs (used to drop options that would lie, e.g. SACK blocks in another sequence space). */
export function blankOption(buf: Buffer, optionStart: number, length: number): void {
  buf.fill(OPT_NOP, optionStart, optionStart + length);
}
