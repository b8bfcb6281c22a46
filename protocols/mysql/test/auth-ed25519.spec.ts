import { expect } from 'chai';
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ed25519 } from '@noble/curves/ed25519';
import {
  ED25519_TOKEN_LENGTH,
  ed25519PasswordHash,
  ed25519PublicKey,
  ed25519Token,
} from '../src/auth/ed25519';
import { packageDir, seededBytes } from './auth-helpers';



// MariaDB's own Node connector (mariadb 3.x, ESM; loaded through require(esm) by file path):
// Ed25519PasswordAuth.encryptPassword(password, seed) signs the first 32 bytes of `seed`.
// It returns an EMPTY buffer for an empty password (MariaDB's C client signs anyway; see below).
const mariadbEd25519 = (
  require(path.join(packageDir('mariadb'), 'lib/cmd/handshake/auth/ed25519-password-auth.js')) as {
    default: { encryptPassword(password: string, seed: Buffer): Buffer };
  }
).default;

const PASSWORDS = ['a', 'secret', 'foo', 'pässwörd ✓', '密码🔑 emoji', ' spaces ', 'x'.repeat(300)];

/** Node's own Ed25519 verification from the raw 32-byte key (independent of @noble/curves). */
function nodeVerifies(publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), publicKey]);
  return nodeVerify(null, message, createPublicKey({ key: spki, format: 'der', type: 'spki' }), signature);
}

describe('auth: client_ed25519', () => {
  it('(c) ed25519PasswordHash equals MariaDB ed25519_password()', () => {
    // Obtained by hand from a temporary MariaDB 10.11.19 (Debian 12) server:
    //   mariadb-install-db --no-defaults --user=mysql --datadir=/tmp/edx --skip-test-db
    //   mariadbd --no-defaults --user=mysql --datadir=/tmp/edx --socket=/tmp/edx/s.sock --skip-networking
    //            --skip-log-bin --plugin-load-add=auth_ed25519 &
    //   mariadb -S /tmp/edx/s.sock -e "CREATE FUNCTION ed25519_password RETURNS STRING SONAME 'auth_ed25519.so'"
    //     (with --plugin-load-add the plugin was active but the SQL function was not registered)
    //   mariadb -S /tmp/edx/s.sock -N -e "select ed25519_password('secret')"   ... and so on
    // (client character set utf8mb3: the unicode password went to the server as its UTF-8 bytes).
    // The same server also accepted real logins (ed/'secret', edu/'pässwörd ✓', and an account holding
    // the key of the empty password) whose client_ed25519 answers came from computeAuthResponse.
    const fromServer: Array<[string, string]> = [
      ['secret', 'ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY'],
      ['foo', 'vubFBzIrapbfHct1/J72dnUryz5VS7lA6XHH8sIx4TI'],
      ['pässwörd ✓', 'vQtn1FBFOlGBmx8NaxPuUfhaZeuNK967RWgnYNHgNH0'],
      ['', '4LH+dBF+G5W2CKTyId8xR3SyDqZoQjUNUVNxx8aWbG4'],
      ['x'.repeat(300), 'eSS9X/TO8Epmrf7qexlsx6nP5dk8sSW6CXWFEDaszhI'],
    ];
    for (const [pw, hash] of fromServer) {
      expect(ed25519PasswordHash(pw), JSON.stringify(pw.slice(0, 12))).to.equal(hash);
      expect(hash).to.have.length(43);
      expect(ed25519PublicKey(pw)).to.deep.equal(Buffer.from(hash, 'base64'));
    }
  });

  it('(a) the token is a valid Ed25519 signature of the nonce under A (noble and Node crypto)', () => {
    const rnd = seededBytes(0xed25519);
    for (const pw of [...PASSWORDS, '']) {
      const A = ed25519PublicKey(pw);
      expect(A.length).to.equal(32);
      for (let i = 0; i < 8; i++) {
        const nonce = rnd(32);
        const token = ed25519Token(pw, nonce);
        expect(token.length).to.equal(ED25519_TOKEN_LENGTH);
        expect(ed25519.verify(token, nonce, A), `${JSON.stringify(pw.slice(0, 12))} #${i}`).to.equal(true);
        expect(nodeVerifies(A, nonce, token)).to.equal(true);
        // and it is bound to the nonce and the key
        const other = Buffer.from(nonce);
        other[0] ^= 1;
        expect(ed25519.verify(token, other, A)).to.equal(false);
        expect(ed25519.verify(token, nonce, ed25519PublicKey(pw + '!'))).to.equal(false);
      }
    }
  });

  it("(b) the token equals MariaDB's Node connector (mariadb) for the same password and nonce", () => {
    const rnd = seededBytes(0x3a21adb);
    for (const pw of PASSWORDS) {
      for (let i = 0; i < 8; i++) {
        const nonce = rnd(32);
        const theirs = mariadbEd25519.encryptPassword(pw, nonce);
        expect(ed25519Token(pw, nonce).toString('hex'), `${JSON.stringify(pw.slice(0, 12))} #${i}`).to.equal(
          Buffer.from(theirs).toString('hex'),
        );
      }
    }
  });

  it('signs even for an empty password (mariadb connector sends nothing; the server needs 64 bytes)', () => {
    const nonce = seededBytes(5)(32);
    expect(mariadbEd25519.encryptPassword('', nonce).length).to.equal(0);
    const token = ed25519Token('', nonce);
    expect(token.length).to.equal(64);
    expect(ed25519.verify(token, nonce, ed25519PublicKey(''))).to.equal(true);
  });

  it('for a 32-byte password it coincides with RFC 8032 Ed25519 over that seed (Node crypto)', () => {
    // h = SHA-512(password) is exactly RFC 8032's key expansion when the password is 32 bytes long,
    // which gives a check entirely independent of @noble/curves.
    const rnd = seededBytes(32);
    for (let i = 0; i < 5; i++) {
      const seed = rnd(32);
      const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
      const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
      const nonce = rnd(32);
      expect(ed25519Token(seed, nonce)).to.deep.equal(nodeSign(null, nonce, key));
      const rawPublic = createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(12);
      expect(ed25519PublicKey(seed)).to.deep.equal(rawPublic);
    }
  });

  it('is not RFC 8032 over a password padded/cut to 32 bytes', () => {
    const nonce = seededBytes(6)(32);
    const padded = Buffer.alloc(32);
    Buffer.from('secret').copy(padded);
    expect(ed25519Token('secret', nonce)).to.not.deep.equal(Buffer.from(ed25519.sign(nonce, padded)));
    expect(ed25519PublicKey('secret')).to.not.deep.equal(Buffer.from(ed25519.getPublicKey(padded)));
  });

  it('is deterministic and a string password equals its UTF-8 bytes', () => {
    const nonce = seededBytes(8)(32);
    expect(ed25519Token('pässwörd ✓', nonce)).to.deep.equal(ed25519Token(Buffer.from('pässwörd ✓'), nonce));
    expect(ed25519Token('secret', nonce)).to.deep.equal(ed25519Token('secret', nonce));
  });
});
