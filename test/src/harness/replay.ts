// Runs the real tcpcopy and intercept commands inside the test namespaces.
import * as path from 'node:path';
import type { Topology } from './netns';
import type { ProcHandle } from './proc';

const REPO = path.resolve(__dirname, '..', '..', '..', '..');
export const TCPCOPY_BIN = path.join(REPO, 'core', 'cli', 'bin', 'tcpcopy.js');
export const INTERCEPT_BIN = path.join(REPO, 'core', 'cli', 'bin', 'intercept.js');

export interface InterceptHandle {
  readonly proc: ProcHandle;
  stop(): Promise<void>;
}

/** intercept on the assistant host, capturing the target's replies from `port`. */
export async function startIntercept(topo: Topology, targetPorts: number[], extra: string[] = []): Promise<InterceptHandle> {
  const filter = `tcp and (${targetPorts.map((p) => `src port ${p}`).join(' or ')})`;
  const proc = topo.spawn('assistant', process.execPath, [INTERCEPT_BIN, '-i', topo.hosts.assistant.iface, '-F', filter, ...extra]);
  await proc.waitFor(/listening on/, { stream: 'stdout', timeoutMs: 10_000 }).catch(async (e) => {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw new Error(`intercept did not start: ${e.message}\n${proc.stderr()}`);
  });
  return { proc, stop: async () => void (await proc.stop('SIGTERM', 5000)) };
}

export interface TcpcopyRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The --summary json line, when the run got that far. */
  summary: any;
}

/** Runs tcpcopy on the online host to the end (bounded) with --summary json. */
export async function runTcpcopy(topo: Topology, args: string[], timeoutMs = 120_000): Promise<TcpcopyRun> {
  const proc = topo.spawn('online', process.execPath, [TCPCOPY_BIN, ...args, '--summary', 'json']);
  const status = await Promise.race([
    proc.exited,
    new Promise<null>((resolve) => setTimeout(() => resolve(null), timeoutMs)),
  ]);
  if (status === null) {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw new Error(`tcpcopy did not finish in ${timeoutMs} ms\n${proc.stderr()}`);
  }
  const stdout = proc.stdout();
  const line = stdout.split('\n').find((l) => l.startsWith('{'));
  return { code: proc.exitStatus()?.code ?? null, stdout, stderr: proc.stderr(), summary: line ? JSON.parse(line) : null };
}
