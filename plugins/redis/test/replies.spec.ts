import { expect } from 'chai';
import { ReplyParser } from '../src';
import { cmd, rig } from './support';

/** Counts replies; `errors` collects the error flags. */
function counter() {
  const got = { replies: 0, errors: [] as boolean[] };
  const p = new ReplyParser({
    reply(isError) {
      got.replies++;
      got.errors.push(isError);
    },
  });
  return { p, got };
}

function count(stream: string | Buffer, split = 0): { replies: number; lost: boolean } {
  const { p, got } = counter();
  const b = typeof stream === 'string' ? Buffer.from(stream, 'latin1') : stream;
  if (split > 0) for (let i = 0; i < b.length; i += split) p.feed(b.subarray(i, i + split), Math.min(split, b.length - i));
  else p.feed(b, b.length);
  return { replies: got.replies, lost: p.lost };
}

describe('redis reply counting', () => {
  const cases: Array<[string, string, number]> = [
    ['simple string, error, integer', '+OK\r\n-ERR wrong type\r\n:42\r\n', 3],
    ['bulk strings, null bulk, empty bulk', '$5\r\nhello\r\n$-1\r\n$0\r\n\r\n', 3],
    ['a bulk body holding CRLF and type bytes', '$11\r\n+OK\r\n*1\r\n:1\r\n', 1],
    ['arrays, empty and null', '*2\r\n$1\r\na\r\n:1\r\n*0\r\n*-1\r\n', 3],
    ['nested arrays', '*2\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n*3\r\n+a\r\n-b\r\n*0\r\n', 1],
    ['EXEC of a MULTI block', '+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n', 4],
    ['RESP3 scalars', '_\r\n,3.14\r\n#t\r\n(123456789012345678901234567890\r\n!5\r\nerror\r\n=7\r\ntxt:abc\r\n', 6],
    ['RESP3 map and set', '%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n~2\r\n+x\r\n+y\r\n', 2],
    ['a push is out of band', '>3\r\n+message\r\n+ch\r\n+hi\r\n:1\r\n', 1],
    ['an attribute decorates the reply after it', '|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:1\r\n', 1],
    ['an attribute inside an array', '*2\r\n|1\r\n+ttl\r\n:3600\r\n+v\r\n:2\r\n', 1],
    ['streamed string and aggregate', '$?\r\n;4\r\nHell\r\n;1\r\no\r\n;0\r\n*?\r\n:1\r\n*?\r\n:2\r\n.\r\n.\r\n', 2],
  ];
  for (const [name, stream, n] of cases) {
    it(`counts ${name}`, () => {
      expect(count(stream)).to.deep.equal({ replies: n, lost: false });
      for (let split = 1; split <= 4; split++) expect(count(stream, split), `split every ${split}`).to.deep.equal({ replies: n, lost: false });
    });
  }

  it('flags error replies and keeps their text', () => {
    const { p, got } = counter();
    const b = Buffer.from('+OK\r\n-WRONGPASS invalid username-password pair\r\n');
    p.feed(b, b.length);
    expect(got.errors).to.deep.equal([false, true]);
    expect(p.errorText()).to.equal('-WRONGPASS invalid username-password pair'.slice(1));
  });

  it('skips a bulk body longer than the bytes intercept returned, by its length', () => {
    const { p, got } = counter();
    const body = 100_000;
    // First packet: the header and 1000 body bytes returned of 1448 sent.
    const first = Buffer.concat([Buffer.from(`$${body}\r\n`), Buffer.alloc(1000, 0x61)]);
    p.feed(first, first.length + 448);
    let left = body + 2 - (1000 + 448);
    // Then 64 KiB GSO packets of which only 2048 bytes come back, the last one with a reply after the body.
    while (left > 65000) {
      p.feed(Buffer.alloc(2048, 0x62), 65000);
      left -= 65000;
    }
    const tail = Buffer.concat([Buffer.alloc(left - 2, 0x63), Buffer.from('\r\n:7\r\n')]);
    p.feed(tail, tail.length);
    expect(got.replies).to.equal(2);
    expect(p.lost).to.equal(false);
  });

  it('gives up, without throwing, when missing bytes may hold structure', () => {
    const { p } = counter();
    p.feed(Buffer.from('*300\r\n:1\r\n'), 2000);
    expect(p.lost).to.equal(true);
    expect(p.lostReason).to.match(/replyBytes/);
  });

  it('gives up on bytes that are not RESP and counts again after reset()', () => {
    const { p, got } = counter();
    p.feed(Buffer.from('HTTP/1.1 200 OK\r\n'), 17);
    expect(p.lost).to.equal(true);
    p.reset();
    p.feed(Buffer.from('+OK\r\n'), 5);
    expect(got.replies).to.equal(1);
  });
});

