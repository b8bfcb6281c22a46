import { Capability, Command, hasCapability, MAX_PACKET_PAYLOAD, Marker } from './constants';
import { encodeLenencBytes, readLenencBytes, readNulTerminated, type BytesField } from './lenenc';

/*
 * Packets of the connection phase (greeting, login, auth switch) and COM_CHANGE_USER.
 * Parsers copy every buffer they return (their input may be a reused buffer) and return null on
 * truncated or malformed input; builders throw a RangeError on fields they cannot encode.
 */

/** HandshakeV10, the server's greeting. */
export interface Greeting {
  protocolVersion: number;
  serverVersion: string;
  connectionId: number;
  /** auth-plugin-data part 1 (8 bytes) + part 2 without its trailing NUL: normally 20 bytes. */
  scramble: Buffer;
  /** Lower and upper capability halves, as an unsigned 32-bit number. */
  capabilities: number;
  charset: number;
  status: number;
  /** MariaDB's extended capabilities (last 4 reserved bytes) when CLIENT_MYSQL is unset, else 0. */
  mariadbCapabilities: number;
  /** '' when the server names none. */
  authPluginName: string;
}

/** HandshakeResponse41, the client's login. Byte strings are kept as bytes (their charset is
 * the client's `charset`) so that building the packet again gives the same bytes. */
export interface HandshakeResponse {
  capabilities: number;
  maxPacketSize: number;
  charset: number;
  /** The 23 filler bytes as sent: MariaDB clients put their extended capabilities in the last 4. */
  filler: Buffer;
  /** The last 4 filler bytes when CLIENT_MYSQL is unset, else 0. */
  mariadbCapabilities: number;
  user: Buffer;
  authResponse: Buffer;
  /** Present when CONNECT_WITH_DB is set. */
  database: Buffer | null;
  /** Present when PLUGIN_AUTH is set. */
  authPluginName: string | null;
  /** The key/value bytes of CONNECT_ATTRS, without their length prefix. */
  connectAttrs: Buffer | null;
  /** MySQL 8's zstd compression level (ZSTD_COMPRESSION_ALGORITHM). */
  zstdLevel: number | null;
}

/** What {@link buildHandshakeResponse} needs; strings are written as UTF-8. */
export interface HandshakeResponseFields {
  capabilities: number;
  maxPacketSize?: number;
  charset: number;
  /** Written as given (23 bytes) before the MariaDB capabilities are laid over its last 4. */
  filler?: Buffer;
  mariadbCapabilities?: number;
  user: Buffer | string;
  authResponse: Buffer;
  database?: Buffer | string | null;
  authPluginName?: string | null;
  connectAttrs?: Buffer | null;
  zstdLevel?: number | null;
}

export interface AuthSwitchRequest {
  pluginName: string;
  /** The plugin data with one trailing NUL removed if present (the 20-byte scramble of
   * mysql_native_password and caching_sha2_password is sent NUL-terminated). */
  pluginData: Buffer;
  /** The plugin data exactly as sent. Use this for plugins whose data is not NUL-terminated,
   * such as client_ed25519's 32-byte nonce, which may itself end in a zero byte. */
  rawPluginData: Buffer;
}

/** COM_CHANGE_USER. */
export interface ChangeUser {
  user: Buffer;
  authResponse: Buffer;
  database: Buffer;
  /** Null when the packet ends after the schema (old clients). */
  charset: number | null;
  authPluginName: string | null;
  connectAttrs: Buffer | null;
}

export interface ChangeUserFields {
  user: Buffer | string;
  authResponse: Buffer;
  database?: Buffer | string;
  charset?: number | null;
  authPluginName?: string | null;
  connectAttrs?: Buffer | null;
}

const EMPTY = Buffer.alloc(0);
const FILLER_LENGTH = 23;
const RESPONSE_FIXED_LENGTH = 32;
/** Size of an SSLRequest: the fixed part of HandshakeResponse41 alone. */
export const SSL_REQUEST_LENGTH = RESPONSE_FIXED_LENGTH;
/** mysql_old_password's switch request is the lone 0xFE byte. */
const OLD_PASSWORD_PLUGIN = 'mysql_old_password';

const copy = (view: Buffer): Buffer => Buffer.from(view);
const ascii = (view: Buffer): string => view.toString('latin1');
const bytes = (value: Buffer | string): Buffer => (typeof value === 'string' ? Buffer.from(value, 'utf8') : value);

/** A NUL-terminated string, or (as some old peers send it) one that simply runs to the end. */
function readNulOrRest(buf: Buffer, offset: number): BytesField {
  const field = readNulTerminated(buf, offset);
  if (field.next >= 0 || offset >= buf.length) return field;
  return { value: buf.subarray(offset), next: buf.length };
}

