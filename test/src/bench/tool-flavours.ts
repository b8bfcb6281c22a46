// The builds a live comparison runs: this tree's tcpcopy and intercept, or another build's pair in a
// directory (`--compare-with DIR`): the C tool's (1.3.0) or an older version of ours behind wrapper
// scripts. Each flavour has its own command lines and its own sign that a process is ready; one adapter
// per flavour, so the scenarios never see the difference.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { INTERCEPT_BIN, sleep, TCPCOPY_BIN, type ProcHandle, type Topology } from '../harness';

/** `ours`: tcpcopy-ts's options and output; `c`: the C tcpcopy 1.3.0 / intercept 1.0.0 options. */
export type FlavourKind = 'ours' | 'c';

export interface ToolBuild {
  /** Short name for tables: "ours", "c", or what --compare-label says. */
  label: string;
  kind: FlavourKind;
  /** Executables; null: this tree's core/cli/bin/*.js, run by this node. */
  tcpcopy: string | null;
  intercept: string | null;
}

/** What both tools are told: replay PORT on the online host to the target, clients faked from a /24. */
export interface ReplayPlan {
  port: number;
  target: string;
  assistant: string;
  /** tcpcopy's -c. */
  fakeClients: string;
  /** The network those fake clients are in, when intercept must capture only theirs (two intercepts on one host). */
  fakeNet?: string;
  /** intercept's listening port when not the default 36524 (tcpcopy's -s then names it). */
  interceptPort?: number;
}

const DEFAULT_INTERCEPT_PORT = 36524;

export interface RunningTool {
  readonly proc: ProcHandle;
  /** The process whose CPU and memory count: the tool itself, behind any wrapper shell. */
  readonly pid: number;
  /** SIGTERM, bounded; returns the tool's last words (ours: its summary or stats line; c: its log's counters). */
  stop(): Promise<string>;
}

export function thisTree(): ToolBuild {
  return { label: 'ours', kind: 'ours', tcpcopy: null, intercept: null };
}

/**
 * The pair in DIR. The flavour is `kind` when given, else told by `DIR/tcpcopy -v`: the C tool answers
 * "tcpcopy version:1.3.0", ours a bare version number. Throws one readable line on anything missing.
 */
export function buildIn(dir: string, kind?: FlavourKind, label?: string): ToolBuild {
  const abs = path.resolve(dir);
  const exe = (name: string): string => {
    const file = path.join(abs, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
    } catch {
      throw new Error(`--compare-with ${dir}: no executable ${name} in ${abs} (put the other build's tcpcopy and intercept there, or wrapper scripts that exec them)`);
    }
    return file;
  };
  const tcpcopy = exe('tcpcopy');
  const intercept = exe('intercept');
  let k = kind;
  if (!k) {
    const v = spawnSync(tcpcopy, ['-v'], { encoding: 'utf8', timeout: 10_000 });
    const text = `${v.stdout ?? ''}${v.stderr ?? ''}`;
    if (/tcpcopy version:\s*1\./.test(text)) k = 'c';
    else if (/^\d+\.\d+\.\d+/m.test(text)) k = 'ours';
    else throw new Error(`--compare-with ${dir}: cannot tell what "${tcpcopy} -v" is (it said "${text.trim().slice(0, 80)}"); give --compare-flavour c or ours`);
  }
  return { label: label ?? (k === 'c' ? 'c' : 'other'), kind: k, tcpcopy, intercept };
}

