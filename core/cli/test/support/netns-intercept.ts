// A real intercept inside a test's network namespace, for tcpcopy runs that need one to connect to.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

const INTERCEPT_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'intercept.js');

export interface NetnsIntercept {
  readonly proc: ChildProcess;
  /** SIGTERM, SIGKILL after 5 s; resolves when it has exited. */
  stop(): Promise<void>;
}

/** Starts intercept on lo in `ns` listening on `port`; resolves once it says "listening on" (bounded: 10 s). */
export async function startNetnsIntercept(ns: string, port: number): Promise<NetnsIntercept> {
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, INTERCEPT_BIN, '-i', 'lo', '-F', 'tcp and src port 9',
    '-p', String(port), '--stats-interval', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const stop = async (): Promise<void> => {
    if (!running()) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  };
  const deadline = Date.now() + 10_000;
  while (!out.includes('listening on')) {
    if (!running()) throw new Error(`intercept exited: ${err}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`intercept did not say "listening on" within 10 s: ${out}${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { proc, stop };
}