/** Parses HandshakeV10. Null when it is not one or is truncated. */
export function parseGreeting(payload: Buffer): Greeting | null {
  if (payload.length < 1 || payload[0] !== Marker.HANDSHAKE_V10) return null;
  const version = readNulTerminated(payload, 1);
  if (version.next < 0) return null;
  let at = version.next;
  // connection id (4), auth-plugin-data part 1 (8), filler (1), capabilities lower half (2)
  if (at + 15 > payload.length) return null;
  const connectionId = payload.readUInt32LE(at);
  const part1 = payload.subarray(at + 4, at + 12);
  let capabilities = payload.readUInt16LE(at + 13);
  at += 15;
  const greeting: Greeting = {
    protocolVersion: payload[0],
    serverVersion: ascii(version.value),
    connectionId,
    scramble: copy(part1),
    capabilities,
    charset: 0,
    status: 0,
    mariadbCapabilities: 0,
    authPluginName: '',
  };
  if (at === payload.length) return greeting; // a pre-4.1 server stops here

  // charset (1), status (2), capabilities upper half (2), auth-plugin-data length (1), reserved (10)
  if (at + 16 > payload.length) return null;
  greeting.charset = payload[at];
  greeting.status = payload.readUInt16LE(at + 1);
  capabilities = (capabilities | (payload.readUInt16LE(at + 3) << 16)) >>> 0;
  greeting.capabilities = capabilities;
  const authDataLength = payload[at + 5];
  if (!hasCapability(capabilities, Capability.CLIENT_MYSQL)) greeting.mariadbCapabilities = payload.readUInt32LE(at + 12);
  at += 16;

  if (hasCapability(capabilities, Capability.SECURE_CONNECTION)) {
    const part2Length = Math.max(13, authDataLength - 8);
    if (at + part2Length > payload.length) return null;
    let part2End = at + part2Length;
    if (payload[part2End - 1] === 0) part2End--;
    greeting.scramble = Buffer.concat([part1, payload.subarray(at, part2End)]);
    at += part2Length;
  }
  if (hasCapability(capabilities, Capability.PLUGIN_AUTH) && at < payload.length) {
    // Servers before 5.5.10 forgot the NUL after the plugin name.
    greeting.authPluginName = ascii(readNulOrRest(payload, at).value);
  }
  return greeting;
}

/** True for an SSLRequest: the 32-byte fixed part of a HandshakeResponse41 with CLIENT_SSL set;
 * the TLS handshake follows it. */
export function isSslRequest(payload: Buffer): boolean {
  return payload.length === SSL_REQUEST_LENGTH && hasCapability(payload.readUInt32LE(0), Capability.SSL);
}

/** Parses HandshakeResponse41 (null for the older HandshakeResponse320, an SSLRequest, or bad input). */
export function parseHandshakeResponse(payload: Buffer): HandshakeResponse | null {
  if (payload.length < RESPONSE_FIXED_LENGTH) return null;
  const capabilities = payload.readUInt32LE(0);
  if (!hasCapability(capabilities, Capability.PROTOCOL_41)) return null;
  const filler = payload.subarray(9, 9 + FILLER_LENGTH);
  const user = readNulTerminated(payload, RESPONSE_FIXED_LENGTH);
  if (user.next < 0) return null;

  let auth: BytesField;
  if (hasCapability(capabilities, Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA)) {
    auth = readLenencBytes(payload, user.next);
  } else if (hasCapability(capabilities, Capability.SECURE_CONNECTION)) {
    auth = readOneByteLengthBytes(payload, user.next);
  } else {
    auth = readNulTerminated(payload, user.next);
  }
  if (auth.next < 0) return null;
  let at = auth.next;

  let database: Buffer | null = null;
  if (hasCapability(capabilities, Capability.CONNECT_WITH_DB) && at < payload.length) {
    const field = readNulOrRest(payload, at);
    database = copy(field.value);
    at = field.next;
  }
  let authPluginName: string | null = null;
  if (hasCapability(capabilities, Capability.PLUGIN_AUTH) && at < payload.length) {
    const field = readNulOrRest(payload, at);
    authPluginName = ascii(field.value);
    at = field.next;
  }
  let connectAttrs: Buffer | null = null;
  if (hasCapability(capabilities, Capability.CONNECT_ATTRS) && at < payload.length) {
    const field = readLenencBytes(payload, at);
    if (field.next < 0) return null;
    connectAttrs = copy(field.value);
    at = field.next;
  }
  let zstdLevel: number | null = null;
  if (hasCapability(capabilities, Capability.ZSTD_COMPRESSION_ALGORITHM) && at < payload.length) zstdLevel = payload[at];

  return {
    capabilities,
    maxPacketSize: payload.readUInt32LE(4),
    charset: payload[8],
    filler: copy(filler),
    mariadbCapabilities: hasCapability(capabilities, Capability.CLIENT_MYSQL) ? 0 : filler.readUInt32LE(FILLER_LENGTH - 4),
    user: copy(user.value),
    authResponse: copy(auth.value),
    database,
    authPluginName,
    connectAttrs,
    zstdLevel,
  };
}

