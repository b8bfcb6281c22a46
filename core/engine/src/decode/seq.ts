/**
 * TCP sequence-number arithmetic modulo 2^32 (RFC 793 §3.3, RFC 1982).
 * All values are unsigned 32-bit numbers in host order.
 */

/** a + n, wrapped to 32 bits. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** Signed distance b - a in (-2^31, 2^31]: positive when b is after a. */
export function seqDiff(a: number, b: number): number {
  return (b - a) | 0;
}

/** a is strictly before b. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** a is before or equal to b. */
export function seqLte(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** a is strictly after b. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** a is after or equal to b. */
export function seqGte(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** The later of two sequence numbers. */
export function seqMax(a: number, b: number): number {
  return seqGt(a, b) ? a : b;
}
