// HTTP workload (scripts/workload.js) run with node inside a host namespace, usually the client.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostName, Topology } from './netns';
import type { ProcHandle } from './proc';
import { withTimeout } from './proc';
import { scriptPath } from './servers';

export interface WorkloadPlan {
  host: string;
  port: number;
  /** Connections with one request each, "Connection: close". */
  short?: number;
  /** Connections with `requests` sequential keep-alive requests each. */
  keepAlive?: { conns: number; requests: number };
  /** Connections that write all `requests` at once, then read all responses. */
  pipelined?: { conns: number; requests: number };
  /** One connection with one POST of a `bytes`-long body. */
  post?: { bytes: number } | null;
  /** Connections that do `before` requests, then READY / wait for GO, then `after` more requests. */
  midStream?: { conns: number; before: number; after: number } | null;
  /** X-Resp-Size of request r on connection c: respSizes[(c + r) % length]. Default [16]. */
  respSizes?: number[];
  /** Connections in flight at once (the mid-stream ones are all open together). Default 8. */
  concurrency?: number;
  /** Bound on the whole run, the wait for GO included. Default 20 s. */
  timeoutMs?: number;
  /** Bound on the wait for GO. Default 30 s. */
  goTimeoutMs?: number;
}

export interface WorkloadSummary {
  connections: number;
  requestsSent: number;
  responsesOk: number;
  bytesSent: number;
  bytesReceived: number;
  errors: string[];
  elapsedMs: number;
}

export interface WorkloadConnection {
  conn: number;
  kind: 'short' | 'keepAlive' | 'pipelined' | 'post' | 'midStream';
  /** "addr:port" of the client side. */
  local: string;
  requests: number;
  responsesOk: number;
  /** Exactly the bytes written on this connection. */
  sent: Buffer;
}

export interface WorkloadResult {
  code: number | null;
  summary: WorkloadSummary;
  connections: WorkloadConnection[];
  stdout: string;
  stderr: string;
}

export interface WorkloadRun {
  readonly proc: ProcHandle;
  /** Resolves when a mid-stream plan has printed READY (never resolves for plans without midStream). */
  readonly ready: Promise<void>;
  /** Tell a mid-stream plan to continue. */
  go(): void;
  /** Resolves when the script has exited (bounded: plan.timeoutMs + 10 s, then SIGKILL). */
  readonly done: Promise<WorkloadResult>;
}

let runs = 0;

export function startWorkload(topo: Topology, plan: WorkloadPlan, opts: { host?: HostName } = {}): WorkloadRun {
  const dir = topo.mkdir('workload');
  const recordFile = path.join(dir, `run-${runs++}.json`);
  const proc = topo.spawn(opts.host ?? 'client', process.execPath, [scriptPath('workload.js'), '--plan', JSON.stringify(plan), '--record', recordFile]);
  const bound = (plan.timeoutMs ?? 20_000) + 10_000;
  const ready = plan.midStream?.conns ? proc.waitFor(/^READY$/m, { timeoutMs: bound }).then(() => undefined) : new Promise<void>(() => undefined);
  ready.catch(() => undefined); // a failed run reports through `done`
  const done = (async (): Promise<WorkloadResult> => {
    let code: number | null;
    try {
      code = (await withTimeout(proc.exited, bound, 'workload')).code;
    } catch (e) {
      await proc.stop('SIGKILL', 2000).catch(() => undefined);
      throw e;
    }
    const m = /^SUMMARY (.*)$/m.exec(proc.stdout());
    if (!m) throw new Error(`workload printed no summary (exit ${code}):\n${proc.stderr().slice(-3000)}`);
    const raw = fs.existsSync(recordFile) ? JSON.parse(fs.readFileSync(recordFile, 'utf8')) : [];
    return {
      code,
      summary: JSON.parse(m[1]),
      connections: raw.map((c: Omit<WorkloadConnection, 'sent'> & { sent: string }) => ({ ...c, sent: Buffer.from(c.sent, 'base64') })),
      stdout: proc.stdout(),
      stderr: proc.stderr(),
    };
  })();
  return {
    proc,
    ready,
    go: () => proc.write('GO\n'),
    done,
  };
}

/** Run a plan to the end; a mid-stream plan is told GO as soon as it is READY. */
export async function runWorkload(topo: Topology, plan: WorkloadPlan, opts: { host?: HostName } = {}): Promise<WorkloadResult> {
  const run = startWorkload(topo, plan, opts);
  void run.ready.then(() => run.go());
  return run.done;
}
