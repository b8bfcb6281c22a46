// Routing as the doctors need it: the route this host takes to the target (from /proc/net/route,
// the main table), and the fake client network the target must route to the assistant.
import * as os from 'node:os';
import { formatIpv4, parseIpv4 } from '@tcpcopy/core';
import { fail, ok, type Finding } from './findings';
import type { HostFiles } from './system-checks';

export interface RouteEntry {
  device: string;
  /** Host-order numbers. */
  destination: number;
  gateway: number;
  mask: number;
  metric: number;
}

const RTF_UP = 0x1;

/** /proc/net/route holds addresses as hex of the kernel's (host-order) 32-bit word. */
function hexAddress(hex: string, littleEndian: boolean): number {
  const n = parseInt(hex, 16) >>> 0;
  if (!littleEndian) return n;
  return (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24)) >>> 0;
}

/** The routes of /proc/net/route that are up. */
export function parseRouteTable(text: string, littleEndian = os.endianness() === 'LE'): RouteEntry[] {
  const out: RouteEntry[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !(parseInt(f[3], 16) & RTF_UP)) continue;
    out.push({
      device: f[0],
      destination: hexAddress(f[1], littleEndian),
      gateway: hexAddress(f[2], littleEndian),
      mask: hexAddress(f[7], littleEndian),
      metric: Number(f[6]),
    });
  }
  return out;
}

/** The route the kernel would pick for `ip`: longest prefix, then lowest metric; null when none. */
export function lookupRoute(routes: readonly RouteEntry[], ip: number): RouteEntry | null {
  let best: RouteEntry | null = null;
  for (const r of routes) {
    if (((ip & r.mask) >>> 0) !== r.destination) continue;
    if (!best || r.mask > best.mask || (r.mask === best.mask && r.metric < best.metric)) best = r;
  }
  return best;
}

/** The smallest network holding every address: "203.0.113.0/24" for 203.0.113.1-254. */
export function coveringNetwork(addresses: readonly number[]): string {
  if (addresses.length === 0) return '';
  let lo = addresses[0];
  let hi = addresses[0];
  for (const a of addresses) {
    if (a < lo) lo = a;
    if (a > hi) hi = a;
  }
  let bits = 32;
  while (bits > 0 && Math.floor(lo / 2 ** (32 - bits)) !== Math.floor(hi / 2 ** (32 - bits))) bits--;
  const network = bits === 0 ? 0 : (Math.floor(lo / 2 ** (32 - bits)) * 2 ** (32 - bits)) >>> 0;
  // A single address is still written as a network, so the fix reads as a route.
  return `${formatIpv4(network)}/${bits}`;
}

/** This host's IPv4 addresses, host-order. */
export function localAddresses(): Set<number> {
  const out = new Set<number>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4') out.add(parseIpv4(a.address));
  }
  return out;
}

/** How this host reaches the target: the replayed packets leave by this route. */
export function checkRouteToTarget(files: HostFiles, target: number): Finding {
  const subject = `route to ${formatIpv4(target)}`;
  if (localAddresses().has(target)) return ok(subject, 'the target is an address of this host');
  const table = files('/proc/net/route');
  if (table === null) return ok(subject, 'cannot read /proc/net/route (not checked)');
  const r = lookupRoute(parseRouteTable(table), target);
  if (!r) {
    return fail(subject, 'this host has no route to the target: the replayed packets cannot leave',
      `ip route add ${formatIpv4(target)} via <a gateway that reaches it>`);
  }
  return ok(subject, `via ${r.device}${r.gateway ? ` and gateway ${formatIpv4(r.gateway)}` : ' (directly connected)'}`);
}
