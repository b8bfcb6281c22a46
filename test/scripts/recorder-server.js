#!/usr/bin/env node
'use strict';
// Recording HTTP/1.1 server, the oracle of the end-to-end tests: every accepted connection's complete
// received byte stream goes to its own file, written as it arrives (so nothing is lost on SIGKILL).
// It answers each request it can parse with "200 OK" and a body of X-Resp-Size bytes (default 16).
// Garbage (e.g. a replayed connection that starts in the middle of a request) is recorded and skipped
// until something that looks like a request line appears.
//
// usage: node recorder-server.js --host ADDR --port N --out DIR
// prints "LISTENING ADDR:PORT" on stdout when ready; exits 0 on SIGTERM/SIGINT after closing its files.
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (dflt === undefined) throw new Error(`missing --${name}`);
  return dflt;
}
const host = arg('host');
const port = Number(arg('port'));
const outDir = arg('out');
fs.mkdirSync(outDir, { recursive: true });

const MAX_HEAD = 64 * 1024; // a head larger than this is treated as garbage
const MAX_RESP = 64 * 1024 * 1024;
const REQUEST_LINE = /(?:GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) [^\s]+ HTTP\/1\.[01]\r\n/;
const PATTERN = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n');

/** Deterministic body: the pattern repeated, cut to n bytes. */
function body(n) {
  const b = Buffer.allocUnsafe(n);
  for (let off = 0; off < n; off += PATTERN.length) PATTERN.copy(b, off, 0, Math.min(PATTERN.length, n - off));
  return b;
}

let accepted = 0;
const open = new Set();

const server = net.createServer((sock) => {
  const seq = accepted++;
  const remote = `${sock.remoteAddress}:${sock.remotePort}`;
  const file = path.join(outDir, `${String(seq).padStart(5, '0')}-${sock.remoteAddress}_${sock.remotePort}.bin`);
  const fd = fs.openSync(file, 'w');
  const conn = { sock, fd, closed: false };
  open.add(conn);
  let buf = Buffer.alloc(0);
  let want = null; // { bodyLeft, respSize, close, target } while a request body is being read
  let closing = false;

  const finish = () => {
    if (conn.closed) return;
    conn.closed = true;
    fs.closeSync(fd);
    open.delete(conn);
  };

  const respond = (req) => {
    const head =
      `HTTP/1.1 200 OK\r\nContent-Length: ${req.respSize}\r\nX-Echo: ${req.target}\r\n` +
      (req.close ? 'Connection: close\r\n' : '') +
      '\r\n';
    sock.write(Buffer.concat([Buffer.from(head, 'latin1'), body(req.respSize)]));
    if (req.close) {
      closing = true;
      sock.end();
    }
  };

  // Consume as many complete requests from buf as possible.
  const parse = () => {
    for (;;) {
      if (closing) return void (buf = Buffer.alloc(0));
      if (want) {
        const n = Math.min(want.bodyLeft, buf.length);
        want.bodyLeft -= n;
        buf = buf.subarray(n);
        if (want.bodyLeft > 0) return;
        const req = want;
        want = null;
        respond(req);
        continue;
      }
      const s = buf.toString('latin1');
      const m = REQUEST_LINE.exec(s);
      if (!m) {
        // Keep a tail in case a request line is split across segments; the rest is garbage.
        if (buf.length > 256) buf = buf.subarray(buf.length - 256);
        return;
      }
      if (m.index > 0) buf = buf.subarray(m.index); // skip garbage (recorded anyway)
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) {
        if (buf.length <= MAX_HEAD) return;
        buf = buf.subarray(1); // too long to be a head: not a request after all, resync past it
        continue;
      }
      const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
      const [, target, version] = lines[0].split(' ');
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      buf = buf.subarray(headEnd + 4);
      const connHdr = (headers.connection || '').toLowerCase();
      const size = Number(headers['x-resp-size'] ?? 16);
      want = {
        target,
        bodyLeft: Number.isSafeInteger(Number(headers['content-length'])) ? Math.max(0, Number(headers['content-length'])) : 0,
        respSize: Number.isSafeInteger(size) && size >= 0 && size <= MAX_RESP ? size : 16,
        close: connHdr === 'close' || (version === 'HTTP/1.0' && connHdr !== 'keep-alive'),
      };
    }
  };

  sock.on('data', (chunk) => {
    fs.writeSync(fd, chunk);
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    try {
      parse();
    } catch (e) {
      process.stderr.write(`recorder: parse error on ${remote}: ${e && e.stack}\n`);
      buf = Buffer.alloc(0);
    }
  });
  sock.on('error', () => undefined); // resets are normal in replay tests; the bytes are on disk
  sock.on('close', finish);
});

server.on('error', (e) => {
  process.stderr.write(`recorder: ${e.stack}\n`);
  process.exit(2);
});
server.listen(port, host, () => process.stdout.write(`LISTENING ${host}:${port}\n`));

function shutdown() {
  server.close();
  for (const c of open) {
    c.sock.destroy();
    if (!c.closed) {
      c.closed = true;
      fs.closeSync(c.fd);
    }
  }
  process.stdout.write(`STOPPED accepted=${accepted}\n`);
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
