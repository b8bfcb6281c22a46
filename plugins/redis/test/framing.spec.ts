import { expect } from 'chai';
import { PRELUDE_TAG } from '../src';
import { cmd, rig } from './support';

/** A stream with the awkward cases: binary values holding CRLF and '*', an empty bulk, inline commands. */
const COMMANDS: Buffer[] = [
  cmd('SET', 'k1', 'v1'),
  cmd('SET', 'bin', Buffer.from('a\r\n*3\r\n$3\r\nGET\r\n\x00\xff', 'latin1')),
  cmd('GET', ''),
  Buffer.from('PING\r\n'),
  Buffer.from('SET  "quoted value"  x\n'), // inline, LF only: Redis accepts it
  cmd('RPUSH', 'list', 'a', 'b', 'c', Buffer.alloc(3000, 0x2a)),
  Buffer.from('*0\r\n'), // an empty request: no command, no reply
  cmd('INCR', 'counter'),
];
const STREAM = Buffer.concat(COMMANDS);

function expectCommands(got: Array<{ data: Buffer; tag: number }>): void {
  expect(got.map((e) => e.tag)).to.deep.equal(COMMANDS.map((_, i) => i + 1));
  got.forEach((e, i) => expect(e.data.equals(COMMANDS[i]), `command ${i + 1}: ${JSON.stringify(e.data.toString('latin1'))}`).to.equal(true));
}

describe('redis framing', () => {
  it('emits each command of a packet on its own, tagged with its number', () => {
    const r = rig();
    r.client(STREAM);
    expectCommands(r.ctx.emitted);
  });

  it('finds the same commands wherever the stream is split', () => {
    for (let cut = 1; cut < STREAM.length; cut++) {
      const r = rig();
      r.client(STREAM.subarray(0, cut));
      r.client(STREAM.subarray(cut));
      expectCommands(r.ctx.emitted);
    }
  });

  it('finds them fed one byte at a time', () => {
    const r = rig();
    for (let i = 0; i < STREAM.length; i++) r.client(STREAM.subarray(i, i + 1));
    expectCommands(r.ctx.emitted);
  });

  it('holds an incomplete command until its last byte', () => {
    const r = rig();
    const c = cmd('SET', 'key', 'value');
    r.client(c.subarray(0, c.length - 1));
    expect(r.ctx.emitted).to.have.length(0);
    r.client(c.subarray(c.length - 1));
    expect(r.ctx.emitted).to.have.length(1);
    expect(r.ctx.emitted[0].data.equals(c)).to.equal(true);
  });

  it('keeps its own copy of the bytes the engine lends it', () => {
    const r = rig();
    r.client(Buffer.concat([cmd('GET', 'a'), cmd('GET', 'b').subarray(0, 5)]));
    r.client(cmd('GET', 'b').subarray(5));
    // rig.client scribbles over every buffer after the call.
    expect(r.ctx.bytes().equals(Buffer.concat([cmd('GET', 'a'), cmd('GET', 'b')]))).to.equal(true);
  });

  it('passes bytes that are not RESP through unchanged, released by byte count from then on', () => {
    const r = rig();
    r.client(Buffer.concat([cmd('GET', 'a'), Buffer.from('*2\r\n$x\r\nnot resp'), cmd('GET', 'b')]));
    r.client('more bytes');
    expect(r.ctx.emitted.map((e) => e.tag)).to.deep.equal([1, 2, 3]);
    expect(r.ctx.bytes().toString('latin1')).to.equal(`${cmd('GET', 'a')}*2\r\n$x\r\nnot resp${cmd('GET', 'b')}more bytes`);
    expect(r.ctx.logs.join('\n')).to.match(/not RESP/);
    expect(r.may(2, 10, 9)).to.equal(false);
    expect(r.may(2, 10, 10)).to.equal(true);
  });

  it('refuses an inline request longer than Redis accepts (64 KiB), passing it through', () => {
    const r = rig();
    r.client(Buffer.alloc(70 * 1024, 0x61));
    expect(r.ctx.bytes().length).to.equal(70 * 1024);
    expect(r.ctx.logs.join('\n')).to.match(/inline request longer/);
  });

  it('uses tag 0 only for its own prelude', () => {
    expect(PRELUDE_TAG).to.equal(0);
    const r = rig({ password: 'pw' });
    r.s.onConnect!({ resumed: true });
    expect(r.ctx.emitted[0].tag).to.equal(PRELUDE_TAG);
    expect(r.may(PRELUDE_TAG)).to.equal(true);
  });
});
