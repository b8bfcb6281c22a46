import type { CaptureStats } from '../capture/frame-decoder';
import { OfflineSource } from '../capture/offline-source';
import { PcapReader } from '../capture/pcap-reader';
import type { ReplayEngine } from '../session/replay-engine';

export interface OfflineReplayOptions {
  /** The pcap file to replay: a path, or a reader already open (it is closed at the end). */
  file: string | PcapReader;
  /** -a: speed-up factor. */
  speed?: number;
  /** -I: longest idle gap kept, ms (0: all). */
  maxGapMs?: number;
  /** -T: passes over the file. */
  times?: number;
  /** After the last packet of a pass, wait at most this long (ms) for sessions to finish. */
  tailTimeoutMs?: number;
  /** Timer resolution of the engine, ms. */
  tickMs?: number;
  warn?: (message: string) => void;
  /** Called between passes and at the end. */
  onPassEnd?: (pass: number) => void;
  /** Called at the start with the capture's counters, which keep counting as the file is read (for reports on the way). */
  onCapture?: (stats: CaptureStats) => void;
  /** Ends the replay early: reading stops, the sessions are closed, and the result says `stopped`. */
  signal?: AbortSignal;
}

export interface OfflineReplayResult {
  /** Passes begun (all of them, unless stopped). */
  passes: number;
  /** The signal ended the replay early. */
  stopped: boolean;
  capture: CaptureStats;
  /** Passes whose tail wait ran out with sessions still busy. */
  tailTimeouts: number;
}

/**
 * Replays a pcap file through an engine: paced reading, the engine's timers,
 * then per pass a bounded wait for the sessions to finish before they are
 * closed and the next pass starts with fresh client ports.
 */
export async function replayOffline(engine: ReplayEngine, opts: OfflineReplayOptions): Promise<OfflineReplayResult> {
  const reader = typeof opts.file === 'string' ? PcapReader.open(opts.file) : opts.file;
  const source = new OfflineSource(reader, { speed: opts.speed, maxGapMs: opts.maxGapMs, warn: opts.warn, now: engine.now });
  opts.onCapture?.(source.stats);
  const times = Math.max(1, opts.times ?? 1);
  const tail = opts.tailTimeoutMs ?? 30_000;
  const signal = opts.signal;
  let wake!: () => void;
  const stopping = new Promise<void>((resolve) => (wake = resolve));
  const stop = (): void => {
    source.stop();
    wake();
  };
  if (signal?.aborted) stop();
  else signal?.addEventListener('abort', stop, { once: true });
  const timer = setInterval(() => engine.tick(), opts.tickMs ?? 2);
  let tailTimeouts = 0;
  let passes = 0;
  try {
    for (let pass = 0; pass < times && !signal?.aborted; pass++) {
      engine.startPass(pass);
      passes++;
      await Promise.race([source.run(engine), stopping]);
      if (!(await waitUntilIdle(engine, tail, signal)) && !signal?.aborted) {
        tailTimeouts++;
        opts.warn?.(`pass ${pass + 1}: sessions still busy ${tail / 1000} s after the end of the capture; closing them`);
      }
      engine.closeAll();
      opts.onPassEnd?.(pass);
    }
  } finally {
    clearInterval(timer);
    signal?.removeEventListener('abort', stop);
    reader.close();
  }
  return { passes, stopped: signal?.aborted ?? false, capture: source.stats, tailTimeouts };
}

/** Resolves true once no session is busy, false when `timeoutMs` passed first (or `signal` aborted). */
export function waitUntilIdle(engine: ReplayEngine, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = engine.now() + timeoutMs;
  return new Promise((resolve) => {
    const check = (): void => {
      if (!engine.busy()) return resolve(true);
      if (signal?.aborted) return resolve(false);
      if (engine.now() >= deadline) return resolve(false);
      setTimeout(check, 10);
    };
    check();
  });
}
