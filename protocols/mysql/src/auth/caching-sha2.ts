/**
 * caching_sha2_password (MySQL 8 default) and the RSA step it shares with sha256_password.
 *
 * dev.mysql.com, "Caching_sha2_password information":
 *   Nonce    - 20 byte long random data
 *   Scramble - XOR(SHA256(password), SHA256(SHA256(SHA256(password)), Nonce))
 * i.e. the double hash comes FIRST and the nonce second (the reverse of mysql_native_password, where the
 * scramble comes first). The server answers the scramble with OK/ERR or AuthMoreData carrying
 * 0x03 (fast auth success, OK follows) or 0x04 (perform full authentication). For full authentication the
 * client sends, over TLS or a Unix socket, the password + NUL in clear; otherwise the password
 * RSA-encrypted with the server's public key, first asking for the key with 0x02 if it does not know it.
 *
 * sha256_password (MySQL 5.6+; MariaDB KB "sha256_password plugin") has no fast path: over a secure
 * transport the client sends password + NUL; otherwise it asks for the key with 0x01 (or sends the RSA
 * step at once when it already has the key); an empty password is a single 0x00 byte.
 *
 * RSA step (both plugins): RSA_PKCS1_OAEP_PADDING (OAEP with SHA-1 and MGF1-SHA-1) encryption of
 * (password ‖ 0x00) XOR nonce, the 20-byte nonce repeated cyclically.
 */
import { constants, createHash, createPublicKey, KeyObject, publicEncrypt } from 'node:crypto';
import { passwordBytes } from './native-password';

export const CACHING_SHA2_PLUGIN = 'caching_sha2_password';
export const SHA256_PASSWORD_PLUGIN = 'sha256_password';

/** Both plugins use a 20-byte nonce; the server sends it followed by a NUL. */
export const SHA2_NONCE_LENGTH = 20;
/** Length of the fast-path scramble (SHA-256 digest length). */
export const CACHING_SHA2_TOKEN_LENGTH = 32;

/** Client → server, caching_sha2_password: "send me your RSA public key". */
export const CACHING_SHA2_REQUEST_PUBLIC_KEY = 0x02;
/** Server → client, byte after the AuthMoreData header (0x01): the fast path succeeded, OK follows. */
export const CACHING_SHA2_FAST_AUTH_SUCCESS = 0x03;
/** Server → client, byte after the AuthMoreData header: the client must send the full password. */
export const CACHING_SHA2_PERFORM_FULL_AUTHENTICATION = 0x04;
/** Client → server, sha256_password: "send me your RSA public key". */
export const SHA256_REQUEST_PUBLIC_KEY = 0x01;
/** Client → server, sha256_password: the answer for an empty password (as libmysqlclient sends it). */
export const SHA256_EMPTY_PASSWORD = 0x00;

function nonce20(nonce: Buffer): Buffer {
  return nonce.length > SHA2_NONCE_LENGTH ? nonce.subarray(0, SHA2_NONCE_LENGTH) : nonce;
}

/**
 * The fast-path scramble of caching_sha2_password: XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) ‖ nonce)).
 * Only the first 20 bytes of `nonce` are used (the server's trailing NUL may be left on).
 * An empty password gives an empty buffer (the server also accepts a single 0x00 byte).
 */
export function cachingSha2Token(password: string | Buffer, nonce: Buffer): Buffer {
  const pw = passwordBytes(password);
  if (pw.length === 0) return Buffer.alloc(0);
  const stage1 = createHash('sha256').update(pw).digest();
  const stage2 = createHash('sha256').update(stage1).digest();
  const mask = createHash('sha256').update(stage2).update(nonce20(nonce)).digest();
  for (let i = 0; i < mask.length; i++) mask[i] ^= stage1[i];
  return mask;
}

/** password ‖ NUL: the clear-text answer (mysql_clear_password; full auth over TLS or a Unix socket). */
export function clearPasswordPayload(password: string | Buffer): Buffer {
  const pw = passwordBytes(password);
  const out = Buffer.allocUnsafe(pw.length + 1);
  pw.copy(out, 0);
  out[pw.length] = 0;
  return out;
}

/** (password ‖ NUL) XOR nonce, the first 20 bytes of `nonce` repeated cyclically: the RSA plaintext. */
export function xorPasswordWithNonce(password: string | Buffer, nonce: Buffer): Buffer {
  const seed = nonce20(nonce);
  if (seed.length === 0) throw new RangeError('empty nonce');
  const out = clearPasswordPayload(password);
  for (let i = 0; i < out.length; i++) out[i] ^= seed[i % seed.length];
  return out;
}

