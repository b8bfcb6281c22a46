/**
 * Finds command boundaries in the client's byte stream, incrementally: a
 * command may arrive one byte at a time or hundreds per packet, and nothing
 * is buffered here (the caller keeps the bytes; this only walks them).
 *
 * Two request forms, as Redis reads them (networking.c, processInputBuffer):
 *  - multibulk: `*<argc>\r\n` then argc times `$<len>\r\n<len bytes>\r\n`;
 *  - inline: any other first byte starts a line of text up to `\n` (Redis strips a `\r` before it).
 *
 * Lenient mode accepts what Redis accepts (it never checks the CRLF after a
 * bulk body, for instance), so a valid stream is never refused. Strict mode is
 * for finding a command start in a stream captured mid-way: it also wants the
 * CRLFs, a plausible command name and sane lengths, so a `*` inside a value
 * is unlikely to pass for one.
 */

/** advance() ran out of bytes inside a command: call again with more. */
export const NEED_MORE = -1;
/** advance() met bytes that are not a request; `error` says why. */
export const NOT_RESP = -2;

const CR = 13;
const LF = 10;
const STAR = 42;
const DOLLAR = 36;
const MINUS = 45;

/** Redis refuses a longer inline request (PROTO_INLINE_MAX_SIZE). */
export const MAX_INLINE = 64 * 1024;
/** Digits of a length; 15 keeps every value an exact double. */
const MAX_DIGITS = 15;
/** Bounds that only strict mode applies (Redis's own defaults: 1M arguments... and proto-max-bulk-len 512 MB). */
const STRICT_MAX_ARGC = 1024 * 1024;
const STRICT_MAX_BULK = 512 * 1024 * 1024;
const STRICT_MAX_NAME = 64;
/** Bytes of the first argument kept (upper-cased) for classifying the command. */
export const NAME_BYTES = 16;

const enum S {
  START,
  INLINE,
  ARRAY_LEN,
  ARRAY_LF,
  BULK_START,
  BULK_LEN,
  BULK_LF,
  BODY,
  BODY_CR,
  BODY_LF,
}

export class RequestParser {
  /** Arguments of the last command (0 for `*0`/`*-1`); for inline commands the caller splits the line. */
  argc = 0;
  /** The last command was an inline one. */
  inline = false;
  /** Length of the first argument, and its first NAME_BYTES bytes upper-cased in `name`. */
  nameLength = 0;
  readonly name = Buffer.alloc(NAME_BYTES);
  /** Why advance() returned NOT_RESP. */
  error = '';

  private state = S.START;
  private num = 0;
  private digits = 0;
  private negative = false;
  private argsLeft = 0;
  private argIndex = 0;
  private bodyLeft = 0;
  private lineLength = 0;

  constructor(readonly strict = false) {}

  /** Back to a command boundary (after NOT_RESP, or to scan from another place). */
  reset(): void {
    this.state = S.START;
  }

  /** True between the first byte of a command and its end. */
  get inCommand(): boolean {
    return this.state !== S.START;
  }

