/**
 * client_ed25519 (MariaDB's "ed25519" authentication plugin, MDEV-12160).
 *
 * This is NOT RFC 8032 Ed25519 over a 32-byte seed: the password of any length stands in for the seed.
 *
 *   h      = SHA-512(password bytes)
 *   s      = clamp(h[0..32])    secret scalar, little-endian (clear bits 0-2 and 255, set bit 254)
 *   prefix = h[32..64]
 *   A      = s·B                public key; the server stores base64(A) without padding
 *   for the server's 32-byte nonce m:
 *   r = SHA-512(prefix ‖ m) mod L,  R = r·B,  k = SHA-512(R ‖ A ‖ m) mod L,  S = (r + k·s) mod L
 *   token  = R ‖ S              64 bytes, points and scalars encoded as in Ed25519
 *
 * The token is therefore an ordinary Ed25519 signature of m under A; only the key derivation differs.
 * Node's crypto cannot sign from a raw scalar, so the point arithmetic comes from @noble/curves.
 */
import { createHash } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519';
import { passwordBytes } from './native-password';

export const ED25519_PLUGIN = 'client_ed25519';
/** The server's nonce (the whole AuthSwitchRequest plugin data) is 32 bytes. */
export const ED25519_NONCE_LENGTH = 32;
/** The client's answer R ‖ S. */
export const ED25519_TOKEN_LENGTH = 64;
/** Raw public key A. */
export const ED25519_PUBLIC_KEY_LENGTH = 32;

const Point = ed25519.Point;
const BASE = Point.BASE;
/** Order of the base point: L = 2^252 + 27742317777372353535851937790883648493. */
const L: bigint = Point.Fn.ORDER;

/** Little-endian bytes to an unsigned integer (32 or 64 bytes, read 8 at a time). */
function leToBigInt(bytes: Buffer): bigint {
  let n = 0n;
  for (let off = bytes.length - 8; off >= 0; off -= 8) n = (n << 64n) | bytes.readBigUInt64LE(off);
  return n;
}

/** Writes `n` (< 2^256) as 32 little-endian bytes at `offset`. */
function writeScalarLE(n: bigint, out: Buffer, offset: number): void {
  for (let i = 0; i < 4; i++) {
    out.writeBigUInt64LE(n & 0xffffffffffffffffn, offset + 8 * i);
    n >>= 64n;
  }
}

function sha512(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
}

interface Ed25519Secret {
  /** Clamped secret scalar reduced mod L (the same point and the same S as the unreduced one). */
  s: bigint;
  /** Second half of SHA-512(password), the nonce-derivation prefix. */
  prefix: Buffer;
  /** Encoded public key A = s·B. */
  publicKey: Uint8Array;
}

function deriveSecret(password: string | Buffer): Ed25519Secret {
  const h = sha512(passwordBytes(password));
  h[0] &= 0xf8;
  h[31] &= 0x7f;
  h[31] |= 0x40;
  const s = leToBigInt(h.subarray(0, 32)) % L;
  // Never 0 mod L (which multiply() would reject): the clamped value is a multiple of 8 below 2^255 < 8L,
  // and L is odd, so it cannot be a multiple of L.
  return { s, prefix: h.subarray(32, 64), publicKey: BASE.multiply(s).toBytes() };
}

/** The 32-byte public key A that the server stores for `password`. */
export function ed25519PublicKey(password: string | Buffer): Buffer {
  const { publicKey } = deriveSecret(password);
  return Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength);
}

/**
 * What MariaDB's `SELECT ed25519_password('pw')` returns and what it keeps as the account's
 * authentication_string: base64 of A without the '=' padding (43 characters).
 */
export function ed25519PasswordHash(password: string | Buffer): string {
  return ed25519PublicKey(password).toString('base64').replace(/=+$/, '');
}

/**
 * The 64-byte client_ed25519 answer R ‖ S for `password` and the server's nonce.
 *
 * The whole of `nonce` is signed: MariaDB's nonce is exactly 32 bytes (callers that hold a longer
 * buffer must cut it, see computeAuthResponse). The result is deterministic, as in Ed25519.
 */
export function ed25519Token(password: string | Buffer, nonce: Buffer): Buffer {
  const { s, prefix, publicKey } = deriveSecret(password);
  const r = leToBigInt(sha512(prefix, nonce)) % L;
  const out = Buffer.allocUnsafe(ED25519_TOKEN_LENGTH);
  // r = 0 has probability ~2^-252; multiply() rejects 0, the identity point is the right answer.
  const R = (r === 0n ? Point.ZERO : BASE.multiply(r)).toBytes();
  out.set(R, 0);
  const k = leToBigInt(sha512(R, publicKey, nonce)) % L;
  writeScalarLE((r + k * s) % L, out, 32);
  return out;
}
