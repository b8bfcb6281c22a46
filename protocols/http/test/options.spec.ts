import { loadProtocol } from '@tcpcopy/core';
import { expect } from 'chai';
import { createProtocol, parseOptions } from '../src';
import { b, body, chunked, Driver, get, ok, oneAtATime, post, simulate } from './helpers';

const HEAD_OF = (s: string) => s.slice(0, s.indexOf('\r\n\r\n') + 4);

describe('http protocol: options (filters and rewrites)', () => {
  describe('set-header and remove-header', () => {
    it('replaces a header in place, keeping the other lines byte for byte', () => {
      const d = new Driver({ 'set-header': 'X-Test: replayed' }).client('GET / HTTP/1.1\r\nHost: a\r\nx-test: online\r\nAccept:  */* \r\n\r\n');
      expect(d.all().toString('latin1')).to.equal('GET / HTTP/1.1\r\nHost: a\r\nX-Test: replayed\r\nAccept:  */* \r\n\r\n');
    });

    it('adds a header that is not there, before the blank line (also with bare-LF heads)', () => {
      const d = new Driver({ 'set-header': 'X-New: 1' }).client('GET / HTTP/1.1\r\nHost: a\r\n\r\n').client('GET /lf HTTP/1.1\nHost: a\n\n');
      expect(d.all().toString('latin1')).to.equal('GET / HTTP/1.1\r\nHost: a\r\nX-New: 1\r\n\r\nGET /lf HTTP/1.1\nHost: a\nX-New: 1\r\n\n');
    });

    it('set-header=Host rewrites the Host header like any other; repeated headers collapse into one', () => {
      const d = new Driver({ 'set-header': 'Host: target.example:8080' }).client('GET / HTTP/1.1\r\nHOST: online\r\nA: 1\r\nHost: again\r\n\r\n');
      expect(d.all().toString('latin1')).to.equal('GET / HTTP/1.1\r\nHost: target.example:8080\r\nA: 1\r\n\r\n');
    });

    it('removes every occurrence, folded continuation lines included, and matches names exactly', () => {
      const d = new Driver({ 'remove-header': 'Cookie\nX-Debug' }).client(
        'GET / HTTP/1.1\r\nCookie: a=1\r\nCookie2: keep\r\nX-Debug: 1\r\n  folded part\r\nHost: h\r\ncookie: b=2\r\n\r\n',
      );
      expect(d.all().toString('latin1')).to.equal('GET / HTTP/1.1\r\nCookie2: keep\r\nHost: h\r\n\r\n');
    });

    it('several rules at once, on pipelined requests with bodies; the bodies are untouched', () => {
      const opts = { 'set-header': 'X-A: 1\nUser-Agent: replay', 'remove-header': 'Accept' };
      const p = post('/p', body(5000), 'Accept: */*\r\nUser-Agent: curl\r\n');
      const d = new Driver(opts).clientPieces(Buffer.concat([p, b(get('/g', 'Accept: x\r\n'))]), 1000);
      const tags = d.byTag();
      expect(HEAD_OF(tags.get(1)!)).to.equal('POST /p HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5000\r\nUser-Agent: replay\r\nX-A: 1\r\n\r\n');
      expect(tags.get(1)!.slice(HEAD_OF(tags.get(1)!).length)).to.equal(body(5000).toString('latin1'));
      expect(tags.get(2)).to.equal('GET /g HTTP/1.1\r\nHost: example.test\r\nX-A: 1\r\nUser-Agent: replay\r\n\r\n');
    });

    it('removing Expect makes the body go with its head (no 100 Continue will come)', () => {
      const d = new Driver({ 'remove-header': 'Expect' }).client(post('/e', 'abc', 'Expect: 100-continue\r\n'));
      expect(d.tags()).to.deep.equal([1]);
    });
  });

  describe('filters', () => {
    const reqs = [
      get('/keep/1'),
      post('/api/upload', body(3000), 'X-Client: mobile\r\n').toString('latin1'),
      get('/static/a.css', 'X-Client: web\r\n'),
      'DELETE /api/item/7 HTTP/1.1\r\nHost: h\r\n\r\n',
      `PUT /api/chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Client: web\r\n\r\n${chunked(['abc', 'de']).toString('latin1')}`,
      get('/keep/2', 'Authorization: Bearer t0ken\r\n'),
    ];
    /** The request lines the target gets, and the tags they got. */
    function run(options: Record<string, string>): Array<[number, string]> {
      const d = new Driver(options).clientPieces(reqs.join(''), 700);
      return [...d.byTag()].map(([tag, s]) => [tag, s.split(' ').slice(0, 2).join(' ')]);
    }

    it('allow-method keeps only the listed methods (case-insensitive option, repeatable)', () => {
      expect(run({ 'allow-method': 'get,Delete' })).to.deep.equal([[1, 'GET /keep/1'], [2, 'GET /static/a.css'], [3, 'DELETE /api/item/7'], [4, 'GET /keep/2']]);
      expect(run({ 'allow-method': 'PUT\nPOST' })).to.deep.equal([[1, 'POST /api/upload'], [2, 'PUT /api/chunked']]);
    });

    it('allow-url keeps requests whose target matches one of the regexes', () => {
      expect(run({ 'allow-url': '^/api/\n^/static/' })).to.deep.equal([[1, 'POST /api/upload'], [2, 'GET /static/a.css'], [3, 'DELETE /api/item/7'], [4, 'PUT /api/chunked']]);
    });

    it('deny-url drops requests whose target matches any of the regexes', () => {
      expect(run({ 'deny-url': '^/api/' })).to.deep.equal([[1, 'GET /keep/1'], [2, 'GET /static/a.css'], [3, 'GET /keep/2']]);
    });

    it('allow-header keeps requests with a matching header (a missing header does not match)', () => {
      expect(run({ 'allow-header': 'x-client: ^web$' })).to.deep.equal([[1, 'GET /static/a.css'], [2, 'PUT /api/chunked']]);
    });

    it('deny-header drops requests with a matching header', () => {
      expect(run({ 'deny-header': 'Authorization: ^Bearer \nX-Client: mob' })).to.deep.equal([
        [1, 'GET /keep/1'],
        [2, 'GET /static/a.css'],
        [3, 'DELETE /api/item/7'],
        [4, 'PUT /api/chunked'],
      ]);
    });

    it('filters and rewrites together: filters look at the request as captured', () => {
      const d = new Driver({ 'deny-header': 'X-Client: web', 'set-header': 'X-Client: web' }).client(get('/1', 'X-Client: mobile\r\n') + get('/2', 'X-Client: web\r\n'));
      expect([...d.byTag()]).to.deep.equal([[1, get('/1', 'X-Client: web\r\n')]]);
    });
  });

  it('a dropped request in the middle of a keep-alive connection: never sent, never waited for', () => {
    const d = new Driver({ 'deny-url': '^/secret' });
    d.client(get('/1'), 0);
    d.client(post('/secret', body(4000)), 120); // its online response (say 500 bytes) never comes at the target
    d.client(get('/3'), 620);
    d.client(get('/4'), 700);
    expect([...d.byTag()].map(([t, s]) => [t, s.split('\r\n')[0]])).to.deep.equal([[1, 'GET /1 HTTP/1.1'], [2, 'GET /3 HTTP/1.1'], [3, 'GET /4 HTTP/1.1']]);
    d.target(ok(body(120 - 38)));
    expect(d.may(2, 620), 'request 3 goes right after response 1, not after 620 online bytes').to.equal(true);
    expect(d.may(3, 700)).to.equal(false);
    d.target(ok('x'));
    expect(d.may(3, 700)).to.equal(true);
    d.target(ok('y'));
    expect(d.mayClose(800)).to.equal(true);
  });

  it('dropped requests in the simulation: the rest flows one at a time', () => {
    const all = [get('/a'), post('/drop/1', body(2000)).toString('latin1'), get('/b'), get('/drop/2'), get('/drop/3'), get('/c')].join('');
    const d = new Driver({ 'deny-url': '^/drop/' }).clientPieces(all, 300);
    const sim = simulate(d);
    expect(sim.stuck).to.equal(false);
    expect(oneAtATime(sim.events)).to.deep.equal([]);
    expect(sim.received.toString('latin1')).to.equal(get('/a') + get('/b') + get('/c'));
  });

  it('a dropped upgrade request drops the raw bytes that follow it', () => {
    const d = new Driver({ 'deny-url': '^/ws' }).client(get('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\n')).client(Buffer.from([0x81, 0x80, 0, 0, 0, 0]));
    expect(d.emits).to.deep.equal([]);
  });

  describe('bad option values', () => {
    const bad: Array<[Record<string, string>, RegExp]> = [
      [{ 'set-headers': 'X: 1' }, /unknown option "set-headers" \(known: set-header, remove-header, allow-method/],
      [{ 'allow-url': '(' }, /allow-url=\(: not a valid regular expression/],
      [{ 'deny-url': '^/a\n[' }, /deny-url=\[: not a valid regular expression/],
      [{ 'deny-url': '' }, /deny-url: empty regular expression/],
      [{ 'allow-header': 'X-A: (' }, /allow-header X-A=\(: not a valid regular expression/],
      [{ 'deny-header': 'no colon' }, /deny-header=no colon: expected "Name: regex"/],
      [{ 'set-header': 'X-Test' }, /set-header=X-Test: expected "Name: value"/],
      [{ 'set-header': 'Bad Name: 1' }, /"Bad Name" is not a valid header name/],
      [{ 'set-header': 'X: a\rb' }, /control characters/],
      [{ 'set-header': 'Content-Length: 5' }, /Content-Length cannot be changed: it frames the body/],
      [{ 'remove-header': 'transfer-encoding' }, /transfer-encoding cannot be changed/],
      [{ 'set-header': 'X: 1\nx: 2' }, /x is set twice/],
      [{ 'set-header': 'X: 1', 'remove-header': 'x' }, /also given to set-header/],
      [{ 'allow-method': ' , ' }, /no method given/],
      [{ 'allow-method': 'GET,P@ST' }, /"P@ST" is not a method name/],
      [{ 'reply-bytes': '100' }, /reply-bytes=100: expected a whole number from 512 to 65000/],
      [{ 'reply-bytes': 'lots' }, /reply-bytes=lots/],
    ];
    for (const [opts, re] of bad) {
      it(`rejects ${JSON.stringify(opts)}`, () => {
        expect(() => createProtocol(opts)).to.throw(re);
      });
    }

    // As the tcpcopy command loads it: by its short name.
    const asCommand = { builtIns: { http: '@tcpcopy/protocol-http' } };

    it('the loader turns them into one clear line', () => {
      expect(() => loadProtocol('http', { 'allow-url': '(' }, asCommand)).to.throw(/^protocol "http" rejected its options: allow-url=\(: not a valid regular expression/);
    });

    it('the loader finds createProtocol and passes the options', () => {
      const p = loadProtocol('http', { 'set-header': 'X-A: 1' }, asCommand);
      expect(p.name).to.equal('http');
      expect(parseOptions({ 'set-header': 'X-A:   spaced  ' }).setHeaders[0].line.toString()).to.equal('X-A: spaced\r\n');
    });
  });
});