/** Writes a HandshakeResponse41 payload: the inverse of {@link parseHandshakeResponse}. */
export function buildHandshakeResponse(fields: HandshakeResponseFields): Buffer {
  const capabilities = fields.capabilities >>> 0;
  const fixed = Buffer.alloc(RESPONSE_FIXED_LENGTH);
  fixed.writeUInt32LE(capabilities, 0);
  fixed.writeUInt32LE((fields.maxPacketSize ?? MAX_PACKET_PAYLOAD + 1) >>> 0, 4);
  fixed[8] = fields.charset & 0xff;
  if (fields.filler) {
    if (fields.filler.length !== FILLER_LENGTH) throw new RangeError(`filler must be ${FILLER_LENGTH} bytes, got ${fields.filler.length}`);
    fields.filler.copy(fixed, 9);
  }
  if (!hasCapability(capabilities, Capability.CLIENT_MYSQL) && fields.mariadbCapabilities !== undefined) {
    fixed.writeUInt32LE(fields.mariadbCapabilities >>> 0, RESPONSE_FIXED_LENGTH - 4);
  }

  const parts: Buffer[] = [fixed, nulTerminated(bytes(fields.user), 'user')];
  if (hasCapability(capabilities, Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA)) {
    parts.push(encodeLenencBytes(fields.authResponse));
  } else if (hasCapability(capabilities, Capability.SECURE_CONNECTION)) {
    parts.push(oneByteLengthBytes(fields.authResponse));
  } else {
    parts.push(nulTerminated(fields.authResponse, 'authResponse'));
  }
  if (hasCapability(capabilities, Capability.CONNECT_WITH_DB) && fields.database != null) {
    parts.push(nulTerminated(bytes(fields.database), 'database'));
  }
  if (hasCapability(capabilities, Capability.PLUGIN_AUTH) && fields.authPluginName != null) {
    parts.push(nulTerminated(Buffer.from(fields.authPluginName, 'latin1'), 'authPluginName'));
  }
  if (hasCapability(capabilities, Capability.CONNECT_ATTRS) && fields.connectAttrs != null) {
    parts.push(encodeLenencBytes(fields.connectAttrs));
  }
  if (hasCapability(capabilities, Capability.ZSTD_COMPRESSION_ALGORITHM) && fields.zstdLevel != null) {
    parts.push(Buffer.of(fields.zstdLevel & 0xff));
  }
  return Buffer.concat(parts);
}

/** Parses an AuthSwitchRequest (0xFE, plugin name NUL-terminated, plugin data to the end). */
export function parseAuthSwitchRequest(payload: Buffer): AuthSwitchRequest | null {
  if (payload.length < 1 || payload[0] !== Marker.EOF) return null;
  if (payload.length === 1) return { pluginName: OLD_PASSWORD_PLUGIN, pluginData: EMPTY, rawPluginData: EMPTY };
  const name = readNulTerminated(payload, 1);
  if (name.next < 0) return null;
  const rawPluginData = copy(payload.subarray(name.next));
  const stripped = rawPluginData.length > 0 && rawPluginData[rawPluginData.length - 1] === 0;
  return {
    pluginName: ascii(name.value),
    pluginData: stripped ? rawPluginData.subarray(0, rawPluginData.length - 1) : rawPluginData,
    rawPluginData,
  };
}

/** Parses AuthMoreData (0x01 + data to the end): the data, copied, or null. */
export function parseAuthMoreData(payload: Buffer): Buffer | null {
  if (payload.length < 1 || payload[0] !== Marker.AUTH_MORE_DATA) return null;
  return copy(payload.subarray(1));
}

/**
 * Parses COM_CHANGE_USER: user (NUL), auth response (1-byte length with SECURE_CONNECTION, else
 * NUL-terminated), schema (NUL), then, if more bytes follow: charset (2), plugin name (NUL, with
 * PLUGIN_AUTH), attributes (length-encoded, with CONNECT_ATTRS). `clientCapabilities` are those of
 * the client's login.
 */
