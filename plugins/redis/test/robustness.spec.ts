import { loadProtocol } from '@tcpcopy/core';
import { fuzzSpec } from '@tcpcopy/core/fuzz';
import { expect } from 'chai';
import * as path from 'node:path';
import { createProtocol, DEFAULT_REPLY_BYTES } from '../src';
import { suite as replyParser } from './reply-parser.fuzz';
import { suite as requestParser } from './request-parser.fuzz';
import { cmd, prng, rig } from './support';

// Each parser on its own: properties shared with `npm run fuzz` (request-parser.fuzz.ts, reply-parser.fuzz.ts).
fuzzSpec(requestParser);
fuzzSpec(replyParser);

/** Valid traffic to mutate: multibulk and inline commands, replies of every type. */
const CLIENT_SAMPLE = Buffer.concat([
  cmd('AUTH', 'pw'),
  cmd('SET', 'k', 'v\r\n*1\r\n'),
  Buffer.from('PING\r\nSET a "b c"\r\n'),
  cmd('MULTI'),
  cmd('INCR', 'n'),
  cmd('EXEC'),
  cmd('HELLO', '3', 'AUTH', 'u', 'p'),
  cmd('SELECT', '3'),
  cmd('CLIENT', 'REPLY', 'OFF'),
]);
const SERVER_SAMPLE = Buffer.from(
  '+OK\r\n-ERR x\r\n:1\r\n$3\r\nabc\r\n*2\r\n$-1\r\n*1\r\n:2\r\n%1\r\n+a\r\n_\r\n>2\r\n+m\r\n+n\r\n|1\r\n+k\r\n+v\r\n~1\r\n#t\r\n$?\r\n;1\r\na\r\n;0\r\n',
  'latin1',
);

function mutate(sample: Buffer, rnd: () => number): Buffer {
  const b = Buffer.from(sample);
  const edits = 1 + Math.floor(rnd() * 4);
  for (let e = 0; e < edits; e++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
  const from = Math.floor(rnd() * b.length);
  return b.subarray(from);
}

function randomBytes(rnd: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  // Mostly RESP-ish bytes, so the parsers get deep before failing.
  const alphabet = Buffer.from('*$+-:\r\n0123456789?;.%>|~_#,(!=abcAUTHhello ', 'latin1');
  for (let i = 0; i < n; i++) b[i] = rnd() < 0.8 ? alphabet[Math.floor(rnd() * alphabet.length)] : Math.floor(rnd() * 256);
  return b;
}

describe('redis robustness', () => {
  it('never throws on garbage or mangled traffic, in either direction, and loses no client byte when in sync', () => {
    const rnd = prng(20260521);
    const seen = { commands: 0, passthrough: 0, resynced: 0, lostReplies: 0 };
    for (let round = 0; round < 1500; round++) {
      const sawHandshake = rnd() < 0.5;
      const withPassword = rnd() < 0.5;
      const r = rig(withPassword ? { password: 'pw' } : {}, sawHandshake);
      const input = rnd() < 0.5 ? randomBytes(rnd, 1 + Math.floor(rnd() * 300)) : mutate(CLIENT_SAMPLE, rnd);
      let sent = 0;
      let serverBytes = 0;
      r.s.onConnect!({ resumed: !sawHandshake });
      while (sent < input.length) {
        const n = 1 + Math.floor(rnd() * 40);
        r.client(input.subarray(sent, sent + n), serverBytes);
        sent += n;
        const reply = rnd() < 0.5 ? randomBytes(rnd, Math.floor(rnd() * 60)) : mutate(SERVER_SAMPLE, rnd);
        r.target(reply, reply.length + (rnd() < 0.2 ? Math.floor(rnd() * 3000) : 0));
        serverBytes += reply.length;
        for (let t = -1; t <= r.ctx.emitted.length + 1; t++) r.may(t, serverBytes, Math.floor(rnd() * serverBytes));
        if (rnd() < 0.05) r.s.onConnect!({ resumed: true });
      }
      r.s.onClose!();
      const logs = r.ctx.logs.join('\n');
      seen.commands += r.ctx.emitted.filter((e) => e.tag > 0).length;
      if (/not RESP/.test(logs)) seen.passthrough++;
      if (/skipped \d+ bytes/.test(logs)) seen.resynced++;
      if (/lost the thread/.test(logs)) seen.lostReplies++;
      if (withPassword) continue; // credentials change lengths; the rest is checked below
      // Unchanged bytes: the client's stream from where it was in sync, up to an incomplete last command.
      const out = Buffer.concat(r.ctx.emitted.filter((e) => e.tag !== 0).map((e) => e.data));
      const at = sawHandshake ? 0 : input.indexOf(out);
      expect(at >= 0 && input.subarray(at, at + out.length).equals(out), `round ${round}`).to.equal(true);
    }
    // The rounds reached every path: framing, pass-through, resynchronisation, lost replies.
    for (const [path, n] of Object.entries(seen)) expect(n, path).to.be.greaterThan(20);
  });

  it('takes a pipeline of many thousand commands without quadratic work', () => {
    const r = rig();
    const one = cmd('INCR', 'counter');
    const n = 50_000;
    const start = process.hrtime.bigint();
    r.client(Buffer.concat(Array.from({ length: n }, () => one)), 0);
    r.client(cmd('GET', 'counter'), 10);
    for (let t = 1; t <= n; t++) r.may(t);
    const reply = Buffer.from(':1\r\n');
    for (let i = 0; i < n; i++) r.target(reply);
    expect(r.may(n + 1)).to.equal(true);
    expect(Number(process.hrtime.bigint() - start) / 1e6).to.be.below(3000);
  });
});

describe('redis options and loading', () => {
  it('is loaded by package name with its options, as tcpcopy loads it', () => {
    const repo = path.resolve(__dirname, '..', '..', '..', '..');
    const p = loadProtocol('tcpcopy-protocol-redis', { password: 'pw', replyBytes: '4096' }, { from: repo });
    expect(p.name).to.equal('redis');
    expect(p.replyPayloadBytes).to.equal(4096);
  });

  it('defaults to parsing whole reply packets', () => {
    expect(createProtocol().replyPayloadBytes).to.equal(DEFAULT_REPLY_BYTES);
    expect(DEFAULT_REPLY_BYTES).to.equal(65000);
  });

  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ pasword: 'x' }, /unknown option "pasword".*password, user, replyBytes/],
    [{ user: 'u' }, /user needs password/],
    [{ password: '' }, /password is empty/],
    [{ password: 'a\nb' }, /password was given more than once/],
    [{ replyBytes: '0' }, /replyBytes must be a whole number from 1 to 65000/],
    [{ replyBytes: '70000' }, /replyBytes/],
    [{ replyBytes: '2k' }, /replyBytes/],
  ];
  for (const [opts, re] of bad) {
    it(`refuses ${JSON.stringify(opts)}`, () => {
      expect(() => createProtocol(opts)).to.throw(re);
      const repo = path.resolve(__dirname, '..', '..', '..', '..');
      expect(() => loadProtocol('tcpcopy-protocol-redis', opts, { from: repo })).to.throw(/rejected its options/);
    });
  }
});
