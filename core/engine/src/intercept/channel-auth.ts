// The optional shared-secret handshake of the channel (tcpcopy --secret, intercept --secret): a
// challenge-response in both directions, so that neither side ever sends the secret, an intercept
// only serves tcpcopys that know it, and a tcpcopy only tells its routes (the clients' addresses) to
// an intercept that knows it. The exchange is in docs/intercept-protocol.md ("Authentication").
//
//   tcpcopy                                   intercept
//   HELLO (flags AUTH)                 ──►
//                                      ◄──    AUTH_CHALLENGE  nonceI
//   AUTH_PROOF  macT, nonceT           ──►    checks macT
//                                      ◄──    AUTH_PROOF  macI
//   checks macI                        ◄──    HELLO_ACK
//
//   macT = HMAC-SHA256(secret, "TCPI auth v1 tcpcopy"   ‖ nonceI ‖ nonceT ‖ HELLO body)
//   macI = HMAC-SHA256(secret, "TCPI auth v1 intercept" ‖ nonceI ‖ nonceT ‖ HELLO body)
//
// The labels keep one side's proof from being reflected as the other's; the fresh nonces keep a
// recorded proof from being replayed; the HELLO body ties the proofs to what tcpcopy announced.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { FRAME_HEADER_LENGTH, MessageType, writeFrameHeader } from './channel-messages';

/** HELLO body flags (the u16 at offset 8): bit 0 says the tcpcopy has a secret and expects a challenge. */
export const HELLO_FLAG_AUTH = 0x0001;
/** AUTH_CHALLENGE `algorithm`: the only one so far. */
export const AUTH_HMAC_SHA256 = 1;
export const AUTH_NONCE_BYTES = 32;
export const AUTH_MAC_BYTES = 32;
/** AUTH_CHALLENGE body: algorithm u8, reserved u8, nonce. */
export const AUTH_CHALLENGE_BODY = 2 + AUTH_NONCE_BYTES;
/** AUTH_PROOF body from tcpcopy: its MAC, then its own nonce (the challenge to the intercept). */
export const AUTH_PROOF_TCPCOPY_BODY = AUTH_MAC_BYTES + AUTH_NONCE_BYTES;
/** AUTH_PROOF body from intercept: its MAC. */
export const AUTH_PROOF_INTERCEPT_BODY = AUTH_MAC_BYTES;
/**
 * Until the handshake is over, no frame may have a longer body (HELLO and HELLO_ACK carry at most
 * 214 bytes, an ERROR text 1000): a peer that has not authenticated cannot make us buffer 64 KiB.
 */
export const MAX_HANDSHAKE_BODY = 1024;

const LABEL_TCPCOPY = Buffer.from('TCPI auth v1 tcpcopy', 'ascii');
const LABEL_INTERCEPT = Buffer.from('TCPI auth v1 intercept', 'ascii');

/** The secret as bytes; null when none is set (empty counts as none only where the caller says so). */
export function secretBytes(secret: string | Buffer | undefined | null): Buffer | null {
  if (secret === undefined || secret === null) return null;
  const b = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (b.length === 0) throw new RangeError('the channel secret is empty: give a non-empty secret, or none');
  return b;
}

export function newNonce(): Buffer {
  return randomBytes(AUTH_NONCE_BYTES);
}

/** What the side `who` proves with: the MAC over both nonces and the HELLO body. */
export function authMac(secret: Buffer, who: 'tcpcopy' | 'intercept', nonceI: Buffer, nonceT: Buffer, helloBody: Buffer): Buffer {
  return createHmac('sha256', secret)
    .update(who === 'tcpcopy' ? LABEL_TCPCOPY : LABEL_INTERCEPT)
    .update(nonceI)
    .update(nonceT)
    .update(helloBody)
    .digest();
}

/** Compares a received MAC (buf[start, start+32)) with the expected one in constant time. */
export function macMatches(expected: Buffer, buf: Buffer, start: number): boolean {
  return timingSafeEqual(expected, buf.subarray(start, start + AUTH_MAC_BYTES));
}

/** A complete AUTH_CHALLENGE frame. */
export function encodeAuthChallenge(nonce: Buffer): Buffer {
  const buf = Buffer.alloc(FRAME_HEADER_LENGTH + AUTH_CHALLENGE_BODY);
  const p = writeFrameHeader(buf, 0, MessageType.AUTH_CHALLENGE, AUTH_CHALLENGE_BODY);
  buf[p] = AUTH_HMAC_SHA256;
  buf[p + 1] = 0;
  nonce.copy(buf, p + 2);
  return buf;
}

/** A complete AUTH_PROOF frame: the MAC, and (from tcpcopy) its own nonce. */
export function encodeAuthProof(mac: Buffer, nonce: Buffer | null): Buffer {
  const body = AUTH_MAC_BYTES + (nonce ? AUTH_NONCE_BYTES : 0);
  const buf = Buffer.alloc(FRAME_HEADER_LENGTH + body);
  const p = writeFrameHeader(buf, 0, MessageType.AUTH_PROOF, body);
  mac.copy(buf, p);
  nonce?.copy(buf, p + AUTH_MAC_BYTES);
  return buf;
}
