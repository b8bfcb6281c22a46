// The channel to each intercept: connect exactly as tcpcopy does (InterceptClient, HELLO first),
// one client per intercept so that each gets its own verdict and a dead one does not hide the others.
import * as os from 'node:os';
import { DEFAULT_INTERCEPT_PORT, InterceptClient, InterceptConnectError, type InterceptAddress, type ReplyHandler } from '@tcpcopy/core';
import { fail, ok, type Finding } from './findings';

export interface ChannelResult {
  /** The intercepts that answered, connected (close them when done). */
  clients: InterceptClient[];
  findings: Finding[];
}

/** -s (with -p as the default port) as addresses; throws a RangeError naming a bad one. */
export function interceptAddresses(servers: string, defaultPort: number): readonly InterceptAddress[] {
  // The client only parses here; it connects nothing until connect().
  return new InterceptClient({ servers, defaultPort, channelsPerIntercept: 1 }).addresses;
}

/** Connects to every intercept within `timeoutMs`, each on its own. */
export async function checkChannels(addresses: readonly InterceptAddress[], timeoutMs: number, onReply: ReplyHandler,
  startCommand: string, secret: string | Buffer | null = null): Promise<ChannelResult> {
  const name = `doctor pid ${process.pid} on ${os.hostname()}`;
  const results = await Promise.all(addresses.map(async (address) => {
    const client = new InterceptClient({
      servers: [address], channelsPerIntercept: 1, connectTimeoutMs: timeoutMs, name, onReply,
      ...(secret !== null ? { secret } : {}),
      onError: () => undefined, // a loss during the probe shows as no reply
    });
    const at = `${address.host}:${address.port}`;
    try {
      await client.connect();
      const info = client.intercepts[0];
      return { client, finding: ok(`intercept ${at}`, `answers the channel protocol (version ${info?.version}, "${info?.name}")`) };
    } catch (err) {
      await client.close();
      if (!(err instanceof InterceptConnectError)) throw err;
      return { client: null, finding: fail(`intercept ${at}`, err.message, ...channelFixes(err, address.host, address.port, startCommand)) };
    }
  }));
  return {
    clients: results.flatMap((r) => (r.client ? [r.client] : [])),
    findings: results.map((r) => r.finding),
  };
}

function channelFixes(err: InterceptConnectError, host: string, port: number, startCommand: string): string[] {
  switch (err.code) {
    case 'REFUSED':
      return [`on ${host}: ${startCommand}${port === DEFAULT_INTERCEPT_PORT ? '' : ` -p ${port}`}`];
    case 'TIMEOUT':
    case 'UNREACHABLE':
      return [`check that ${host} is up and that no firewall between here and there drops TCP port ${port} (on ${host}: intercept doctor)`];
    case 'NOT_INTERCEPT':
      return [`port ${port} on ${host} is another service: start intercept on a free port (intercept -p N) and give tcpcopy -p N`];
    default:
      return [];
  }
}
