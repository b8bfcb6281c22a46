// What the auth specs share: the folder of an installed package (its internals sit behind an exports map,
// so the peers' own implementations are loaded by path), and deterministic bytes for scrambles and nonces.
import fs from 'node:fs';
import path from 'node:path';

export function packageDir(name: string): string {
  let dir = path.dirname(require.resolve(name));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === name) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`package.json of ${name} not found`);
    dir = up;
  }
}

/** Deterministic bytes (mulberry32). */
export function seededBytes(seed: number): (n: number) => Buffer {
  let a = seed >>> 0;
  return (n: number) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      out[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
    }
    return out;
  };
}
