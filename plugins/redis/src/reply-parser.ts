/**
 * Counts complete replies in the target's byte stream (RESP2 and RESP3),
 * incrementally and without allocating: only the structure is followed, values
 * are skipped. Bulk bodies are skipped by their declared length, so the bytes
 * of a long body that intercept did not return (a packet longer than
 * replyPayloadBytes) cost nothing; bytes missing anywhere else lose the thread
 * (`lost`), and the session then stops relying on the count.
 *
 * What counts as one reply: a complete top-level value. RESP3 push messages
 * (`>`: pub/sub, client-side caching invalidations) arrive out of band and do
 * not count; an attribute (`|`) only decorates the value after it.
 */

export interface ReplyListener {
  /** A top-level reply is complete (an error reply: `-` or `!`); the parser's errorText() tells more. */
  reply(isError: boolean): void;
}

const CR = 13;
const LF = 10;

const enum S {
  TYPE,
  /** A line whose content does not matter (+ : _ , # ( and the rest of an error). */
  LINE,
  /** A length or count line: digits, a sign, or `?` (streamed). */
  NUMBER,
  /** Skipping a body and its CRLF. */
  BODY,
}

/** What a NUMBER line introduces. */
const enum K {
  BULK, // $ ! =
  AGGREGATE, // * ~ >
  MAP, // % |
  CHUNK, // ; inside a streamed string
}

/** Kinds of aggregate frames on the stack. */
const F_PLAIN = 0;
const F_PUSH = 1;
const F_ATTRIBUTE = 2;

const MAX_DEPTH = 512;
const MAX_DIGITS = 15;
const ERROR_TEXT = 120;

export class ReplyParser {
  /** The stream could not be followed; nothing more is counted until reset(). */
  lost = false;
  lostReason = '';

  private state = S.TYPE;
  private kind = K.BULK;
  private frameKind = F_PLAIN;
  private num = 0;
  private digits = 0;
  private negative = false;
  private streamed = false;
  private bodyLeft = 0;
  /** Remaining elements per open aggregate (-1: streamed, ends with `.`), and the aggregate's kind. */
  private readonly left: number[] = [];
  private readonly kinds: number[] = [];
  private depth = 0;
  /** Inside a streamed string (`$?`): the next value is a `;` chunk. */
  private inStreamedString = false;
  /** The top-level value being read is a push (not counted) / an error. */
  private topPush = false;
  private topError = false;
  /** The line being skipped is the CRLF after a `.`: the streamed aggregate it closed is the value. */
  private closeAfterLine = false;
  private readonly errorBytes = Buffer.alloc(ERROR_TEXT);
  private errorLength = 0;

  constructor(private readonly listener: ReplyListener) {}

  /** A new connection: a fresh stream. */
  reset(): void {
    this.state = S.TYPE;
    this.depth = 0;
    this.inStreamedString = false;
    this.closeAfterLine = false;
    this.lost = false;
    this.lostReason = '';
  }

  /**
   * One target packet: `data` is what intercept returned of its `length`
   * payload bytes (a prefix, possibly empty).
   */
  feed(data: Buffer, length: number): void {
    if (this.lost) return;
    const known = Math.min(data.length, length);
    let pos = 0;
    while (pos < known && !this.lost) pos = this.step(data, pos, known);
    const unknown = length - known;
    if (unknown > 0 && !this.lost) {
      if (this.state === S.BODY && this.bodyLeft >= unknown) {
        this.bodyLeft -= unknown;
        if (this.bodyLeft === 0) this.bodyDone();
      } else {
        this.lose(`intercept returned ${known} of a ${length}-byte reply packet and the rest is not inside a bulk body (raise replyBytes)`);
      }
    }
  }

  private step(buf: Buffer, pos: number, end: number): number {
    switch (this.state) {
      case S.TYPE:
        return this.type(buf, pos);

      case S.LINE: {
        let nl = buf.indexOf(LF, pos);
        if (nl >= end) nl = -1;
        const upTo = nl < 0 ? end : nl + 1;
        if (this.topError && this.depth === 0) {
          // Kept for logs (a prelude's AUTH refused, say), without the CRLF.
          const stop = nl < 0 ? end : nl;
          for (let i = pos; i < stop && this.errorLength < ERROR_TEXT; i++) if (buf[i] !== CR) this.errorBytes[this.errorLength++] = buf[i];
        }
        if (nl >= 0) {
          this.state = S.TYPE;
          this.valueDone();
        }
        return upTo;
      }

      case S.NUMBER: {
        const b = buf[pos];
        if (b === LF) {
          this.state = S.TYPE;
          this.numberDone();
        } else if (b === CR) {
          // The LF decides; a lone CR is tolerated.
        } else if (b === 45 && this.digits === 0 && !this.negative) {
          this.negative = true;
        } else if (b === 63 && this.digits === 0 && !this.streamed) {
          this.streamed = true; // `?`
        } else if (b >= 48 && b <= 57 && this.digits < MAX_DIGITS && !this.streamed) {
          this.num = this.num * 10 + (b - 48);
          this.digits++;
        } else {
          this.lose(`unexpected byte ${b} in a length`);
        }
        return pos + 1;
      }

      case S.BODY: {
        const take = Math.min(this.bodyLeft, end - pos);
        this.bodyLeft -= take;
        if (this.bodyLeft === 0) this.bodyDone();
        return pos + take;
      }
    }
  }

