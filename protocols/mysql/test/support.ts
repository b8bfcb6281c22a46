// Packets of a MySQL conversation, built for tests from the protocol documentation.
import { nativePasswordToken } from '../src/auth/native-password';
import { madeUpRecord } from '../src/login';
import { Capability, MariaDbCapability } from '../src/wire/constants';
import { buildChangeUser, buildHandshakeResponse, frame } from '../src/wire/handshake';

/** The capabilities a MariaDB 10.11 server offers (CLIENT_MYSQL unset: MariaDB's extended ones follow). */
export const SERVER_CAPS =
  (0xffff & ~Capability.CLIENT_MYSQL & ~Capability.SSL & ~Capability.COMPRESS) |
  Capability.MULTI_STATEMENTS | Capability.MULTI_RESULTS | Capability.PS_MULTI_RESULTS | Capability.PLUGIN_AUTH |
  Capability.CONNECT_ATTRS | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA | Capability.SESSION_TRACK | Capability.DEPRECATE_EOF;
export const SERVER_MARIADB_CAPS = MariaDbCapability.PROGRESS | MariaDbCapability.STMT_BULK_OPERATIONS | MariaDbCapability.EXTENDED_TYPE_INFO | MariaDbCapability.CACHE_METADATA;

/** HandshakeV10 (sequence id 0) with a 20-byte scramble (`caps`: the capabilities offered, SERVER_CAPS by default). */
export function greeting(scramble: Buffer, opts: { connectionId?: number; plugin?: string; caps?: number } = {}): Buffer {
  const caps = opts.caps ?? SERVER_CAPS;
  const version = Buffer.from('5.5.5-10.11.6-MariaDB-0+deb12u1\0', 'latin1');
  const fixed = Buffer.alloc(4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 6 + 4);
  let at = 0;
  fixed.writeUInt32LE(opts.connectionId ?? 42, at);
  at += 4;
  scramble.copy(fixed, at, 0, 8);
  at += 8 + 1;
  fixed.writeUInt16LE(caps & 0xffff, at);
  at += 2;
  fixed[at++] = 45;
  fixed.writeUInt16LE(2, at); // autocommit
  at += 2;
  fixed.writeUInt16LE(caps >>> 16, at);
  at += 2;
  fixed[at++] = 21;
  at += 6;
  fixed.writeUInt32LE(SERVER_MARIADB_CAPS, at);
  // Without SECURE_CONNECTION there is no second part of the scramble: the plugin name follows at once.
  const part2 = caps & Capability.SECURE_CONNECTION ? [scramble.subarray(8, 20), Buffer.from([0])] : [];
  const rest = Buffer.concat([...part2, Buffer.from(`${opts.plugin ?? 'mysql_native_password'}\0`, 'latin1')]);
  return frame(0, Buffer.concat([Buffer.from([10]), version, fixed, rest]));
}

export function ok(seq: number, affectedRows = 0): Buffer {
  return frame(seq, Buffer.from([0, affectedRows, 0, 2, 0, 0, 0]));
}

export function err(seq: number, code: number, message: string): Buffer {
  const b = Buffer.alloc(3);
  b[0] = 0xff;
  b.writeUInt16LE(code, 1);
  return frame(seq, Buffer.concat([b, Buffer.from(`#HY000${message}`)]));
}

export function command(cmd: number, body: Buffer | string = Buffer.alloc(0)): Buffer {
  return frame(0, Buffer.concat([Buffer.from([cmd]), typeof body === 'string' ? Buffer.from(body) : body]));
}

/** A column definition packet (the bytes a tracker skips; only its presence counts). */
function columnDef(seq: number, name: string): Buffer {
  const s = (t: string) => Buffer.concat([Buffer.from([t.length]), Buffer.from(t)]);
  return frame(seq, Buffer.concat([s('def'), s('shop'), s('t'), s('t'), s(name), s(name), Buffer.from([0x0c, 0x21, 0, 0x0b, 0, 0, 0, 3, 0, 0, 0, 0, 0])]));
}

const eof = (seq: number) => frame(seq, Buffer.from([0xfe, 0, 0, 2, 0]));

/** A one-column text result set of `rows` rows, with EOF packets (CLIENT_DEPRECATE_EOF not agreed). */
export function resultSet(rows: string[]): Buffer {
  const parts = [frame(1, Buffer.from([1])), columnDef(2, 'c'), eof(3)];
  let seq = 4;
  for (const r of rows) parts.push(frame(seq++, Buffer.concat([Buffer.from([r.length]), Buffer.from(r)])));
  parts.push(eof(seq));
  return Buffer.concat(parts);
}

/** COM_STMT_PREPARE's OK: statement id, no columns, `params` parameters (their definitions, then an EOF). */
export function prepareOk(statementId: number, params: number): Buffer {
  const head = Buffer.alloc(12);
  head[0] = 0;
  head.writeUInt32LE(statementId, 1);
  head.writeUInt16LE(0, 5);
  head.writeUInt16LE(params, 7);
  const parts = [frame(1, head)];
  for (let i = 0; i < params; i++) parts.push(columnDef(2 + i, '?'));
  if (params > 0) parts.push(eof(2 + params));
  return Buffer.concat(parts);
}

