import { expect } from 'chai';
import { constants, createHash, createPublicKey, generateKeyPairSync, KeyObject, privateDecrypt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  CACHING_SHA2_FAST_AUTH_SUCCESS,
  CACHING_SHA2_PERFORM_FULL_AUTHENTICATION,
  CACHING_SHA2_REQUEST_PUBLIC_KEY,
  CACHING_SHA2_TOKEN_LENGTH,
  SHA256_EMPTY_PASSWORD,
  SHA256_REQUEST_PUBLIC_KEY,
  cachingSha2FullAuthResponse,
  cachingSha2Token,
  clearPasswordPayload,
  normalizePublicKeyPem,
  rsaEncryptedPassword,
  sha256PasswordResponse,
  xorPasswordWithNonce,
} from '../src/auth/caching-sha2';
import { packageDir, seededBytes } from './auth-helpers';



// mysql2's implementations, loaded by file path (its `exports` map hides them).
type Mysql2Step = (data: Buffer) => Buffer | null;
type Mysql2PluginFactory = (opts: object) => (ctx: { connection: object }) => Mysql2Step;
const mysql2Dir = packageDir('mysql2');
const auth41 = require(path.join(mysql2Dir, 'lib/auth_41.js')) as { xorRotating(a: Buffer, seed: Buffer): Buffer };
const mysql2CachingSha2 = require(path.join(mysql2Dir, 'lib/auth_plugins/caching_sha2_password.js')) as
  Mysql2PluginFactory & { calculateToken(password: string, scramble: Buffer): Buffer };
const mysql2Sha256 = require(path.join(mysql2Dir, 'lib/auth_plugins/sha256_password.js')) as Mysql2PluginFactory;

const PASSWORDS = ['a', 'secret', 'pässwörd ✓', '密码🔑 emoji', ' spaces ', 'x'.repeat(150)];

/** (pw ‖ NUL) XOR nonce, written out here independently of the code under test. */
function expectedPlaintext(pw: string, nonce20: Buffer): Buffer {
  const bytes = Buffer.from(pw + '\0', 'utf8');
  return Buffer.from(bytes.map((b, i) => b ^ nonce20[i % 20]));
}

function decryptOaepSha1(key: KeyObject, data: Buffer): Buffer {
  return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, data);
}

