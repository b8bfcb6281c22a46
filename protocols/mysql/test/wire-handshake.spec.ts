import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { Capability, Command, MariaDbCapability } from '../src/wire/constants';
import {
  buildChangeUser,
  buildHandshakeResponse,
  frame,
  isSslRequest,
  parseAuthMoreData,
  parseAuthSwitchRequest,
  parseChangeUser,
  parseGreeting,
  parseHandshakeResponse,
  type HandshakeResponse,
} from '../src/wire/handshake';
import { encodeLenencBytes } from '../src/wire/lenenc';
import { PacketFramer } from '../src/wire/packet-framer';
import { CLI_SELECT_1, CLI_WITH_DB, CONNECTOR_SESSION, MYSQL2_SESSION, segmentsFrom, type Segment } from './wire-fixtures';
import { hex } from './wire-helpers';

const sha1 = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
};
/** mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))). */
function nativeToken(password: string, scramble: Buffer): Buffer {
  const stage1 = sha1(Buffer.from(password));
  const mix = sha1(scramble, sha1(stage1));
  return Buffer.from(stage1.map((b, i) => b ^ mix[i]));
}

/** Logical packets of one direction of a capture. */
function payloadsOf(capture: Segment[], direction: 'c' | 's'): Buffer[] {
  const framer = new PacketFramer();
  const out: Buffer[] = [];
  for (const segment of segmentsFrom(capture, direction)) {
    framer.feed(segment);
    for (let p = framer.next(); p !== null; p = framer.next()) out.push(p.payload);
  }
  return out;
}

const u16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const cstr = (s: string) => Buffer.concat([Buffer.from(s), Buffer.of(0)]);

/** HandshakeV10 as laid out on the protocol pages. */
function greeting(opts: { caps: number; version?: string; scramble?: Buffer; plugin?: string | null; reserved?: Buffer; authLen?: number }): Buffer {
  const scramble = opts.scramble ?? Buffer.from('abcdefghijklmnopqrst');
  const reserved = opts.reserved ?? Buffer.alloc(10);
  return Buffer.concat([
    Buffer.of(10),
    cstr(opts.version ?? '8.0.36'),
    u32(42),
    scramble.subarray(0, 8),
    Buffer.of(0),
    u16(opts.caps & 0xffff),
    Buffer.of(0xff),
    u16(0x0002),
    u16(opts.caps >>> 16),
    Buffer.of(opts.authLen ?? scramble.length + 1),
    reserved,
    scramble.subarray(8),
    Buffer.of(0),
    opts.plugin === null ? Buffer.alloc(0) : cstr(opts.plugin ?? 'caching_sha2_password'),
  ]);
}

const MYSQL8_CAPS =
  (Capability.CLIENT_MYSQL |
    Capability.PROTOCOL_41 |
    Capability.SECURE_CONNECTION |
    Capability.PLUGIN_AUTH |
    Capability.CONNECT_WITH_DB |
    Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA |
    Capability.CONNECT_ATTRS |
    Capability.DEPRECATE_EOF |
    Capability.SSL |
    Capability.REMEMBER_OPTIONS) >>>
  0;

