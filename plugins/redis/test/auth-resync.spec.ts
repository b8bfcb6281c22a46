import { expect } from 'chai';
import { PRELUDE_TAG } from '../src';
import { cmd, rig } from './support';

describe('redis credentials', () => {
  it('rewrites AUTH <password> to the configured password', () => {
    const r = rig({ password: 'target-secret' });
    r.client(Buffer.concat([cmd('AUTH', 'online-pw'), cmd('GET', 'a')]));
    expect(r.ctx.emitted.map((e) => e.data.toString())).to.deep.equal([`${cmd('AUTH', 'target-secret')}`, `${cmd('GET', 'a')}`]);
    expect(r.ctx.emitted.map((e) => e.tag)).to.deep.equal([1, 2]);
  });

  it('rewrites AUTH <user> <password>, keeping the client user unless one is configured', () => {
    const keep = rig({ password: 'new' });
    keep.client(cmd('auth', 'alice', 'old'));
    expect(keep.ctx.bytes().toString()).to.equal(`${cmd('auth', 'alice', 'new')}`);
    const configured = rig({ password: 'new', user: 'replayer' });
    configured.client(Buffer.concat([cmd('AUTH', 'alice', 'old'), cmd('AUTH', 'old')]));
    expect(configured.ctx.bytes().toString()).to.equal(`${cmd('AUTH', 'replayer', 'new')}${cmd('AUTH', 'replayer', 'new')}`);
  });

  it('rewrites an AUTH split over packets, and an inline one', () => {
    const r = rig({ password: 'pw2' });
    const auth = cmd('AUTH', 'a-rather-long-online-password');
    for (let i = 0; i < auth.length; i++) r.client(auth.subarray(i, i + 1));
    r.client('AUTH "quoted old"\r\n');
    expect(r.ctx.emitted.map((e) => e.data.toString())).to.deep.equal([`${cmd('AUTH', 'pw2')}`, `${cmd('AUTH', 'pw2')}`]);
  });

  it('rewrites the AUTH of a HELLO, leaving its other arguments', () => {
    const r = rig({ password: 'new', user: 'u2' });
    r.client(cmd('HELLO', '3', 'AUTH', 'u1', 'old', 'SETNAME', 'auth'));
    r.client(cmd('HELLO', '2'));
    expect(r.ctx.emitted.map((e) => e.data.toString())).to.deep.equal([
      `${cmd('HELLO', '3', 'AUTH', 'u2', 'new', 'SETNAME', 'auth')}`,
      `${cmd('HELLO', '2')}`,
    ]);
  });

  it('leaves AUTH alone without a configured password, and malformed AUTHs always', () => {
    const plain = rig();
    plain.client(Buffer.concat([cmd('AUTH', 'pw'), cmd('HELLO', '3', 'AUTH', 'u', 'p')]));
    expect(plain.ctx.bytes().equals(Buffer.concat([cmd('AUTH', 'pw'), cmd('HELLO', '3', 'AUTH', 'u', 'p')]))).to.equal(true);
    const odd = rig({ password: 'x' });
    odd.client(Buffer.concat([cmd('AUTH'), cmd('AUTH', 'a', 'b', 'c')]));
    expect(odd.ctx.bytes().equals(Buffer.concat([cmd('AUTH'), cmd('AUTH', 'a', 'b', 'c')]))).to.equal(true);
  });
});

