// Valid HTTP/1.x traffic for the fuzz properties of the request framer and the response tracker:
// requests (sized, chunked or no body, Expect: 100-continue) and responses (interim ones, sized,
// chunked, close-delimited, bodiless by status or by a HEAD request), with where their bytes are.
import fc from 'fast-check';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

const tokenChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-'.split(''));
/** Header names that do not frame or switch anything (those are generated on purpose). */
const headerName = fc.string({ unit: tokenChar, minLength: 1, maxLength: 12 })
  .filter((n) => !['content-length', 'transfer-encoding', 'expect', 'upgrade', 'connection'].includes(n.toLowerCase()));
const valueChar = fc.constantFrom(...'abcxyzABC019 -_.,;:/=?&"()[]{}*+!~'.split(''));
const headerValue = fc.string({ unit: valueChar, maxLength: 30 }).map((v) => v.trim());
const headers = fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 });

export type Body =
  | { kind: 'none' }
  | { kind: 'sized'; data: Buffer }
  | { kind: 'chunked'; chunks: Buffer[]; ext: boolean; trailers: Array<[string, string]>; upper: boolean };

const bodyBytes = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a));
export const body: fc.Arbitrary<Body> = fc.oneof(
  fc.record({ kind: fc.constant('none' as const) }),
  fc.record({ kind: fc.constant('sized' as const), data: bodyBytes }),
  fc.record({
    kind: fc.constant('chunked' as const),
    chunks: fc.array(fc.uint8Array({ minLength: 1, maxLength: 80 }).map((a) => Buffer.from(a)), { maxLength: 4 }),
    ext: fc.boolean(),
    trailers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 2 }),
    upper: fc.boolean(),
  }),
);

function framingHeader(bd: Body): string {
  if (bd.kind === 'sized') return `Content-Length: ${bd.data.length}\r\n`;
  if (bd.kind === 'chunked') return 'Transfer-Encoding: chunked\r\n';
  return '';
}

function bodyBytesOf(bd: Body): Buffer {
  if (bd.kind === 'none') return Buffer.alloc(0);
  if (bd.kind === 'sized') return bd.data;
  const out: Buffer[] = [];
  for (const c of bd.chunks) {
    const size = c.length.toString(16);
    out.push(b(`${bd.upper ? size.toUpperCase() : size}${bd.ext ? ';name=value' : ''}\r\n`), c, b('\r\n'));
  }
  out.push(b(`0\r\n${bd.trailers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`));
  return Buffer.concat(out);
}

export interface Request {
  head: Buffer;
  body: Buffer;
  /** Its body waits for 100 Continue (tagged CONTINUE_TAG_BASE + k). */
  expectContinue: boolean;
  /** A HEAD request (its response has no body). */
  isHead: boolean;
}

/** A request that never switches protocols (no CONNECT, no Upgrade). */
export const request: fc.Arbitrary<Request> = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'PROPFIND'),
    path: fc.string({ unit: fc.constantFrom(...'abc019/-_.~%?=&'.split('')), maxLength: 30 }),
    minor: fc.constantFrom(0, 1),
    headers,
    body,
    expectContinue: fc.boolean(),
  })
  .map((r) => {
    const expectContinue = r.expectContinue && r.minor === 1 && r.body.kind !== 'none';
    const head = b(
      `${r.method} /${r.path} HTTP/1.${r.minor}\r\n` +
      r.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('') +
      framingHeader(r.body) +
      (expectContinue ? 'Expect: 100-continue\r\n' : '') +
      '\r\n',
    );
    return { head, body: bodyBytesOf(r.body), expectContinue, isHead: r.method === 'HEAD' };
  });

export interface Response {
  bytes: Buffer;
  /** Ranges of body bytes (offsets in `bytes`) counted by length: bytes intercept may leave out. */
  skippable: Array<[number, number]>;
  /** Ends only when the connection closes. */
  closeDelimited: boolean;
}

const reason = fc.constantFrom('OK', 'Not Found', 'Moved', 'Server Error', '', 'X');

/**
 * A response to a request (HEAD or not): interim responses, then a final one framed by
 * Content-Length, chunked, by its status (204, 304), by the HEAD request, or (last only) by the close.
 */
export function response(toHead: boolean, last: boolean): fc.Arbitrary<Response> {
  return fc
    .record({
      interim: fc.array(fc.constantFrom(100, 102, 103), { maxLength: 2 }),
      status: fc.oneof(fc.constantFrom(200, 201, 204, 206, 301, 304, 404, 500), fc.integer({ min: 200, max: 599 })),
      reason,
      headers,
      body,
      close: fc.boolean(),
    })
    .map((r) => {
      const parts: Buffer[] = [];
      for (const s of r.interim) parts.push(b(`HTTP/1.1 ${s} Interim\r\n\r\n`));
      const noBody = toHead || r.status === 204 || r.status === 304;
      const closeDelimited = last && r.close && !noBody && r.body.kind === 'none';
      // A bodiless response may still say how long the body would have been (HEAD, 304).
      const framing = r.body.kind === 'none' && !closeDelimited && !noBody ? 'Content-Length: 0\r\n' : framingHeader(r.body);
      const head = b(`HTTP/1.1 ${r.status} ${r.reason}\r\n${r.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}${framing}\r\n`);
      parts.push(head);
      const skippable: Array<[number, number]> = [];
      let at = parts.reduce((n, p) => n + p.length, 0);
      if (!noBody && r.body.kind === 'sized') {
        skippable.push([at, at + r.body.data.length]);
        parts.push(r.body.data);
        at += r.body.data.length;
      } else if (!noBody && r.body.kind === 'chunked') {
        parts.push(bodyBytesOf(r.body));
      } else if (closeDelimited) {
        parts.push(b('the rest of the connection'));
      }
      return { bytes: Buffer.concat(parts), skippable, closeDelimited };
    });
}