describe('wire: greeting (HandshakeV10)', () => {
  it('parses a greeting captured from MariaDB 10.11, with its extended capabilities', () => {
    const [payload] = payloadsOf(CLI_SELECT_1, 's');
    const g = parseGreeting(payload)!;
    expect(g).to.deep.include({
      protocolVersion: 10,
      serverVersion: '5.5.5-10.11.19-MariaDB-0+deb12u1',
      connectionId: 5,
      capabilities: 0x81fff7fe,
      charset: 8,
      status: 2,
      mariadbCapabilities: MariaDbCapability.PROGRESS | MariaDbCapability.STMT_BULK_OPERATIONS | MariaDbCapability.EXTENDED_TYPE_INFO | MariaDbCapability.CACHE_METADATA,
      authPluginName: 'mysql_native_password',
    });
    expect(g.scramble.toString('hex')).to.equal('3a687a4e584c564a' + '523c735179302257704f772c');
    expect(g.capabilities & Capability.CLIENT_MYSQL).to.equal(0);
  });

  it('gives the 20-byte scramble the real clients signed their passwords with', () => {
    for (const capture of [CLI_SELECT_1, CLI_WITH_DB, CONNECTOR_SESSION, MYSQL2_SESSION]) {
      const g = parseGreeting(payloadsOf(capture, 's')[0])!;
      const login = parseHandshakeResponse(payloadsOf(capture, 'c')[0])!;
      expect(g.scramble.length).to.equal(20);
      expect(login.authResponse.equals(nativeToken('secret', g.scramble))).to.equal(true);
    }
  });

  it('parses a MySQL 8 greeting: CLIENT_MYSQL set, so the reserved bytes are not MariaDB capabilities', () => {
    const g = parseGreeting(greeting({ caps: MYSQL8_CAPS, reserved: Buffer.alloc(10, 0x11) }))!;
    expect(g.capabilities).to.equal(MYSQL8_CAPS);
    expect(g.capabilities).to.be.above(0x7fffffff);
    expect(g.mariadbCapabilities).to.equal(0);
    expect(g.scramble.toString()).to.equal('abcdefghijklmnopqrst');
    expect(g.authPluginName).to.equal('caching_sha2_password');
    expect(g.connectionId).to.equal(42);
    expect(g.charset).to.equal(0xff);
  });

  it('reads 13 bytes of part 2 when the server gives no auth data length (no PLUGIN_AUTH)', () => {
    const caps = Capability.CLIENT_MYSQL | Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION;
    const g = parseGreeting(greeting({ caps, authLen: 0, plugin: null }))!;
    expect(g.scramble.toString()).to.equal('abcdefghijklmnopqrst');
    expect(g.authPluginName).to.equal('');
  });

  it('accepts a plugin name without its NUL (servers before 5.5.10)', () => {
    const caps = Capability.CLIENT_MYSQL | Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH;
    const p = greeting({ caps, plugin: 'mysql_native_password' });
    expect(parseGreeting(p.subarray(0, p.length - 1))!.authPluginName).to.equal('mysql_native_password');
  });

  it('parses a pre-4.1 greeting that ends after the lower capabilities', () => {
    const p = Buffer.concat([Buffer.of(10), cstr('4.0.1'), u32(7), Buffer.from('12345678'), Buffer.of(0), u16(0x0001)]);
    expect(parseGreeting(p)).to.deep.include({ serverVersion: '4.0.1', connectionId: 7, capabilities: 1, authPluginName: '' });
    expect(parseGreeting(p)!.scramble.toString()).to.equal('12345678');
  });

  it('returns null for every truncation that cuts a required field, and never throws', () => {
    const p = greeting({ caps: MYSQL8_CAPS });
    const versionEnd = p.indexOf(0, 1) + 1;
    const part2End = versionEnd + 15 + 16 + 13;
    for (let n = 0; n < p.length; n++) {
      const g = parseGreeting(p.subarray(0, n));
      if (n < versionEnd + 15 || (n > versionEnd + 15 && n < part2End)) expect(g, `length ${n}`).to.equal(null);
    }
    expect(parseGreeting(hex('09'))).to.equal(null);
  });

  it('returns copies, not views of the input', () => {
    const p = greeting({ caps: MYSQL8_CAPS });
    const g = parseGreeting(p)!;
    p.fill(0);
    expect(g.scramble.toString()).to.equal('abcdefghijklmnopqrst');
  });
});

