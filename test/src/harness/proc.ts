// Child-process helpers shared by the harness: a handle that collects output (bounded), can wait for a
// line to appear (bounded), and stops its process by PID with escalation to SIGKILL (bounded).
import { spawn as nodeSpawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

/** Output kept per stream; beyond this the oldest part is dropped so a chatty process cannot eat memory. */
const MAX_OUTPUT = 4 * 1024 * 1024;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Extra environment (merged over process.env). */
  env?: Record<string, string>;
  cwd?: string;
  /** Called with each stdout/stderr chunk as it arrives (e.g. to forward to the console when debugging). */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: string) => void;
}

export interface ProcHandle {
  readonly pid: number;
  readonly command: string;
  /** Everything written so far (tail of at most 4 MiB). */
  stdout(): string;
  stderr(): string;
  /** Resolves once the process has exited and its output is complete (or 200 ms later if a grandchild holds the pipes). */
  readonly exited: Promise<ExitStatus>;
  /** null while running. */
  exitStatus(): ExitStatus | null;
  /** Write to the process's stdin. */
  write(data: string | Buffer): void;
  /** Close stdin. */
  endInput(): void;
  /** Resolves with the first match of `re` on the chosen stream; rejects on timeout or process exit. */
  waitFor(re: RegExp, opts?: { stream?: 'stdout' | 'stderr'; timeoutMs?: number }): Promise<RegExpMatchArray>;
  /** Sends `signal` (default SIGTERM), waits up to timeoutMs, then SIGKILLs and waits again (bounded). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus>;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Synchronous sleep for exit handlers, where the event loop no longer runs. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Resolves with `p`, or rejects after `ms` with `what` in the message. The timer never keeps the process alive. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** True while `pid` exists and is not a zombie (a killed process whose parent has not reaped it yet). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // /proc/PID/stat: "pid (comm) STATE ..."; comm may contain spaces or parentheses, so split at the last ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Spawn `file args` and wrap it in a ProcHandle. Throws if the spawn itself fails (e.g. ENOENT). */
export function spawnProc(file: string, args: string[], opts: SpawnOptions = {}): ProcHandle {
  const child: ChildProcess = nodeSpawn(file, args, {
    cwd: opts.cwd,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    // spawn failures are reported asynchronously via 'error'; pid undefined means it did not start.
    child.on('error', () => undefined);
    throw new Error(`failed to spawn ${file}`);
  }
  const pid = child.pid;
  const command = [file, ...args].join(' ');
  const out = { stdout: '', stderr: '' };
  const waiters = new Set<() => void>();
  let status: ExitStatus | null = null;
  let ended = false; // exited and output complete (or given up on): waiters stop waiting

  const collect = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    const s = chunk.toString('utf8');
    out[stream] += s;
    if (out[stream].length > MAX_OUTPUT) out[stream] = out[stream].slice(-MAX_OUTPUT);
    opts.onOutput?.(stream, s);
    for (const w of [...waiters]) w();
  };
  child.stdout!.on('data', collect('stdout'));
  child.stderr!.on('data', collect('stderr'));
  // A process that exits without reading stdin makes writes fail with EPIPE; that is not our error.
  child.stdin!.on('error', () => undefined);

  const exited = new Promise<ExitStatus>((resolve) => {
    child.on('error', () => undefined);
    // 'close' comes after 'exit' once the pipes are drained, so output is complete then. But a
    // grandchild that inherited the pipes (sh -c 'x &') keeps them open: wait for 'close' only briefly.
    let closed = false;
    const done = () => {
      ended = true;
      for (const w of [...waiters]) w();
      resolve(status!);
    };
    child.on('close', () => {
      closed = true;
      if (status) done();
    });
    child.on('exit', (code, signal) => {
      status = { code, signal };
      if (closed) done();
      else setTimeout(done, 200).unref();
    });
  });

  const handle: ProcHandle = {
    pid,
    command,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    exited,
    exitStatus: () => status,
    write: (data) => {
      child.stdin!.write(data);
    },
    endInput: () => {
      child.stdin!.end();
    },
    waitFor(re, { stream = 'stdout', timeoutMs = 5000 } = {}) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`timeout after ${timeoutMs} ms waiting for ${re} on ${stream} of ${command}\n${stream}: ${out[stream].slice(-2000)}`)), timeoutMs);
        timer.unref();
        const check = () => {
          const m = out[stream].match(re);
          if (m) return finish(undefined, m);
          if (ended) finish(new Error(`${command} exited (${JSON.stringify(status)}) before ${re} appeared on ${stream}\nstdout: ${out.stdout.slice(-2000)}\nstderr: ${out.stderr.slice(-2000)}`));
        };
        const finish = (err?: Error, m?: RegExpMatchArray) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve(m!);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM', timeoutMs = 5000) {
      if (status) return status;
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
      try {
        return await withTimeout(exited, timeoutMs, `${command} to exit after ${signal}`);
      } catch {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        return withTimeout(exited, 5000, `${command} to exit after SIGKILL`);
      }
    },
  };
  return handle;
}
