import { HTTPParser } from 'http-parser-js';
import type { HttpRules } from './options';

/**
 * Message heads: finding request lines in unknown bytes, parsing a complete
 * head with http-parser-js, and rewriting a request head's raw bytes.
 */

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;

/** Longest request line looked for when resynchronising (longer ones are not plausible). */
export const MAX_REQUEST_LINE = 8192;

/** What http-parser-js can parse: it rejects any other method, so we only look for these. */
const KNOWN_METHODS: ReadonlySet<string> = new Set(HTTPParser.methods);
const LONGEST_METHOD = Math.max(...HTTPParser.methods.map((m) => m.length));

function isMethodChar(b: number): boolean {
  return (b >= 65 && b <= 90) || b === 45; // A-Z, '-' (as http-parser-js)
}

/**
 * If buf[s, e) (one line, its LF excluded) ends in a request line
 * `METHOD SP target SP HTTP/1.d [CR]`, returns where its method starts; else
 * -1. `anchored`: the method must start at `s` (no garbage before it).
 */
export function requestLineStart(buf: Buffer, s: number, e: number, anchored: boolean): number {
  if (e > s && buf[e - 1] === CR) e--;
  // Shortest: "GET / HTTP/1.1" minus nothing: 3 + 1 + 1 + 1 + 8.
  if (e - s < 14) return -1;
  const v = e - 9;
  if (
    buf[v] !== SP || buf[v + 1] !== 0x48 || buf[v + 2] !== 0x54 || buf[v + 3] !== 0x54 || buf[v + 4] !== 0x50 ||
    buf[v + 5] !== 0x2f || buf[v + 6] !== 0x31 || buf[v + 7] !== 0x2e || buf[v + 8] < 48 || buf[v + 8] > 57
  ) {
    return -1;
  }
  // The request target: visible characters up to the space before it.
  let t = v;
  while (t > s && buf[t - 1] > SP && buf[t - 1] !== 0x7f) t--;
  if (t === v || t - 1 <= s || buf[t - 1] !== SP) return -1;
  const methodEnd = t - 1;
  let m = methodEnd;
  while (m > s && isMethodChar(buf[m - 1]) && methodEnd - m < LONGEST_METHOD) m--;
  if (anchored) {
    return m === s && KNOWN_METHODS.has(buf.toString('latin1', m, methodEnd)) ? m : -1;
  }
  // Garbage may run into the method ("xxGET"): the longest known method that ends the run wins.
  for (; m < methodEnd; m++) if (KNOWN_METHODS.has(buf.toString('latin1', m, methodEnd))) return m;
  return -1;
}

/** A parsed head: what the protocol needs from it, nothing more. */
export interface Head {
  method: string;
  url: string;
  versionMajor: number;
  versionMinor: number;
  statusCode: number;
  /** Flat [name, value, name, value, ...] as http-parser-js gives them. */
  headers: string[];
}

const parsers = {
  REQUEST: new HTTPParser(HTTPParser.REQUEST),
  RESPONSE: new HTTPParser(HTTPParser.RESPONSE),
};
let parsed: Head | null = null;
const scratchHead: Head = { method: '', url: '', versionMajor: 0, versionMinor: 0, statusCode: 0, headers: [] };

/**
 * http-parser-js calls this with one info object, or with positional
 * arguments once anything in the process has asked for HTTPParser.kOnExecute
 * (node's own http does, when it is monkey-patched in): accept both.
 */
function onHeadersComplete(...args: unknown[]): number {
  const h = scratchHead;
  if (typeof args[0] === 'object' && args[0] !== null) {
    const info = args[0] as { versionMajor: number; versionMinor: number; headers: string[]; method: number; url: string; statusCode: number };
    h.versionMajor = info.versionMajor;
    h.versionMinor = info.versionMinor;
    h.headers = info.headers;
    h.method = HTTPParser.methods[info.method] ?? '';
    h.url = info.url ?? '';
    h.statusCode = info.statusCode ?? 0;
  } else {
    h.versionMajor = args[0] as number;
    h.versionMinor = args[1] as number;
    h.headers = args[2] as string[];
    h.method = HTTPParser.methods[args[3] as number] ?? '';
    h.url = (args[4] as string) ?? '';
    h.statusCode = (args[5] as number) ?? 0;
  }
  parsed = h;
  // 2: "no body, stop here": we frame bodies ourselves (by count, without the bytes when need be).
  return 2;
}
for (const p of Object.values(parsers)) p[HTTPParser.kOnHeadersComplete] = onHeadersComplete as never;

/**
 * Parses one complete head, buf[s, e) (the blank line included). Returns a
 * scratch object valid until the next call, or the reason it is not HTTP.
 * One shared parser per kind is enough: a complete head parses in one call.
 */
export function parseHead(kind: 'REQUEST' | 'RESPONSE', buf: Buffer, s: number, e: number): Head | string {
  const p = parsers[kind];
  p.initialize(HTTPParser[kind]);
  parsed = null;
  const r = p.execute(buf, s, e - s);
  if (r instanceof Error) return `${r.message}${(r as NodeJS.ErrnoException).code ? ` (${(r as NodeJS.ErrnoException).code})` : ''}`;
  if (!parsed) return 'incomplete head';
  return parsed;
}

