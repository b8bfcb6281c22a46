#!/usr/bin/env node
'use strict';
// HTTP/1.1 workload for end-to-end tests, run with `node` inside the client namespace.
//
// usage: node workload.js --plan JSON [--record FILE]
// plan: {
//   host, port,                                  server to talk to
//   short: N,                                    N connections, one request each with "Connection: close"
//   keepAlive: { conns: M, requests: K },        each request waits for its response
//   pipelined: { conns: P, requests: R },        all R requests in one write, then all responses
//   post: { bytes: B } | null,                   one connection with one POST of a B-byte body
//   midStream: { conns: L, before: a, after: b } | null,
//                                                L keep-alive connections do `a` requests each, then the
//                                                script prints READY and waits for a line GO on stdin, then
//                                                the same connections do `b` more requests and close
//   respSizes: [16, 102400],                     X-Resp-Size of request r on connection c: respSizes[(c+r) % n]
//   concurrency: 8, timeoutMs: 20000, goTimeoutMs: 30000
// }
// Every request's URL is /c/<conn>/r/<req>, unique in a run. Each response must be 200 with exactly
// X-Resp-Size bytes of the servers' deterministic body pattern.
// stdout: "READY" (mid-stream only), then "SUMMARY {json}". --record writes, per connection, the exact
// bytes sent (base64) and its local address, so a test can compare them with what a server received.
// Exit 0 if every response was ok, 1 on errors, 2 on the overall timeout.
const net = require('node:net');
const fs = require('node:fs');
const readline = require('node:readline');

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const plan = JSON.parse(arg('plan') ?? fs.readFileSync(arg('plan-file'), 'utf8'));
const recordFile = arg('record');
const sizes = plan.respSizes ?? [16];
const concurrency = Math.max(1, Math.min(plan.concurrency ?? 8, 256));
const timeoutMs = Math.min(plan.timeoutMs ?? 20000, 300000);
const goTimeoutMs = Math.min(plan.goTimeoutMs ?? 30000, 300000);
const hostHeader = plan.hostHeader ?? `${plan.host}:${plan.port}`;

const PATTERN = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n');
function pattern(n) {
  const b = Buffer.allocUnsafe(n);
  for (let off = 0; off < n; off += PATTERN.length) PATTERN.copy(b, off, 0, Math.min(PATTERN.length, n - off));
  return b;
}

const summary = { connections: 0, requestsSent: 0, responsesOk: 0, bytesSent: 0, bytesReceived: 0, errors: [], elapsedMs: 0 };
const records = [];
const started = Date.now();
const sockets = new Set();

function fail(msg) {
  summary.errors.push(msg);
  if (summary.errors.length <= 20) process.stderr.write(`workload: ${msg}\n`);
}

function request(conn, req, { close = false, postBytes = 0 } = {}) {
  const size = sizes[(conn + req) % sizes.length];
  const lines = [
    `${postBytes ? 'POST' : 'GET'} /c/${conn}/r/${req} HTTP/1.1`,
    `Host: ${hostHeader}`,
    'User-Agent: tcpe-workload',
    `X-Resp-Size: ${size}`,
  ];
  if (postBytes) lines.push('Content-Type: application/octet-stream', `Content-Length: ${postBytes}`);
  if (close) lines.push('Connection: close');
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
  const body = postBytes ? pattern(postBytes).reverse() : Buffer.alloc(0); // reversed: unlike any response
  return { bytes: Buffer.concat([head, body]), size, path: `/c/${conn}/r/${req}` };
}

/** One client connection: writes are recorded, responses parsed in order (Content-Length bodies). */
class Conn {
  constructor(id, kind) {
    this.id = id;
    this.kind = kind;
    this.sent = [];
    this.requests = 0;
    this.ok = 0;
    this.buf = Buffer.alloc(0);
    this.waiting = null; // { n, got: [], resolve, reject }
    this.closed = new Promise((resolve) => (this.onClosed = resolve));
  }
  connect() {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: plan.host, port: plan.port });
      this.sock = s;
      sockets.add(s);
      s.once('connect', () => {
        this.local = `${s.localAddress}:${s.localPort}`;
        resolve();
      });
      s.once('error', (e) => {
        this.error = e;
        reject(e);
        if (this.waiting) this.waiting.reject(e);
      });
      s.on('data', (d) => {
        summary.bytesReceived += d.length;
        this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
        this.pump();
      });
      s.on('close', () => {
        sockets.delete(s);
        this.isClosed = true;
        if (this.waiting) this.waiting.reject(new Error(`conn ${this.id}: closed by server with ${this.waiting.n - this.waiting.got.length} responses missing`));
        this.onClosed();
      });
    });
  }
  send(reqs) {
    const bytes = Buffer.concat(reqs.map((r) => r.bytes));
    this.sent.push(bytes);
    this.requests += reqs.length;
    summary.requestsSent += reqs.length;
    summary.bytesSent += bytes.length;
    this.sock.write(bytes);
  }
  /** Resolves with the next n responses. */
  responses(n) {
    return new Promise((resolve, reject) => {
      this.waiting = { n, got: [], resolve, reject };
      this.pump();
    });
  }
  pump() {
    const w = this.waiting;
    while (w && w.got.length < w.n) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(head[0].split(' ')[1]);
      const headers = {};
      for (const l of head.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const len = Number(headers['content-length'] ?? 0);
      if (this.buf.length < end + 4 + len) return;
      w.got.push({ status, headers, body: this.buf.subarray(end + 4, end + 4 + len) });
      this.buf = this.buf.subarray(end + 4 + len);
    }
    if (w) {
      this.waiting = null;
      w.resolve(w.got);
    }
  }
  check(reqs, resps) {
    reqs.forEach((r, i) => {
      const resp = resps[i];
      if (resp.status !== 200) return fail(`${r.path}: status ${resp.status}`);
      if (resp.headers['x-echo'] !== undefined && resp.headers['x-echo'] !== r.path) return fail(`${r.path}: answered for ${resp.headers['x-echo']}`);
      if (resp.body.length !== r.size || !resp.body.equals(pattern(r.size))) return fail(`${r.path}: body of ${resp.body.length} bytes, wanted the ${r.size}-byte pattern`);
      this.ok++;
      summary.responsesOk++;
    });
  }
  /** Send requests one at a time, each after the previous response. */
  async sequential(reqs) {
    for (const r of reqs) {
      this.send([r]);
      this.check([r], await this.responses(1));
    }
  }
  async pipelined(reqs) {
    this.send(reqs);
    this.check(reqs, await this.responses(reqs.length));
  }
  /** Half-close our side and wait for the server to close too. */
  async finish() {
    if (!this.isClosed) this.sock.end();
    await this.closed;
  }
  record() {
    records.push({ conn: this.id, kind: this.kind, local: this.local, requests: this.requests, responsesOk: this.ok, sent: Buffer.concat(this.sent).toString('base64') });
  }
}

