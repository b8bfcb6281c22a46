// Heavier live load than pacedLoad: test/scripts/live-load.js from the client host, its connections spread
// over many client addresses with explicit local ports; plus what a live measurement reads on the side:
// per-process CPU time and peak RSS from /proc, and tagged lines counted as an nginx access log grows.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { Topology } from './netns';
import { withTimeout } from './proc';
import { scriptPath } from './servers';

/** `count` addresses 198.51.100.<first>..: extra client addresses (only ever within 198.51.100.0/24). */
export function clientAddressRange(first = 100, count = 50): string[] {
  if (first < 1 || first + count - 1 > 254) throw new Error(`198.51.100.${first} + ${count} leaves 198.51.100.0/24`);
  return Array.from({ length: count }, (_, i) => `198.51.100.${first + i}`);
}

/** Adds the addresses (/24, so secondary to the host's own) to a host's interface, in one `ip -batch`. */
export async function addHostAddresses(topo: Topology, host: 'client', addrs: string[]): Promise<void> {
  const iface = topo.hosts[host].iface;
  for (const a of addrs) if (!/^198\.51\.100\.\d{1,3}$/.test(a)) throw new Error(`${a} is not in 198.51.100.0/24`);
  const batch = addrs.map((a) => `addr add ${a}/24 dev ${iface}`).join('\n') + '\n';
  await topo.exec(host, 'ip', ['-batch', '-'], { input: batch });
}

export interface LiveLoadPlan {
  host: string;
  port: number;
  path: string;
  /** Query parameter name: URLs are PATH?TAG=<n>, so a run's requests can be counted in access logs. */
  tag: string;
  /** short: one request per connection ("Connection: close"); keepalive: `conns` persistent connections. */
  mode: 'short' | 'keepalive';
  /** Concurrent clients (short) or connections (keepalive). */
  conns: number;
  /** Requests per second over all connections; 0: as fast as the connections go. */
  rate: number;
  /** No request starts after this long... */
  durationMs: number;
  /** ...or once this many have started. */
  maxRequests: number;
  /** Client addresses, round robin over the connections. */
  localAddrs: string[];
  /** Connection k uses port portFirst + (portOffset + floor(k / addresses)) % portCount. */
  portFirst: number;
  portCount: number;
  portOffset: number;
  /** Per request (default 10 s). */
  timeoutMs?: number;
}

export interface LiveLoadResult {
  code: number | null;
  sent: number;
  ok: number;
  errors: number;
  statuses: Record<string, number>;
  connections: number;
  /** First request to last response. */
  elapsedMs: number;
  /** Most requests one connection carried. */
  maxConnRequests: number;
  errorSamples: string[];
  stderr: string;
}

/** Runs test/scripts/live-load.js on the client host to the end (bounded). */
export async function runLiveLoad(topo: Topology, plan: LiveLoadPlan): Promise<LiveLoadResult> {
  const proc = topo.spawn('client', process.execPath, [scriptPath('live-load.js'), '--plan', JSON.stringify(plan)]);
  const bound = plan.durationMs + (plan.timeoutMs ?? 10_000) + 15_000;
  const status = await withTimeout(proc.exited, bound, 'live load').catch(async (e) => {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw e;
  });
  const line = proc.stdout().split('\n').find((l) => l.startsWith('DONE '));
  if (!line) throw new Error(`the live load printed no result (exit ${status.code ?? status.signal}): ${proc.stderr().slice(-2000)}`);
  return { code: status.code, stderr: proc.stderr(), ...JSON.parse(line.slice(5)) };
}

// ---- /proc -------------------------------------------------------------------------------------------

let clockTicks: number | undefined;

/** sysconf(_SC_CLK_TCK): the unit of the times in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
    const n = Number(r.stdout?.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** User + system CPU time of a process so far, in seconds (utime + stime of /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number {
  const { user, system } = cpuSplitSeconds(pid);
  return user + system;
}

/** CPU time of a process so far, user and system apart (utime and stime of /proc/<pid>/stat), in seconds. */
export function cpuSplitSeconds(pid: number): { user: number; system: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) ": state is field 3, utime 14, stime 15; comm may hold spaces, so split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = clockTicksPerSecond();
  return { user: Number(fields[14 - 3]) / hz, system: Number(fields[15 - 3]) / hz };
}

/** Peak resident set size (VmHWM of /proc/<pid>/status), in bytes. */
export function peakRssBytes(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Resident memory now by kind (RssAnon, RssFile, RssShmem of /proc/<pid>/status), in bytes. */
export function rssBreakdown(pid: number): { anon: number; file: number; shmem: number } {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
}

// ---- access logs -------------------------------------------------------------------------------------

/**
 * The lines appended to a growing file (a log) since the last call, whole lines only: cheap enough to
 * poll every 100 ms on a log of 100,000s of lines. `fromEnd` skips what the file holds already.
 */
export class LineTail {
  private offset: number;
  private partial = '';

  constructor(private readonly file: string, fromEnd = false) {
    this.offset = fromEnd && fs.existsSync(file) ? fs.statSync(file).size : 0;
  }

  /** Calls `line` for each new whole line. */
  read(line: (text: string) => void): void {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return;
    }
    try {
      const chunk = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = fs.readSync(fd, chunk, 0, chunk.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        const lines = (this.partial + chunk.toString('latin1', 0, n)).split('\n');
        this.partial = lines.pop() ?? '';
        for (const l of lines) line(l);
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * Counts the lines of a growing log (an nginx access log) that contain `?TAG=` or `&TAG=`, reading only
 * what was appended since the last call. Lines written before the counter was made are not counted.
 */
export class TaggedLineCounter {
  private readonly tail: LineTail;
  private counted = 0;
  private readonly needles: string[];
  private readonly perLane: number[];

  /** `laneOf`: which of `lanes` a counted line belongs to (countIn tells each's count), e.g. by its client address. */
  constructor(file: string, tag: string, private readonly laneOf: ((line: string) => number) | null = null, lanes = 1) {
    this.needles = [`?${tag}=`, `&${tag}=`];
    this.tail = new LineTail(file, true);
    this.perLane = new Array<number>(lanes).fill(0);
  }

  count(): number {
    this.tail.read((l) => {
      if (!this.needles.some((s) => l.includes(s))) return;
      this.counted++;
      if (this.laneOf) this.perLane[this.laneOf(l)]++;
    });
    return this.counted;
  }

  /** Lines of one lane counted so far (read by count()). */
  countIn(lane: number): number {
    return this.perLane[lane] ?? 0;
  }
}
