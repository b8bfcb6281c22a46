// The heap settings core/cli/bin/tcpcopy.js makes before tcpcopy starts: checked by what they do to V8's
// young generation in a real node process (the bin is loaded with tcpcopy's main stubbed out).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'tcpcopy.js');
const MAIN = path.resolve(__dirname, '..', 'src', 'tcpcopy-main.js');

/**
 * Loads the bin (its main replaced by a no-op) unless `load` is false, allocates objects that survive a
 * few young collections, and returns the young generation's size in MiB.
 */
function youngGenerationMiB(load: boolean, nodeArgs: string[] = []): number {
  const script = `
    const v8 = require('node:v8');
    if (${load}) {
      require.cache[${JSON.stringify(MAIN)}] = { id: ${JSON.stringify(MAIN)}, filename: ${JSON.stringify(MAIN)}, loaded: true, exports: { main() {} } };
      require(${JSON.stringify(BIN)});
    }
    const ring = new Array(200000);
    for (let i = 0; i < 3e6; i++) ring[i % ring.length] = { i, s: 'a' + (i & 1023) };
    const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    process.stdout.write(String(young.space_size / 2 ** 20));
  `;
  const r = spawnSync(process.execPath, [...nodeArgs, '-e', script], { encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).to.equal(0);
  return Number(r.stdout);
}

describe('tcpcopy heap flags (bin/tcpcopy.js)', function () {
  this.timeout(60_000);

  it('keeps the young generation at its initial size where plain node lets it grow', () => {
    const plain = youngGenerationMiB(false);
    const tcpcopy = youngGenerationMiB(true);
    expect(plain, 'plain node grows its young generation under this load').to.be.greaterThan(8);
    expect(tcpcopy).to.be.at.most(2);
  });

  it("leaves a young-generation setting given to node itself alone", () => {
    expect(youngGenerationMiB(true, ['--semi-space-growth-factor=2'])).to.be.greaterThan(8);
  });
});
