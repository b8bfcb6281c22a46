#!/usr/bin/env node
'use strict';
// HTTP/1.1 load for the live bench, run with `node` inside the client namespace. Plain sockets and a
// minimal response parser, so that the load costs little CPU next to the servers and the tools measured.
//
// usage: node live-load.js --plan JSON
// plan: {
//   host, port, path,          the server and the path requested; every URL is PATH?TAG=<n>, unique in a run
//   tag: 'load',
//   mode: 'short' | 'keepalive',
//                              short: one request per connection ("Connection: close"), `conns` clients
//                              at once; keepalive: `conns` connections, each request waits for its response
//   conns: 50,
//   rate: 2000,                requests per second over all connections; 0: as fast as they go
//   durationMs: 6000,          stop starting requests after this long ...
//   maxRequests: 100000,       ... or after this many
//   localAddrs: ['198.51.100.100', ...],
//                              client addresses the connections are spread over, round robin
//   portFirst: 10000, portCount: 50000, portOffset: 0,
//                              connection k gets address localAddrs[k % A] and the explicit local port
//                              portFirst + (portOffset + floor(k / A)) % portCount: no client 4-tuple is
//                              used twice in a run (the bench moves portOffset between runs) and none is
//                              left to the kernel's choice, which can reuse a port within a second
//   timeoutMs: 10000,          per request
// }
// stdout: "DONE {json}" with sent, ok, errors, statuses, connections, elapsedMs (first request to last
// response), maxConnRequests, errorSamples. Exit 0 if every response was a 200, 1 otherwise, 2 if the
// whole run overran its bound.
const net = require('node:net');

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const plan = JSON.parse(arg('plan') ?? '{}');
const host = plan.host;
const port = plan.port ?? 80;
const basePath = plan.path ?? '/';
const tag = plan.tag ?? 'load';
const short = plan.mode !== 'keepalive';
const conns = Math.max(1, Math.min(plan.conns ?? 50, 1000));
const rate = Math.max(0, plan.rate ?? 0);
const durationMs = Math.max(1, Math.min(plan.durationMs ?? 5000, 120_000));
const maxRequests = Math.max(1, Math.min(plan.maxRequests ?? 1e6, 5e6));
const localAddrs = plan.localAddrs?.length ? plan.localAddrs : [undefined];
const portFirst = plan.portFirst ?? 0; // 0: the kernel chooses
const portCount = Math.max(1, plan.portCount ?? 1);
const portOffset = Math.max(0, plan.portOffset ?? 0);
const timeoutMs = Math.min(plan.timeoutMs ?? 10_000, 60_000);
if (!host) throw new Error('plan.host is required');
if (portFirst && (portFirst < 1024 || portFirst + portCount - 1 > 65535)) throw new Error('local ports must stay within 1024-65535');

const sep = basePath.includes('?') ? '&' : '?';
const head1 = `GET ${basePath}${sep}${tag}=`;
const head2 = ` HTTP/1.1\r\nHost: ${host}${port === 80 ? '' : `:${port}`}\r\nUser-Agent: tcpe-live-load\r\n${short ? 'Connection: close\r\n' : ''}\r\n`;
const CRLFCRLF = Buffer.from('\r\n\r\n');

const result = { sent: 0, ok: 0, errors: 0, statuses: {}, connections: 0, elapsedMs: 0, maxConnRequests: 0, errorSamples: [] };
let connIndex = 0;
let started = 0;
let lastResponse = 0;
let stopping = false;
let active = 0;

function error(msg) {
  result.errors++;
  if (result.errorSamples.length < 10) result.errorSamples.push(msg);
}

/** The next request number, or -1 once the run is over (by count or by time). */
function takeRequest() {
  if (stopping) return -1;
  if (result.sent >= maxRequests || performance.now() - started >= durationMs) {
    stopping = true;
    return -1;
  }
  return result.sent++;
}

/** Milliseconds until request i is due under the rate (0: now). */
function delayOf(i) {
  if (rate === 0) return 0;
  return Math.max(0, started + (i * 1000) / rate - performance.now());
}

function connect() {
  const k = connIndex++;
  result.connections++;
  const opts = { host, port, noDelay: true };
  const addr = localAddrs[k % localAddrs.length];
  if (addr) opts.localAddress = addr;
  if (portFirst) opts.localPort = portFirst + ((portOffset + Math.floor(k / localAddrs.length)) % portCount);
  return net.connect(opts);
}