describe('auth: caching_sha2_password / sha256_password', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const pkcs1Pem = publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  // What the server's AuthMoreData carries after its 0x01 status byte: the PEM, here with a trailing NUL.
  const pemAsReceived = Buffer.concat([Buffer.from(spkiPem, 'latin1'), Buffer.from([0])]);

  describe('fast path', () => {
    // Independent vectors (nonce = bytes 0x01..0x14):
    //   python3 -c "import hashlib; pw=b'secret'; n=bytes(range(1,21)); s1=hashlib.sha256(pw).digest();
    //     s2=hashlib.sha256(s1).digest(); s3=hashlib.sha256(s2+n).digest(); print(bytes(a^b for a,b in zip(s1,s3)).hex())"
    //   (same with pw='pässwörd ✓'.encode()); the first one also re-derived with `openssl dgst -sha256 -binary`
    //   piped through xxd for SHA256(pw), SHA256(SHA256(pw)) and SHA256(that ‖ nonce).
    it('matches vectors computed with python hashlib / openssl dgst', () => {
      const nonce = Buffer.from(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(cachingSha2Token('secret', nonce).toString('hex')).to.equal(
        '746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9',
      );
      expect(cachingSha2Token('pässwörd ✓', nonce).toString('hex')).to.equal(
        '02e709898b3313646df05fc372e97b4e84e86ad75ed8e9fddaade4af1f4331ae',
      );
    });

    it('equals mysql2 calculateToken for several passwords and seeded random nonces', () => {
      const rnd = seededBytes(0xca5e);
      for (const pw of PASSWORDS) {
        for (let i = 0; i < 25; i++) {
          const nonce = rnd(20);
          const expected = mysql2CachingSha2.calculateToken(pw, nonce);
          // ours gets the nonce with the NUL the server sends after it
          const ours = cachingSha2Token(pw, Buffer.concat([nonce, Buffer.from([0])]));
          expect(ours.length).to.equal(CACHING_SHA2_TOKEN_LENGTH);
          expect(ours.toString('hex'), `${JSON.stringify(pw.slice(0, 20))} #${i}`).to.equal(expected.toString('hex'));
        }
      }
    });

    it('puts the double hash before the nonce (not the native-password order)', () => {
      const nonce = seededBytes(5)(20);
      const s1 = createHash('sha256').update('secret').digest();
      const s2 = createHash('sha256').update(s1).digest();
      const wrong = createHash('sha256').update(nonce).update(s2).digest().map((b, i) => b ^ s1[i]);
      expect(cachingSha2Token('secret', nonce)).to.not.deep.equal(Buffer.from(wrong));
    });

    it('gives an empty buffer for an empty password', () => {
      expect(cachingSha2Token('', seededBytes(1)(20)).length).to.equal(0);
      expect(mysql2CachingSha2.calculateToken('', seededBytes(1)(20)).length).to.equal(0);
    });

    it('exposes the protocol bytes', () => {
      expect(CACHING_SHA2_REQUEST_PUBLIC_KEY).to.equal(0x02);
      expect(CACHING_SHA2_FAST_AUTH_SUCCESS).to.equal(0x03);
      expect(CACHING_SHA2_PERFORM_FULL_AUTHENTICATION).to.equal(0x04);
      expect(SHA256_REQUEST_PUBLIC_KEY).to.equal(0x01);
      expect(SHA256_EMPTY_PASSWORD).to.equal(0x00);
    });
  });

  describe('RSA step', () => {
    it('XORs password ‖ NUL with the nonce cyclically, like mysql2 xorRotating', () => {
      const rnd = seededBytes(0x0a0e);
      for (const pw of PASSWORDS) {
        const nonce = rnd(20);
        const ours = xorPasswordWithNonce(pw, Buffer.concat([nonce, Buffer.from([0])]));
        expect(ours).to.deep.equal(expectedPlaintext(pw, nonce));
        expect(ours).to.deep.equal(auth41.xorRotating(Buffer.from(`${pw}\0`, 'utf8'), nonce));
      }
    });

    it('encrypts with RSA-OAEP/SHA-1 to (pw ‖ NUL) XOR nonce, from a PEM with a trailing NUL', () => {
      const rnd = seededBytes(0x45a);
      for (const pw of PASSWORDS) {
        const nonce = rnd(20);
        const enc = rsaEncryptedPassword(pw, Buffer.concat([nonce, Buffer.from([0])]), pemAsReceived);
        expect(enc.length).to.equal(256);
        expect(decryptOaepSha1(privateKey, enc)).to.deep.equal(expectedPlaintext(pw, nonce));
      }
    });

    it('agrees with mysql2 caching_sha2_password and sha256_password encryption (same plaintext)', () => {
      const rnd = seededBytes(0x3e5);
      for (const pw of PASSWORDS) {
        const nonce = rnd(20);
        // caching_sha2: initial data = the scramble, then AuthMoreData 0x04 with a known key -> encrypt()
        const cs = mysql2CachingSha2({ overrideIsSecure: false, serverPublicKey: spkiPem })({
          connection: { config: { password: pw } },
        });
        expect(cs(nonce)).to.deep.equal(cachingSha2Token(pw, nonce));
        const theirsCs = cs(Buffer.from([CACHING_SHA2_PERFORM_FULL_AUTHENTICATION])) as Buffer;
        // sha256_password: with a known key, the first step is already the encrypted password
        const sp = mysql2Sha256({ serverPublicKey: spkiPem })({ connection: { config: { password: pw }, stream: {} } });
        const theirsSp = sp(nonce) as Buffer;
        const ours = rsaEncryptedPassword(pw, nonce, spkiPem);
        const plain = expectedPlaintext(pw, nonce);
        expect(decryptOaepSha1(privateKey, theirsCs)).to.deep.equal(plain);
        expect(decryptOaepSha1(privateKey, theirsSp)).to.deep.equal(plain);
        expect(decryptOaepSha1(privateKey, ours)).to.deep.equal(decryptOaepSha1(privateKey, theirsCs));
      }
    });

    it('accepts PKCS#1 PEM, a KeyObject, a leading AuthMoreData byte and surrounding whitespace', () => {
      const nonce = seededBytes(11)(20);
      const plain = expectedPlaintext('secret', nonce);
      const variants: Array<string | Buffer | KeyObject> = [
        pkcs1Pem,
        publicKey,
        createPublicKey(spkiPem),
        Buffer.concat([Buffer.from([0x01]), Buffer.from(spkiPem), Buffer.from([0])]),
        `\n  ${spkiPem.trimEnd()}  \0\0`,
      ];
      for (const key of variants) {
        expect(decryptOaepSha1(privateKey, rsaEncryptedPassword('secret', nonce, key))).to.deep.equal(plain);
      }
      expect(normalizePublicKeyPem(pemAsReceived)).to.equal(spkiPem);
    });

    it('rejects something that is not a PEM key, and a password too long for the key', () => {
      const nonce = seededBytes(12)(20);
      expect(() => rsaEncryptedPassword('secret', nonce, 'garbage\0')).to.throw();
      expect(() => rsaEncryptedPassword('x'.repeat(300), nonce, spkiPem)).to.throw();
    });
  });

  describe('full authentication / sha256_password answers', () => {
    const nonce = seededBytes(21)(20);

    it('caching_sha2 full auth: clear over a secure transport, 0x02 without a key, RSA with one', () => {
      expect(cachingSha2FullAuthResponse('secret', nonce, { secureTransport: true })).to.deep.equal(
        Buffer.from('secret\0'),
      );
      expect(cachingSha2FullAuthResponse('secret', nonce)).to.deep.equal(Buffer.from([0x02]));
      const enc = cachingSha2FullAuthResponse('secret', nonce, { publicKey: pemAsReceived });
      expect(decryptOaepSha1(privateKey, enc)).to.deep.equal(expectedPlaintext('secret', nonce));
    });

    it('sha256_password: 0x00 for no password, 0x01 without a key, clear when secure, RSA with a key', () => {
      expect(sha256PasswordResponse('', nonce)).to.deep.equal(Buffer.from([0x00]));
      expect(sha256PasswordResponse('', nonce, { publicKey: spkiPem })).to.deep.equal(Buffer.from([0x00]));
      expect(sha256PasswordResponse('secret', nonce)).to.deep.equal(Buffer.from([0x01]));
      expect(sha256PasswordResponse('secret', nonce, { secureTransport: true })).to.deep.equal(
        Buffer.from('secret\0'),
      );
      const enc = sha256PasswordResponse('secret', nonce, { publicKey: spkiPem });
      expect(decryptOaepSha1(privateKey, enc)).to.deep.equal(expectedPlaintext('secret', nonce));
      // mysql2 also asks with 0x01 when it has no key and no TLS
      const sp = mysql2Sha256({})({ connection: { config: { password: 'secret' }, stream: {} } });
      expect(sp(nonce)).to.deep.equal(Buffer.from([SHA256_REQUEST_PUBLIC_KEY]));
    });

    it('clearPasswordPayload is the UTF-8 password followed by one NUL', () => {
      expect(clearPasswordPayload('')).to.deep.equal(Buffer.from([0]));
      expect(clearPasswordPayload('pässwörd ✓')).to.deep.equal(Buffer.from('pässwörd ✓\0', 'utf8'));
    });
  });
});
