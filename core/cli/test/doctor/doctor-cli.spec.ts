// `tcpcopy doctor` and `intercept doctor` as commands, without root: help, and bad usage as one line
// with exit code 2. What they find is tested in the namespace topology (test/test/doctor.e2e.spec.ts).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../../../..');
const TCPCOPY = path.join(ROOT, 'core/cli/bin/tcpcopy.js');
const INTERCEPT = path.join(ROOT, 'core/cli/bin/intercept.js');

function run(bin: string, args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectUsageError(r: ReturnType<typeof run>, prefix: string, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(2);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0].startsWith(`${prefix} doctor: `), lines[0]).to.equal(true);
  expect(lines[0]).to.match(pattern);
  expect(r.stdout).to.equal('');
}

describe('doctor commands', () => {
  it('--help of both commands points to doctor; doctor --help says what it checks', () => {
    expect(run(TCPCOPY, ['--help']).stdout).to.contain('tcpcopy doctor');
    expect(run(INTERCEPT, ['--help']).stdout).to.contain('intercept doctor');
    const t = run(TCPCOPY, ['doctor', '--help']);
    expect(t.code).to.equal(0);
    for (const word of ['CAP_NET_RAW', 'conntrack', 'probe', 'SYN-ACK', 'RST', 'Exit code']) expect(t.stdout).to.contain(word);
    const i = run(INTERCEPT, ['doctor', '-h']);
    expect(i.code).to.equal(0);
    for (const word of ['ip_forward', 'reverse-path', 'conntrack', 'channel protocol']) expect(i.stdout).to.contain(word);
  });

  it('refuses bad usage with one line and exit code 2', () => {
    expectUsageError(run(TCPCOPY, ['doctor', '-s', '192.0.2.1']), 'tcpcopy', /-x.*not specified.*tcpcopy doctor --help/);
    expectUsageError(run(TCPCOPY, ['doctor', '-x', '80', '-s', '192.0.2.1']), 'tcpcopy', /no "-" between/);
    expectUsageError(run(TCPCOPY, ['doctor', '-x', '80-192.0.2.2:80', '-s', '192.0.2.1', '-c', 'nope']), 'tcpcopy', /-c nope/);
    expectUsageError(run(TCPCOPY, ['doctor', '-x', '80-192.0.2.2:80', '-s', '192.0.2.1:99999']), 'tcpcopy', /intercept address/);
    expectUsageError(run(INTERCEPT, ['doctor', '-p', '0']), 'intercept', /port "0" is out of range/);
    expectUsageError(run(INTERCEPT, ['doctor', '--bogus']), 'intercept', /unknown option '--bogus'/);
    expectUsageError(run(INTERCEPT, ['doctor', '-b', 'here']), 'intercept', /bind address "here"/);
  });
});
