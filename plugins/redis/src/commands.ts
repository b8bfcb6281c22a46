/**
 * The few commands the session must understand (credentials, connection
 * state, reply counts), and RESP encoding for the ones it writes itself.
 * Everything here runs only for those commands, never per packet.
 */

export const enum Kind {
  OTHER,
  AUTH,
  HELLO,
  SELECT,
  CLIENT,
  /** SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, and their UN- forms: one reply per channel in RESP2. */
  SUBSCRIPTION,
  RESET,
}

const NAMES: ReadonlyArray<[string, Kind]> = [
  ['AUTH', Kind.AUTH],
  ['HELLO', Kind.HELLO],
  ['SELECT', Kind.SELECT],
  ['CLIENT', Kind.CLIENT],
  ['RESET', Kind.RESET],
  ['SUBSCRIBE', Kind.SUBSCRIPTION],
  ['PSUBSCRIBE', Kind.SUBSCRIPTION],
  ['SSUBSCRIBE', Kind.SUBSCRIPTION],
  ['UNSUBSCRIBE', Kind.SUBSCRIPTION],
  ['PUNSUBSCRIBE', Kind.SUBSCRIPTION],
  ['SUNSUBSCRIBE', Kind.SUBSCRIPTION],
];
const NAME_BUFFERS = NAMES.map(([n, k]) => [Buffer.from(n, 'latin1'), k] as const);

/** The kind of a command from its upper-cased first bytes (`name`) and the name's full length. */
export function classify(name: Buffer, length: number): Kind {
  for (const [n, kind] of NAME_BUFFERS) {
    if (n.length === length && n.compare(name, 0, length) === 0) return kind;
  }
  return Kind.OTHER;
}

/** The kind of a command from its first argument as sent (any case). */
export function classifyArg(arg: Buffer): Kind {
  for (const [n, kind] of NAME_BUFFERS) if (sameWord(arg, n)) return kind;
  return Kind.OTHER;
}

/** ASCII case-insensitive equality of an argument and an upper-case word. */
export function sameWord(arg: Buffer, word: Buffer | string): boolean {
  if (arg.length !== word.length) return false;
  for (let i = 0; i < arg.length; i++) {
    let b = arg[i];
    if (b >= 97 && b <= 122) b -= 32;
    if (b !== (typeof word === 'string' ? word.charCodeAt(i) : word[i])) return false;
  }
  return true;
}

/**
 * The arguments of a complete multibulk command (one the request parser has
 * accepted), as views into it.
 */
export function respArgs(cmd: Buffer): Buffer[] {
  const args: Buffer[] = [];
  let pos = 1;
  const readNumber = (): number => {
    let n = 0;
    let neg = false;
    while (pos < cmd.length && cmd[pos] !== 13) {
      if (cmd[pos] === 45) neg = true;
      else n = n * 10 + (cmd[pos] - 48);
      pos++;
    }
    pos += 2; // CRLF
    return neg ? -n : n;
  };
  const argc = readNumber();
  for (let i = 0; i < argc && pos < cmd.length; i++) {
    pos++; // $
    const len = readNumber();
    args.push(cmd.subarray(pos, pos + len));
    pos += len + 2;
  }
  return args;
}

const SPACE = new Set([32, 9, 10, 13, 11, 12]);

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 97 && b <= 102) return b - 87;
  if (b >= 65 && b <= 70) return b - 55;
  return -1;
}

/**
 * Splits an inline command line the way Redis does (words, "double quotes"
 * with \n \r \t \b \a \xHH escapes, 'single quotes' with \'). Returns null for
 * unbalanced quotes, which Redis answers with an error.
 */
