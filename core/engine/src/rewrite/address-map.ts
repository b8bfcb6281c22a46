import { formatIpv4, parseIpv4 } from '../decode/ip-address';

/** Raised for a bad option value: the message says what, where, and how to fix it. */
export class OptionError extends Error {
  override name = 'OptionError';
}

/** One `-x` transfer: packets to [onlineIp:]onlinePort are replayed to targetIp:targetPort. */
export interface Transfer {
  /** 0 matches any destination address. */
  onlineIp: number;
  onlinePort: number;
  targetIp: number;
  targetPort: number;
  /** Data-link output (-o): our source MAC and the next hop's MAC toward the target (tcpcopy's `port@MAC` forms). */
  srcMac?: Buffer;
  dstMac?: Buffer;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

function parseMac(text: string, what: string, spec: string): Buffer {
  if (!MAC_RE.test(text)) throw new OptionError(`-x ${spec}: ${what} "${text}" is not a MAC address like 02:00:5e:00:53:01`);
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}

function parsePort(text: string, what: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new OptionError(`-x ${spec}: ${what} "${text}" is not a port number (1-65535)`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw new OptionError(`-x ${spec}: ${what} ${port} is outside 1-65535`);
  return port;
}

function parseAddress(text: string, what: string, spec: string): number {
  const ip = parseIpv4(text);
  if (ip < 0) throw new OptionError(`-x ${spec}: ${what} "${text}" is not an IPv4 address`);
  return ip;
}

/**
 * Parses `-x [onlineIP:]onlinePort-targetIP:targetPort[,...]`. Example:
 * `-x 80-198.51.100.30:8080` or `-x 198.51.100.20:80-198.51.100.30:80,3306-198.51.100.31:3306`.
 */
export function parseTransfers(spec: string): Transfer[] {
  const hint = 'expected [onlineIP:]onlinePort[@srcMAC]-targetIP:targetPort[@nextHopMAC], e.g. 80-198.51.100.30:80';
  if (!spec || !spec.trim()) throw new OptionError(`-x is empty: ${hint}`);
  return spec.split(',').map((item) => {
    const part = item.trim();
    const dash = part.indexOf('-');
    if (dash < 0) throw new OptionError(`-x ${part}: no "-" between the online and the target side; ${hint}`);
    const [online, srcMacText] = part.slice(0, dash).split('@');
    const [target, dstMacText] = part.slice(dash + 1).split('@');
    const onlineColon = online.lastIndexOf(':');
    const onlineIp = onlineColon >= 0 ? parseAddress(online.slice(0, onlineColon), 'online address', part) : 0;
    const onlinePort = parsePort(online.slice(onlineColon + 1), 'online port', part);
    const targetColon = target.lastIndexOf(':');
    if (targetColon < 0) throw new OptionError(`-x ${part}: the target needs an address and a port; ${hint}`);
    const targetIp = parseAddress(target.slice(0, targetColon), 'target address', part);
    const targetPort = parsePort(target.slice(targetColon + 1), 'target port', part);
    if (onlineIp === targetIp && onlinePort === targetPort) {
      throw new OptionError(`-x ${part}: the target is the online server itself; replay to another address or port`);
    }
    const t: Transfer = { onlineIp, onlinePort, targetIp, targetPort };
    if (srcMacText !== undefined) t.srcMac = parseMac(srcMacText, 'source MAC', part);
    if (dstMacText !== undefined) t.dstMac = parseMac(dstMacText, 'next-hop MAC', part);
    return t;
  });
}

/** Finds the transfer for a captured destination; the first match wins, as in tcpcopy. */
export class TransferTable {
  constructor(readonly transfers: readonly Transfer[]) {}

  match(dstIp: number, dstPort: number): Transfer | undefined {
    for (const t of this.transfers) {
      if (t.onlinePort === dstPort && (t.onlineIp === 0 || t.onlineIp === dstIp)) return t;
    }
    return undefined;
  }

  /** Ports that identify captured client→server packets (used to build capture filters). */
  describe(): string {
    return this.transfers
      .map((t) => `${t.onlineIp ? formatIpv4(t.onlineIp) + ':' : ''}${t.onlinePort}-${formatIpv4(t.targetIp)}:${t.targetPort}`)
      .join(',');
  }
}

/**
 * Parses `-c`: a list of fake client addresses, where a last octet `x` stands
 * for .1-.254 (`203.0.113.x`).
 */
export function parseClientAddresses(spec: string): number[] {
  const out: number[] = [];
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (/^\d{1,3}\.\d{1,3}\.\d{1,3}\.x$/i.test(item)) {
      const base = parseIpv4(item.replace(/x$/i, '0'));
      if (base < 0) throw new OptionError(`-c ${item}: not an address pattern like 203.0.113.x`);
      for (let i = 1; i <= 254; i++) out.push((base + i) >>> 0);
      continue;
    }
    const ip = parseIpv4(item);
    if (ip < 0) throw new OptionError(`-c ${item}: not an IPv4 address (use a list like 203.0.113.5,203.0.113.6 or 203.0.113.x)`);
    out.push(ip);
  }
  if (out.length === 0) throw new OptionError('-c is empty: give fake client addresses, e.g. -c 203.0.113.x');
  return out;
}

/**
 * Maps each captured client address to a fake one, stable for the life of the
 * process: addresses are handed out round-robin in order of first use.
 */
export class ClientAddressMap {
  private readonly assigned = new Map<number, number>();
  private next = 0;

  constructor(private readonly pool: readonly number[]) {}

  map(clientIp: number): number {
    if (this.pool.length === 0) return clientIp;
    let fake = this.assigned.get(clientIp);
    if (fake === undefined) {
      fake = this.pool[this.next++ % this.pool.length];
      this.assigned.set(clientIp, fake);
    }
    return fake;
  }
}

/**
 * Client port for a replay pass: every pass (loop of -T, and each tcpcopy run
 * through `base`) moves the port so that a pass never meets the previous
 * pass's connections still in TIME_WAIT on the target. Ports stay in 1024-65535.
 */
export function shiftPort(port: number, shift: number): number {
  if (shift === 0) return port;
  const span = 65536 - 1024;
  const p = port < 1024 ? port + 1024 : port;
  return 1024 + ((((p - 1024 + shift) % span) + span) % span);
}
