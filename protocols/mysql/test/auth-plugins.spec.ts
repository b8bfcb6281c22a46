import { expect } from 'chai';
import { constants, generateKeyPairSync, privateDecrypt } from 'node:crypto';
import { SUPPORTED_AUTH_PLUGINS, computeAuthResponse } from '../src/auth/auth-plugins';
import { nativePasswordToken } from '../src/auth/native-password';
import { cachingSha2Token } from '../src/auth/caching-sha2';
import { ed25519PublicKey, ed25519Token } from '../src/auth/ed25519';
import { ed25519 } from '@noble/curves/ed25519';
import { seededBytes } from './auth-helpers';


describe('auth: computeAuthResponse', () => {
  const rnd = seededBytes(0xd15);
  const scramble = rnd(20);
  const scrambleNul = Buffer.concat([scramble, Buffer.from([0])]); // as in HandshakeV10 / AuthSwitchRequest
  const nonce32 = rnd(32);

  it('lists the supported plugins (read-only)', () => {
    expect([...SUPPORTED_AUTH_PLUGINS].sort()).to.deep.equal(
      ['caching_sha2_password', 'client_ed25519', 'mysql_clear_password', 'mysql_native_password', 'sha256_password'],
    );
    expect(Object.isFrozen(SUPPORTED_AUTH_PLUGINS)).to.equal(true);
    for (const plugin of SUPPORTED_AUTH_PLUGINS) {
      expect(computeAuthResponse(plugin, 'secret', plugin === 'client_ed25519' ? nonce32 : scrambleNul), plugin)
        .to.be.instanceOf(Buffer);
    }
  });

  it('mysql_native_password: the 20-byte token; empty password -> empty', () => {
    expect(computeAuthResponse('mysql_native_password', 'secret', scrambleNul)).to.deep.equal(
      nativePasswordToken('secret', scramble),
    );
    expect(computeAuthResponse('mysql_native_password', 'secret', scramble)!.length).to.equal(20);
    expect(computeAuthResponse('mysql_native_password', '', scrambleNul)).to.deep.equal(Buffer.alloc(0));
  });

  it('caching_sha2_password: the 32-byte fast-path scramble; empty password -> empty', () => {
    expect(computeAuthResponse('caching_sha2_password', 'pässwörd ✓', scrambleNul)).to.deep.equal(
      cachingSha2Token('pässwörd ✓', scramble),
    );
    expect(computeAuthResponse('caching_sha2_password', 'secret', scramble)!.length).to.equal(32);
    expect(computeAuthResponse('caching_sha2_password', '', scrambleNul)).to.deep.equal(Buffer.alloc(0));
  });

  it('sha256_password: 0x01 (public key request) by default, 0x00 for no password, options for TLS/known key', () => {
    expect(computeAuthResponse('sha256_password', 'secret', scrambleNul)).to.deep.equal(Buffer.from([0x01]));
    expect(computeAuthResponse('sha256_password', '', scrambleNul)).to.deep.equal(Buffer.from([0x00]));
    expect(computeAuthResponse('sha256_password', 'secret', scrambleNul, { secureTransport: true })).to.deep.equal(
      Buffer.from('secret\0'),
    );
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString() + '\0';
    const enc = computeAuthResponse('sha256_password', 'secret', scrambleNul, { publicKey: pem })!;
    const plain = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, enc);
    expect(plain).to.deep.equal(Buffer.from(Buffer.from('secret\0').map((b, i) => b ^ scramble[i % 20])));
    // the RSA step needs the scramble
    expect(computeAuthResponse('sha256_password', 'secret', Buffer.alloc(0), { publicKey: pem })).to.equal(null);
    // ... but a secure transport wins over a known key, and needs none
    expect(
      computeAuthResponse('sha256_password', 'secret', Buffer.alloc(0), { publicKey: pem, secureTransport: true }),
    ).to.deep.equal(Buffer.from('secret\0'));
  });

  it('client_ed25519: the 64-byte signature of the 32-byte nonce, also for an empty password', () => {
    const token = computeAuthResponse('client_ed25519', 'secret', nonce32)!;
    expect(token).to.deep.equal(ed25519Token('secret', nonce32));
    expect(ed25519.verify(token, nonce32, ed25519PublicKey('secret'))).to.equal(true);
    // extra bytes after the nonce (e.g. a NUL) are not signed
    expect(computeAuthResponse('client_ed25519', 'secret', Buffer.concat([nonce32, Buffer.from([0])]))).to.deep.equal(
      token,
    );
    const empty = computeAuthResponse('client_ed25519', '', nonce32)!;
    expect(empty.length).to.equal(64);
    expect(ed25519.verify(empty, nonce32, ed25519PublicKey(''))).to.equal(true);
  });

  it('mysql_clear_password: password followed by NUL, whatever the plugin data', () => {
    expect(computeAuthResponse('mysql_clear_password', 'pässwörd ✓', Buffer.alloc(0))).to.deep.equal(
      Buffer.from('pässwörd ✓\0', 'utf8'),
    );
    expect(computeAuthResponse('mysql_clear_password', '', scrambleNul)).to.deep.equal(Buffer.from([0]));
  });

  it('returns null for unsupported plugins', () => {
    for (const plugin of [
      'mysql_old_password',
      'auth_gssapi_client',
      'dialog',
      'authentication_windows_client',
      'authentication_ldap_sasl_client',
      'authentication_kerberos_client',
      'authentication_fido_client',
      'parsec',
      'unix_socket',
      '',
      'toString',
      '__proto__',
    ]) {
      expect(computeAuthResponse(plugin, 'secret', scrambleNul), plugin).to.equal(null);
    }
  });

  it('returns null when the plugin data is too short for the plugin', () => {
    expect(computeAuthResponse('mysql_native_password', 'secret', scramble.subarray(0, 8))).to.equal(null);
    expect(computeAuthResponse('caching_sha2_password', 'secret', scramble.subarray(0, 19))).to.equal(null);
    // the 21-byte HandshakeV10 scramble is not a client_ed25519 nonce
    expect(computeAuthResponse('client_ed25519', 'secret', scrambleNul)).to.equal(null);
  });
});