/** intercept on the assistant, capturing the target's replies from plan.port; `bufferMiB` sets -B (ours only). */
export async function startInterceptOf(build: ToolBuild, topo: Topology, plan: ReplayPlan, bufferMiB?: number): Promise<RunningTool> {
  const filter = `tcp and src port ${plan.port}${plan.fakeNet ? ` and dst net ${plan.fakeNet}` : ''}`;
  const iface = topo.hosts.assistant.iface;
  const port = plan.interceptPort !== undefined ? ['-p', String(plan.interceptPort)] : [];
  if (build.kind === 'c') {
    if (bufferMiB !== undefined) throw new Error('the C intercept has no -B (its ring is 16 MiB, built in)');
    const log = freshFile(topo, `c-intercept.log`);
    const proc = topo.spawn('assistant', build.intercept!, ['-i', iface, '-F', filter, ...port, '-l', log]);
    // It logs the capture set-up, then listens: wait for its port, as a tcpcopy would.
    await waitForListen(topo, proc, plan.interceptPort ?? DEFAULT_INTERCEPT_PORT, () => readTail(log));
    return { proc, pid: proc.pid, stop: async () => (await proc.stop('SIGTERM', 5000), `${cCounters(readTail(log), 'intercept')}; ${cTrouble(log)}`) };
  }
  const args = ['-i', iface, '-F', filter, ...port, ...(bufferMiB !== undefined ? ['-B', String(bufferMiB)] : [])];
  // TCPE_INTERCEPT_NODE_ARGS: node flags for our intercept only (e.g. --cpu-prof), as TCPE_TCPCOPY_NODE_ARGS for tcpcopy.
  const nodeArgs = (process.env.TCPE_INTERCEPT_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = build.intercept ? topo.spawn('assistant', build.intercept, args) : topo.spawn('assistant', process.execPath, [...nodeArgs, INTERCEPT_BIN, ...args]);
  await waitForStart(proc, /listening on/, 'stdout', `${build.label} intercept`);
  return {
    proc,
    pid: toolPid(proc.pid),
    async stop() {
      await proc.stop('SIGTERM', 5000);
      const lines = `${proc.stdout()}\n${proc.stderr()}`.split('\n').filter((l) => l.includes(' stats: ') || l.startsWith('stats: '));
      return lines.length ? lines[lines.length - 1].replace(/^.*stats: /, '') : '(no stats line)';
    },
  };
}

/** tcpcopy on the online host capturing live (each flavour's default capture: a raw socket). */
export async function startTcpcopyOf(build: ToolBuild, topo: Topology, plan: ReplayPlan): Promise<RunningTool> {
  const intercept = plan.interceptPort !== undefined ? `${plan.assistant}:${plan.interceptPort}` : plan.assistant;
  const common = ['-x', `${plan.port}-${plan.target}:${plan.port}`, '-s', intercept, '-c', plan.fakeClients];
  if (build.kind === 'c') {
    const log = freshFile(topo, `c-tcpcopy.log`);
    const proc = topo.spawn('online', build.tcpcopy!, [...common, '-l', log]);
    await waitForLog(proc, () => readTail(log), /connect to remote server/, 'C tcpcopy did not connect to intercept');
    return { proc, pid: proc.pid, stop: async () => (await proc.stop('SIGTERM', 10_000), `${cCounters(readTail(log), 'tcpcopy')}; ${cTrouble(log)}`) };
  }
  const args = ['-i', topo.hosts.online.iface, '--summary', 'json', ...common, ...extraTcpcopyArgs()];
  const nodeArgs = (process.env.TCPE_TCPCOPY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = build.tcpcopy ? topo.spawn('online', build.tcpcopy, args) : topo.spawn('online', process.execPath, [...nodeArgs, TCPCOPY_BIN, ...args]);
  await waitForStart(proc, /replaying /, 'stderr', `${build.label} tcpcopy`);
  return {
    proc,
    pid: toolPid(proc.pid),
    async stop() {
      await proc.stop('SIGTERM', 10_000);
      const line = proc.stdout().split('\n').find((l) => l.startsWith('{'));
      return line ? ourCounters(JSON.parse(line)) : `(no summary; exit ${proc.exitStatus()?.code}) ${proc.stderr().slice(-300)}`;
    },
  };
}

/** TCPE_BENCH_LIVE_TCPCOPY_ARGS (split at spaces): options added to our tcpcopy, to see what one changes. */
export function extraTcpcopyArgs(): string[] {
  return process.env.TCPE_BENCH_LIVE_TCPCOPY_ARGS?.split(' ').filter(Boolean) ?? [];
}

/** Our summary's counters that say whether a replay went well; others when not zero. */
const KEY_COUNTERS = ['sessionsCreated', 'sessionsCompleted', 'retransmissions', 'idleReleases', 'captureGaps', 'handshakeTimeouts'];
const NOISE = ['capturedPackets', 'packetsSent', 'bytesSent', 'repliesReceived'];

function ourCounters(summary: any): string {
  const engine: Record<string, number> = summary?.engine ?? {};
  return Object.entries(engine)
    .filter(([k, v]) => KEY_COUNTERS.includes(k) || (v !== 0 && !NOISE.includes(k)))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/** The C tools' end-of-run counters (their log's "[notice]" lines after the signal), on one line. */
function cCounters(log: string, tool: 'tcpcopy' | 'intercept'): string {
  const at = log.lastIndexOf('sig 15 received');
  const tail = at >= 0 ? log.slice(at) : log.slice(-3000);
  const wanted = tool === 'tcpcopy'
    ? /\] (conns:|resp fin:|send syn:|retransmit:|syn cnt:|total captured packets:|reconnect:)/
    : /\] (delay actual sent:|destroy delay table)/;
  return tail.split('\n').filter((l) => wanted.test(l)).map((l) => l.replace(/^.*\] /, '')).join('; ') || '(no counters in its log)';
}

