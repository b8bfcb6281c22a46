import { protocolComplianceTests } from '@tcpcopy/core/compliance';
import { createProtocol } from '../src';
import { nativePasswordToken } from '../src/auth/native-password';
import { madeUpRecord } from '../src/login';
import { Capability } from '../src/wire/constants';
import { buildHandshakeResponse, frame } from '../src/wire/handshake';
import { command, execute, greeting, ok, prepareOk, resultSet, SERVER_CAPS } from './support';

// A MySQL conversation as a mysql2-like client has it: login, a query, a prepared statement
// executed, an insert. The online server and the target greet with different scrambles, and the
// target numbers the statement 7 where the online server said 1: what the target receives is the
// login recomputed for its scramble (with the target password) and the EXECUTE naming 7.
const ONLINE_SCRAMBLE = Buffer.from('online-scramble-0001');
const TARGET_SCRAMBLE = Buffer.from('TARGET-scramble-9999');
const TARGET_PASSWORD = 'target-secret';
// The captured login is what a resumed connection would make up, so both paths log in the same way.
const record = madeUpRecord('app', null);

function login(token: Buffer, caps: number): Buffer {
  return frame(1, buildHandshakeResponse({
    capabilities: caps, maxPacketSize: record.maxPacketSize, charset: record.charset, user: record.user, authResponse: token,
    authPluginName: 'mysql_native_password',
  }));
}

const capturedLogin = login(nativePasswordToken('online-secret', ONLINE_SCRAMBLE), record.capabilities);
const targetLogin = login(nativePasswordToken(TARGET_PASSWORD, TARGET_SCRAMBLE), (record.capabilities & SERVER_CAPS) >>> 0 | Capability.PROTOCOL_41);
const prepare = command(0x16, 'INSERT INTO t (n) VALUES (?)');

protocolComplianceTests('mysql', {
  // default-user: the resume case logs in the same whether or not an earlier case left a login from this address.
  protocol: createProtocol({ user: `app:${TARGET_PASSWORD}`, 'default-user': 'app' }),
  serverFirst: {
    onlineGreeting: greeting(ONLINE_SCRAMBLE),
    targetGreeting: greeting(TARGET_SCRAMBLE),
    exchanges: [
      { client: capturedLogin, server: ok(2), expect: targetLogin },
      { client: command(0x03, 'SELECT c FROM t'), server: resultSet(['1', '22', '333']) },
      { client: prepare, server: prepareOk(7, 1) },
      { client: execute(1, 5), server: ok(1, 1), expect: execute(7, 5) },
      { client: command(0x03, 'UPDATE t SET n = n + 1'), server: ok(1, 3) },
    ],
    resumePrelude: { client: targetLogin, server: ok(2) },
  },
});