describe('wire: SSLRequest', () => {
  it('is the 32-byte fixed part with CLIENT_SSL', () => {
    const fixed = buildHandshakeResponse({ capabilities: MYSQL8_CAPS, charset: 0x21, user: 'u', authResponse: Buffer.alloc(0) }).subarray(0, 32);
    expect(isSslRequest(fixed)).to.equal(true);
    expect(parseHandshakeResponse(fixed)).to.equal(null);
    expect(isSslRequest(Buffer.concat([fixed, Buffer.of(0)]))).to.equal(false);
    const noSsl = Buffer.from(fixed);
    noSsl.writeUInt32LE((MYSQL8_CAPS & ~Capability.SSL) >>> 0, 0);
    expect(isSslRequest(noSsl)).to.equal(false);
    expect(isSslRequest(Buffer.alloc(0))).to.equal(false);
  });
});

describe('wire: HandshakeResponse41', () => {
  it('parses the login of the mariadb command-line client (libmariadb), extended capabilities in the filler', () => {
    const login = parseHandshakeResponse(payloadsOf(CLI_SELECT_1, 'c')[0])!;
    expect(login.capabilities).to.equal(0x00bfa284);
    expect(login.maxPacketSize).to.equal(0x100000);
    expect(login.charset).to.equal(0x21);
    expect(login.filler.toString('hex')).to.equal('00'.repeat(19) + '1d000000');
    expect(login.mariadbCapabilities).to.equal(0x1d);
    expect(login.user.toString()).to.equal('app');
    expect(login.authResponse.length).to.equal(20);
    expect(login.database).to.equal(null);
    expect(login.authPluginName).to.equal('mysql_native_password');
    expect(login.connectAttrs!.length).to.equal(126);
    expect(login.connectAttrs!.toString('latin1')).to.contain('_client_name\nlibmariadb');
    expect(login.zstdLevel).to.equal(null);
  });

  it('parses the logins of the mariadb and mysql2 npm clients (database, 0xfc-long attributes)', () => {
    const connector = parseHandshakeResponse(payloadsOf(CONNECTOR_SESSION, 'c')[0])!;
    expect(connector.database!.toString()).to.equal('wt');
    expect(connector.mariadbCapabilities).to.equal(0x1c);
    expect(connector.capabilities & Capability.DEPRECATE_EOF).to.not.equal(0);
    expect(connector.connectAttrs!.length).to.equal(0x6a);
    const mysql2 = parseHandshakeResponse(payloadsOf(MYSQL2_SESSION, 'c')[0])!;
    expect(mysql2.database!.toString()).to.equal('wt');
    expect(mysql2.capabilities & Capability.DEPRECATE_EOF).to.equal(0);
    expect(mysql2.mariadbCapabilities).to.equal(MariaDbCapability.EXTENDED_TYPE_INFO);
  });

  it('builds the captured logins back byte for byte', () => {
    for (const capture of [CLI_SELECT_1, CLI_WITH_DB, MYSQL2_SESSION]) {
      const payload = payloadsOf(capture, 'c')[0];
      expect(buildHandshakeResponse(parseHandshakeResponse(payload)!).equals(payload)).to.equal(true);
    }
  });

  it('builds the npm connector login back with the shortest attribute length (it sent fc6a00 for 106)', () => {
    const payload = payloadsOf(CONNECTOR_SESSION, 'c')[0];
    const login = parseHandshakeResponse(payload)!;
    const rebuilt = buildHandshakeResponse(login);
    expect(rebuilt.length).to.equal(payload.length - 2);
    expect(parseHandshakeResponse(rebuilt)).to.deep.equal(login);
  });

  it('accepts a non-zero filler from a client that set CLIENT_MYSQL, keeping it', () => {
    const caps = (Capability.CLIENT_MYSQL | Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION) >>> 0;
    const filler = Buffer.alloc(23, 0x5a);
    const payload = buildHandshakeResponse({ capabilities: caps, charset: 8, filler, user: 'u', authResponse: Buffer.from('x') });
    const login = parseHandshakeResponse(payload)!;
    expect(login.mariadbCapabilities).to.equal(0);
    expect(login.filler.equals(filler)).to.equal(true);
    expect(buildHandshakeResponse(login).equals(payload)).to.equal(true);
  });

  it('reads the auth response by each of its three encodings', () => {
    const base = Capability.PROTOCOL_41 | Capability.CLIENT_MYSQL;
    const fixed = (caps: number) => Buffer.concat([u32(caps), u32(1 << 24), Buffer.of(8), Buffer.alloc(23)]);
    const nul = Buffer.concat([fixed(base), cstr('bob'), cstr('old-token')]);
    expect(parseHandshakeResponse(nul)!.authResponse.toString()).to.equal('old-token');
    const oneByte = Buffer.concat([fixed(base | Capability.SECURE_CONNECTION), cstr('bob'), Buffer.of(3), Buffer.from('abc')]);
    expect(parseHandshakeResponse(oneByte)!.authResponse.toString()).to.equal('abc');
    const long = Buffer.alloc(300, 0x42);
    const lenenc = Buffer.concat([fixed(base | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA), cstr('bob'), encodeLenencBytes(long)]);
    expect(parseHandshakeResponse(lenenc)!.authResponse.equals(long)).to.equal(true);
  });

  it("reads MySQL 8's zstd level after the attributes", () => {
    const caps = (MYSQL8_CAPS | Capability.ZSTD_COMPRESSION_ALGORITHM) >>> 0;
    const payload = buildHandshakeResponse({
      capabilities: caps,
      charset: 0xff,
      user: 'root',
      authResponse: Buffer.alloc(32, 1),
      database: 'db',
      authPluginName: 'caching_sha2_password',
      connectAttrs: Buffer.concat([encodeLenencBytes(Buffer.from('_os')), encodeLenencBytes(Buffer.from('Linux'))]),
      zstdLevel: 7,
    });
    const login = parseHandshakeResponse(payload)!;
    expect(login.zstdLevel).to.equal(7);
    expect(login.database!.toString()).to.equal('db');
    expect(login.capabilities).to.equal(caps);
  });

  it('round-trips every combination of the optional fields', () => {
    const flags = [
      Capability.SECURE_CONNECTION,
      Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA,
      Capability.CONNECT_WITH_DB,
      Capability.PLUGIN_AUTH,
      Capability.CONNECT_ATTRS,
      Capability.ZSTD_COMPRESSION_ALGORITHM,
      Capability.CLIENT_MYSQL,
    ];
    for (let mask = 0; mask < 1 << flags.length; mask++) {
      let caps = Capability.PROTOCOL_41 | Capability.REMEMBER_OPTIONS;
      flags.forEach((f, i) => {
        if (mask & (1 << i)) caps |= f;
      });
      caps >>>= 0;
      const mariadb = caps & Capability.CLIENT_MYSQL ? 0 : 0x1c;
      const fields: HandshakeResponse = {
        capabilities: caps,
        maxPacketSize: 0x01000000,
        charset: 0x2d,
        filler: Buffer.concat([Buffer.alloc(19), u32(mariadb)]),
        mariadbCapabilities: mariadb,
        user: Buffer.from('usér', 'utf8'),
        authResponse: caps & (Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA) ? Buffer.from([0, 1, 2, 0xff]) : Buffer.from('token'),
        database: caps & Capability.CONNECT_WITH_DB ? Buffer.from('shop') : null,
        authPluginName: caps & Capability.PLUGIN_AUTH ? 'mysql_native_password' : null,
        connectAttrs: caps & Capability.CONNECT_ATTRS ? Buffer.from('\x03_os\x05Linux', 'latin1') : null,
        zstdLevel: caps & Capability.ZSTD_COMPRESSION_ALGORITHM ? 3 : null,
      };
      const parsed = parseHandshakeResponse(buildHandshakeResponse(fields));
      expect(parsed, `caps ${caps.toString(16)}`).to.deep.equal(fields);
    }
  });

  it('returns null on truncation and on an older HandshakeResponse320, never throwing', () => {
    const payload = payloadsOf(CONNECTOR_SESSION, 'c')[0];
    for (let n = 0; n < payload.length; n++) {
      const login = parseHandshakeResponse(payload.subarray(0, n));
      // Cut before the end of the auth response: nothing usable.
      if (n < 32 + 4 + 21) expect(login, `length ${n}`).to.equal(null);
    }
    const old = Buffer.concat([u16(Capability.CLIENT_MYSQL), Buffer.from([0, 0, 1]), cstr('bob'), Buffer.from('12345678')]);
    expect(parseHandshakeResponse(Buffer.concat([old, Buffer.alloc(40)]))).to.equal(null);
  });

  it('refuses to build what cannot be encoded', () => {
    const caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION;
    expect(() => buildHandshakeResponse({ capabilities: caps, charset: 8, user: 'u', authResponse: Buffer.alloc(256) })).to.throw(RangeError);
    expect(() => buildHandshakeResponse({ capabilities: caps, charset: 8, user: 'a\0b', authResponse: Buffer.alloc(1) })).to.throw(RangeError);
    expect(() => buildHandshakeResponse({ capabilities: caps, charset: 8, user: 'u', authResponse: Buffer.alloc(1), filler: Buffer.alloc(3) })).to.throw(RangeError);
  });
});

