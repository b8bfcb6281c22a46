/**
 * The client's authentication answer for a plugin, given the server's plugin data.
 *
 * A replayed login cannot reuse the captured answer: the target server sends its own scramble/nonce
 * (in HandshakeV10 or in an AuthSwitchRequest), so the answer is recomputed from the user's password.
 */
import { NATIVE_PASSWORD_PLUGIN, NATIVE_SCRAMBLE_LENGTH, nativePasswordToken } from './native-password';
import { ED25519_NONCE_LENGTH, ED25519_PLUGIN, ed25519Token } from './ed25519';
import {
  CACHING_SHA2_PLUGIN,
  SHA256_PASSWORD_PLUGIN,
  SHA2_NONCE_LENGTH,
  cachingSha2Token,
  clearPasswordPayload,
  sha256PasswordResponse,
  type FullAuthOptions,
} from './caching-sha2';

export const CLEAR_PASSWORD_PLUGIN = 'mysql_clear_password';

/** Plugins for which computeAuthResponse can produce the client's first answer. */
export const SUPPORTED_AUTH_PLUGINS: readonly string[] = Object.freeze([
  NATIVE_PASSWORD_PLUGIN,
  CACHING_SHA2_PLUGIN,
  SHA256_PASSWORD_PLUGIN,
  ED25519_PLUGIN,
  CLEAR_PASSWORD_PLUGIN,
]);

/** Only sha256_password's first answer depends on these (see sha256PasswordResponse). */
export type AuthResponseOptions = FullAuthOptions;

/**
 * The bytes a client sends for `plugin` as its first answer (the auth data of HandshakeResponse41, or the
 * reply to an AuthSwitchRequest), given the server's plugin data `data` (scramble or nonce; a trailing NUL
 * may be left on). Returns null when no answer can be computed: unsupported plugins (mysql_old_password,
 * auth_gssapi_client, dialog, ...) or plugin data too short for the plugin.
 *
 * - mysql_native_password: SHA1(pw) XOR SHA1(scramble[0..20] ‖ SHA1(SHA1(pw))); empty password → empty.
 * - caching_sha2_password: the fast-path scramble (32 bytes); empty password → empty. What follows
 *   (AuthMoreData 0x03 / 0x04, then clear/RSA password) is up to the caller: cachingSha2FullAuthResponse.
 * - sha256_password: empty password → 0x00; otherwise, by default (unencrypted connection, key unknown),
 *   0x01 = request for the server's public key, after which the caller sends rsaEncryptedPassword with the
 *   key the server returns. With `options.secureTransport` the password ‖ NUL; with `options.publicKey`
 *   the RSA answer at once.
 * - client_ed25519: the 64-byte signature R ‖ S of the 32-byte nonce (always computed, even for an empty
 *   password, as MariaDB's C client does).
 * - mysql_clear_password: password ‖ NUL (the plugin data is not used).
 */
export function computeAuthResponse(
  plugin: string,
  password: string | Buffer,
  data: Buffer,
  options?: AuthResponseOptions,
): Buffer | null {
  switch (plugin) {
    case NATIVE_PASSWORD_PLUGIN:
      if (password.length === 0) return Buffer.alloc(0);
      return data.length < NATIVE_SCRAMBLE_LENGTH ? null : nativePasswordToken(password, data);
    case CACHING_SHA2_PLUGIN:
      if (password.length === 0) return Buffer.alloc(0);
      return data.length < SHA2_NONCE_LENGTH ? null : cachingSha2Token(password, data);
    case SHA256_PASSWORD_PLUGIN:
      // Only the RSA answer (key known, no secure transport) uses the scramble.
      if (
        options?.publicKey !== undefined &&
        !options.secureTransport &&
        password.length > 0 &&
        data.length < SHA2_NONCE_LENGTH
      ) {
        return null;
      }
      return sha256PasswordResponse(password, data, options);
    case ED25519_PLUGIN:
      if (data.length < ED25519_NONCE_LENGTH) return null;
      return ed25519Token(
        password,
        data.length === ED25519_NONCE_LENGTH ? data : data.subarray(0, ED25519_NONCE_LENGTH),
      );
    case CLEAR_PASSWORD_PLUGIN:
      return clearPasswordPayload(password);
    default:
      return null;
  }
}
