// Live replay helpers: tcpcopy capturing on the online host while a load runs.
import * as path from 'node:path';
import type { Topology } from './netns';
import type { ProcHandle } from './proc';
import { sleep, withTimeout } from './proc';
import { TCPCOPY_BIN } from './replay';

export interface LiveTcpcopy {
  readonly proc: ProcHandle;
  /** SIGTERM, then the --summary json it printed (null if it printed none). */
  stop(): Promise<{ code: number | null; summary: any; stderr: string }>;
}

/** tcpcopy capturing live on the online host's interface; resolves once it says it replays. */
export async function startLiveTcpcopy(topo: Topology, args: string[]): Promise<LiveTcpcopy> {
  // TCPE_TCPCOPY_NODE_ARGS: node flags for tcpcopy only (e.g. --cpu-prof), for looking closer.
  const nodeArgs = (process.env.TCPE_TCPCOPY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = topo.spawn('online', process.execPath, [...nodeArgs, TCPCOPY_BIN, '-i', topo.hosts.online.iface, '-s', '198.51.100.40', '--summary', 'json', ...args]);
  await proc.waitFor(/replaying /, { stream: 'stderr', timeoutMs: 10_000 }).catch(async (e) => {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw new Error(`tcpcopy did not start: ${(e as Error).message}`);
  });
  return {
    proc,
    async stop() {
      await proc.stop('SIGTERM', 10_000);
      const line = proc.stdout().split('\n').find((l) => l.startsWith('{'));
      return { code: proc.exitStatus()?.code ?? null, summary: line ? JSON.parse(line) : null, stderr: proc.stderr() };
    },
  };
}

export interface PacedLoadResult {
  code: number | null;
  sent: number;
  ok: number;
  errors: number;
  elapsedMs: number;
}

/** test/scripts/paced-load.js from the client host. */
export async function pacedLoad(
  topo: Topology,
  opts: { url: string; requests: number; rate: number; conns: number; keepAlive?: boolean; tag?: string },
): Promise<PacedLoadResult> {
  const script = path.resolve(__dirname, '..', '..', '..', 'scripts', 'paced-load.js');
  const args = [script, '--url', opts.url, '--requests', String(opts.requests), '--rate', String(opts.rate), '--conns', String(opts.conns), '--tag', opts.tag ?? 'load'];
  if (opts.keepAlive) args.push('--keepalive');
  const proc = topo.spawn('client', process.execPath, args);
  const bound = (opts.requests / opts.rate) * 1000 + 30_000;
  const status = await withTimeout(proc.exited, bound, 'paced load').catch(async (e) => {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw e;
  });
  const line = proc.stdout().split('\n').find((l) => l.startsWith('DONE '));
  const r = line ? JSON.parse(line.slice(5)) : { sent: 0, ok: 0, errors: -1, elapsedMs: 0 };
  return { code: status.code, sent: r.sent, ok: r.ok, errors: r.errors, elapsedMs: r.elapsedMs };
}

/** Polls `count` until it stops changing for `quietMs` (bounded by `maxMs`); returns the last value. */
export async function settledCount(count: () => number, quietMs = 1000, maxMs = 15_000): Promise<number> {
  const deadline = Date.now() + maxMs;
  let last = count();
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(100);
    const now = count();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) break;
  }
  return last;
}
