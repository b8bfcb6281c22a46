// --metrics HOST:PORT, checked with the other options (metrics.ts, which serves them, loads only when asked for).
import * as net from 'node:net';
import { UsageError } from './process-control';

export interface MetricsAddress {
  /** An IP address, `localhost`, or '' for every address. */
  host: string;
  port: number;
}

/** --metrics HOST:PORT ([v6]:PORT, or :PORT for every address), checked before anything starts. */
export function parseMetricsAddress(text: string): MetricsAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]*)):(\d+)$/.exec(text);
  const how = 'give HOST:PORT, e.g. 127.0.0.1:9464, or :9464 for every address';
  if (!m) throw new UsageError(`--metrics ${text}: not HOST:PORT (${how})`);
  const host = m[1] ?? m[2];
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new UsageError(`--metrics ${text}: port ${m[3]} is out of range (give a port from 1 to 65535)`);
  const isAddress = m[1] !== undefined ? net.isIPv6(host) : host === '' || host === 'localhost' || net.isIPv4(host);
  if (!isAddress) {
    throw new UsageError(`--metrics ${text}: "${host}" is not an IP address (${how})`);
  }
  return { host, port };
}