/** ASCII case-insensitive a === b, where `lower` is already lower case. */
export function eqLower(a: string, lower: string): boolean {
  if (a.length !== lower.length) return false;
  for (let i = 0; i < a.length; i++) {
    let c = a.charCodeAt(i);
    if (c >= 65 && c <= 90) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** The values of every `lower` header, joined with ", " ('' when absent), as RFC 9110 §5.3 allows. */
export function headerValue(h: Head, lower: string): string | undefined {
  let out: string | undefined;
  const hs = h.headers;
  for (let i = 0; i + 1 < hs.length; i += 2) {
    if (eqLower(hs[i], lower)) out = out === undefined ? hs[i + 1] : `${out}, ${hs[i + 1]}`;
  }
  return out;
}

/** Whether a comma-separated header value lists `token` (case-insensitive). */
export function hasToken(value: string | undefined, token: string): boolean {
  if (!value) return false;
  for (const part of value.split(',')) if (eqLower(part.trim(), token)) return true;
  return false;
}

/** Body framing from the headers: -1 none given, -2 chunked, -3 other transfer coding, -4 invalid; else the length. */
export const BODY_NONE = -1;
export const BODY_CHUNKED = -2;
export const BODY_OTHER_CODING = -3;
export const BODY_INVALID = -4;

export function bodyFraming(h: Head): number {
  const te = headerValue(h, 'transfer-encoding');
  if (te !== undefined) {
    const codings = te.split(',');
    return eqLower(codings[codings.length - 1].trim(), 'chunked') ? BODY_CHUNKED : BODY_OTHER_CODING;
  }
  let len = BODY_NONE;
  const hs = h.headers;
  for (let i = 0; i + 1 < hs.length; i += 2) {
    if (!eqLower(hs[i], 'content-length')) continue;
    const v = hs[i + 1].trim();
    if (!/^\d{1,15}$/.test(v)) return BODY_INVALID;
    const n = Number(v);
    if (len !== BODY_NONE && n !== len) return BODY_INVALID;
    len = n;
  }
  return len;
}

/** Does the head's line at buf[ls, le) name one of these headers (lower-case bytes)? Returns its index or -1. */
function matchName(buf: Buffer, ls: number, le: number, names: readonly { lowerBytes: Buffer }[]): number {
  for (let r = 0; r < names.length; r++) {
    const n = names[r].lowerBytes;
    const colon = ls + n.length;
    if (colon >= le || buf[colon] !== 0x3a) continue;
    let k = 0;
    for (; k < n.length; k++) {
      let c = buf[ls + k];
      if (c >= 65 && c <= 90) c |= 0x20;
      if (c !== n[k]) break;
    }
    if (k === n.length) return r;
  }
  return -1;
}

/** Reused by rewriteHead: pairs (start, end) of source ranges, or (-1 - rule, 0) for a set-header line. */
const pieces: number[] = [];

/**
 * The head buf[s, e) with remove-header and set-header applied to its raw
 * lines: other lines keep their bytes and order; a set header replaces the
 * first line of that name (later ones are dropped) or is added before the
 * blank line; obsolete line folds go with their header.
 */
export function rewriteHead(buf: Buffer, s: number, e: number, rules: HttpRules): Buffer {
  pieces.length = 0;
  const set = rules.setHeaders;
  const done = set.length > 0 ? new Array<boolean>(set.length).fill(false) : [];
  // Leading empty lines and the request line go as they are.
  let ls = s;
  for (;;) {
    const lf = buf.indexOf(LF, ls);
    const blank = lf === ls || (lf === ls + 1 && buf[ls] === CR);
    ls = lf + 1;
    if (!blank) break;
  }
  let keepFrom = s;
  let keeping = true;
  while (ls < e) {
    const lf = buf.indexOf(LF, ls);
    const le = lf < 0 || lf >= e ? e : lf + 1;
    const first = buf[ls];
    if (first === CR || first === LF) {
      // The blank line: headers still to add go before it.
      if (keeping) pieces.push(keepFrom, ls);
      for (let r = 0; r < set.length; r++) if (!done[r]) pieces.push(-1 - r, 0);
      keepFrom = ls;
      keeping = true;
      break;
    }
    let keep: boolean = keeping;
    if (first !== SP && first !== HTAB) {
      // A new header line (not a fold of the previous one).
      keep = matchName(buf, ls, le, rules.removeHeaders) < 0;
      if (keep) {
        const r = matchName(buf, ls, le, set);
        if (r >= 0) {
          keep = false;
          if (!done[r]) {
            done[r] = true;
            if (keeping) pieces.push(keepFrom, ls);
            pieces.push(-1 - r, 0);
            keeping = false;
          }
        }
      }
    }
    if (keep !== keeping) {
      if (keeping) pieces.push(keepFrom, ls);
      else keepFrom = ls;
      keeping = keep;
    }
    ls = le;
  }
  if (keeping) pieces.push(keepFrom, e);
  let total = 0;
  for (let i = 0; i < pieces.length; i += 2) total += pieces[i] >= 0 ? pieces[i + 1] - pieces[i] : set[-1 - pieces[i]].line.length;
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  for (let i = 0; i < pieces.length; i += 2) {
    if (pieces[i] >= 0) o += buf.copy(out, o, pieces[i], pieces[i + 1]);
    else o += set[-1 - pieces[i]].line.copy(out, o);
  }
  return out;
}
