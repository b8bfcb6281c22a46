// Network-namespace topology for end-to-end tests.
//
//   client 198.51.100.10 ─┐
//   online 198.51.100.20 ─┤  bridge in a fifth "switch" namespace
//   target 198.51.100.30 ─┤  (the root namespace is never touched)
//   assistant .40 ────────┘
//
// target routes the fake client range 203.0.113.0/24 via the assistant, whose ip_forward=0 makes it a
// black hole: replies to fake clients arrive there (where intercept captures them) and go nowhere.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExitStatus, isAlive, ProcHandle, sleep, sleepSync, spawnProc, SpawnOptions, withTimeout } from './proc';

export type HostName = 'client' | 'online' | 'target' | 'assistant';
/** Where a command can run: one of the four hosts, or the switch namespace (which holds the bridge). */
export type NsName = HostName | 'switch';

export const HOSTS: readonly HostName[] = ['client', 'online', 'target', 'assistant'];
export const SUBNET = '198.51.100.0/24';
export const FAKE_CLIENT_NET = '203.0.113.0/24';
const ADDRS: Record<HostName, string> = {
  client: '198.51.100.10',
  online: '198.51.100.20',
  target: '198.51.100.30',
  assistant: '198.51.100.40',
};
/** Two letters per host for interface names, which must stay within 15 characters. */
const ABBR: Record<HostName, string> = { client: 'cl', online: 'on', target: 'tg', assistant: 'as' };

export interface HostInfo {
  name: HostName;
  /** Network namespace name (unique per run). */
  netns: string;
  /** The host's interface (its end of the veth). */
  iface: string;
  /** The other end of the veth, a port of the bridge in the switch namespace. */
  switchPort: string;
  addr: string;
  /** Fixed, locally administered MAC 02:c6:33:64:00:<last octet> so captures are easy to read. */
  mac: string;
}

export interface TopologyOptions {
  /** Default: random 6 characters [0-9a-z]. Must be 1..6 characters of [0-9a-z]. */
  runId?: string;
  /** Leave tx checksum offload on the host veths (default true). false runs `ethtool -K IF tx off`. */
  txChecksumOffload?: boolean;
  /** Leave TSO/GSO/GRO on the host veths (default true). false turns all three off, so captured frames are ≤ MTU. */
  segmentationOffload?: boolean;
  /** Keep the work directory after destroy() (default: env TCPE_KEEP_WORKDIR=1), for post-mortems. */
  keepWorkdir?: boolean;
}

export interface ExecOptions {
  /** Kill the command (SIGKILL) after this long. Default 10 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. */
  input?: string | Buffer;
  /** Throw if the exit code is not 0 (default true). */
  check?: boolean;
  env?: Record<string, string>;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Topology {
  readonly runId: string;
  readonly hosts: Readonly<Record<HostName, HostInfo>>;
  readonly switch: { readonly netns: string; readonly bridge: string };
  /** All five namespace names. */
  readonly namespaces: readonly string[];
  readonly options: Required<Omit<TopologyOptions, 'runId'>>;
  /** A fresh directory (mode 0755, so nginx workers running as nobody can read below it) for this run's
   *  files: configs, logs, captures. Removed by destroy() unless keepWorkdir. */
  readonly workdir: string;
  /** Create (mode 0755) and return a subdirectory of workdir. */
  mkdir(name: string): string;
  netnsOf(ns: NsName): string;
  /** Run a command inside a namespace (`ip netns exec`), bounded in time. */
  exec(ns: NsName, cmd: string, args?: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Start a long-running command inside a namespace. Its PID is the command's own (ip netns exec does not fork). */
  spawn(ns: NsName, cmd: string, args?: string[], opts?: SpawnOptions): ProcHandle;
  /** Kill every process started here or still inside the namespaces (by PID), delete the namespaces. Idempotent. */
  destroy(): Promise<void>;
  readonly destroyed: boolean;
}

/** Namespace names that exist now (`ip netns list`). */
export function listNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 });
  return (r.stdout ?? '')
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n): n is string => !!n);
}

