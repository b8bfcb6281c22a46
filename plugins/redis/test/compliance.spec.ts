import { protocolComplianceTests } from '@tcpcopy/core/compliance';
import { createProtocol } from '../src';
import redisProtocol from '../src';
import { cmd } from './support';

const r = (s: string) => Buffer.from(s, 'latin1');
const big = 'x'.repeat(3000);

/** A short session as redis-cli would have it: log in, write, read back, a list, a value larger than a packet. */
const conversation = [
  { client: cmd('AUTH', 'online-secret'), server: r('+OK\r\n') },
  { client: cmd('SET', 'greeting', 'hello'), server: r('+OK\r\n') },
  { client: cmd('INCR', 'visits'), server: r(':1\r\n') },
  { client: cmd('GET', 'greeting'), server: r('$5\r\nhello\r\n') },
  { client: cmd('RPUSH', 'queue', 'a', 'b', 'c'), server: r(':3\r\n') },
  { client: cmd('LRANGE', 'queue', '0', '-1'), server: r('*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n') },
  { client: cmd('SET', 'big', big), server: r('+OK\r\n') },
  { client: cmd('GET', 'big'), server: r(`$${big.length}\r\n${big}\r\n`) },
  { client: cmd('GET', 'missing'), server: r('$-1\r\n') },
  { client: cmd('HGET', 'queue', 'f'), server: r('-WRONGTYPE Operation against a key holding the wrong kind of value\r\n') },
];

// As loaded without options: AUTH goes as captured.
protocolComplianceTests('redis', { protocol: redisProtocol, exchanges: conversation });

// With a target password: the AUTH the target receives carries it instead, and a resumed connection
// starts with the plugin's own AUTH (auth-resync.spec.ts and the end-to-end test cover it further).
protocolComplianceTests('redis with password=...', {
  protocol: createProtocol({ password: 'target-secret' }),
  exchanges: conversation.map((e, i) => (i === 0 ? { ...e, expect: cmd('AUTH', 'target-secret') } : e)),
  // A resumed connection starts with the plugin's own login, which the target answers +OK.
  resumePrelude: { client: cmd('AUTH', 'target-secret'), server: Buffer.from('+OK\r\n') },
});
