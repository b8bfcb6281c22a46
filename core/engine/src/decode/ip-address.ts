/** IPv4 addresses are handled as unsigned 32-bit numbers (host order) everywhere inside the engine. */

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses dotted-quad text; returns -1 when it is not an IPv4 address. */
export function parseIpv4(text: string): number {
  const m = IPV4_RE.exec(text.trim());
  if (!m) return -1;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return -1;
    n = n * 256 + octet;
  }
  return n >>> 0;
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}
