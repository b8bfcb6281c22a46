// `npm run bench -- --only engine --engine-against TREE`: another checkout's engine replays the same capture in
// the same process. What it prints and what it refuses; no figure is judged here (speed is the bench's business).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const RUN = path.resolve(__dirname, '..', 'src', 'bench', 'run.js');
const REPO = path.resolve(__dirname, '..', '..', '..');

function bench(...args: string[]) {
  return spawnSync(process.execPath, [RUN, ...args], { encoding: 'utf8', timeout: 120_000 });
}

describe('bench: engine against another checkout', () => {
  it('refuses a directory without a built engine, and the option without the engine scenario, in one line each', () => {
    const none = bench('--only', 'engine', '--engine-against', '/nonexistent-tree');
    expect(none.status).to.equal(1);
    expect(none.stderr.trim()).to.equal(
      'bench: --engine-against /nonexistent-tree: no built engine there (/nonexistent-tree/core/engine/dist/src/index.js): ' +
        'give a checkout of this project built with npx tsc -b',
    );
    const offline = bench('--only', 'offline', '--engine-against', REPO);
    expect(offline.status).to.equal(1);
    expect(offline.stderr.trim()).to.equal('bench: --engine-against compares the engine scenario: run it too (--only engine)');
  });

  it("runs this checkout's engine against itself and prints both engines' figures and their ratio", function () {
    this.timeout(150_000);
    const r = bench('--only', 'engine', '--engine-against', REPO);
    expect(r.status, r.stderr).to.equal(0);
    const figure = (name: string) => {
      const m = new RegExp(`^${name.replace(/\./g, '\\.')} = ([0-9.]+) `, 'm').exec(r.stdout);
      expect(m, `${name} in\n${r.stdout}`).to.not.equal(null);
      return Number(m![1]);
    };
    expect(figure('engine.against.this_throughput')).to.be.greaterThan(0);
    expect(figure('engine.against.other_throughput')).to.be.greaterThan(0);
    expect(figure('engine.against.ratio')).to.be.greaterThan(0);
  });
});
