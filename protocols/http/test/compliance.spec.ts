import { protocolComplianceTests } from '@tcpcopy/core/compliance';
import { createProtocol } from '../src';

const b = (s: string) => Buffer.from(s, 'latin1');
const get = (path: string, extra = '') => b(`GET ${path} HTTP/1.1\r\nHost: online.example\r\n${extra}\r\n`);
const ok = (body: string) => b(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
const chunked = b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
const post = b('POST /upload HTTP/1.1\r\nHost: online.example\r\nContent-Length: 11\r\n\r\nhello world');

protocolComplianceTests('http', {
  protocol: createProtocol({}),
  exchanges: [
    { client: get('/a'), server: ok('x'.repeat(3000)) },
    { client: post, server: b('HTTP/1.1 204 No Content\r\n\r\n') },
    { client: get('/c'), server: chunked },
    { client: b('HEAD /d HTTP/1.1\r\nHost: online.example\r\n\r\n'), server: b('HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n') },
  ],
});

protocolComplianceTests('http with a Host rewrite', {
  protocol: createProtocol({ 'set-header': 'Host: target.example' }),
  exchanges: [
    { client: get('/a'), server: ok('first'), expect: b('GET /a HTTP/1.1\r\nHost: target.example\r\n\r\n') },
    { client: get('/b'), server: chunked, expect: b('GET /b HTTP/1.1\r\nHost: target.example\r\n\r\n') },
    { client: get('/c'), server: ok(''), expect: b('GET /c HTTP/1.1\r\nHost: target.example\r\n\r\n') },
  ],
});