describe('redis release rule', () => {
  it('lets pipelined commands go together and holds a dependent one for every earlier reply', () => {
    const r = rig();
    // Three commands sent back to back (redis-benchmark -P 3), then one after reading their replies.
    r.client(Buffer.concat([cmd('SET', 'a', '1'), cmd('INCR', 'n'), cmd('GET', 'a')]), 0);
    r.client(cmd('GET', 'b'), 16);
    r.client(cmd('GET', 'c'), 16); // pipelined with GET b
    for (const t of [1, 2, 3]) expect(r.may(t), `command ${t}`).to.equal(true);
    expect(r.may(4)).to.equal(false);
    r.target('+OK\r\n:1\r\n');
    expect(r.may(4)).to.equal(false);
    r.target('$1\r\n1\r\n');
    expect(r.may(4)).to.equal(true);
    expect(r.may(5)).to.equal(true);
  });

  it('counts the replies of a large bulk by its length, whatever intercept returned', () => {
    const r = rig();
    r.client(cmd('GET', 'big'), 0);
    r.client(cmd('GET', 'small'), 70_000);
    expect(r.may(1)).to.equal(true);
    r.target(Buffer.from('$70000\r\nxxxx'), 1448);
    expect(r.may(2)).to.equal(false);
    r.target(Buffer.alloc(2048), 65000);
    expect(r.may(2)).to.equal(false);
    r.target(Buffer.alloc(70_000 + 2 + 8 - 1448 - 65000), 70_000 + 2 + 8 - 1448 - 65000);
    expect(r.may(2)).to.equal(true);
  });

  it('counts a MULTI block reply by reply', () => {
    const r = rig();
    r.client(Buffer.concat([cmd('MULTI'), cmd('INCR', 'a'), cmd('LRANGE', 'l', '0', '-1'), cmd('EXEC')]), 0);
    r.client(cmd('PING'), 40);
    r.target('+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n*2\r\n$1\r\nx');
    expect(r.may(5)).to.equal(false);
    r.target('\r\n$1\r\ny\r\n');
    expect(r.may(5)).to.equal(true);
  });

  it('expects no reply for CLIENT REPLY OFF/SKIP and what they silence, one per channel for SUBSCRIBE', () => {
    const r = rig();
    r.client(Buffer.concat([cmd('CLIENT', 'REPLY', 'SKIP'), cmd('SET', 'a', '1'), cmd('SUBSCRIBE', 'c1', 'c2'), Buffer.from('*0\r\n')]), 0);
    r.client(cmd('PING'), 50);
    r.target('*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n');
    expect(r.may(5)).to.equal(false);
    r.target('*3\r\n$9\r\nsubscribe\r\n$2\r\nc2\r\n:2\r\n');
    expect(r.may(5)).to.equal(true);
  });

  it('does not count more replies than commands (pub/sub messages, MONITOR)', () => {
    const r = rig();
    r.client(cmd('PING'), 0);
    r.target('+PONG\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n');
    r.client(cmd('GET', 'a'), 7);
    r.client(cmd('GET', 'b'), 20);
    expect(r.may(1)).to.equal(true);
    expect(r.may(2)).to.equal(true);
    expect(r.may(3)).to.equal(false);
  });

  it('follows the idle release: a command let go without its reply stops holding the later ones', () => {
    const r = rig();
    r.client(cmd('CLIENT', 'PAUSE', '10'), 0);
    r.client(cmd('GET', 'a'), 5); // waits for 1 reply
    r.client(cmd('GET', 'b'), 9); // waits for 2
    r.client(cmd('GET', 'c'), 9); // pipelined with GET b
    expect(r.may(1)).to.equal(true);
    expect(r.may(2)).to.equal(false);
    // The target never answered; the engine released command 2 on its own and now asks about 3.
    expect(r.may(3)).to.equal(false);
    r.target('$-1\r\n');
    expect(r.may(3)).to.equal(true);
    expect(r.may(4)).to.equal(true);
  });

  it('lets the client FIN go with its last pipelined command, or after every reply', () => {
    const quick = rig();
    quick.client(cmd('SET', 'a', '1'), 0);
    expect(quick.may(1)).to.equal(true);
    expect(quick.may(-1, 0)).to.equal(true); // closed without reading the reply
    const polite = rig();
    polite.client(cmd('SET', 'a', '1'), 0);
    expect(polite.may(1)).to.equal(true);
    expect(polite.may(-1, 5)).to.equal(false);
    polite.target('+OK\r\n');
    expect(polite.may(-1, 5)).to.equal(true);
  });

  it('falls back to byte counts when the replies cannot be followed', () => {
    const r = rig({ replyBytes: '16' });
    r.client(cmd('LRANGE', 'l', '0', '-1'), 0);
    r.client(cmd('GET', 'a'), 500);
    expect(r.may(1)).to.equal(true);
    r.target('*100\r\n$3\r\nabc\r\n', 500);
    expect(r.ctx.logs.join('\n')).to.match(/byte count/);
    expect(r.may(2, 500, 499)).to.equal(false);
    expect(r.may(2, 500, 500)).to.equal(true);
  });
});
