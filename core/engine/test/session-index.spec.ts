// The session indexes on their own: sessions chained by (address, port), collisions and growth included.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { Session } from '../src/session/session';
import { ClientIndex, ReplyIndex } from '../src/session/session-index';

/** What the indexes read of a session: its captured client, the client the target sees (addresses as keys), and the links. */
function fake(clientIp: number, clientPort: number, outIp = clientIp, outPort = clientPort, id = 0): Session {
  return {
    id,
    clientIp,
    clientPort,
    clientIpKey: clientIp | 0,
    route: { clientIp: outIp, clientPort: outPort },
    replyIpKey: outIp | 0,
    nextInBucket: null,
    nextInReplyBucket: null,
  } as unknown as Session;
}

function keyed(index: ClientIndex | ReplyIndex, ip: number, port: number): Session[] {
  const out: Session[] = [];
  for (let s = index.first(ip, port); s; s = index.next(s, ip, port)) out.push(s);
  return out;
}

describe('session indexes', () => {
  it('find exactly the sessions of a key, through collisions and several doublings', () => {
    const index = new ClientIndex();
    const all: Session[] = [];
    // 6,000 keys (the index starts with 1,024 buckets), three sessions on every tenth key; high addresses too.
    for (let k = 0; k < 6000; k++) {
      const ip = (k % 2 ? 0xc6336400 : 0x0a000000) + (k >>> 6);
      const copies = k % 10 === 0 ? 3 : 1;
      for (let c = 0; c < copies; c++) {
        const s = fake(ip >>> 0, 1024 + (k & 63) * 911, 0, 0, c);
        index.add(s);
        all.push(s);
      }
    }
    expect(index.size).to.equal(all.length);
    for (const s of all) {
      const found = keyed(index, s.clientIp, s.clientPort);
      expect(found).to.include(s);
      for (const f of found) expect([f.clientIp, f.clientPort]).to.deep.equal([s.clientIp, s.clientPort]);
    }
    expect(keyed(index, 0x0a000000, 1).length, 'a key nobody has').to.equal(0);
    expect(index.all()).to.have.members(all);
  });

  it('deletes a session from the middle, the head and the tail of its chain, once', () => {
    const index = new ReplyIndex();
    const [a, b, c] = [1, 2, 3].map((id) => fake(1, 1, 0xcb007101, 40000, id));
    for (const s of [a, b, c]) index.add(s);
    expect(keyed(index, 0xcb007101, 40000)).to.have.members([a, b, c]);
    expect(index.delete(b)).to.equal(true);
    expect(index.delete(b), 'a second time').to.equal(false);
    expect(keyed(index, 0xcb007101, 40000)).to.have.members([a, c]);
    expect(index.delete(c)).to.equal(true);
    expect(index.delete(a)).to.equal(true);
    expect(keyed(index, 0xcb007101, 40000)).to.deep.equal([]);
    expect(index.size).to.equal(0);
    expect(index.some(() => true)).to.equal(false);
  });

  it('keys the reply index by the address the target sees, not the captured one', () => {
    const index = new ReplyIndex();
    const s = fake(0x0a000001, 5555, 0xcb007102, 6666);
    index.add(s);
    expect(keyed(index, 0xcb007102, 6666)).to.deep.equal([s]);
    expect(keyed(index, 0x0a000001, 5555)).to.deep.equal([]);
  });

  it("keeps code optimized around a lookup when the index first grows (V8's constant-field assumption)", function () {
    this.timeout(30_000);
    // A fresh process: in this one an earlier test may already have grown an index.
    const module = path.resolve(__dirname, '..', 'src', 'session', 'session-index.js');
    const script = `
      const { ClientIndex } = require(${JSON.stringify(module)});
      const index = new ClientIndex();
      const fake = (i) => ({ clientIp: 0x0a000000 + i, clientIpKey: 0x0a000000 + i, clientPort: 1000 + (i & 1023), nextInBucket: null });
      for (let i = 0; i < 100; i++) index.add(fake(i));
      function lookups() {
        let n = 0;
        for (let i = 0; i < 100; i++) if (index.first(0x0a000000 + i, 1000 + (i & 1023))) n++;
        return n;
      }
      %PrepareFunctionForOptimization(lookups);
      lookups();
      %OptimizeFunctionOnNextCall(lookups);
      lookups();
      const optimized = () => (%GetOptimizationStatus(lookups) & 16) !== 0;
      const before = optimized();
      for (let i = 100; i < 3000; i++) index.add(fake(i)); // past the first 1,024 buckets
      const found = lookups();
      process.stdout.write(JSON.stringify({ before, after: optimized(), found }));
    `;
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout)).to.deep.equal({ before: true, after: true, found: 100 });
  });
});