export function parseChangeUser(payload: Buffer, clientCapabilities: number): ChangeUser | null {
  if (payload.length < 1 || payload[0] !== Command.COM_CHANGE_USER) return null;
  const user = readNulTerminated(payload, 1);
  if (user.next < 0) return null;
  const auth = hasCapability(clientCapabilities, Capability.SECURE_CONNECTION)
    ? readOneByteLengthBytes(payload, user.next)
    : readNulTerminated(payload, user.next);
  if (auth.next < 0) return null;
  const database = readNulTerminated(payload, auth.next);
  if (database.next < 0) return null;
  const change: ChangeUser = {
    user: copy(user.value),
    authResponse: copy(auth.value),
    database: copy(database.value),
    charset: null,
    authPluginName: null,
    connectAttrs: null,
  };
  let at = database.next;
  if (at === payload.length) return change;
  if (at + 2 > payload.length) return null;
  change.charset = payload.readUInt16LE(at);
  at += 2;
  if (hasCapability(clientCapabilities, Capability.PLUGIN_AUTH) && at < payload.length) {
    const field = readNulOrRest(payload, at);
    change.authPluginName = ascii(field.value);
    at = field.next;
  }
  if (hasCapability(clientCapabilities, Capability.CONNECT_ATTRS) && at < payload.length) {
    const field = readLenencBytes(payload, at);
    if (field.next < 0) return null;
    change.connectAttrs = copy(field.value);
  }
  return change;
}

/** Writes a COM_CHANGE_USER payload: the inverse of {@link parseChangeUser}. The charset is
 * required when a plugin name or attributes are written. */
export function buildChangeUser(fields: ChangeUserFields, clientCapabilities: number): Buffer {
  const parts: Buffer[] = [Buffer.of(Command.COM_CHANGE_USER), nulTerminated(bytes(fields.user), 'user')];
  parts.push(
    hasCapability(clientCapabilities, Capability.SECURE_CONNECTION)
      ? oneByteLengthBytes(fields.authResponse)
      : nulTerminated(fields.authResponse, 'authResponse'),
  );
  parts.push(nulTerminated(bytes(fields.database ?? EMPTY), 'database'));
  const plugin = hasCapability(clientCapabilities, Capability.PLUGIN_AUTH) ? fields.authPluginName ?? null : null;
  const attrs = hasCapability(clientCapabilities, Capability.CONNECT_ATTRS) ? fields.connectAttrs ?? null : null;
  if (fields.charset != null || plugin !== null || attrs !== null) {
    if (fields.charset == null) throw new RangeError('COM_CHANGE_USER needs a charset before a plugin name or attributes');
    const charset = Buffer.alloc(2);
    charset.writeUInt16LE(fields.charset & 0xffff, 0);
    parts.push(charset);
    if (plugin !== null) parts.push(nulTerminated(Buffer.from(plugin, 'latin1'), 'authPluginName'));
    if (attrs !== null) {
      // An attribute block after a missing plugin name would be read as the plugin name.
      if (plugin === null && hasCapability(clientCapabilities, Capability.PLUGIN_AUTH)) {
        throw new RangeError('COM_CHANGE_USER with PLUGIN_AUTH needs a plugin name before attributes');
      }
      parts.push(encodeLenencBytes(attrs));
    }
  }
  return Buffer.concat(parts);
}

/**
 * Frames `payload` as physical packets starting at sequence id `seq`: a payload of 0xFFFFFF bytes
 * or more is cut into 0xFFFFFF-byte packets, ended by a shorter (possibly empty) one.
 */
export function frame(seq: number, payload: Buffer): Buffer {
  const packets = Math.floor(payload.length / MAX_PACKET_PAYLOAD) + 1;
  const out = Buffer.allocUnsafe(payload.length + 4 * packets);
  let from = 0;
  let to = 0;
  for (let i = 0; i < packets; i++) {
    const length = Math.min(MAX_PACKET_PAYLOAD, payload.length - from);
    out.writeUIntLE(length, to, 3);
    out[to + 3] = (seq + i) & 0xff;
    payload.copy(out, to + 4, from, from + length);
    from += length;
    to += 4 + length;
  }
  return out;
}

function readOneByteLengthBytes(buf: Buffer, offset: number): BytesField {
  if (offset >= buf.length) return { value: EMPTY, next: -1 };
  const end = offset + 1 + buf[offset];
  if (end > buf.length) return { value: EMPTY, next: -1 };
  return { value: buf.subarray(offset + 1, end), next: end };
}

function oneByteLengthBytes(value: Buffer): Buffer {
  if (value.length > 0xff) throw new RangeError(`auth response of ${value.length} bytes needs PLUGIN_AUTH_LENENC_CLIENT_DATA`);
  return Buffer.concat([Buffer.of(value.length), value]);
}

function nulTerminated(value: Buffer, what: string): Buffer {
  if (value.includes(0)) throw new RangeError(`${what} must not contain a NUL byte`);
  return Buffer.concat([value, Buffer.of(0)]);
}