describe('wire: auth switch and more data', () => {
  it('parses an AuthSwitchRequest, stripping the NUL after a 20-byte scramble', () => {
    const data = Buffer.from('0123456789abcdefghij');
    const sw = parseAuthSwitchRequest(Buffer.concat([Buffer.of(0xfe), cstr('mysql_native_password'), data, Buffer.of(0)]))!;
    expect(sw.pluginName).to.equal('mysql_native_password');
    expect(sw.pluginData.equals(data)).to.equal(true);
    expect(sw.rawPluginData.length).to.equal(21);
  });

  it('keeps the raw data for plugins whose data is not NUL-terminated (client_ed25519)', () => {
    const nonce = Buffer.alloc(32, 7);
    nonce[31] = 0;
    const sw = parseAuthSwitchRequest(Buffer.concat([Buffer.of(0xfe), cstr('client_ed25519'), nonce]))!;
    expect(sw.rawPluginData.equals(nonce)).to.equal(true);
    expect(sw.pluginData.length).to.equal(31);
  });

  it('reads the lone 0xFE as a switch to mysql_old_password, and rejects the rest', () => {
    expect(parseAuthSwitchRequest(hex('fe'))).to.deep.include({ pluginName: 'mysql_old_password' });
    expect(parseAuthSwitchRequest(hex('fe6162'))).to.equal(null);
    expect(parseAuthSwitchRequest(hex('00'))).to.equal(null);
    expect(parseAuthSwitchRequest(Buffer.alloc(0))).to.equal(null);
    expect(parseAuthSwitchRequest(hex('fe00'))).to.deep.equal({ pluginName: '', pluginData: Buffer.alloc(0), rawPluginData: Buffer.alloc(0) });
  });

  it('parses AuthMoreData (caching_sha2_password fast-auth success, a public key)', () => {
    expect(parseAuthMoreData(hex('0103'))!.toString('hex')).to.equal('03');
    expect(parseAuthMoreData(Buffer.concat([Buffer.of(1), Buffer.from('-----BEGIN PUBLIC KEY-----')]))!.toString()).to.equal('-----BEGIN PUBLIC KEY-----');
    expect(parseAuthMoreData(hex('01'))!.length).to.equal(0);
    expect(parseAuthMoreData(hex('02'))).to.equal(null);
    expect(parseAuthMoreData(Buffer.alloc(0))).to.equal(null);
  });
});

