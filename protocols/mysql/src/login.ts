import { computeAuthResponse } from './auth/auth-plugins';
import {
  CACHING_SHA2_FAST_AUTH_SUCCESS,
  CACHING_SHA2_PERFORM_FULL_AUTHENTICATION,
  CACHING_SHA2_PLUGIN,
  CACHING_SHA2_REQUEST_PUBLIC_KEY,
  rsaEncryptedPassword,
  SHA256_PASSWORD_PLUGIN,
} from './auth/caching-sha2';
import { NATIVE_PASSWORD_PLUGIN } from './auth/native-password';
import { Capability, MariaDbCapability, Marker } from './wire/constants';
import { buildHandshakeResponse, parseAuthMoreData, parseAuthSwitchRequest, type Greeting, type HandshakeResponse } from './wire/handshake';
import { parseErr } from './wire/response';

/** What a login needs besides the password: taken from a captured login, or made up for a resumed connection. */
export interface LoginRecord {
  user: Buffer;
  database: Buffer | null;
  capabilities: number;
  mariadbCapabilities: number;
  charset: number;
  maxPacketSize: number;
  connectAttrs: Buffer | null;
}

/** utf8mb4_general_ci: what a made-up login asks for. */
const DEFAULT_CHARSET = 45;
/** Capabilities of a made-up login: what common drivers ask for, nothing that changes the client's packet layout. */
const DEFAULT_CAPABILITIES =
  Capability.CLIENT_MYSQL | Capability.FOUND_ROWS | Capability.LONG_FLAG | Capability.PROTOCOL_41 | Capability.TRANSACTIONS |
  Capability.SECURE_CONNECTION | Capability.MULTI_STATEMENTS | Capability.MULTI_RESULTS | Capability.PS_MULTI_RESULTS |
  Capability.PLUGIN_AUTH | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA;
/**
 * Never asked of the target: TLS and compression (their bytes are not replayable), and MariaDB's
 * progress reports and metadata cache, which change reply formats for nothing a replay needs.
 */
const NEVER = Capability.SSL | Capability.COMPRESS | Capability.ZSTD_COMPRESSION_ALGORITHM | Capability.QUERY_ATTRIBUTES;
const NEVER_MARIADB = MariaDbCapability.PROGRESS | MariaDbCapability.CACHE_METADATA;

export function recordOf(login: HandshakeResponse): LoginRecord {
  return {
    user: login.user,
    database: login.database,
    capabilities: login.capabilities,
    mariadbCapabilities: login.mariadbCapabilities,
    charset: login.charset,
    maxPacketSize: login.maxPacketSize,
    connectAttrs: login.connectAttrs,
  };
}

export function madeUpRecord(user: string, database: string | null): LoginRecord {
  return {
    user: Buffer.from(user),
    database: database === null ? null : Buffer.from(database),
    capabilities: DEFAULT_CAPABILITIES,
    mariadbCapabilities: 0,
    charset: DEFAULT_CHARSET,
    maxPacketSize: 16 * 1024 * 1024,
    connectAttrs: null,
  };
}

/** The capabilities a connection ends up with: what the client asked and the target offers. */
export function agreedCapabilities(record: LoginRecord, greeting: Greeting): { capabilities: number; mariadb: number } {
  let caps = (record.capabilities & greeting.capabilities & ~NEVER) >>> 0;
  // Length-prefixed auth answers whatever the client used: a token may hold NUL bytes.
  caps = (caps | Capability.PROTOCOL_41 | (greeting.capabilities & Capability.SECURE_CONNECTION)) >>> 0;
  if (record.database && record.database.length > 0) caps = (caps | Capability.CONNECT_WITH_DB) >>> 0;
  else caps = (caps & ~Capability.CONNECT_WITH_DB) >>> 0;
  // MariaDB's extended capabilities travel only when the target does not claim to be MySQL.
  const mariadb = greeting.capabilities & Capability.CLIENT_MYSQL ? 0 : record.mariadbCapabilities & greeting.mariadbCapabilities & ~NEVER_MARIADB;
  return { capabilities: caps, mariadb };
}

/**
 * The login the target gets: the client's (user, schema, attributes, agreed capabilities) with an
 * authentication response computed from the target's greeting and the user's target password.
 * Returns the packet payload (sequence id 1) and the plugin it answers with.
 */
