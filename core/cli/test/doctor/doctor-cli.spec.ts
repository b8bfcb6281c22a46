// `tcpcopy doctor` and `intercept doctor` as commands, without root: help, and bad usage as one line
// with exit code 2. What they find is tested in the namespace topology (test/test/doctor.e2e.spec.ts).
import { expect } from 'chai';
import { runCommand as run } from '../support/commands';
import type { Run } from '../support/process';

function expectUsageError(r: Run, prefix: string, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(2);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0].startsWith(`${prefix} doctor: `), lines[0]).to.equal(true);
  expect(lines[0]).to.match(pattern);
  expect(r.stdout).to.equal('');
}

describe('doctor commands', () => {
  it('--help of both commands points to doctor; doctor --help says what it checks', () => {
    expect(run('tcpcopy', ['--help']).stdout).to.contain('tcpcopy doctor');
    expect(run('intercept', ['--help']).stdout).to.contain('intercept doctor');
    const t = run('tcpcopy', ['doctor', '--help']);
    expect(t.code).to.equal(0);
    for (const word of ['CAP_NET_RAW', 'conntrack', 'probe', 'SYN-ACK', 'RST', 'Exit code']) expect(t.stdout).to.contain(word);
    const i = run('intercept', ['doctor', '-h']);
    expect(i.code).to.equal(0);
    for (const word of ['ip_forward', 'reverse-path', 'conntrack', 'channel protocol']) expect(i.stdout).to.contain(word);
  });

  it('refuses bad usage with one line and exit code 2', () => {
    expectUsageError(run('tcpcopy', ['doctor', '-s', '192.0.2.1']), 'tcpcopy', /-x.*not specified.*tcpcopy doctor --help/);
    expectUsageError(run('tcpcopy', ['doctor', '-x', '80', '-s', '192.0.2.1']), 'tcpcopy', /no "-" between/);
    expectUsageError(run('tcpcopy', ['doctor', '-x', '80-192.0.2.2:80', '-s', '192.0.2.1', '-c', 'nope']), 'tcpcopy', /-c nope/);
    expectUsageError(run('tcpcopy', ['doctor', '-x', '80-192.0.2.2:80', '-s', '192.0.2.1:99999']), 'tcpcopy', /intercept address/);
    expectUsageError(run('intercept', ['doctor', '-p', '0']), 'intercept', /port "0" is out of range/);
    expectUsageError(run('intercept', ['doctor', '--bogus']), 'intercept', /unknown option '--bogus'/);
    expectUsageError(run('intercept', ['doctor', '-b', 'here']), 'intercept', /bind address "here"/);
  });
});