describe('redis resumed connections', () => {
  it('logs in before the commands of a connection captured mid-stream, and does not count that reply', () => {
    const r = rig({ password: 'pw' }, false);
    r.client(Buffer.concat([cmd('GET', 'a')]), 0);
    expect(r.s.onConnect!({ resumed: true })).to.equal(true);
    r.client(cmd('GET', 'b'), 10);
    expect(r.ctx.emitted.map((e) => [e.tag, e.data.toString()])).to.deep.equal([
      [1, `${cmd('GET', 'a')}`],
      [PRELUDE_TAG, `${cmd('AUTH', 'pw')}`],
      [2, `${cmd('GET', 'b')}`],
    ]);
    expect(r.may(PRELUDE_TAG)).to.equal(true);
    expect(r.may(1)).to.equal(true);
    r.target('+OK\r\n'); // the AUTH's
    expect(r.may(2)).to.equal(false);
    r.target('$1\r\nA\r\n');
    expect(r.may(2)).to.equal(true);
  });

  it('logs the target refusing the configured password', () => {
    const r = rig({ password: 'bad' }, false);
    r.s.onConnect!({ resumed: true });
    r.target('-WRONGPASS invalid username-password pair or user is disabled.\r\n');
    expect(r.ctx.logs.join('\n')).to.match(/refused.*WRONGPASS/);
  });

  it('skips to the first whole command when the capture starts inside one', () => {
    const tail = Buffer.from('lue\r\n$5\r\n*1\r\nx\r\n'); // the end of an RPUSH, with a '*' in a value
    const stream = Buffer.concat([tail, cmd('SET', 'k', '*2\r\n$3\r\nGET'), cmd('INCR', 'n'), Buffer.from('PING\r\n')]);
    const want = [cmd('SET', 'k', '*2\r\n$3\r\nGET'), cmd('INCR', 'n'), Buffer.from('PING\r\n')].map(String);
    const whole = rig({}, false);
    whole.client(stream);
    expect(whole.ctx.emitted.map((e) => e.data.toString('latin1'))).to.deep.equal(want);
    expect(whole.ctx.logs.join('\n')).to.match(new RegExp(`skipped ${tail.length} bytes`));
    for (let cut = 1; cut < stream.length; cut++) {
      const r = rig({}, false);
      r.client(stream.subarray(0, cut));
      r.client(stream.subarray(cut));
      expect(r.ctx.emitted.map((e) => e.data.toString('latin1')), `cut at ${cut}`).to.deep.equal(want);
      expect(r.ctx.emitted.map((e) => e.tag)).to.deep.equal([1, 2, 3]);
    }
    const bytewise = rig({}, false);
    for (let i = 0; i < stream.length; i++) bytewise.client(stream.subarray(i, i + 1));
    expect(bytewise.ctx.emitted.map((e) => e.data.toString('latin1'))).to.deep.equal(want);
  });

  it('does not mistake a `*` line inside a value for a command', () => {
    // A value that looks like the start of a command but is cut short by the real structure.
    const r = rig({}, false);
    r.client(Buffer.concat([Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n*1\r\n$9\r\nfake'), cmd('GET', 'k')]));
    expect(r.ctx.emitted.map((e) => e.data.toString('latin1'))).to.deep.equal([`${cmd('GET', 'k')}`]);
  });

  it('restores the database and RESP version on a reconnect, and logs in again', () => {
    const r = rig({ password: 'pw' });
    r.s.onConnect!({ resumed: false });
    r.client(Buffer.concat([cmd('HELLO', '3', 'AUTH', 'default', 'x'), cmd('SELECT', '2'), cmd('SET', 'a', '1')]), 0);
    r.client(cmd('GET', 'a'), 30);
    for (const t of [1, 2, 3]) expect(r.may(t)).to.equal(true);
    r.target('%1\r\n+server\r\n+redis\r\n+OK\r\n'); // HELLO and SELECT answered; SET not yet
    // The target dropped the connection: SET and GET go again on a new one, after the prelude.
    r.s.onConnect!({ resumed: true });
    const prelude = r.ctx.emitted[r.ctx.emitted.length - 1];
    expect(prelude.tag).to.equal(PRELUDE_TAG);
    expect(prelude.data.toString()).to.equal(`${cmd('HELLO', '3', 'AUTH', 'default', 'pw')}${cmd('SELECT', '2')}`);
    r.target('%1\r\n+server\r\n+redis\r\n+OK\r\n'); // the prelude's two replies
    expect(r.may(4)).to.equal(false);
    r.target('+OK\r\n');
    expect(r.may(4)).to.equal(true);
  });

  it('sends no prelude without a password on a fresh connection or in RESP2 database 0', () => {
    const r = rig();
    r.s.onConnect!({ resumed: true });
    r.s.onConnect!({ resumed: false });
    expect(r.ctx.emitted).to.have.length(0);
  });
});