async function withConn(id, kind, body) {
  const c = new Conn(id, kind);
  summary.connections++;
  try {
    await c.connect();
    await body(c);
    await c.finish();
  } catch (e) {
    fail(`conn ${id} (${kind}): ${e.message}`);
    if (c.sock) c.sock.destroy();
  } finally {
    c.record();
  }
}

/** Run task functions with at most `concurrency` at a time. */
async function pool(tasks) {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
}

function waitForGo() {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: process.stdin });
    const timer = setTimeout(() => reject(new Error(`no GO on stdin within ${goTimeoutMs} ms`)), goTimeoutMs);
    rl.on('line', (l) => {
      if (l.trim() === 'GO') {
        clearTimeout(timer);
        resolve(); // before close(): its 'close' event would reject
        rl.close();
      }
    });
    rl.on('close', () => reject(new Error('stdin closed before GO')));
  });
}

async function main() {
  let id = 0;
  const tasks = [];
  const ms = plan.midStream;
  let midConns = [];
  if (ms && ms.conns > 0) {
    // Phase A: open every mid-stream connection and do the first requests, then hand over.
    midConns = Array.from({ length: ms.conns }, () => new Conn(id++, 'midStream'));
    summary.connections += midConns.length;
    await Promise.all(
      midConns.map(async (c) => {
        await c.connect();
        await c.sequential(Array.from({ length: ms.before }, (_, r) => request(c.id, r)));
      }),
    );
    process.stdout.write('READY\n');
    await waitForGo();
    for (const c of midConns) {
      tasks.push(async () => {
        try {
          await c.sequential(Array.from({ length: ms.after }, (_, r) => request(c.id, ms.before + r)));
          await c.finish();
        } catch (e) {
          fail(`conn ${c.id} (midStream): ${e.message}`);
          c.sock.destroy();
        }
      });
    }
  }
  for (let i = 0; i < (plan.short ?? 0); i++) {
    const c = id++;
    tasks.push(() => withConn(c, 'short', (conn) => conn.sequential([request(c, 0, { close: true })])));
  }
  const ka = plan.keepAlive ?? { conns: 0, requests: 0 };
  for (let i = 0; i < ka.conns; i++) {
    const c = id++;
    tasks.push(() => withConn(c, 'keepAlive', (conn) => conn.sequential(Array.from({ length: ka.requests }, (_, r) => request(c, r)))));
  }
  const pl = plan.pipelined ?? { conns: 0, requests: 0 };
  for (let i = 0; i < pl.conns; i++) {
    const c = id++;
    tasks.push(() => withConn(c, 'pipelined', (conn) => conn.pipelined(Array.from({ length: pl.requests }, (_, r) => request(c, r)))));
  }
  if (plan.post && plan.post.bytes > 0) {
    const c = id++;
    tasks.push(() => withConn(c, 'post', (conn) => conn.sequential([request(c, 0, { postBytes: plan.post.bytes })])));
  }
  await pool(tasks);
  for (const c of midConns) c.record();
}

function report(code) {
  summary.elapsedMs = Date.now() - started;
  if (recordFile) {
    records.sort((a, b) => a.conn - b.conn);
    fs.writeFileSync(recordFile, JSON.stringify(records));
  }
  process.stdout.write(`SUMMARY ${JSON.stringify(summary)}\n`);
  process.exit(code);
}

const overall = setTimeout(() => {
  fail(`overall timeout of ${timeoutMs} ms`);
  for (const s of sockets) s.destroy();
  report(2);
}, timeoutMs);

main().then(
  () => {
    clearTimeout(overall);
    report(summary.errors.length ? 1 : 0);
  },
  (e) => {
    clearTimeout(overall);
    fail(e.stack || String(e));
    report(1);
  },
);