export function splitInline(line: Buffer): Buffer[] | null {
  let n = line.length;
  if (n > 0 && line[n - 1] === 10) n--;
  if (n > 0 && line[n - 1] === 13) n--;
  const args: Buffer[] = [];
  let i = 0;
  for (;;) {
    while (i < n && SPACE.has(line[i])) i++;
    if (i >= n) return args;
    const word: number[] = [];
    let quote = 0; // 0, or the quote byte we are inside
    for (;;) {
      if (quote === 34) {
        if (i >= n) return null;
        const b = line[i];
        if (b === 92 && i + 3 < n && line[i + 1] === 120 && hexValue(line[i + 2]) >= 0 && hexValue(line[i + 3]) >= 0) {
          word.push(hexValue(line[i + 2]) * 16 + hexValue(line[i + 3]));
          i += 4;
        } else if (b === 92 && i + 1 < n) {
          const e = line[i + 1];
          word.push(e === 110 ? 10 : e === 114 ? 13 : e === 116 ? 9 : e === 98 ? 8 : e === 97 ? 7 : e);
          i += 2;
        } else if (b === 34) {
          i++;
          if (i < n && !SPACE.has(line[i])) return null; // a closing quote must end the word
          break;
        } else {
          word.push(b);
          i++;
        }
      } else if (quote === 39) {
        if (i >= n) return null;
        const b = line[i];
        if (b === 92 && i + 1 < n && line[i + 1] === 39) {
          word.push(39);
          i += 2;
        } else if (b === 39) {
          i++;
          if (i < n && !SPACE.has(line[i])) return null;
          break;
        } else {
          word.push(b);
          i++;
        }
      } else {
        if (i >= n || SPACE.has(line[i])) break;
        const b = line[i++];
        if (b === 34 || b === 39) quote = b;
        else word.push(b);
      }
    }
    args.push(Buffer.from(word));
  }
}

/** One command as a RESP array of bulk strings. */
export function encodeCommand(args: ReadonlyArray<Buffer | string>): Buffer {
  const bufs = args.map((a) => (typeof a === 'string' ? Buffer.from(a, 'utf8') : a));
  let size = 0;
  const heads = bufs.map((b) => `$${b.length}\r\n`);
  const top = `*${bufs.length}\r\n`;
  size += Buffer.byteLength(top);
  for (let i = 0; i < bufs.length; i++) size += heads[i].length + bufs[i].length + 2;
  const out = Buffer.allocUnsafe(size);
  let pos = out.write(top, 0, 'latin1');
  for (let i = 0; i < bufs.length; i++) {
    pos += out.write(heads[i], pos, 'latin1');
    pos += bufs[i].copy(out, pos);
    pos += out.write('\r\n', pos, 'latin1');
  }
  return out;
}

export interface Credentials {
  readonly user?: string;
  readonly password: string;
}

/**
 * `AUTH <password>` or `AUTH <user> <password>` with the configured
 * credentials: the configured user when there is one, else the client's (so
 * `AUTH pw` stays a default-user login). Other argument counts are left
 * alone (Redis answers them with a syntax error, as it did online).
 */
export function rewriteAuth(args: Buffer[], cred: Credentials): Buffer | null {
  if (args.length === 2) return encodeCommand(cred.user === undefined ? [args[0], cred.password] : [args[0], cred.user, cred.password]);
  if (args.length === 3) return encodeCommand([args[0], cred.user ?? args[1], cred.password]);
  return null;
}

/** `HELLO [protover [AUTH user password] [SETNAME name]]` with the configured credentials in its AUTH. */
export function rewriteHello(args: Buffer[], cred: Credentials): Buffer | null {
  let changed = false;
  const out: Array<Buffer | string> = args.slice();
  for (let i = 2; i < args.length; i++) {
    if (sameWord(args[i], 'AUTH') && i + 2 < args.length) {
      if (cred.user !== undefined) out[i + 1] = cred.user;
      out[i + 2] = cred.password;
      changed = true;
      i += 2;
    } else if (sameWord(args[i], 'SETNAME')) {
      i += 1;
    }
  }
  return changed ? encodeCommand(out) : null;
}

/** The protocol version a HELLO asks for (2 or 3), or 0 when it asks for none we know. */
export function helloVersion(args: Buffer[]): number {
  if (args.length < 2) return 0;
  const v = args[1].toString('latin1');
  return v === '2' ? 2 : v === '3' ? 3 : 0;
}

/** A SELECT's database number, or -1 when it is not a plain number. */
export function selectedDb(args: Buffer[]): number {
  if (args.length !== 2) return -1;
  const s = args[1].toString('latin1');
  return /^[0-9]{1,9}$/.test(s) ? Number(s) : -1;
}
