import { CLOSE_TAG } from '@tcpcopy/core';
import { fuzzSpec } from '@tcpcopy/core/fuzz';
import { expect } from 'chai';
import { ChunkedDecoder, CONTINUE_TAG_BASE, RAW_TAG } from '../src';
import { b, chunked, Driver, get, ok, post } from './helpers';
import { suite as requestFramer } from './request-framer.fuzz';
import { suite as responseTracker } from './response-tracker.fuzz';

// Each decoder on its own: properties shared with `npm run fuzz` (request-framer.fuzz.ts, response-tracker.fuzz.ts).
fuzzSpec(requestFramer);
fuzzSpec(responseTracker);

/** Small deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SAMPLES = [
  b(get('/a', 'Accept: */*\r\n')),
  post('/p', 'x'.repeat(300), 'Expect: 100-continue\r\n'),
  Buffer.concat([b('PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked(['abc', 'x'.repeat(500)], 'T: 1\r\n')]),
  b(get('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\n')),
  b('CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n'),
  b('HEAD / HTTP/1.0\r\n\r\n'),
];
const RESPONSES = [
  ok('x'.repeat(700)),
  b('HTTP/1.1 100 Continue\r\n\r\n'),
  b('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n'),
  Buffer.concat([b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked(['12345', 'y'.repeat(900)])]),
  b('HTTP/1.0 200 OK\r\n\r\nclose-delimited'),
  b('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n'),
];
const OPTIONS: Array<Record<string, string>> = [
  {},
  { 'set-header': 'Host: t\nX-R: 1', 'remove-header': 'Accept' },
  { 'deny-url': '^/p', 'allow-method': 'GET,PUT,POST,CONNECT' },
  { 'allow-header': 'Upgrade: .', 'deny-header': 'Expect: .' },
];

function randomBytes(r: () => number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  // Mostly HTTP-ish characters, so the parsers get past their first byte now and then.
  const alphabet = b('GET POST HTTP/1.1\r\n\r\n:0123456789abcdef; \t-\x00\xff');
  for (let i = 0; i < n; i++) out[i] = r() < 0.7 ? alphabet[(r() * alphabet.length) | 0] : (r() * 256) | 0;
  return out;
}

/** A stream of requests (some mutated) with garbage between them. */
function clientStream(r: () => number): Buffer {
  const parts: Buffer[] = [];
  const n = 1 + ((r() * 6) | 0);
  for (let i = 0; i < n; i++) {
    const x = r();
    if (x < 0.5) parts.push(SAMPLES[(r() * SAMPLES.length) | 0]);
    else if (x < 0.8) {
      const m = Buffer.from(SAMPLES[(r() * SAMPLES.length) | 0]);
      for (let k = 0; k < 3; k++) m[(r() * m.length) | 0] = (r() * 256) | 0;
      parts.push(m);
    } else parts.push(randomBytes(r, (r() * 400) | 0));
  }
  return Buffer.concat(parts);
}

describe('http protocol: robustness', function () {
  this.timeout(20_000);

  it('never throws on random and mutated input on both sides (4000 sessions)', () => {
    const r = rng(20240521);
    let emitted = 0;
    for (let iter = 0; iter < 4000; iter++) {
      const d = new Driver(OPTIONS[iter % OPTIONS.length], { sawHandshake: r() < 0.5 });
      const stream = clientStream(r);
      const tags = [1, 2, 3, CONTINUE_TAG_BASE + 1, RAW_TAG, CLOSE_TAG];
      try {
        for (let i = 0; i < stream.length; ) {
          const n = 1 + ((r() * 300) | 0);
          d.client(stream.subarray(i, i + n), (r() * 5000) | 0);
          i += n;
          const y = r();
          if (y < 0.3) {
            const resp = RESPONSES[(r() * RESPONSES.length) | 0];
            const cut = (r() * resp.length) | 0;
            // Sometimes shorter data than the reply's length (intercept's cut).
            d.target(resp.subarray(0, cut), r() < 0.2 ? cut + ((r() * 3000) | 0) : cut);
            d.target(resp.subarray(cut));
          } else if (y < 0.4) d.target(randomBytes(r, (r() * 200) | 0));
          else if (y < 0.45) d.targetFin().reconnect();
          d.may(tags[(r() * tags.length) | 0], (r() * 10000) | 0);
        }
        d.s.onClose!();
      } catch (err) {
        throw new Error(`iteration ${iter}: ${(err as Error).stack}`);
      }
      for (const e of d.emits) expect(e.tag, `iteration ${iter}`).to.be.at.least(0);
      emitted += d.emits.length;
    }
    expect(emitted).to.be.greaterThan(1000);
  });

  it('forwards valid traffic byte for byte whatever the segmentation (no options)', () => {
    const r = rng(7);
    for (let iter = 0; iter < 500; iter++) {
      const parts: Buffer[] = [];
      for (let i = 0, n = 1 + ((r() * 5) | 0); i < n; i++) parts.push(SAMPLES[(r() * 3) | 0]);
      const all = Buffer.concat(parts);
      const d = new Driver();
      for (let i = 0; i < all.length; ) {
        const n = 1 + ((r() * 200) | 0);
        d.client(all.subarray(i, i + n));
        i += n;
      }
      expect(d.all().equals(all), `iteration ${iter}`).to.equal(true);
      expect(d.tags().filter((t) => t < CONTINUE_TAG_BASE), `iteration ${iter}`).to.deep.equal(parts.map((_, i) => i + 1));
    }
  });

  it('the chunked decoder stops at the body end or the offending byte, for any split', () => {
    const r = rng(99);
    const good = Buffer.concat([chunked(['a', 'b'.repeat(300), 'c'.repeat(17)], 'X: 1\r\nY: 2\r\n'), b('NEXT')]);
    const end = good.length - 4;
    for (let iter = 0; iter < 300; iter++) {
      const c = new ChunkedDecoder();
      let at = -1;
      for (let i = 0; i < good.length && at < 0; ) {
        const n = 1 + ((r() * 40) | 0);
        const j = c.feed(good, i, Math.min(good.length, i + n));
        if (c.done) at = j;
        i = j;
      }
      expect(at).to.equal(end);
    }
    const bad = new ChunkedDecoder();
    expect(bad.feed(b('5\r\nabcdeX'), 0, 9)).to.equal(8);
    expect(bad.failed).to.equal(true);
    expect(bad.error).to.equal('CRLF expected after chunk data');
    const big = new ChunkedDecoder();
    big.feed(b('fffffffffffff\r\n'), 0, 15);
    expect(big.error).to.equal('chunk size too large');
  });
});
