import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { NATIVE_TOKEN_LENGTH, nativePasswordToken } from '../src/auth/native-password';
import { packageDir, seededBytes } from './auth-helpers';

/** Directory of an installed package whose package.json is hidden behind an `exports` map. */


interface Auth41 {
  calculateToken(password: string, scramble1: Buffer, scramble2: Buffer): Buffer;
}
// mysql2's own mysql_native_password computation (lib/auth_41.js), loaded by file path.
const auth41 = require(path.join(packageDir('mysql2'), 'lib/auth_41.js')) as Auth41;

const PASSWORDS = ['a', 'secret', 'pässwörd ✓', '密码🔑 emoji', 'with\0nul', ' spaces ', 'x'.repeat(1000)];

describe('auth: mysql_native_password', () => {
  // Independent vector: python3 -c "import hashlib; pw=b'secret'; n=bytes(range(1,21));
  //   h1=hashlib.sha1(pw).digest(); h2=hashlib.sha1(h1).digest(); h3=hashlib.sha1(n+h2).digest();
  //   print(bytes(a^b for a,b in zip(h1,h3)).hex())"
  it('matches a vector computed with python hashlib', () => {
    const scramble = Buffer.from(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(nativePasswordToken('secret', scramble).toString('hex')).to.equal('b32bb3a583e1340c0a1108d58b1be49781ad8c2f');
  });

  it('equals mysql2 for several passwords and seeded random scrambles', () => {
    const rnd = seededBytes(0x5eed1);
    for (const pw of PASSWORDS) {
      for (let i = 0; i < 25; i++) {
        const scramble = rnd(20);
        const expected = auth41.calculateToken(pw, scramble.subarray(0, 8), scramble.subarray(8));
        const ours = nativePasswordToken(pw, scramble);
        expect(ours.length).to.equal(NATIVE_TOKEN_LENGTH);
        expect(ours.toString('hex'), `${JSON.stringify(pw.slice(0, 20))} #${i}`).to.equal(expected.toString('hex'));
      }
    }
  });

  it('gives an empty buffer for an empty password (as mysql2 does)', () => {
    const scramble = seededBytes(7)(20);
    expect(nativePasswordToken('', scramble).length).to.equal(0);
    expect(nativePasswordToken(Buffer.alloc(0), scramble).length).to.equal(0);
    expect(auth41.calculateToken('', scramble.subarray(0, 8), scramble.subarray(8)).length).to.equal(0);
  });

  it('uses only the first 20 bytes of the scramble (a trailing NUL or more is ignored)', () => {
    const rnd = seededBytes(99);
    const scramble = rnd(20);
    const base = nativePasswordToken('secret', scramble);
    expect(nativePasswordToken('secret', Buffer.concat([scramble, Buffer.from([0])]))).to.deep.equal(base);
    expect(nativePasswordToken('secret', Buffer.concat([scramble, rnd(12)]))).to.deep.equal(base);
  });

  it('hashes a string password as UTF-8, same as the equivalent Buffer', () => {
    const scramble = seededBytes(3)(20);
    for (const pw of PASSWORDS) {
      expect(nativePasswordToken(Buffer.from(pw, 'utf8'), scramble)).to.deep.equal(nativePasswordToken(pw, scramble));
    }
  });

  it('does not modify its inputs', () => {
    const scramble = seededBytes(4)(21);
    const copy = Buffer.from(scramble);
    const pw = Buffer.from('secret');
    nativePasswordToken(pw, scramble);
    expect(scramble).to.deep.equal(copy);
    expect(pw.toString()).to.equal('secret');
  });
});