export function targetLogin(record: LoginRecord, greeting: Greeting, password: string): { payload: Buffer; plugin: string } {
  const { capabilities, mariadb } = agreedCapabilities(record, greeting);
  let plugin = greeting.authPluginName || NATIVE_PASSWORD_PLUGIN;
  let auth = computeAuthResponse(plugin, password, greeting.scramble);
  if (!auth) {
    // A default plugin we cannot speak: start with native password; the server switches us if it must.
    plugin = NATIVE_PASSWORD_PLUGIN;
    auth = computeAuthResponse(plugin, password, greeting.scramble) ?? Buffer.alloc(0);
  }
  let caps = capabilities;
  if (!(caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA) && auth.length > 250) caps = (caps | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA) >>> 0;
  const payload = buildHandshakeResponse({
    capabilities: caps,
    maxPacketSize: record.maxPacketSize,
    charset: record.charset,
    mariadbCapabilities: mariadb,
    user: record.user,
    authResponse: auth,
    database: caps & Capability.CONNECT_WITH_DB ? record.database : null,
    authPluginName: caps & Capability.PLUGIN_AUTH ? plugin : null,
    connectAttrs: caps & Capability.CONNECT_ATTRS ? record.connectAttrs : null,
  });
  return { payload, plugin };
}

/** What the authentication exchange wants after a server packet. */
export type AuthStep =
  | { kind: 'send'; payload: Buffer; seq: number }
  | { kind: 'ok' }
  | { kind: 'refused'; message: string }
  | { kind: 'wait' }
  | { kind: 'unsupported'; message: string };

/**
 * Answers the target's side of an authentication exchange (after a login or COM_CHANGE_USER):
 * OK, ERR, an AuthSwitchRequest (recompute for the plugin it names and its new data), or
 * AuthMoreData (caching_sha2_password's fast-path result, or the RSA public key it sends for a
 * full authentication, since a replay has no TLS).
 */
export class AuthExchange {
  private plugin: string;
  private scramble: Buffer;

  constructor(
    private readonly password: string,
    firstPlugin: string,
    scramble: Buffer,
  ) {
    this.plugin = firstPlugin || NATIVE_PASSWORD_PLUGIN;
    this.scramble = scramble;
  }

  /** The scramble the connection uses now (COM_CHANGE_USER answers it). */
  get currentScramble(): Buffer {
    return this.scramble;
  }

  step(payload: Buffer, seq: number): AuthStep {
    if (payload.length === 0) return { kind: 'unsupported', message: 'an empty packet during authentication' };
    switch (payload[0]) {
      case Marker.OK:
        return { kind: 'ok' };
      case Marker.ERR:
        return { kind: 'refused', message: parseErr(payload)?.message ?? 'ERR' };
      case Marker.EOF: {
        const sw = parseAuthSwitchRequest(payload);
        if (!sw) return { kind: 'unsupported', message: 'an old-password (pre-4.1) authentication switch' };
        const data = sw.pluginName === 'client_ed25519' ? sw.rawPluginData : sw.pluginData;
        const answer = computeAuthResponse(sw.pluginName, this.password, data);
        if (!answer) return { kind: 'unsupported', message: `the target asks for authentication plugin ${sw.pluginName}, which tcpcopy cannot answer` };
        this.plugin = sw.pluginName;
        this.scramble = data;
        return { kind: 'send', payload: answer, seq: seq + 1 };
      }
      case Marker.AUTH_MORE_DATA: {
        const more = parseAuthMoreData(payload);
        if (!more) return { kind: 'unsupported', message: 'a malformed AuthMoreData packet' };
        if (this.plugin === CACHING_SHA2_PLUGIN && more.length === 1) {
          if (more[0] === CACHING_SHA2_FAST_AUTH_SUCCESS) return { kind: 'wait' };
          if (more[0] === CACHING_SHA2_PERFORM_FULL_AUTHENTICATION) {
            return { kind: 'send', payload: Buffer.from([CACHING_SHA2_REQUEST_PUBLIC_KEY]), seq: seq + 1 };
          }
        }
        if ((this.plugin === CACHING_SHA2_PLUGIN || this.plugin === SHA256_PASSWORD_PLUGIN) && more.includes('-----BEGIN')) {
          try {
            return { kind: 'send', payload: rsaEncryptedPassword(this.password, this.scramble, more), seq: seq + 1 };
          } catch (err) {
            return { kind: 'unsupported', message: `the target's RSA public key cannot be used (${(err as Error).message})` };
          }
        }
        return { kind: 'unsupported', message: `unexpected AuthMoreData for ${this.plugin}` };
      }
      default:
        return { kind: 'unsupported', message: `unexpected packet 0x${payload[0].toString(16)} during authentication` };
    }
  }
}