describe('wire: COM_CHANGE_USER', () => {
  const full = (Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | Capability.CONNECT_ATTRS) >>> 0;

  it('parses the documented layout', () => {
    const payload = Buffer.concat([
      Buffer.of(Command.COM_CHANGE_USER),
      cstr('bob'),
      Buffer.of(20),
      Buffer.alloc(20, 9),
      cstr('shop'),
      u16(0x21),
      cstr('mysql_native_password'),
      encodeLenencBytes(Buffer.from('\x03_os\x05Linux', 'latin1')),
    ]);
    const change = parseChangeUser(payload, full)!;
    expect(change.user.toString()).to.equal('bob');
    expect(change.authResponse.equals(Buffer.alloc(20, 9))).to.equal(true);
    expect(change.database.toString()).to.equal('shop');
    expect(change.charset).to.equal(0x21);
    expect(change.authPluginName).to.equal('mysql_native_password');
    expect(change.connectAttrs!.toString('latin1')).to.equal('\x03_os\x05Linux');
    expect(buildChangeUser(change, full).equals(payload)).to.equal(true);
  });

  it('parses the old form: NUL-terminated auth, nothing after the schema', () => {
    const caps = Capability.PROTOCOL_41;
    const payload = Buffer.concat([Buffer.of(0x11), cstr('bob'), cstr('scrambled'), cstr('')]);
    const change = parseChangeUser(payload, caps)!;
    expect(change).to.deep.include({ charset: null, authPluginName: null, connectAttrs: null });
    expect(change.authResponse.toString()).to.equal('scrambled');
    expect(buildChangeUser(change, caps).equals(payload)).to.equal(true);
  });

  it('round-trips with and without each optional part', () => {
    for (const caps of [full, Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION, Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH]) {
      for (const charset of [null, 0xe0]) {
        const fields = {
          user: Buffer.from('u'),
          authResponse: Buffer.from([1, 0, 2]),
          database: Buffer.from('d'),
          charset,
          authPluginName: charset !== null && caps & Capability.PLUGIN_AUTH ? 'client_ed25519' : null,
          connectAttrs: charset !== null && caps & Capability.CONNECT_ATTRS ? Buffer.from('\x01a\x01b', 'latin1') : null,
        };
        expect(parseChangeUser(buildChangeUser(fields, caps), caps)).to.deep.equal(fields);
      }
    }
  });

  it('returns null when truncated or not COM_CHANGE_USER, and refuses a charset-less build with attributes', () => {
    const payload = buildChangeUser({ user: 'bob', authResponse: Buffer.alloc(20, 1), database: 'x', charset: 8, authPluginName: 'p', connectAttrs: Buffer.from('\x01a\x01b') }, full);
    const schemaEnd = 1 + 4 + 21 + 2;
    for (let n = 0; n < payload.length; n++) {
      const change = parseChangeUser(payload.subarray(0, n), full);
      if (n < schemaEnd || n === schemaEnd + 1) expect(change, `length ${n}`).to.equal(null);
    }
    expect(parseChangeUser(hex('03'), full)).to.equal(null);
    expect(() => buildChangeUser({ user: 'u', authResponse: Buffer.alloc(0), connectAttrs: Buffer.alloc(1) }, full)).to.throw(RangeError);
  });
});

describe('wire: frame', () => {
  it('writes the 3-byte length and the sequence id', () => {
    expect(frame(0, hex('0e')).toString('hex')).to.equal('010000000e');
    expect(frame(3, Buffer.alloc(0)).toString('hex')).to.equal('00000003');
    expect(frame(2, Buffer.alloc(300)).subarray(0, 4).toString('hex')).to.equal('2c010002');
  });

  it('splits a payload of 0xFFFFFF bytes or more, wrapping the sequence id', function () {
    this.timeout(20000);
    const payload = Buffer.alloc(2 * 0xffffff + 3, 0x61);
    const raw = frame(255, payload);
    expect(raw.length).to.equal(payload.length + 12);
    expect(raw.subarray(0, 4).toString('hex')).to.equal('ffffffff');
    expect(raw.subarray(0xffffff + 4, 0xffffff + 8).toString('hex')).to.equal('ffffff00');
    expect(raw.subarray(2 * 0xffffff + 8, 2 * 0xffffff + 12).toString('hex')).to.equal('03000001');
  });
});
