// The one hash of a route's client address and port, the part of the 4-tuple that differs
// between replayed connections. Both ends use it: tcpcopy takes the top bits to pick a route's
// channel, and every table (tcpcopy's RouteSet, intercept's route table and hold queue) takes
// the low bits for its bucket, so that a channel's routes still spread over all the buckets.

/**
 * xor-shift-multiply rounds over the client address and port; as uniform as random keys for
 * sequential addresses and ports (measured). Integer arithmetic only: nothing is allocated.
 */
export function flowHash(ip: number, port: number): number {
  let h = (ip ^ (port << 16) ^ port) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Channel (0..channels-1) of the route with this client address and port. */
export function channelOfRoute(clientIp: number, clientPort: number, channels: number): number {
  if (channels <= 1) return 0;
  // Top bits of the hash, scaled to the channel count (exact: < 2^36 in a double).
  return Math.floor((flowHash(clientIp >>> 0, clientPort) * channels) / 4294967296);
}

/** Power of two ≥ n, at least 2: a bucket count (buckets are picked by hash & (count - 1)). */
export function nextPow2(n: number): number {
  let p = 2;
  while (p < n) p *= 2;
  return p;
}
