// Checks of this host's kernel settings, read from /proc: the privileges a raw socket or a capture
// needs, ip_forward, reverse-path filtering and the connection-tracking table. The parsing and the
// verdicts are pure functions of the text read (unit-tested); `HostFiles` reads it.
import * as fs from 'node:fs';
import { fail, ok, warn, type Finding } from './findings';

/** Reads a file below /proc (or a test's stand-in); null when it does not exist. */
export type HostFiles = (path: string) => string | null;

export const procFiles: HostFiles = (path) => {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

const CAP_NET_RAW = 13n;

/** Whether the CapEff line of /proc/self/status has CAP_NET_RAW; null when there is no such line. */
export function hasNetRaw(statusText: string): boolean | null {
  const m = /^CapEff:\s*([0-9a-f]+)\s*$/im.exec(statusText);
  if (!m) return null;
  return ((BigInt(`0x${m[1]}`) >> CAP_NET_RAW) & 1n) === 1n;
}

/** Root, or CAP_NET_RAW: what opening a raw socket or a libpcap capture needs. */
export function checkPrivileges(files: HostFiles, uid: number, why: string): Finding {
  const status = files('/proc/self/status');
  const raw = status === null ? null : hasNetRaw(status);
  const who = uid === 0 ? 'root' : `uid ${uid}`;
  if (raw === true) return ok('privileges', `running as ${who} with CAP_NET_RAW (${why})`);
  if (raw === null && uid === 0) return ok('privileges', `running as root (${why})`);
  return fail('privileges', `running as ${who} without CAP_NET_RAW, needed for ${why}`,
    'run it as root', 'grant the capability: setcap cap_net_raw+ep "$(readlink -f "$(command -v node)")"');
}

/** A sysctl's integer value, or null when it does not exist. */
export function readSysctl(files: HostFiles, name: string): number | null {
  const text = files(`/proc/sys/${name.replace(/\./g, '/')}`);
  if (text === null) return null;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : null;
}

/** On the assistant: replies to fake clients must stop there (a black hole), not be forwarded. */
export function checkIpForward(files: HostFiles): Finding {
  const v = readSysctl(files, 'net.ipv4.ip_forward');
  if (v === null) return warn('ip_forward', 'cannot read /proc/sys/net/ipv4/ip_forward', 'check it by hand: sysctl net.ipv4.ip_forward (it must be 0)');
  if (v === 0) return ok('ip_forward', 'net.ipv4.ip_forward=0: replies to fake clients stop here');
  return fail('ip_forward', `net.ipv4.ip_forward=${v} on the assistant: the target's replies are forwarded on to the fake ` +
    'clients (or answered with ICMP) instead of stopping here', 'sysctl -w net.ipv4.ip_forward=0');
}

/** rp_filter the kernel applies on a device: the higher of `all` and the device's own (0 off, 1 strict, 2 loose). */
export function effectiveRpFilter(all: number | null, device: number | null): number {
  return Math.max(all ?? 0, device ?? 0);
}

/** Devices with an IPv4 configuration (/proc/sys/net/ipv4/conf), without all, default and lo. */
export function ipv4Devices(): string[] {
  try {
    return fs.readdirSync('/proc/sys/net/ipv4/conf').filter((d) => d !== 'all' && d !== 'default' && d !== 'lo').sort();
  } catch {
    return [];
  }
}

/**
 * Strict reverse-path filtering drops packets whose source this host would not route back out of
 * the device they came in on: on the target (or wherever intercept runs on the target), the
 * replayed packets' forged client addresses. A separate assistant only receives from the target.
 */
export function checkRpFilter(files: HostFiles, devices: readonly string[]): Finding {
  const all = readSysctl(files, 'net.ipv4.conf.all.rp_filter');
  const strict = devices.filter((d) => effectiveRpFilter(all, readSysctl(files, `net.ipv4.conf.${d}.rp_filter`)) === 1);
  const where = devices.length ? devices.join(', ') : 'every device';
  if (strict.length === 0) return ok('rp_filter', `no strict reverse-path filtering on ${where}`);
  const sets = ['net.ipv4.conf.all.rp_filter=0', ...strict.map((d) => `net.ipv4.conf.${d}.rp_filter=0`)].join(' ');
  return warn('rp_filter', `strict reverse-path filtering (rp_filter=1) on ${strict.join(', ')}: harmless on a separate ` +
    'assistant, but on the target (or if intercept runs on the target) it drops packets from the fake client addresses',
  `sysctl -w ${sets} (or 2, loose)`);
}

/** A full nf_conntrack table makes the kernel drop new flows (raw sends fail with EPERM). */
export function checkConntrack(files: HostFiles, role: string): Finding {
  const count = readSysctl(files, 'net.netfilter.nf_conntrack_count');
  const max = readSysctl(files, 'net.netfilter.nf_conntrack_max');
  if (count === null || max === null || max <= 0) return ok('conntrack', 'nf_conntrack is not loaded: no table to fill');
  const pct = Math.round((count / max) * 100);
  const text = `nf_conntrack holds ${count} of ${max} entries (${pct} %)`;
  const fixes = [`sysctl -w net.netfilter.nf_conntrack_max=${max * 2}`];
  if (role === 'tcpcopy') fixes.push('send at the data link layer, past conntrack: tcpcopy -o <device> (MACs in -x)');
  if (count >= max * 0.9) return fail('conntrack', `${text}: new connections are dropped when it is full`, ...fixes);
  if (count >= max * 0.75) return warn('conntrack', `${text}: close to full`, ...fixes);
  return ok('conntrack', text);
}
