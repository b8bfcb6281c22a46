// The live comparison's parts that need no namespaces: which flavour a build directory holds, the
// scenario picker, the side-by-side plans, and the table's medians, ratios and goals.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inNet, sideBySidePlan, type LiveRunResult } from '../src/bench/live-run';
import { comparisonTable, goalLines, median } from '../src/bench/live-report';
import { pickScenarios, LIVE_SCENARIOS } from '../src/bench/live-scenarios';
import { buildIn } from '../src/bench/tool-flavours';
import { TaggedLineCounter } from '../src/harness/live-load';

function run(build: string, over: Partial<LiveRunResult>): LiveRunResult {
  return {
    scenario: 'short_500', build, sent: 5000, ok: 5000, loadErrors: 0, onlineN: 5000, targetN: 5000, loss: 0, rate: 500,
    tcpcopyCpuPer10k: 1, interceptCpuPer10k: 1, tcpcopyCpuPer10kAfterWarmUp: 1, interceptCpuPer10kAfterWarmUp: 1, tcpcopyPeakRssMiB: 50, interceptPeakRssMiB: 50, interceptStartRssMiB: 40,
    settledMs: 300, survived: true, tcpcopyWords: '', interceptWords: '', loadNote: '', ...over,
  };
}

describe('bench: live comparison', () => {
  describe('buildIn', () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpe-bench-build-'));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
    const script = (name: string, says: string) => fs.writeFileSync(path.join(dir, name), `#!/bin/sh\necho '${says}'\n`, { mode: 0o755 });

    it('tells the C tool by its "-v" answer', () => {
      script('tcpcopy', 'tcpcopy version:1.3.0');
      script('intercept', 'intercept version:1.0.0');
      const b = buildIn(dir);
      expect(b).to.include({ kind: 'c', label: 'c', tcpcopy: path.join(dir, 'tcpcopy'), intercept: path.join(dir, 'intercept') });
    });

    it('tells ours by a bare version, and takes a label', () => {
      script('tcpcopy', '0.1.0');
      script('intercept', '0.1.0');
      expect(buildIn(dir, undefined, 'v0.1')).to.include({ kind: 'ours', label: 'v0.1' });
    });

    it('refuses a directory without both executables, naming what is missing', () => {
      script('tcpcopy', '0.1.0');
      expect(() => buildIn(dir)).to.throw(/no executable intercept in .*wrapper scripts/);
    });

    it('refuses an answer it cannot place unless the flavour is given', () => {
      script('tcpcopy', 'something else');
      script('intercept', 'x');
      expect(() => buildIn(dir)).to.throw(/--compare-flavour c or ours/);
      expect(buildIn(dir, 'c').kind).to.equal('c');
    });
  });

  it('picks scenarios by name and refuses unknown ones', () => {
    expect(pickScenarios(undefined)).to.equal(LIVE_SCENARIOS);
    expect(pickScenarios('conc10000, short_500').map((s) => s.name)).to.deep.equal(['short_500', 'conc10000']);
    expect(() => pickScenarios('short_500,nope')).to.throw(/unknown live scenario nope/);
  });

  it('takes medians over finite values only', () => {
    expect(median([3, 1, 2])).to.equal(2);
    expect(median([4, 1, NaN, 2, 3])).to.equal(2.5);
    expect(median([])).to.be.NaN;
  });

  it('prints per build the medians and a row of ratios ours/theirs', () => {
    const results = [
      run('ours', { tcpcopyCpuPer10k: 3, tcpcopyCpuPer10kAfterWarmUp: 2, loss: 0 }),
      run('ours', { tcpcopyCpuPer10k: 5, tcpcopyCpuPer10kAfterWarmUp: 3, loss: 0.01 }),
      run('c', { tcpcopyCpuPer10k: 2, interceptPeakRssMiB: 25 }),
    ];
    const lines = comparisonTable(results, ['short_500'], ['ours', 'c']).split('\n');
    const row = (build: string) => lines.find((l) => l.split(/\s+/)[1] === build)!.trim().split(/\s{2,}/);
    expect(row('ours')).to.deep.equal(['short_500', 'ours', '2', '500', '0.50 % (0.00 %-1.00 %)', '4.00', '1.00', '2.50', '1.00', '50', '50']);
    expect(row('ours/c')).to.deep.equal(['short_500', 'ours/c', '1.00', '2.00', '1.00', '2.50', '1.00', '1.00', '2.00']);
  });

  it('names the goals a build misses', () => {
    const results = [
      run('ours', { tcpcopyCpuPer10k: 1.6, tcpcopyCpuPer10kAfterWarmUp: 1.3, interceptPeakRssMiB: 100, loss: 0.002 }),
      run('c', { tcpcopyCpuPer10k: 1 }),
      run('ours', { scenario: 'conc10000', tcpcopyPeakRssMiB: 150 }),
      run('c', { scenario: 'conc10000' }),
    ];
    const [short, conc] = goalLines(results, ['short_500', 'conc10000'], 'ours', 'c');
    expect(short).to.match(/loss up to 0\.20 %/).and.match(/intercept RSS 100 > 80 MiB/).and.match(/tcpcopy CPU 1\.60x c \(1\.30x from 3 s\)/);
    expect(conc).to.equal('conc10000: all goals met');
  });

  it('gives two builds side by side disjoint fake clients, each inside the net its intercept captures, and two ports', () => {
    const base = { port: 80, target: '198.51.100.30', assistant: '198.51.100.40', fakeClients: '203.0.113.x' };
    const plans = [sideBySidePlan(base, 0), sideBySidePlan(base, 1)];
    const lists = plans.map((p) => p.fakeClients.split(','));
    for (const [i, p] of plans.entries()) {
      expect(lists[i]).to.have.length(126);
      for (const ip of lists[i]) expect(inNet(ip, p.fakeNet!), `${ip} in ${p.fakeNet}`).to.equal(true);
      for (const ip of lists[1 - i]) expect(inNet(ip, p.fakeNet!), `${ip} not in ${p.fakeNet}`).to.equal(false);
    }
    expect(plans[0].interceptPort).to.not.equal(plans[1].interceptPort);
    expect(plans.map((p) => p.target)).to.deep.equal([base.target, base.target]);
  });

  it("counts a run's lines in the target's log, and each lane's by its client address", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-log-'));
    try {
      const file = path.join(dir, 'access.log');
      const line = (ip: string, tag: string) => `${ip} 40000 1 1 "GET /blob/1k?${tag}=7 HTTP/1.1" 200\n`;
      fs.writeFileSync(file, '');
      const nets = ['203.0.113.0/25', '203.0.113.128/25'];
      const counter = new TaggedLineCounter(file, 'r0', (l) => nets.findIndex((n) => inNet(l.slice(0, l.indexOf(' ')), n)), 2);
      fs.appendFileSync(file, line('203.0.113.5', 'r0') + line('203.0.113.200', 'r0') + line('203.0.113.130', 'r0') + line('203.0.113.6', 'r1'));
      expect(counter.count()).to.equal(3);
      expect([counter.countIn(0), counter.countIn(1)]).to.deep.equal([1, 2]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