const BEGIN = '-----BEGIN ';
const END = '-----END ';

/**
 * A PEM public key as the server sends it, made acceptable to Node: the text from the first
 * "-----BEGIN " through the end of the last "-----END ...-----" line, so that a trailing NUL (or
 * whitespace), or a leading AuthMoreData status byte left on by the caller, is dropped.
 * Both "PUBLIC KEY" (SubjectPublicKeyInfo, what MySQL sends) and "RSA PUBLIC KEY" (PKCS#1) work.
 */
export function normalizePublicKeyPem(pem: string | Buffer): string {
  const text = typeof pem === 'string' ? pem : pem.toString('latin1');
  const start = text.indexOf(BEGIN);
  const endLine = text.lastIndexOf(END);
  if (start < 0 || endLine < start) throw new Error('not a PEM public key');
  const close = text.indexOf('-----', endLine + END.length);
  if (close < 0) throw new Error('truncated PEM public key');
  return text.slice(start, close + 5) + '\n';
}

// One parsed key is kept: a replay talks to one server, which always sends the same key.
let lastPem: string | undefined;
let lastKey: KeyObject | undefined;

function publicKeyObject(pem: string | Buffer | KeyObject): KeyObject {
  if (pem instanceof KeyObject) return pem;
  const text = normalizePublicKeyPem(pem);
  if (text !== lastPem || lastKey === undefined) {
    lastKey = createPublicKey({ key: text, format: 'pem' });
    lastPem = text;
  }
  return lastKey;
}

/**
 * The RSA answer of caching_sha2_password (full authentication) and sha256_password:
 * RSA-OAEP (SHA-1) of (password ‖ NUL) XOR nonce, under the server's public key.
 *
 * `nonce` is the 20-byte scramble of this login (a trailing NUL is ignored); `pemPublicKey` is the key as
 * received from the server (a trailing NUL is fine) or a KeyObject. The output is as long as the RSA
 * modulus (256 bytes for MySQL's default 2048-bit key) and random: OAEP is not deterministic. Node throws
 * if the password is too long for the key (over 213 bytes with a 2048-bit key).
 */
export function rsaEncryptedPassword(
  password: string | Buffer,
  nonce: Buffer,
  pemPublicKey: string | Buffer | KeyObject,
): Buffer {
  return publicEncrypt(
    { key: publicKeyObject(pemPublicKey), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    xorPasswordWithNonce(password, nonce),
  );
}

export interface FullAuthOptions {
  /** TLS or Unix socket: the password travels in clear (password ‖ NUL). */
  secureTransport?: boolean;
  /** The server's RSA public key, if already known; otherwise the key is requested. */
  publicKey?: string | Buffer | KeyObject;
}

/**
 * caching_sha2_password, after the server's AuthMoreData 0x04 (perform full authentication):
 * password ‖ NUL over a secure transport, else the RSA answer if the key is known, else 0x02
 * (then call again with the key from the server's AuthMoreData reply).
 */
export function cachingSha2FullAuthResponse(
  password: string | Buffer,
  nonce: Buffer,
  options: FullAuthOptions = {},
): Buffer {
  if (options.secureTransport) return clearPasswordPayload(password);
  if (options.publicKey !== undefined) return rsaEncryptedPassword(password, nonce, options.publicKey);
  return Buffer.from([CACHING_SHA2_REQUEST_PUBLIC_KEY]);
}

/**
 * sha256_password's first answer (the auth data of HandshakeResponse41 or the reply to AuthSwitchRequest),
 * as libmysqlclient builds it: 0x00 for an empty password; password ‖ NUL over a secure transport;
 * the RSA answer if the key is known; otherwise 0x01, the public key request (after the server's
 * AuthMoreData with the key, send rsaEncryptedPassword).
 */
export function sha256PasswordResponse(
  password: string | Buffer,
  nonce: Buffer,
  options: FullAuthOptions = {},
): Buffer {
  if (passwordBytes(password).length === 0) return Buffer.from([SHA256_EMPTY_PASSWORD]);
  if (options.secureTransport) return clearPasswordPayload(password);
  if (options.publicKey !== undefined) return rsaEncryptedPassword(password, nonce, options.publicKey);
  return Buffer.from([SHA256_REQUEST_PUBLIC_KEY]);
}

