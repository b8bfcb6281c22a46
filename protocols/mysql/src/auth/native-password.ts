/**
 * mysql_native_password ("Authentication::Native41").
 *
 * Documented at dev.mysql.com, "Native Authentication":
 *
 *     SHA1( password ) XOR SHA1( "20-bytes random data from server" <concat> SHA1( SHA1( password ) ) )
 *
 * The server stores SHA1(SHA1(password)) and answers an empty password with an empty response.
 */
import { createHash } from 'node:crypto';

/** Name of the plugin as it appears in HandshakeV10 / AuthSwitchRequest / HandshakeResponse41. */
export const NATIVE_PASSWORD_PLUGIN = 'mysql_native_password';

/** The scramble ("auth-plugin-data") of mysql_native_password is 20 bytes. */
export const NATIVE_SCRAMBLE_LENGTH = 20;

/** Length of the token for a non-empty password (SHA-1 digest length). */
export const NATIVE_TOKEN_LENGTH = 20;

/** A password given as text is hashed as its UTF-8 bytes (what Node clients such as mysql2 send). */
export function passwordBytes(password: string | Buffer): Buffer {
  return typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
}

/**
 * The 20-byte login token of mysql_native_password for `password` and the server's scramble.
 *
 * Only the first 20 bytes of `scramble` are used, so the scramble may be passed with the trailing NUL
 * that HandshakeV10 and AuthSwitchRequest put after it. An empty password gives an empty buffer.
 */
export function nativePasswordToken(password: string | Buffer, scramble: Buffer): Buffer {
  const pw = passwordBytes(password);
  if (pw.length === 0) return Buffer.alloc(0);
  const stage1 = createHash('sha1').update(pw).digest();
  const stage2 = createHash('sha1').update(stage1).digest();
  const seed = scramble.length > NATIVE_SCRAMBLE_LENGTH ? scramble.subarray(0, NATIVE_SCRAMBLE_LENGTH) : scramble;
  const mask = createHash('sha1').update(seed).update(stage2).digest();
  for (let i = 0; i < mask.length; i++) mask[i] ^= stage1[i];
  return mask;
}
