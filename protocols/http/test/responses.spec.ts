import { expect } from 'chai';
import { CONTINUE_TAG_BASE, createProtocol, RAW_TAG } from '../src';
import { b, body, chunked, Driver, get, ok, oneAtATime, post, simulate } from './helpers';

describe('http protocol: target side and release rule', () => {
  it('asks intercept for enough reply payload to parse chunked responses in 64 KB GRO/GSO packets', () => {
    expect(createProtocol({}).replyPayloadBytes).to.equal(65000);
    expect(createProtocol({ 'reply-bytes': '2048' }).replyPayloadBytes).to.equal(2048);
  });

  it('keep-alive: request k goes once response k-1 is complete (Content-Length, split anywhere)', () => {
    const d = new Driver().client(get('/1')).client(get('/2')).client(get('/3'));
    expect(d.may(1)).to.equal(true);
    expect(d.may(2)).to.equal(false);
    const r1 = ok(body(5000));
    d.target(r1.subarray(0, 10));
    expect(d.may(2)).to.equal(false);
    d.target(r1.subarray(10, r1.length - 1));
    expect(d.may(2)).to.equal(false);
    d.target(r1.subarray(r1.length - 1));
    expect(d.may(2)).to.equal(true);
    expect(d.may(3)).to.equal(false);
    expect(d.mayClose()).to.equal(false);
    d.targetPieces(ok('two'), 1);
    expect(d.may(3)).to.equal(true);
    expect(d.mayClose()).to.equal(false);
    d.target(ok('three'));
    expect(d.mayClose()).to.equal(true);
  });

  it('pipelined requests are released strictly one at a time', () => {
    const d = new Driver().client(get('/1') + get('/2') + get('/3') + get('/4'));
    const sim = simulate(d, { mss: 100, respond: (r) => ok(body(r.n * 700)) });
    expect(sim.stuck).to.equal(false);
    expect(oneAtATime(sim.events)).to.deep.equal([]);
    expect(sim.events.filter((e) => e.kind === 'request-start')).to.have.length(4);
  });

  it('counts Content-Length bodies it is not shown (intercept returns fewer bytes than the reply has)', () => {
    const d = new Driver().client(get('/big') + get('/next'));
    const head = b('HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n');
    // First reply: the head and 1000 body bytes, of which only the head plus 10 bytes are shown.
    d.target(Buffer.concat([head, body(10)]), head.length + 1000);
    let left = 1_048_576 - 1000;
    while (left > 0) {
      const n = Math.min(left, 65_000);
      expect(d.may(2)).to.equal(false);
      d.target(Buffer.alloc(0), n);
      left -= n;
    }
    expect(d.may(2)).to.equal(true);
  });

  it('a 1 MB response in the simulation, with intercept returning 2048 bytes per reply', () => {
    const d = new Driver().client(get('/1') + get('/2'));
    // 64 KB reply packets (GRO/GSO), of which the first 2048 bytes are shown.
    const sim = simulate(d, { mss: 64_000, replyBytes: 2048, respond: (r) => ok(body(r.n === 1 ? 1_048_576 : 10)) });
    expect(sim.stuck).to.equal(false);
    expect(oneAtATime(sim.events)).to.deep.equal([]);
  });

  it('HEAD, 204 and 304 responses have no body; 1xx are not final', () => {
    const d = new Driver().client(`HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n${get('/204')}${get('/304')}${get('/103')}${get('/end')}`);
    d.target('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n');
    expect(d.may(2), 'HEAD answered by its head alone').to.equal(true);
    d.target('HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n');
    expect(d.may(3)).to.equal(true);
    d.target('HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n');
    expect(d.may(4)).to.equal(true);
    d.target('HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n');
    expect(d.may(5), 'an interim response is not the answer').to.equal(false);
    d.target('HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    expect(d.may(5)).to.equal(true);
  });

  it('parses chunked responses byte by byte and in one piece, with extensions and trailers', () => {
    const resp = Buffer.concat([
      b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
      b('1A;name=value\r\n'),
      body(26),
      b('\r\n'),
      chunked([body(4000), b('x')], 'X-Trailer: yes\r\nX-Other: 2\r\n'),
    ]);
    for (const size of [1, 7, 1448, resp.length]) {
      const d = new Driver().client(get('/1') + get('/2'));
      for (let i = 0; i < resp.length; i += size) {
        expect(d.may(2), `split ${size} at ${i}`).to.equal(false);
        d.target(resp.subarray(i, i + size));
      }
      expect(d.may(2), `split ${size}`).to.equal(true);
      expect(d.logs).to.deep.equal([]);
    }
  });

  it('skips unseen chunk data by count; loses the thread (and says so) when framing bytes were not shown', () => {
    const d = new Driver().client(get('/1') + get('/2'));
    d.target('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2710\r\n');
    d.target(body(100), 9000); // inside the 10000-byte chunk: fine
    d.target(b('x'.repeat(1000)));
    d.target(b('\r\n0\r\n\r\n'));
    expect(d.may(2)).to.equal(true);
    expect(d.logs).to.deep.equal([]);

    const lost = new Driver().client(get('/1') + get('/2'));
    lost.target('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n', 60_000);
    expect(lost.logs).to.have.length(1);
    expect(lost.logs[0]).to.match(/cannot follow the target's responses.*raise reply-bytes/);
    // From then on the byte-count rule decides.
    expect(lost.may(2, 60_001)).to.equal(false);
    expect(lost.may(2, 60_000)).to.equal(true);
  });

  it('counts bytes no reply carried (a gap) inside a body; loses the thread when a gap hides framing', () => {
    const d = new Driver().client(get('/1') + get('/2'));
    d.target('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n0123456789');
    d.target(body(1000), 1000, 2000); // 2000 missed, then 1000 seen: 1990 to go
    expect(d.may(2)).to.equal(false);
    d.target(body(1990));
    expect(d.may(2)).to.equal(true);
    expect(d.logs).to.deep.equal([]);

    // A gap in a close-delimited body is not mistaken for the target's FIN.
    const c = new Driver().client('GET /a HTTP/1.0\r\n\r\n');
    c.target('HTTP/1.0 200 OK\r\n\r\nbody...').target(body(100), 100, 5000);
    expect(c.mayClose()).to.equal(false);
    c.targetFin();
    expect(c.mayClose()).to.equal(true);

    const lost = new Driver().client(get('/1') + get('/2'));
    lost.target(ok('x'));
    lost.target(b('Content-Length: 3\r\n\r\nabc'), 24, 17); // the status line of response 2 was missed
    expect(lost.logs).to.have.length(1);
    expect(lost.logs[0]).to.match(/17 target bytes never reached us/);
  });

  it('Expect: 100-continue: the body goes after the 100, the next request after the final response', () => {
    const d = new Driver().client(post('/e', body(3000), 'Expect: 100-continue\r\n')).client(get('/2'));
    const bodyTag = CONTINUE_TAG_BASE + 1;
    expect(d.may(1)).to.equal(true);
    expect(d.may(bodyTag)).to.equal(false);
    d.target('HTTP/1.1 100 Continue\r\n\r\n');
    expect(d.may(bodyTag)).to.equal(true);
    expect(d.may(2)).to.equal(false);
    d.target(ok('stored'));
    expect(d.may(2)).to.equal(true);
  });

  it('Expect: 100-continue answered at once with a final response: the body the client sent still goes', () => {
    const d = new Driver().client(post('/e', 'abc', 'Expect: 100-continue\r\n'));
    d.target('HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n');
    expect(d.may(CONTINUE_TAG_BASE + 1)).to.equal(true);
  });

  it('Expect: 100-continue through the simulation, with and without a 100 from the target', () => {
    const reqs = Buffer.concat([post('/1', body(5000), 'Expect: 100-continue\r\n'), b(get('/2'))]);
    const d = new Driver().clientPieces(reqs, 1448);
    const sim = simulate(d, { mss: 500 });
    expect(sim.stuck).to.equal(false);
    expect(sim.received.equals(reqs)).to.equal(true);
    // A target that never says 100: the engine's idle release has to let the body go (stuck here).
    const silent = simulate(new Driver().client(reqs), { sendContinue: false });
    expect(silent.stuck).to.equal(true);
  });

  it('Upgrade: raw bytes wait for the 101, then follow byte counts from the switch on', () => {
    const up = get('/ws', 'Connection: upgrade\r\nUpgrade: websocket\r\n');
    const d = new Driver().client(get('/first')).client(up);
    d.client(Buffer.from([0x81, 0x80, 0, 0, 0, 0]), 5000); // online had sent 5000 bytes when this frame came
    d.client(Buffer.from([0x81, 0x80, 0, 0, 0, 1]), 5010); // ... and 10 more (a server frame) before this one
    expect(d.tags()).to.deep.equal([1, 2, RAW_TAG]);
    d.target(ok(body(3000))); // the target's first response is shorter than the online one
    expect(d.may(2)).to.equal(true);
    expect(d.may(RAW_TAG, 5000)).to.equal(false);
    d.target('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n');
    expect(d.may(RAW_TAG, 5000), 'first frame right after the 101').to.equal(true);
    expect(d.may(RAW_TAG, 5010), 'second frame: after 10 more target bytes').to.equal(false);
    d.target(Buffer.from([0x81, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]));
    expect(d.may(RAW_TAG, 5010)).to.equal(true);
    expect(d.mayClose(5010)).to.equal(true);
    expect(d.logs).to.deep.equal([]);
  });

  it('Upgrade declined by the target: the raw bytes go once its answer is complete', () => {
    const d = new Driver().client(get('/ws', 'Connection: upgrade\r\nUpgrade: websocket\r\n')).client(Buffer.from([0x81, 0x80, 0, 0, 0, 0]));
    expect(d.may(RAW_TAG)).to.equal(false);
    d.target('HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nno!');
    expect(d.may(RAW_TAG)).to.equal(true);
  });

  it('close-delimited response: complete when the target closes (its FIN, or a reconnect)', () => {
    const d = new Driver().client('GET /a HTTP/1.0\r\n\r\n');
    d.target('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body');
    d.target(body(5000));
    expect(d.mayClose()).to.equal(false);
    d.targetFin();
    expect(d.mayClose()).to.equal(true);

    const r = new Driver().client(get('/1') + get('/2'));
    r.target('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n....');
    expect(r.may(2)).to.equal(false);
    r.reconnect(); // the engine reconnects because request 2 is left: the target closed
    expect(r.may(2)).to.equal(true);
  });

  it('a slow close-delimited response goes on after the idle release released a request: it ends with the FIN only', () => {
    // Pipelined: request 2 was sent after the whole online response 1 (5000 bytes) had arrived.
    const d = new Driver().client(get('/1') + get('/2'), 0);
    d.target('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe first part');
    expect(d.may(2, 5000)).to.equal(false);
    // The target pauses longer than --idle-release: the engine lets request 2 go and raises the count to 5000.
    d.idleRelease(2, 5000);
    // The engine asks about the client's FIN after each reply; none of these may end response 1.
    expect(d.mayClose(5001), 'after the idle release').to.equal(false);
    for (let i = 0; i < 4; i++) {
      d.target(body(1000, i));
      expect(d.mayClose(5001), `after body part ${i + 1}`).to.equal(false);
    }
    d.targetFin();
    expect(d.may(2, 5000), 'response 1 ended with the FIN').to.equal(true);
    expect(d.mayClose(5001), 'response 2 is still owed').to.equal(false);
    // Request 2 is left: the engine reconnects and sends it again; its response comes on the new connection.
    d.reconnect();
    expect(d.mayClose(5001), 'response 2 is still owed after the reconnect').to.equal(false);
    d.target(ok('2'));
    expect(d.mayClose(5001)).to.equal(true);
    expect(d.logs, 'the body was never read as a response head').to.deep.equal([]);
  });

  it('a reconnect ends a response under way, but waits for one not begun (its request is sent again)', () => {
    const d = new Driver().client(get('/1') + get('/2') + get('/3'));
    d.target('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    d.reconnect();
    expect(d.may(2), 'response 1 was cut by the close').to.equal(true);
    d.reconnect(); // request 2 had not been answered at all: the engine resends it
    expect(d.may(3)).to.equal(false);
    d.target(ok('2'));
    expect(d.may(3)).to.equal(true);
  });

  it('a response nobody asked for completes nothing', () => {
    const d = new Driver().client(get('/1'));
    d.target(ok('1'));
    d.target('HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n');
    d.client(get('/2')).client(get('/3'));
    expect(d.may(2)).to.equal(true);
    expect(d.may(3)).to.equal(false);
  });

  it('a target that speaks no HTTP: byte counts decide, after one log line', () => {
    const d = new Driver().client(get('/1') + get('/2'));
    d.target('SSH-2.0-OpenSSH_9.2\r\n\r\n');
    expect(d.logs).to.have.length(1);
    expect(d.may(2, 100)).to.equal(false);
    expect(d.may(2, d.targetBytes)).to.equal(true);
  });

  it('keep-alive with uploads, downloads, HEAD and chunked both ways, in the simulation', () => {
    const parts = [
      post('/p', body(20_000)),
      b(`HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n`),
      Buffer.concat([b('PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked([body(9000), body(1)])]),
      b(get('/big')),
      b(get('/chunked')),
      post('/e', body(2000), 'Expect: 100-continue\r\n'),
      b(get('/last')),
    ];
    const all = Buffer.concat(parts);
    const d = new Driver().clientPieces(all, 1000);
    const sim = simulate(d, {
      mss: 1448,
      respond: (r) => {
        if (r.method === 'HEAD') return b('HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n');
        if (r.url === '/big') return ok(body(200_000));
        if (r.url === '/chunked') return Buffer.concat([b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked([body(3000), body(70_000)])]);
        return ok(`ok ${r.url}`);
      },
    });
    expect(sim.stuck).to.equal(false);
    expect(sim.received.equals(all)).to.equal(true);
    expect(oneAtATime(sim.events)).to.deep.equal([]);
    expect(sim.events.filter((e) => e.kind === 'response-done')).to.have.length(parts.length);
  });
});