  /**
   * Walks buf[pos, end). Returns the offset just after the command that
   * completed there (the parser is then at a boundary again), NEED_MORE when
   * every byte was taken without reaching one, or NOT_RESP.
   */
  advance(buf: Buffer, pos: number, end: number): number {
    while (pos < end) {
      switch (this.state) {
        case S.START:
          this.argc = 0;
          this.nameLength = 0;
          this.argIndex = 0;
          this.inline = false;
          if (buf[pos] === STAR) {
            this.state = S.ARRAY_LEN;
            this.startNumber();
            pos++;
          } else if (this.strict) {
            return this.fail('a command starts with *');
          } else {
            this.inline = true;
            this.lineLength = 0;
            this.state = S.INLINE;
          }
          break;

        case S.INLINE: {
          let nl = buf.indexOf(LF, pos);
          if (nl >= end) nl = -1;
          const upTo = nl < 0 ? end : nl + 1;
          this.lineLength += upTo - pos;
          if (this.lineLength > MAX_INLINE + 1) return this.fail(`inline request longer than ${MAX_INLINE} bytes`);
          pos = upTo;
          if (nl >= 0) {
            this.state = S.START;
            return pos;
          }
          break;
        }

        case S.ARRAY_LEN:
        case S.BULK_LEN: {
          const b = buf[pos++];
          if (b === CR) {
            if (this.digits === 0) return this.fail('a length has no digits');
            this.state = this.state === S.ARRAY_LEN ? S.ARRAY_LF : S.BULK_LF;
          } else if (!this.digit(b)) {
            return this.fail(`unexpected byte ${b} in a length`);
          }
          break;
        }

        case S.ARRAY_LF: {
          if (this.strict && buf[pos] !== LF) return this.fail('no LF after the argument count');
          pos++;
          const n = this.negative ? -this.num : this.num;
          if (n <= 0) {
            // Redis takes `*0` and `*-1` as an empty request: no command, no reply.
            if (this.strict) return this.fail('empty multibulk');
            this.state = S.START;
            return pos;
          }
          if (this.strict && n > STRICT_MAX_ARGC) return this.fail('argument count too large');
          this.argc = this.argsLeft = n;
          this.state = S.BULK_START;
          break;
        }

        case S.BULK_START:
          if (buf[pos] !== DOLLAR) return this.fail(`expected '$', got byte ${buf[pos]}`);
          pos++;
          this.startNumber();
          this.state = S.BULK_LEN;
          break;

        case S.BULK_LF: {
          if (this.strict && buf[pos] !== LF) return this.fail('no LF after a bulk length');
          pos++;
          if (this.negative) return this.fail('negative bulk length');
          const n = this.num;
          if (this.strict && (n > STRICT_MAX_BULK || (this.argIndex === 0 && (n === 0 || n > STRICT_MAX_NAME)))) {
            return this.fail('implausible bulk length');
          }
          if (this.argIndex === 0) this.nameLength = n;
          this.bodyLeft = n;
          this.state = n > 0 ? S.BODY : S.BODY_CR;
          break;
        }

        case S.BODY: {
          const take = Math.min(this.bodyLeft, end - pos);
          if (this.argIndex === 0 && !this.takeName(buf, pos, take)) return this.fail('not a command name');
          pos += take;
          this.bodyLeft -= take;
          if (this.bodyLeft === 0) this.state = S.BODY_CR;
          break;
        }

        case S.BODY_CR:
          // Redis skips the two bytes after a body without looking at them; only strict mode checks.
          if (this.strict && buf[pos] !== CR) return this.fail('no CRLF after a bulk');
          pos++;
          this.state = S.BODY_LF;
          break;

        case S.BODY_LF:
          if (this.strict && buf[pos] !== LF) return this.fail('no CRLF after a bulk');
          pos++;
          this.argIndex++;
          if (--this.argsLeft === 0) {
            this.state = S.START;
            return pos;
          }
          this.state = S.BULK_START;
          break;
      }
    }
    return NEED_MORE;
  }

  private startNumber(): void {
    this.num = 0;
    this.digits = 0;
    this.negative = false;
  }

  private digit(b: number): boolean {
    if (b === MINUS && this.digits === 0 && !this.negative) {
      this.negative = true;
      return true;
    }
    if (b < 48 || b > 57 || this.digits >= MAX_DIGITS) return false;
    this.num = this.num * 10 + (b - 48);
    this.digits++;
    return true;
  }

  /** Keeps the start of the first argument upper-cased; strict mode wants name-like bytes. */
  private takeName(buf: Buffer, pos: number, take: number): boolean {
    const done = this.nameLength - this.bodyLeft;
    for (let i = 0; i < take; i++) {
      let b = buf[pos + i];
      if (this.strict && !isNameByte(b)) return false;
      if (done + i >= NAME_BYTES) {
        if (!this.strict) break;
        continue;
      }
      if (b >= 97 && b <= 122) b -= 32;
      this.name[done + i] = b;
    }
    return true;
  }

  private fail(reason: string): number {
    this.error = reason;
    return NOT_RESP;
  }
}

/** Letters, digits and `._|-:`: command names, module commands (JSON.SET) included. */
function isNameByte(b: number): boolean {
  return (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 58) || b === 46 || b === 95 || b === 124 || b === 45;
}
