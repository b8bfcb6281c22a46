import { DEFAULT_INTERCEPT_PORT } from './channel-messages';

export interface InterceptAddress {
  host: string;
  port: number;
}

/** Parses "host", "host:port", "a,b:1" into addresses. Throws a RangeError on a bad port. */
export function parseInterceptAddresses(
  servers: string | ReadonlyArray<string | InterceptAddress>,
  defaultPort = DEFAULT_INTERCEPT_PORT,
): InterceptAddress[] {
  const items = typeof servers === 'string' ? servers.split(',') : servers;
  const out: InterceptAddress[] = [];
  for (const item of items) {
    if (typeof item !== 'string') {
      out.push({ host: item.host, port: item.port });
      continue;
    }
    const text = item.trim();
    if (!text) continue;
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(text);
    const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
    if (!m || !(port >= 1 && port <= 65535)) {
      throw new RangeError(`intercept address "${text}": expected host or host:port with a port from 1 to 65535`);
    }
    out.push({ host: m[1], port });
  }
  if (out.length === 0) throw new RangeError('no intercept address given');
  return out;
}

/** "host:port", or "[v6 address]:port", as messages name an intercept. */
export function addressText(a: InterceptAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
