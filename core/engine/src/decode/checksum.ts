/**
 * Internet checksum (RFC 1071) helpers. Sums are kept as unfolded 32-bit-safe
 * JS numbers so that parts (pseudo-header, TCP header, payload) can be summed
 * separately and combined: the replay engine sums a stored payload once and
 * reuses that sum for every (re)transmission, so a send only sums headers.
 */

/** Ones-complement partial sum of buf[start, end). Not folded. */
export function sumBytes(buf: Buffer, start: number, end: number, initial = 0): number {
  // The high and the low bytes of the 16-bit words are summed apart and combined at the end: plain
  // small-integer adds of byte loads, which V8 compiles tighter than 32-bit reads (readUInt32BE).
  let hi = 0;
  let lo = 0;
  let i = start;
  const evenEnd = end - ((end - start) & 1);
  const octEnd = start + ((evenEnd - start) & ~7);
  for (; i < octEnd; i += 8) {
    hi += buf[i] + buf[i + 2] + buf[i + 4] + buf[i + 6];
    lo += buf[i + 1] + buf[i + 3] + buf[i + 5] + buf[i + 7];
  }
  for (; i < evenEnd; i += 2) {
    hi += buf[i];
    lo += buf[i + 1];
  }
  if (i < end) hi += buf[i];
  const sum = initial + hi * 256 + lo;
  // Keep the accumulator well below 2^53 for very long inputs.
  return sum > 0x3fffffff ? (sum & 0xffff) + Math.floor(sum / 0x10000) : sum;
}

/** Folds a partial sum to 16 bits (not inverted). */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** Final checksum value from a partial sum. */
export function finishSum(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}

/** Partial sum of the IPv4 pseudo-header for TCP (protocol 6). */
export function pseudoHeaderSum(srcIp: number, dstIp: number, tcpLength: number): number {
  return (srcIp >>> 16) + (srcIp & 0xffff) + (dstIp >>> 16) + (dstIp & 0xffff) + 6 + tcpLength;
}

/**
 * Sum of `len` bytes that start at an odd position inside a larger sum: the
 * bytes land in swapped halves of the 16-bit words. Used when a payload sum
 * is combined after a header of odd length (never for TCP, whose header is a
 * multiple of 4, but kept correct for generality).
 */
export function swapSum(sum: number): number {
  const f = foldSum(sum);
  return ((f & 0xff) << 8) | (f >>> 8);
}

/** Computes and stores the IPv4 header checksum in place. */
export function writeIpv4Checksum(buf: Buffer, ipOffset: number): void {
  const ihl = (buf[ipOffset] & 0x0f) * 4;
  buf.writeUInt16BE(0, ipOffset + 10);
  buf.writeUInt16BE(finishSum(sumBytes(buf, ipOffset, ipOffset + ihl)), ipOffset + 10);
}

/** True when the IPv4 header checksum verifies. */
export function ipv4ChecksumValid(buf: Buffer, ipOffset: number): boolean {
  const ihl = (buf[ipOffset] & 0x0f) * 4;
  return foldSum(sumBytes(buf, ipOffset, ipOffset + ihl)) === 0xffff;
}

/**
 * TCP checksum of a segment [tcpOffset, end) with the given addresses, where
 * `payloadSum` (if given) is the precomputed sum of [payloadOffset, end).
 */
export function tcpChecksum(
  buf: Buffer,
  srcIp: number,
  dstIp: number,
  tcpOffset: number,
  end: number,
  payloadOffset = end,
  payloadSum = 0,
): number {
  const saved = buf.readUInt16BE(tcpOffset + 16);
  buf.writeUInt16BE(0, tcpOffset + 16);
  let sum = pseudoHeaderSum(srcIp, dstIp, end - tcpOffset);
  sum = sumBytes(buf, tcpOffset, payloadOffset, sum);
  buf.writeUInt16BE(saved, tcpOffset + 16);
  return finishSum(sum + payloadSum);
}

/** True when the TCP checksum of the segment verifies (partial checksums from offload do not). */
export function tcpChecksumValid(buf: Buffer, srcIp: number, dstIp: number, tcpOffset: number, end: number): boolean {
  const sum = sumBytes(buf, tcpOffset, end, pseudoHeaderSum(srcIp, dstIp, end - tcpOffset));
  return foldSum(sum) === 0xffff;
}
