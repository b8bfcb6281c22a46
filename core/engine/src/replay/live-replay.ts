import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import type { LiveSource } from '../capture/live-source';
import type { ReplayEngine } from '../session/replay-engine';

export interface LiveReplayOptions {
  /** -m: stop cleanly before the process's resident memory passes this many bytes (0: no limit). */
  memoryLimitBytes?: number;
  /** Called every `statsIntervalMs` (0: never) with the engine and capture counters. */
  onStats?: () => void;
  statsIntervalMs?: number;
  /** Shortest time between two runs of the engine's timers, ms (default 5): they run when a deadline is due, at most this often. */
  tickMs?: number;
  warn?: (message: string) => void;
  /** The caller already started the source (with a handler that reaches this engine). */
  sourceStarted?: boolean;
  /** Memory read (tests replace it). */
  rss?: () => number;
  /** A full garbage collection (tests replace it). */
  collect?: () => void;
}

export type LiveReplayEnd = 'stopped' | 'memory';

export interface LiveReplay {
  /** Resolves when the replay ended: stop() was called, or memory ran short. */
  readonly done: Promise<LiveReplayEnd>;
  stop(): void;
}

/** Above this share of -m no new session starts; at the limit the replay stops. */
const ADMIT_SHARE = 0.85;
const STOP_SHARE = 0.97;
/** Near the limit, a full collection at most this often: finished sessions are garbage V8 has not collected yet. */
const COLLECT_EVERY_MS = 1000;
/**
 * V8 hands a collection's freed pages back to the system a few milliseconds later (its unmapper runs
 * concurrently): a reading right after collect() still counts them, and refused new sessions for nothing.
 */
const JUDGE_AFTER_COLLECT_MS = 50;

let fullCollection: (() => void) | null = null;
/**
 * V8's full garbage collection. The resident size is what -m bounds, but V8 collects its old
 * generation only when its own heap limit nears, far above -m: sessions that ended long ago still
 * count. Collecting before judging the limit measures what is really held.
 */
function collectGarbage(): void {
  if (!fullCollection) {
    v8.setFlagsFromString('--expose-gc');
    fullCollection = vm.runInNewContext('gc') as () => void;
  }
  fullCollection();
}

/**
 * Live replay: the source feeds captured packets to the engine as they come;
 * timers tick; memory is watched so that the online host never suffers: new
 * sessions are refused near the limit and the replay stops cleanly before it.
 */
export function replayLive(engine: ReplayEngine, source: LiveSource, opts: LiveReplayOptions = {}): LiveReplay {
  let finish!: (end: LiveReplayEnd) => void;
  const done = new Promise<LiveReplayEnd>((resolve) => (finish = resolve));
  if (!opts.sourceStarted) source.start(engine);
  let ended = false;
  // The engine's timers are its sessions' deadlines, filed in a wheel of 5 ms slots. It is advanced when its next
  // filed slot comes (at most every tickMs), and sooner when a session files an earlier deadline: an idle
  // tcpcopy, or one holding a few quiet keep-alive connections, sleeps rather than waking every 5 ms (200
  // wake-ups a second cost an idle tcpcopy 4 % of a core).
  const tickMs = opts.tickMs ?? 5;
  const wheel = engine.wheel;
  let timer: NodeJS.Timeout | null = null;
  const scheduleWake = (at: number): void => {
    if (ended) return;
    if (timer !== null) clearTimeout(timer);
    wheel.wakeAt = at;
    timer = setTimeout(onTimer, Math.max(0, at - engine.now()));
  };
  const onTimer = (): void => {
    timer = null;
    engine.tick();
    const next = wheel.nextFiledTime();
    if (next === Infinity) wheel.wakeAt = Infinity; // the next deadline filed schedules the wake-up
    else scheduleWake(Math.max(next, engine.now() + tickMs));
  };
  wheel.onEarlier = scheduleWake;
  wheel.wakeAt = Infinity;
  onTimer();
  const rss = opts.rss ?? (() => process.memoryUsage.rss());
  const collect = opts.collect ?? collectGarbage;
  const limit = opts.memoryLimitBytes ?? 0;
  let collectedAt = -Infinity;
  let judgeLater: NodeJS.Timeout | null = null;
  const memory = limit > 0
    ? setInterval(() => {
        const used = rss();
        const now = performance.now();
        if (used >= limit * ADMIT_SHARE && now - collectedAt >= COLLECT_EVERY_MS) {
          collectedAt = now;
          collect();
          judgeLater = setTimeout(() => judge(rss()), JUDGE_AFTER_COLLECT_MS);
          return;
        }
        judge(used);
      }, 250)
    : null;
  function judge(used: number): void {
    judgeLater = null;
    if (ended) return;
    if (used >= limit * STOP_SHARE) {
      opts.warn?.(`memory ${(used / 2 ** 20).toFixed(0)} MiB is at the -m limit of ${(limit / 2 ** 20).toFixed(0)} MiB: stopping`);
      end('memory');
      return;
    }
    const admit = used < limit * ADMIT_SHARE;
    if (admit !== engine.admitting) {
      engine.admitting = admit;
      opts.warn?.(admit ? 'memory is below the -m limit again: new connections are replayed'
        : `memory ${(used / 2 ** 20).toFixed(0)} MiB is near the -m limit: new connections are not replayed for now`);
    }
  }
  const stats = opts.onStats && opts.statsIntervalMs ? setInterval(opts.onStats, opts.statsIntervalMs) : null;
  function end(why: LiveReplayEnd): void {
    if (ended) return;
    ended = true;
    source.close();
    if (timer !== null) clearTimeout(timer);
    timer = null;
    wheel.onEarlier = null;
    wheel.wakeAt = -Infinity;
    if (memory) clearInterval(memory);
    if (judgeLater) clearTimeout(judgeLater);
    if (stats) clearInterval(stats);
    engine.closeAll();
    finish(why);
  }
  return { done, stop: () => end('stopped') };
}