/**
 * The C tools' complaints over the whole run, each kind counted with numbers masked, so a bad run says
 * why: errors, warnings, and their link to the peer (EAGAIN; after 1,024 in a row tcpcopy stops sending
 * SYNs, "msg send error"; a connection intercept dropped: "Recv socket error", "close sock"). intercept's
 * "release tunnel" is left out: it logs one whenever tcpcopy stops first, as every run ends.
 */
function cTrouble(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return 'no log';
  }
  const kinds = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!/\[(error|warn|crit|alert|emerg)\]|EAGAIN|close sock/.test(line) || /sig \d+ received/.test(line)) continue;
    const kind = line.replace(/^.*?\] /, '').replace(/\d+/g, 'N');
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return kinds.size ? `complaints: ${[...kinds].map(([k, n]) => `${n}x "${k}"`).join(', ')}` : 'no complaints';
}

/**
 * The tool's own process: `pid` itself, or, when that is a shell wrapper still waiting on its one child
 * (a wrapper without `exec`), that child.
 */
function toolPid(pid: number): number {
  for (let p = pid, depth = 0; depth < 4; depth++) {
    let comm: string;
    let children: string[];
    try {
      comm = fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      children = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return p;
    }
    if (!/^(sh|bash|dash)$/.test(comm) || children.length !== 1) return p;
    p = Number(children[0]);
  }
  return pid;
}

function freshFile(topo: Topology, name: string): string {
  const file = path.join(topo.mkdir('tool-logs'), `${Date.now()}-${name}`);
  fs.writeFileSync(file, '');
  return file;
}

function readTail(file: string): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.length > 200_000 ? text.slice(-200_000) : text;
  } catch {
    return '';
  }
}

/** Waits for our tool's ready line (bounded: 10 s); one that does not start is killed, and its stderr's end told. */
async function waitForStart(proc: ProcHandle, ready: RegExp, stream: 'stdout' | 'stderr', what: string): Promise<void> {
  await proc.waitFor(ready, { stream, timeoutMs: 10_000 }).catch(async (e) => {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw new Error(`${what} did not start: ${(e as Error).message}\n${proc.stderr().slice(-1000)}`);
  });
}

/** Polls a log until `re` shows up (bounded: 10 s), failing early if the process exits. */
async function waitForLog(proc: ProcHandle, log: () => string, re: RegExp, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!re.test(log())) {
    if (proc.exitStatus() || Date.now() > deadline) {
      await proc.stop('SIGKILL', 2000).catch(() => undefined);
      throw new Error(`${what}: ${log().slice(-800)}${proc.stderr().slice(-400)}`);
    }
    await sleep(50);
  }
}

/** Polls the assistant's listening sockets until `port` is open (bounded: 10 s). */
async function waitForListen(topo: Topology, proc: ProcHandle, port: number, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await topo.exec('assistant', 'ss', ['-Htln', `sport = :${port}`], { check: false });
    if (r.stdout.trim()) return;
    if (proc.exitStatus() || Date.now() > deadline) {
      await proc.stop('SIGKILL', 2000).catch(() => undefined);
      throw new Error(`C intercept did not listen on ${port}: ${log().slice(-800)}${proc.stderr().slice(-400)}`);
    }
    await sleep(50);
  }
}
