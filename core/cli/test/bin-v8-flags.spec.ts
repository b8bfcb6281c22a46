// The V8 flags the bin scripts set before the tools load (bin/v8-flags.js): which ones each asks for, and that a
// flag given to node itself is left alone. Read in a real node process, the tool's main stubbed out and V8's
// setFlagsFromString recording its calls.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const BIN_DIR = path.resolve(__dirname, '..', '..', 'bin');
const SRC = path.resolve(__dirname, '..', 'src');

function flagsSetBy(tool: 'tcpcopy' | 'intercept', nodeArgs: string[] = []): string[] {
  const main = path.join(SRC, `${tool}-main.js`);
  const script = `
    const v8 = require('node:v8');
    const set = [];
    const real = v8.setFlagsFromString;
    v8.setFlagsFromString = (f) => { set.push(f); real(f); };
    require.cache[${JSON.stringify(main)}] = { id: ${JSON.stringify(main)}, filename: ${JSON.stringify(main)}, loaded: true, exports: { main() {} } };
    require(${JSON.stringify(path.join(BIN_DIR, `${tool}.js`))});
    process.stdout.write(JSON.stringify(set));
  `;
  const r = spawnSync(process.execPath, [...nodeArgs, '-e', script], { encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).to.equal(0);
  return JSON.parse(r.stdout) as string[];
}

describe('V8 flags of the bin scripts', function () {
  this.timeout(60_000);

  it('tcpcopy: a small young generation, a tight old one, and the lower interrupt budget', () => {
    expect(flagsSetBy('tcpcopy')).to.deep.equal(['--semi-space-growth-factor=1', '--heap-growing-percent=30', '--interrupt-budget=8192']);
  });

  it('intercept: the lower interrupt budget', () => {
    expect(flagsSetBy('intercept')).to.deep.equal(['--interrupt-budget=8192']);
  });

  it('leaves a flag given to node alone (either spelling), and sets the others', () => {
    expect(flagsSetBy('intercept', ['--interrupt_budget=100000'])).to.deep.equal([]);
    expect(flagsSetBy('tcpcopy', ['--interrupt-budget=100000'])).to.deep.equal(['--semi-space-growth-factor=1', '--heap-growing-percent=30']);
  });
});