  private type(buf: Buffer, pos: number): number {
    const t = buf[pos];
    if (this.depth === 0 && !this.inStreamedString) {
      this.topPush = t === 62; // >
      this.topError = t === 45 || t === 33; // - !
      this.errorLength = 0;
    }
    if (this.inStreamedString && t !== 59) {
      this.lose(`expected a ';' chunk in a streamed string, got byte ${t}`);
      return pos + 1;
    }
    switch (t) {
      case 43: // + simple string
      case 45: // - error
      case 58: // : integer
      case 95: // _ null
      case 44: // , double
      case 35: // # boolean
      case 40: // ( big number
        this.state = S.LINE;
        break;
      case 36: // $ bulk string
      case 33: // ! bulk error
      case 61: // = verbatim string
        this.number(K.BULK, F_PLAIN);
        break;
      case 42: // * array
      case 126: // ~ set
        this.number(K.AGGREGATE, F_PLAIN);
        break;
      case 62: // > push
        this.number(K.AGGREGATE, F_PUSH);
        break;
      case 37: // % map
        this.number(K.MAP, F_PLAIN);
        break;
      case 124: // | attribute
        this.number(K.MAP, F_ATTRIBUTE);
        break;
      case 59: // ; chunk of a streamed string
        if (!this.inStreamedString) this.lose('a string chunk outside a streamed string');
        else this.number(K.CHUNK, F_PLAIN);
        break;
      case 46: // . end of a streamed aggregate
        if (this.depth === 0 || this.left[this.depth - 1] !== -1) {
          this.lose('an end marker outside a streamed aggregate');
        } else {
          // The marker line is "\r\n" after the dot: skip it as a line, then close the aggregate.
          this.depth--;
          this.state = S.LINE;
          this.closeAfterLine = true;
        }
        break;
      default:
        this.lose(`byte ${t} does not start a RESP value`);
    }
    return pos + 1;
  }

  private number(kind: K, frameKind: number): void {
    this.kind = kind;
    this.frameKind = frameKind;
    this.num = 0;
    this.digits = 0;
    this.negative = false;
    this.streamed = false;
    this.state = S.NUMBER;
  }

  private numberDone(): void {
    if (this.digits === 0 && !this.streamed) {
      this.lose('a length without digits');
      return;
    }
    const n = this.negative ? -this.num : this.num;
    switch (this.kind) {
      case K.BULK:
        if (this.streamed) {
          this.inStreamedString = true;
        } else if (n < 0) {
          this.valueDone(); // null bulk
        } else {
          this.bodyLeft = n + 2;
          this.state = S.BODY;
        }
        return;
      case K.CHUNK:
        if (n <= 0) {
          this.inStreamedString = false;
          this.valueDone();
        } else {
          this.bodyLeft = n + 2;
          this.state = S.BODY;
        }
        return;
      case K.AGGREGATE:
      case K.MAP: {
        if (this.streamed) {
          this.open(-1);
          return;
        }
        const count = this.kind === K.MAP ? n * 2 : n;
        if (count <= 0) {
          this.valueDone(); // empty or null aggregate
          return;
        }
        this.open(count);
        return;
      }
    }
  }

  private open(count: number): void {
    if (this.depth >= MAX_DEPTH) {
      this.lose(`aggregates nested deeper than ${MAX_DEPTH}`);
      return;
    }
    this.left[this.depth] = count;
    this.kinds[this.depth] = this.frameKind;
    this.depth++;
  }

  private bodyDone(): void {
    this.state = S.TYPE;
    // A chunk of a streamed string is not a value; the string ends with its empty chunk.
    if (!this.inStreamedString) this.valueDone();
  }

  /** A value is complete: it fills one slot of its aggregate, which may complete in turn. */
  private valueDone(): void {
    if (this.closeAfterLine) {
      // The `.` line closed a streamed aggregate (already popped): that aggregate is the value.
      this.closeAfterLine = false;
      const kind = this.kinds[this.depth];
      if (kind === F_ATTRIBUTE) return;
    }
    for (;;) {
      if (this.depth === 0) {
        if (!this.topPush) this.listener.reply(this.topError);
        return;
      }
      const i = this.depth - 1;
      if (this.left[i] === -1) return; // streamed: open until its `.`
      if (--this.left[i] > 0) return;
      this.depth--;
      // An attribute precedes the value it describes: completing it fills no slot.
      if (this.kinds[i] === F_ATTRIBUTE) return;
    }
  }

  /** The first bytes of the last top-level simple error (`-`): for logs, so only built when asked. */
  errorText(): string {
    return this.errorBytes.toString('latin1', 0, this.errorLength);
  }

  private lose(reason: string): void {
    this.lost = true;
    this.lostReason = reason;
  }
}
