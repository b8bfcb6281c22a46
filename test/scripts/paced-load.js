#!/usr/bin/env node
'use strict';
// A paced HTTP load for live tests, run with `node` inside the client namespace.
// usage: node paced-load.js --url http://HOST:PORT/path --requests N --rate R --conns C [--keepalive] [--timeout-ms T]
// Sends N GET requests at about R per second over C connections (short ones with "Connection: close",
// or C keep-alive connections), each URL made unique with ?i=<n>. Prints "DONE {json}" and exits 0
// when every response was a 200, 1 otherwise. Bounded by --timeout-ms (default 60000).
const http = require('node:http');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const url = new URL(arg('url'));
const total = Math.min(Number(arg('requests', '100')), 1_000_000);
const rate = Math.max(1, Number(arg('rate', '100')));
const conns = Math.max(1, Math.min(Number(arg('conns', '4')), 512));
const keepAlive = process.argv.includes('--keepalive');
const timeoutMs = Math.min(Number(arg('timeout-ms', '60000')), 600_000);
const tag = arg('tag', 'load');

const agent = new http.Agent({ keepAlive, maxSockets: conns, maxFreeSockets: conns });
const result = { sent: 0, ok: 0, errors: 0, statuses: {} };
let finished = 0;
const started = Date.now();

function one(i) {
  result.sent++;
  const req = http.request(
    { host: url.hostname, port: url.port || 80, path: `${url.pathname}?${tag}=${i}`, agent, headers: keepAlive ? {} : { Connection: 'close' } },
    (res) => {
      result.statuses[res.statusCode] = (result.statuses[res.statusCode] ?? 0) + 1;
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) result.ok++;
        else result.errors++;
        done();
      });
    },
  );
  req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  req.on('error', () => {
    result.errors++;
    done();
  });
  req.end();
}

function done() {
  if (++finished === total) finish(result.errors === 0 ? 0 : 1);
}

function finish(code) {
  result.elapsedMs = Date.now() - started;
  process.stdout.write(`DONE ${JSON.stringify(result)}\n`);
  process.exit(code);
}

setTimeout(() => finish(2), timeoutMs).unref();
let next = 0;
const interval = 1000 / rate;
const timer = setInterval(() => {
  // Catch up to the schedule in case the timer ran late.
  const due = Math.min(total, Math.floor((Date.now() - started) / interval) + 1);
  while (next < due) one(next++);
  if (next >= total) clearInterval(timer);
}, Math.max(1, Math.floor(interval)));