/** COM_STMT_EXECUTE of `statementId` with one integer parameter. */
export function execute(statementId: number, value: number): Buffer {
  const body = Buffer.alloc(4 + 1 + 4 + 1 + 1 + 2 + 4);
  body.writeUInt32LE(statementId, 0);
  body[4] = 0; // no cursor
  body.writeUInt32LE(1, 5); // iteration count
  body[9] = 0; // null bitmap
  body[10] = 1; // new params bound
  body.writeUInt16LE(3, 11); // MYSQL_TYPE_LONG
  body.writeInt32LE(value, 13);
  return command(0x17, body);
}

// ---- a whole conversation, and the odd client packets the robustness tests need ----------------

/** The scrambles of compliance.spec.ts's conversation: the online server's and the target's differ. */
export const ONLINE_SCRAMBLE = Buffer.from('online-scramble-0001');
export const TARGET_SCRAMBLE = Buffer.from('TARGET-scramble-9999');

/** A HandshakeResponse41 (sequence id 1) with mysql_native_password, as a mysql2-like client sends it. */
export function handshakeResponse(opts: { user?: string; caps?: number; token?: Buffer; database?: string | null; seq?: number } = {}): Buffer {
  const record = madeUpRecord(opts.user ?? 'app', null);
  const caps = opts.caps ?? record.capabilities;
  return frame(opts.seq ?? 1, buildHandshakeResponse({
    capabilities: caps, maxPacketSize: record.maxPacketSize, charset: record.charset, user: record.user,
    authResponse: opts.token ?? nativePasswordToken('online-secret', ONLINE_SCRAMBLE),
    database: opts.database ?? null,
    authPluginName: 'mysql_native_password',
  }));
}

/** An SSLRequest: the 32-byte fixed part of a HandshakeResponse41 with CLIENT_SSL set (sequence id 1). */
export function sslRequest(): Buffer {
  const fixed = Buffer.alloc(32);
  fixed.writeUInt32LE((madeUpRecord('app', null).capabilities | Capability.SSL) >>> 0, 0);
  fixed.writeUInt32LE(16 * 1024 * 1024, 4);
  fixed[8] = 45;
  return frame(1, fixed);
}

export interface ConversationExchange {
  /** What the client sent (one packet). */
  client: Buffer;
  /** What the online server, and the simulated target, answer. */
  server: Buffer;
  /** What the target receives for it (the login recomputed for the target's greeting; else `client`). */
  expect: Buffer;
}

/**
 * The conversation of compliance.spec.ts: a login, a query, a prepared statement executed (the target
 * numbers it 7 where the online server said 1), an update. `targetPassword` is the password given with
 * `user=app:PASSWORD`.
 */
export function validConversation(targetPassword: string): { onlineGreeting: Buffer; targetGreeting: Buffer; exchanges: ConversationExchange[] } {
  const targetLogin = handshakeResponse({
    token: nativePasswordToken(targetPassword, TARGET_SCRAMBLE),
    caps: (madeUpRecord('app', null).capabilities & SERVER_CAPS) >>> 0 | Capability.PROTOCOL_41,
  });
  const ex = (client: Buffer, server: Buffer, expect = client): ConversationExchange => ({ client, server, expect });
  return {
    onlineGreeting: greeting(ONLINE_SCRAMBLE),
    targetGreeting: greeting(TARGET_SCRAMBLE),
    exchanges: [
      ex(handshakeResponse(), ok(2), targetLogin),
      ex(command(0x03, 'SELECT c FROM t'), resultSet(['1', '22', '333'])),
      ex(command(0x16, 'INSERT INTO t (n) VALUES (?)'), prepareOk(7, 1)),
      ex(execute(1, 5), ok(1, 1), execute(7, 5)),
      ex(command(0x03, 'UPDATE t SET n = n + 1'), ok(1, 3)),
    ],
  };
}

/** COM_CHANGE_USER to `user` with a mysql_native_password answer, laid out as the protocol rebuilds it (charset 45, no attributes). */
export function changeUser(user: string, token: Buffer, caps = madeUpRecord(user, null).capabilities): Buffer {
  return frame(0, buildChangeUser({ user, authResponse: token, database: '', charset: 45, authPluginName: 'mysql_native_password' }, caps));
}

/**
 * A second conversation, of the commands the first lacks: COM_INIT_DB, COM_PING, a query, COM_CHANGE_USER
 * (answered for the target's scramble with `targetPassword`), another query, COM_QUIT.
 */
export function adminConversation(targetPassword: string): { onlineGreeting: Buffer; targetGreeting: Buffer; exchanges: ConversationExchange[] } {
  const base = validConversation(targetPassword);
  const ex = (client: Buffer, server: Buffer, expect = client): ConversationExchange => ({ client, server, expect });
  return {
    ...base,
    exchanges: [
      base.exchanges[0],
      ex(command(0x02, 'shop'), ok(1)),
      ex(command(0x0e), ok(1)),
      ex(command(0x03, 'SELECT c FROM t'), resultSet(['4444'])),
      ex(changeUser('app', nativePasswordToken('online-secret', ONLINE_SCRAMBLE)), ok(1), changeUser('app', nativePasswordToken(targetPassword, TARGET_SCRAMBLE))),
      ex(command(0x03, 'UPDATE t SET n = n + 1'), ok(1, 3)),
      ex(command(0x01), Buffer.alloc(0)),
    ],
  };
}
