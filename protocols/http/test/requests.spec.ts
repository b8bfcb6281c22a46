import { expect } from 'chai';
import { CONTINUE_TAG_BASE, RAW_TAG } from '../src';
import { b, body, chunked, Driver, get, post } from './helpers';

describe('http protocol: client side (framing requests)', () => {
  it('emits keep-alive requests unchanged, one tag per request', () => {
    const d = new Driver();
    const reqs = [get('/a'), get('/b', 'Accept: */*\r\n'), get('/c')];
    for (const r of reqs) d.client(r);
    expect(d.emits.map((e) => [e.tag, e.data.toString('latin1')])).to.deep.equal(reqs.map((r, i) => [i + 1, r]));
    // One request per segment: the segment itself goes (no copy, no view).
    expect(d.logs).to.deep.equal([]);
  });

  it('splits pipelined requests in one segment into separately tagged requests', () => {
    const d = new Driver();
    const reqs = [get('/1'), post('/2', 'abc').toString('latin1'), get('/3'), `HEAD /4 HTTP/1.1\r\nHost: x\r\n\r\n`];
    d.client(reqs.join(''));
    expect([...d.byTag()]).to.deep.equal(reqs.map((r, i) => [i + 1, r]));
    expect(d.emits).to.have.length(4);
  });

  it('handles a request split anywhere: byte by byte', () => {
    const reqs = [get('/1'), post('/2', 'hello world').toString('latin1'), get('/3')];
    const d = new Driver().clientPieces(reqs.join(''), 1);
    expect([...d.byTag()]).to.deep.equal(reqs.map((r, i) => [i + 1, r]));
  });

  it('keeps empty lines before a request with that request', () => {
    const d = new Driver().client(post('/1', 'x')).client(`\r\n${get('/2')}`);
    expect([...d.byTag()]).to.deep.equal([[1, post('/1', 'x').toString('latin1')], [2, `\r\n${get('/2')}`]]);
  });

  it('streams a chunked upload as it arrives, with trailers, and finds the next request after it', () => {
    const parts = [body(3000, 1), body(10, 2), body(70000, 3)];
    const upload = Buffer.concat([b('POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked(parts, 'X-Sum: 1\r\n')]);
    const d = new Driver();
    const head = upload.indexOf('\r\n\r\n') + 4;
    d.client(upload.subarray(0, head));
    expect(d.emits, 'the head goes as soon as it is complete').to.have.length(1);
    let sent = head;
    for (let i = head; i < upload.length; i += 1000) {
      d.client(upload.subarray(i, i + 1000));
      sent = Math.min(upload.length, i + 1000);
      // Nothing is held back: every byte received so far was emitted.
      expect(d.all().length).to.equal(sent);
    }
    d.client(get('/next'));
    expect([...d.byTag()]).to.deep.equal([[1, upload.toString('latin1')], [2, get('/next')]]);
  });

  it('streams a large Content-Length body segment by segment without copying', () => {
    const content = body(300 * 1024);
    const req = post('/big', content);
    const d = new Driver().clientPieces(req, 1448);
    expect(d.all().equals(req)).to.equal(true);
    expect(d.tags()).to.deep.equal([1]);
    // After the head, each segment is emitted in the call that brought it.
    const calls = new Set(d.emits.map((e) => e.call));
    expect(calls.size).to.equal(Math.ceil(req.length / 1448));
  });

  it('splits a request whose body ends inside a segment from the pipelined request after it', () => {
    const one = post('/1', body(5000));
    const two = post('/2', body(3));
    const both = Buffer.concat([one, two, b(get('/3'))]);
    const d = new Driver().clientPieces(both, 1448);
    expect([...d.byTag()].map(([t, s]) => [t, s.length])).to.deep.equal([[1, one.length], [2, two.length], [3, get('/3').length]]);
  });

  it('tags the body of an Expect: 100-continue request apart from its head', () => {
    const d = new Driver().client(post('/e', 'the body', 'Expect: 100-continue\r\n'));
    expect(d.tags()).to.deep.equal([1, CONTINUE_TAG_BASE + 1]);
    expect(d.byTag().get(CONTINUE_TAG_BASE + 1)).to.equal('the body');
    // HTTP/1.0 clients get no 100 Continue: their body is not held for one.
    const d10 = new Driver().client('POST /e HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nab');
    expect(d10.tags()).to.deep.equal([1]);
  });

  it('after an Upgrade request, forwards the new protocol raw', () => {
    const up = get('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n');
    const frame = Buffer.from([0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e]);
    const d = new Driver().client(up).client(frame).client(b(get('/not-http-any-more')));
    expect(d.emits.map((e) => e.tag)).to.deep.equal([1, RAW_TAG, RAW_TAG]);
    expect(d.all().toString('latin1')).to.equal(up + frame.toString('latin1') + get('/not-http-any-more'));
  });

  it('after a CONNECT, the tunnel bytes go raw (TLS hello in the same segment)', () => {
    const d = new Driver().client(`CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n\x16\x03\x01\x00\x05hello`);
    expect(d.emits.map((e) => e.tag)).to.deep.equal([1, RAW_TAG]);
  });

  it('goes on with HTTP after an upgrade the online server declined (a request line follows)', () => {
    const up = get('/h2c', 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n');
    const d = new Driver().client(up + get('/1').slice(0, 7)).client(get('/1').slice(7));
    expect([...d.byTag()]).to.deep.equal([[1, up], [2, get('/1')]]);
    // h2c accepted: the HTTP/2 preface is not HTTP/1.x.
    const d2 = new Driver().client(up).client('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(d2.tags()).to.deep.equal([1, RAW_TAG]);
  });

  it('a mid-stream capture starts at the first request line and says how much it skipped, once', () => {
    const d = new Driver({}, { sawHandshake: false });
    const tail = 'of an earlier body\r\nmore of it GET /x HTTP/1.1 but not at a line end\r\n';
    d.client(tail.slice(0, 30)).client(tail.slice(30) + 'xxGET /fi').client(`rst HTTP/1.1\r\nHost: x\r\n\r\n${get('/second')}`);
    expect([...d.byTag()]).to.deep.equal([[1, 'GET /first HTTP/1.1\r\nHost: x\r\n\r\n'], [2, get('/second')]]);
    expect(d.logs).to.have.length(1);
    expect(d.logs[0]).to.match(new RegExp(`^skipped ${tail.length + 2} client bytes before the first request line`));
  });

  it('a mid-stream capture that starts at a request boundary skips nothing and logs nothing', () => {
    const d = new Driver({}, { sawHandshake: false }).client(get('/a') + get('/b'));
    expect(d.tags()).to.deep.equal([1, 2]);
    expect(d.logs).to.deep.equal([]);
  });

  it('resynchronises after garbage in the middle of a connection, without throwing', () => {
    const d = new Driver()
      .client(get('/1'))
      .client('\x00\x01garbage that is not HTTP\r\n\r\n')
      .client('POST /bad HTTP/1.1\r\nContent-Length: 12x\r\n\r\nzzz')
      .client(get('/2'))
      .client('POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nZZ\r\n')
      .client(get('/3'));
    expect([...d.byTag()].map(([t, s]) => [t, s.split('\r\n')[0]])).to.deep.equal([
      [1, 'GET /1 HTTP/1.1'],
      [2, 'GET /2 HTTP/1.1'],
      [3, 'POST /c HTTP/1.1'],
      [4, 'GET /3 HTTP/1.1'],
    ]);
    // The bad chunked body was forwarded up to the error: the target sees what the online server saw.
    expect(d.byTag().get(3)).to.equal('POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n');
    expect(d.logs).to.have.length(3);
    expect(d.logs[0]).to.match(/unparseable request head/);
    expect(d.logs[1]).to.match(/bad Content-Length/);
    expect(d.logs[2]).to.match(/bad chunked request body/);
  });

  it('gives up on a head larger than 64 KiB and finds the next request', () => {
    const huge = `GET /h HTTP/1.1\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`;
    const d = new Driver().clientPieces(huge, 1448).client(get('/after'));
    expect([...d.byTag()]).to.deep.equal([[1, get('/after')]]);
    expect(d.logs[0]).to.match(/larger than 64 KiB/);
  });

  it('logs at close what it skipped when no request line ever came', () => {
    const d = new Driver({}, { sawHandshake: false }).client('just the end of a body');
    d.s.onClose!();
    expect(d.emits).to.deep.equal([]);
    expect(d.logs).to.deep.equal(['skipped 22 client bytes before the first request line (the capture started mid-stream); no request line followed']);
  });

  it('never changes a buffer after emitting it', () => {
    const reqs = [get('/1', 'X-A: 1\r\n'), post('/2', body(4000)).toString('latin1'), get('/3')].join('');
    const d = new Driver({ 'set-header': 'X-B: 2' }).clientPieces(reqs, 7);
    const snapshot = d.emits.map((e) => Buffer.from(e.data));
    new Driver().clientPieces(reqs, 5); // other sessions reuse nothing of ours
    d.clientPieces(get('/4') + get('/5'), 3);
    snapshot.forEach((s, i) => expect(d.emits[i].data.equals(s), `emit ${i}`).to.equal(true));
  });
});
