import { expect } from 'chai';
import { constants, generateKeyPairSync, privateDecrypt } from 'node:crypto';
import { cachingSha2Token } from '../src/auth/caching-sha2';
import { ed25519PublicKey } from '../src/auth/ed25519';
import { nativePasswordToken } from '../src/auth/native-password';
import { ed25519 } from '@noble/curves/ed25519';
import { AuthExchange, madeUpRecord, targetLogin } from '../src/login';
import { parseGreeting, parseHandshakeResponse } from '../src/wire/handshake';
import { err, greeting } from './support';

const SCRAMBLE = Buffer.from('0123456789abcdefghij');
const payload = (packet: Buffer) => packet.subarray(4);
const authSwitch = (plugin: string, data: Buffer) => Buffer.concat([Buffer.from([0xfe]), Buffer.from(`${plugin}\0`), data]);
const moreData = (data: Buffer | number[]) => Buffer.concat([Buffer.from([0x01]), Buffer.from(data)]);

describe('mysql: the login the target gets, and its authentication exchange', () => {
  it('answers the target greeting\'s plugin with the target password, keeping the client\'s user and schema', () => {
    const g = parseGreeting(payload(greeting(SCRAMBLE)))!;
    const { payload: login, plugin } = targetLogin(madeUpRecord('app', 'shop'), g, 'pw');
    const parsed = parseHandshakeResponse(login)!;
    expect(plugin).to.equal('mysql_native_password');
    expect(parsed.user.toString()).to.equal('app');
    expect(parsed.database?.toString()).to.equal('shop');
    expect(parsed.authResponse.equals(nativePasswordToken('pw', SCRAMBLE))).to.equal(true);
  });

  it('follows a switch to client_ed25519: a signature of the new nonce under the password\'s key', () => {
    const x = new AuthExchange('secret', 'mysql_native_password', SCRAMBLE);
    const nonce = Buffer.alloc(32, 7);
    const step = x.step(authSwitch('client_ed25519', nonce), 2);
    expect(step.kind).to.equal('send');
    if (step.kind !== 'send') return;
    expect(step.seq).to.equal(3);
    expect(ed25519.verify(step.payload, nonce, ed25519PublicKey('secret'))).to.equal(true);
    expect(x.step(Buffer.from([0, 0, 0, 2, 0, 0, 0]), 4).kind).to.equal('ok');
  });

  it('caching_sha2_password: the fast path, then OK', () => {
    const x = new AuthExchange('pw', 'mysql_native_password', SCRAMBLE);
    const step = x.step(authSwitch('caching_sha2_password', Buffer.concat([SCRAMBLE, Buffer.from([0])])), 2);
    expect(step.kind === 'send' && step.payload.equals(cachingSha2Token('pw', SCRAMBLE))).to.equal(true);
    expect(x.step(moreData([0x03]), 4).kind).to.equal('wait');
    expect(x.step(Buffer.from([0, 0, 0, 2, 0]), 5).kind).to.equal('ok');
  });

  it('caching_sha2_password: the full path asks for the RSA key and sends the password encrypted with it', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const x = new AuthExchange('a-long-password-longer-than-the-scramble', 'caching_sha2_password', SCRAMBLE);
    const ask = x.step(moreData([0x04]), 2);
    expect(ask.kind === 'send' && ask.payload.equals(Buffer.from([0x02])) && ask.seq === 3).to.equal(true);
    const answer = x.step(moreData(Buffer.from(pem + '\0')), 4);
    expect(answer.kind).to.equal('send');
    if (answer.kind !== 'send') return;
    const plain = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, answer.payload);
    const pw = Buffer.from('a-long-password-longer-than-the-scramble\0');
    for (let i = 0; i < pw.length; i++) pw[i] ^= SCRAMBLE[i % SCRAMBLE.length];
    expect(plain.equals(pw)).to.equal(true);
  });

  it('a refused login, an unusable key and a plugin tcpcopy cannot answer are told apart', () => {
    expect(new AuthExchange('pw', 'mysql_native_password', SCRAMBLE).step(payload(err(2, 1045, 'Access denied')), 2)).to.deep.include({ kind: 'refused' });
    const x = new AuthExchange('pw', 'caching_sha2_password', SCRAMBLE);
    x.step(moreData([0x04]), 2);
    expect(x.step(moreData(Buffer.from('-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n')), 4).kind).to.equal('unsupported');
    expect(new AuthExchange('pw', '', SCRAMBLE).step(authSwitch('auth_gssapi_client', Buffer.from('x')), 2).kind).to.equal('unsupported');
    expect(new AuthExchange('pw', '', SCRAMBLE).step(Buffer.from([0xfe]), 2).kind).to.equal('unsupported'); // pre-4.1 old password
  });
});