/**
 * One client: a connection (for short requests, one per request) that sends a request, reads its
 * response (status line, Content-Length, body), and goes on with the next request number.
 */
class Client {
  constructor() {
    this.sock = null;
    this.buf = null; // unparsed bytes
    this.need = -1; // body bytes still to come for the current response; -1: in the head
    this.status = 0;
    this.current = -1; // request number in flight
    this.requests = 0; // on this connection
    this.timer = null;
  }

  start() {
    active++;
    this.next();
  }

  next() {
    const i = takeRequest();
    if (i < 0) return this.finish();
    const wait = delayOf(i);
    if (wait >= 1) setTimeout(() => this.send(i), wait);
    else this.send(i);
  }

  send(i) {
    this.current = i;
    if (!this.sock) this.open();
    this.sock.write(head1 + i + head2, 'latin1');
    this.timer = setTimeout(() => this.fail(`request ${i}: no response in ${timeoutMs} ms`), timeoutMs);
  }

  open() {
    const s = connect();
    this.sock = s;
    this.buf = null;
    this.need = -1;
    this.requests = 0;
    // A short connection is let go once its response is in: what it does afterwards is not ours.
    s.on('data', (chunk) => {
      if (this.sock === s) this.onData(chunk);
    });
    // Between requests (keep-alive) a closed connection is simply replaced by the next request.
    const gone = (why) => {
      if (this.sock !== s) return;
      if (this.current >= 0) return this.fail(`request ${this.current}: ${why}`);
      this.sock = null;
      s.destroy();
    };
    s.on('error', (err) => gone(err.code ?? err.message));
    s.on('close', () => gone('connection closed before the response'));
  }

  onData(chunk) {
    let b = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    this.buf = null;
    while (b.length > 0) {
      if (this.need < 0) {
        const end = b.indexOf(CRLFCRLF);
        if (end < 0) {
          this.buf = b;
          return;
        }
        const headText = b.latin1Slice(0, end);
        this.status = Number(headText.slice(9, 12));
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
        if (!m) return this.fail(`request ${this.current}: response without Content-Length`);
        this.need = Number(m[1]);
        b = b.subarray(end + 4);
      }
      const take = Math.min(this.need, b.length);
      this.need -= take;
      b = b.subarray(take);
      if (this.need > 0) return;
      this.need = -1;
      if (b.length > 0 && short) return this.fail(`request ${this.current}: bytes after the response`);
      this.done();
      if (!this.sock) return; // closed by done() (short connections), the rest ignored
    }
  }

  done() {
    clearTimeout(this.timer);
    result.statuses[this.status] = (result.statuses[this.status] ?? 0) + 1;
    if (this.status === 200) result.ok++;
    else error(`request ${this.current}: status ${this.status}`);
    lastResponse = performance.now();
    this.current = -1;
    this.requests++;
    if (this.requests > result.maxConnRequests) result.maxConnRequests = this.requests;
    if (short) {
      // The server closes after "Connection: close": its FIN is answered by ours (no client TIME_WAIT).
      const s = this.sock;
      this.sock = null;
      s.on('end', () => s.end());
    }
    this.next();
  }

  fail(msg) {
    if (this.current < 0) return;
    clearTimeout(this.timer);
    error(msg);
    this.current = -1;
    const s = this.sock;
    this.sock = null;
    s?.destroy();
    this.next(); // on a new connection
  }

  finish() {
    const s = this.sock;
    this.sock = null;
    s?.end();
    if (--active === 0) finishRun(result.errors === 0 ? 0 : 1);
  }
}

let finished = false;
function finishRun(code) {
  if (finished) return;
  finished = true;
  result.elapsedMs = Math.round((lastResponse || performance.now()) - started);
  process.stdout.write(`DONE ${JSON.stringify(result)}\n`);
  // Let the last FINs go out before exiting.
  setTimeout(() => process.exit(code), 200);
}

setTimeout(() => {
  error('the run overran its bound');
  finishRun(2);
}, durationMs + timeoutMs + 5000).unref();
started = performance.now();
for (let c = 0; c < conns; c++) new Client().start();
