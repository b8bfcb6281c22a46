#!/usr/bin/env node
'use strict';
// HTTP/1.x client for the HTTP protocol's end-to-end test: what test/scripts/workload.js cannot send.
//
// usage: node http-client.js --host H --port P [--conn N]
// Connection N (keep-alive), in order, each after the previous response:
//   POST /c/N/r/0    Transfer-Encoding: chunked, ~150 KB written as 16 chunks with pauses (a streamed upload)
//   GET  /gz/text    Accept-Encoding: gzip: nginx answers chunked (no Content-Length)
//   POST /c/N/r/2    Expect: 100-continue, 50 KB: the body is written only after "100 Continue"
//   HEAD /c/N/r/3    a response head announcing a body that does not follow
//   GET  /c/N/r/4    X-Resp-Size: 1024
// Connection N+1: GET /gz/text HTTP/1.0 with gzip: the answer is delimited by the server's close.
// stdout: "SUMMARY {json}"; exit 0 when every answer was as expected.
const net = require('node:net');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const host = arg('host');
const port = Number(arg('port', '80'));
const connId = Number(arg('conn', '900'));
const summary = { steps: [], errors: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function bytes(n, seed) {
  const b = Buffer.allocUnsafe(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = 48 + ((x >>> 16) % 75);
  }
  return b;
}

/** Reads responses off a socket: Content-Length, chunked, or until the server closes. */
class Reader {
  constructor(sock) {
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.wake = null;
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.kick();
    });
    sock.on('end', () => {
      this.ended = true;
      this.kick();
    });
    sock.on('error', (e) => {
      this.error = e;
      this.ended = true;
      this.kick();
    });
  }
  kick() {
    const w = this.wake;
    this.wake = null;
    if (w) w();
  }
  async more() {
    if (this.ended) throw new Error(`connection ended (${this.error ? this.error.message : 'closed'}) in the middle of a response`);
    await new Promise((r) => (this.wake = r));
  }
  async head() {
    for (;;) {
      const at = this.buf.indexOf('\r\n\r\n');
      if (at >= 0) {
        const lines = this.buf.toString('latin1', 0, at).split('\r\n');
        this.buf = this.buf.subarray(at + 4);
        const headers = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        return { status: Number(lines[0].split(' ')[1]), headers };
      }
      await this.more();
    }
  }
  async take(n) {
    while (this.buf.length < n) await this.more();
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  async line() {
    for (;;) {
      const at = this.buf.indexOf('\r\n');
      if (at >= 0) return (await this.take(at + 2)).toString('latin1', 0, at);
      await this.more();
    }
  }
  /** The next final response (interim ones are skipped and counted). */
  async response(method = 'GET') {
    let h = await this.head();
    let interim = 0;
    while (h.status >= 100 && h.status < 200) {
      interim++;
      h = await this.head();
    }
    const r = { status: h.status, headers: h.headers, interim, chunks: 0, bodyBytes: 0, closeDelimited: false };
    if (method === 'HEAD' || h.status === 204 || h.status === 304) return r;
    if (/chunked/i.test(h.headers['transfer-encoding'] || '')) {
      for (;;) {
        const size = parseInt((await this.line()).split(';')[0], 16);
        if (!(size >= 0)) throw new Error('bad chunk size');
        if (size === 0) {
          while ((await this.line()) !== '');
          return r;
        }
        r.chunks++;
        r.bodyBytes += (await this.take(size + 2)).length - 2;
      }
    }
    if (h.headers['content-length'] !== undefined) {
      r.bodyBytes = (await this.take(Number(h.headers['content-length']))).length;
      return r;
    }
    while (!this.ended) await this.more();
    r.closeDelimited = true;
    r.bodyBytes = this.buf.length;
    this.buf = Buffer.alloc(0);
    return r;
  }
}