let rootCheck: string | null | undefined;

/** Why namespace tests cannot run here, or null if they can. Probes once per process. */
export function netnsUnavailableReason(): string | null {
  if (rootCheck !== undefined) return rootCheck;
  if (process.platform !== 'linux') return (rootCheck = `platform is ${process.platform}, not linux`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return (rootCheck = `not root (uid ${process.getuid()})`);
  const probe = `tcpe-probe-${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 5000 });
  if (add.error || add.status !== 0) {
    return (rootCheck = `'ip netns add' failed: ${add.error?.message ?? add.stderr.trim()}`);
  }
  spawnSync('ip', ['netns', 'del', probe], { timeout: 5000 });
  return (rootCheck = null);
}

/** Mocha guard: skips the test/suite (loudly, on stderr) unless we are root with a usable `ip netns`. */
export function requireRoot(ctx: Mocha.Context): void {
  const reason = netnsUnavailableReason();
  if (reason) {
    process.stderr.write(`\n!!!!! SKIPPING network-namespace tests: ${reason}. They need root and iproute2 'ip netns'. !!!!!\n\n`);
    ctx.skip();
  }
}

/** Mocha guard: skips (loudly) unless every program is on PATH. */
export function requireTools(ctx: Mocha.Context, tools: string[]): void {
  const missing = tools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { timeout: 5000 }).status !== 0);
  if (missing.length) {
    process.stderr.write(`\n!!!!! SKIPPING: missing programs: ${missing.join(', ')} !!!!!\n\n`);
    ctx.skip();
  }
}

// ---- cleanup on process exit / signals -------------------------------------------------------------

const live = new Set<TopologyImpl>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const t of live) t.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      for (const t of live) t.destroySync();
      // Re-raise with default behaviour unless someone else (e.g. mocha) also handles the signal.
      process.removeListener(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

// ---- topology ---------------------------------------------------------------------------------------

class TopologyImpl implements Topology {
  readonly namespaces: string[];
  readonly switch: { netns: string; bridge: string };
  readonly procs = new Set<ProcHandle>();
  private destroying: Promise<void> | null = null;
  destroyed = false;

  constructor(
    readonly runId: string,
    readonly hosts: Record<HostName, HostInfo>,
    sw: { netns: string; bridge: string },
    readonly options: Required<Omit<TopologyOptions, 'runId'>>,
    readonly workdir: string,
  ) {
    this.switch = sw;
    this.namespaces = [...HOSTS.map((h) => hosts[h].netns), this.switch.netns];
  }

  mkdir(name: string): string {
    const dir = path.join(this.workdir, name);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  netnsOf(ns: NsName): string {
    if (ns === 'switch') return this.switch.netns;
    const h = this.hosts[ns];
    if (!h) throw new Error(`unknown host ${ns}`);
    return h.netns;
  }

  spawn(ns: NsName, cmd: string, args: string[] = [], opts: SpawnOptions = {}): ProcHandle {
    if (this.destroying) throw new Error(`topology ${this.runId} is destroyed`);
    const p = spawnProc('ip', ['netns', 'exec', this.netnsOf(ns), cmd, ...args], opts);
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  async exec(ns: NsName, cmd: string, args: string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    const { timeoutMs = 10_000, check = true } = opts;
    const p = this.spawn(ns, cmd, args, { env: opts.env });
    if (opts.input !== undefined) p.write(opts.input);
    p.endInput();
    let st: ExitStatus;
    try {
      st = await withTimeout(p.exited, timeoutMs, `${cmd} ${args.join(' ')} in ${ns}`);
    } catch (e) {
      await p.stop('SIGKILL', 2000).catch(() => undefined);
      throw e;
    }
    const res = { stdout: p.stdout(), stderr: p.stderr(), code: st.code, signal: st.signal };
    if (check && st.code !== 0) {
      throw new Error(`in ${ns}: '${cmd} ${args.join(' ')}' failed (${st.code ?? st.signal}): ${res.stderr.trim() || res.stdout.trim()}`);
    }
    return res;
  }

  destroy(): Promise<void> {
    if (!this.destroying) this.destroying = this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    // Politely first, so servers can flush logs; stop() escalates to SIGKILL after the bound.
    await Promise.all([...this.procs].map((p) => p.stop('SIGTERM', 3000).catch(() => undefined)));
    const errors: string[] = [];
    // Anything else still inside our namespaces (e.g. nginx workers, grandchildren) dies by PID.
    for (const ns of this.namespaces) {
      const pids = nsPids(ns);
      for (const pid of pids) tryKill(pid, 'SIGKILL');
      for (let i = 0; i < 50 && pids.some(isAlive); i++) await sleep(20);
    }
    // Hosts first: deleting them removes their veths, so the switch goes last with an empty bridge.
    for (const ns of this.namespaces) {
      const r = spawnSync('ip', ['netns', 'del', ns], { encoding: 'utf8', timeout: 5000 });
      if (r.status !== 0 && listNamespaces().includes(ns)) errors.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    this.removeWorkdir();
    this.destroyed = true;
    live.delete(this);
    if (errors.length) throw new Error(`topology ${this.runId} cleanup: ${errors.join('; ')}`);
  }

  private removeWorkdir(): void {
    if (this.options.keepWorkdir) process.stderr.write(`[netns ${this.runId}] keeping ${this.workdir}\n`);
    else fs.rmSync(this.workdir, { recursive: true, force: true });
  }

  /** Last-resort cleanup from exit/signal handlers: no event loop, so everything is synchronous. */
  destroySync(): void {
    if (this.destroyed) return;
    for (const p of this.procs) if (!p.exitStatus()) tryKill(p.pid, 'SIGKILL');
    for (const ns of this.namespaces) {
      const pids = nsPids(ns);
      for (const pid of pids) tryKill(pid, 'SIGKILL');
      for (let i = 0; i < 50 && pids.some(isAlive); i++) sleepSync(20);
    }
    for (const ns of this.namespaces) spawnSync('ip', ['netns', 'del', ns], { timeout: 5000 });
    this.removeWorkdir();
    this.destroyed = true;
    live.delete(this);
  }
}

function tryKill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

function nsPids(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 });
  return (r.stdout ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

function macFor(addr: string): string {
  const last = Number(addr.split('.')[3]);
  return `02:c6:33:64:00:${last.toString(16).padStart(2, '0')}`;
}

/** Build the five namespaces. On any failure everything created so far is removed before rethrowing. */
export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const runId = opts.runId ?? randomBytes(8).readBigUInt64BE().toString(36).slice(-6).padStart(6, '0');
  if (!/^[0-9a-z]{1,6}$/.test(runId)) throw new Error(`runId must be 1..6 chars of [0-9a-z], got '${runId}'`);
  const options = {
    txChecksumOffload: opts.txChecksumOffload ?? true,
    segmentationOffload: opts.segmentationOffload ?? true,
    keepWorkdir: opts.keepWorkdir ?? process.env.TCPE_KEEP_WORKDIR === '1',
  };
  const hosts = {} as Record<HostName, HostInfo>;
  for (const h of HOSTS) {
    hosts[h] = {
      name: h,
      netns: `tcpe-${runId}-${h}`,
      iface: `tc${runId}-${ABBR[h]}`, // ≤ 11 chars
      switchPort: `sw${runId}-${ABBR[h]}`,
      addr: ADDRS[h],
      mac: macFor(ADDRS[h]),
    };
  }
  const sw = { netns: `tcpe-${runId}-switch`, bridge: `br${runId}` };
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), `tcpe-${runId}-`));
  fs.chmodSync(workdir, 0o755);
  const topo = new TopologyImpl(runId, hosts, sw, options, workdir);
  installExitHooks();
  live.add(topo);

  const ip = (args: string[]) => run('ip', args);
  const inNs = (ns: NsName, cmd: string, args: string[]) => topo.exec(ns, cmd, args, { timeoutMs: 10_000 });
  try {
    for (const ns of topo.namespaces) await ip(['netns', 'add', ns]);
    // No IPv6 anywhere: it would only add router solicitations and MLD noise to captures.
    const quiet = ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
    await inNs('switch', 'sysctl', ['-qw', ...quiet]);
    await ip(['-n', sw.netns, 'link', 'add', sw.bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await ip(['-n', sw.netns, 'link', 'set', sw.bridge, 'up']);
    for (const h of HOSTS) {
      const { netns, iface, switchPort, addr, mac } = hosts[h];
      // Created inside the switch namespace with the peer moved straight into the host: nothing in root.
      await ip(['-n', sw.netns, 'link', 'add', switchPort, 'type', 'veth', 'peer', 'name', iface, 'netns', netns]);
      await ip(['-n', sw.netns, 'link', 'set', switchPort, 'master', sw.bridge, 'up']);
      const sysctls = [
        ...quiet,
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.default.rp_filter=0',
        `net.ipv4.conf.${iface}.rp_filter=0`,
        `net.ipv4.ip_forward=0`, // also the assistant's black hole; no host here routes
      ];
      await inNs(h, 'sysctl', ['-qw', ...sysctls]);
      await ip(['-n', netns, 'link', 'set', iface, 'address', mac]);
      await ip(['-n', netns, 'addr', 'add', `${addr}/24`, 'dev', iface]);
      await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
      if (!options.txChecksumOffload) await inNs(h, 'ethtool', ['-K', iface, 'tx', 'off']);
      if (!options.segmentationOffload) await inNs(h, 'ethtool', ['-K', iface, 'tso', 'off', 'gso', 'off', 'gro', 'off']);
      await ip(['-n', netns, 'link', 'set', iface, 'up']);
      // Static forwarding entries: a unicast frame is never flooded to other hosts (e.g. the online host
      // must never see frames for the assistant, even before the bridge has learned its MAC).
      await run('bridge', ['-n', sw.netns, 'fdb', 'replace', mac, 'dev', switchPort, 'master', 'static']);
    }
    await inNs('target', 'ip', ['route', 'add', FAKE_CLIENT_NET, 'via', hosts.assistant.addr]);
    // rp_filter of the switch too (its bridge does not route, but "everywhere" means everywhere).
    await inNs('switch', 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    await waitCarrier(topo);
  } catch (e) {
    await topo.destroy().catch(() => undefined);
    throw e;
  }
  return topo;
}

/** veth links report carrier right away, but wait (bounded) for operstate UP so first packets are not lost. */
async function waitCarrier(topo: TopologyImpl): Promise<void> {
  for (const h of HOSTS) {
    const { netns, iface } = topo.hosts[h];
    let state = '';
    for (let i = 0; i < 100; i++) {
      const r = await run('ip', ['-n', netns, '-o', 'link', 'show', iface]);
      state = /state (\S+)/.exec(r.stdout)?.[1] ?? '';
      if (state === 'UP') break;
      await sleep(20);
    }
    if (state !== 'UP') throw new Error(`${iface} in ${netns} did not come up (state ${state})`);
  }
}

/** Run a command in the root namespace (only iproute2 commands that target our namespaces by name). */
async function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<ExecResult> {
  const p = spawnProc(cmd, args);
  p.endInput();
  let st: ExitStatus;
  try {
    st = await withTimeout(p.exited, timeoutMs, `${cmd} ${args.join(' ')}`);
  } catch (e) {
    await p.stop('SIGKILL', 2000).catch(() => undefined);
    throw e;
  }
  if (st.code !== 0) throw new Error(`'${cmd} ${args.join(' ')}' failed (${st.code ?? st.signal}): ${p.stderr().trim()}`);
  return { stdout: p.stdout(), stderr: p.stderr(), code: st.code, signal: st.signal };
}
