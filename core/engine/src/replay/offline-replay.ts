import type { CaptureStats } from '../capture/frame-decoder';
import { OfflineSource } from '../capture/offline-source';
import { PcapReader } from '../capture/pcap-file';
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
}

export interface OfflineReplayResult {
  passes: number;
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
  const times = Math.max(1, opts.times ?? 1);
  const tail = opts.tailTimeoutMs ?? 30_000;
  const timer = setInterval(() => engine.tick(), opts.tickMs ?? 2);
  let tailTimeouts = 0;
  try {
    for (let pass = 0; pass < times; pass++) {
      engine.startPass(pass);
      await source.run(engine);
      if (!(await waitUntilIdle(engine, tail))) {
        tailTimeouts++;
        opts.warn?.(`pass ${pass + 1}: sessions still busy ${tail / 1000} s after the end of the capture; closing them`);
      }
      engine.closeAll();
      opts.onPassEnd?.(pass);
    }
  } finally {
    clearInterval(timer);
    reader.close();
  }
  return { passes: times, capture: source.stats, tailTimeouts };
}

/** Resolves true once no session is busy, false when `timeoutMs` passed first. */
export function waitUntilIdle(engine: ReplayEngine, timeoutMs: number): Promise<boolean> {
  const deadline = engine.now() + timeoutMs;
  return new Promise((resolve) => {
    const check = (): void => {
      if (!engine.busy()) return resolve(true);
      if (engine.now() >= deadline) return resolve(false);
      setTimeout(check, 10);
    };
    check();
  });
}