function connect() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function check(name, r, want) {
  summary.steps.push({ name, ...r, headers: undefined });
  for (const [k, v] of Object.entries(want)) {
    if (r[k] !== v && !(typeof v === 'function' && v(r[k]))) summary.errors.push(`${name}: ${k} is ${r[k]}`);
  }
}

async function keepAlive() {
  const s = await connect();
  const rd = new Reader(s);
  const head = (lines) => Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');

  // 1. A chunked upload, streamed: 16 chunks written over ~100 ms.
  s.write(head([`POST /c/${connId}/r/0 HTTP/1.1`, `Host: ${host}`, 'User-Agent: tcpe-http-client', 'X-Resp-Size: 1024', 'Transfer-Encoding: chunked']));
  for (let i = 0; i < 16; i++) {
    const part = bytes(2000 + i * 1000, i + 1);
    s.write(Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]));
    await sleep(6);
  }
  s.write('0\r\nX-Upload-Done: yes\r\n\r\n');
  check('chunked upload', await rd.response(), { status: 200, bodyBytes: 1024 });

  // 2. A chunked (gzip) download.
  s.write(head([`GET /gz/text HTTP/1.1`, `Host: ${host}`, 'User-Agent: tcpe-http-client', 'Accept-Encoding: gzip']));
  const gz = await rd.response();
  check('chunked download', gz, { status: 200, chunks: (n) => n >= 2 });
  if (gz.headers['transfer-encoding'] !== 'chunked') summary.errors.push(`gzip answer not chunked: ${JSON.stringify(gz.headers)}`);

  // 3. Expect: 100-continue: the body waits for the interim answer.
  const body = bytes(50_000, 99);
  s.write(head([`POST /c/${connId}/r/2 HTTP/1.1`, `Host: ${host}`, 'User-Agent: tcpe-http-client', 'X-Resp-Size: 16', 'Expect: 100-continue', `Content-Length: ${body.length}`]));
  const interim = await rd.head();
  if (interim.status !== 100) summary.errors.push(`expected 100 Continue, got ${interim.status}`);
  s.write(body);
  check('expect 100-continue', { ...(await rd.response()), interim: 1 }, { status: 200, bodyBytes: 16 });

  // 4. HEAD: the head announces a body that is not sent.
  s.write(head([`HEAD /c/${connId}/r/3 HTTP/1.1`, `Host: ${host}`, 'User-Agent: tcpe-http-client', 'X-Resp-Size: 102400']));
  check('head', await rd.response('HEAD'), { status: 200, bodyBytes: 0 });

  // 5. A plain request after all that, then close.
  s.write(head([`GET /c/${connId}/r/4 HTTP/1.1`, `Host: ${host}`, 'User-Agent: tcpe-http-client', 'X-Resp-Size: 1024']));
  check('last', await rd.response(), { status: 200, bodyBytes: 1024 });
  s.end();
  await new Promise((r) => s.once('close', r));
}

async function http10() {
  const s = await connect();
  const rd = new Reader(s);
  s.write(`GET /gz/text HTTP/1.0\r\nHost: ${host}\r\nUser-Agent: tcpe-http-client\r\nAccept-Encoding: gzip\r\n\r\n`);
  check('close-delimited download', await rd.response(), { status: 200, closeDelimited: true, bodyBytes: (n) => n > 1000 });
  s.end();
  await new Promise((r) => s.once('close', r));
}

const timer = setTimeout(() => {
  summary.errors.push('timeout');
  process.stdout.write(`SUMMARY ${JSON.stringify(summary)}\n`);
  process.exit(2);
}, 20_000);

(async () => {
  await keepAlive();
  await http10();
})().then(
  () => {
    clearTimeout(timer);
    process.stdout.write(`SUMMARY ${JSON.stringify(summary)}\n`);
    process.exit(summary.errors.length ? 1 : 0);
  },
  (e) => {
    clearTimeout(timer);
    summary.errors.push(e.stack || String(e));
    process.stdout.write(`SUMMARY ${JSON.stringify(summary)}\n`);
    process.exit(1);
  },
);
