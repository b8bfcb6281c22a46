import type { TcpPacket } from '../decode/tcp-packet';
import { CaptureStats, FrameDecoder } from './frame-decoder';
import type { PcapRecordInPlace } from './pcap-format';
import { PcapReader } from './pcap-reader';

/** What consumes captured client packets (the session engine). */
export interface CapturedPacketHandler {
  handleCaptured(pkt: TcpPacket, now: number): void;
  /** Called once per batch of packets handed over. */
  flush?(now: number): void;
}

export interface OfflineSourceOptions {
  /** -a: replay this many times faster than captured (1 = real time). */
  speed?: number;
  /** -I: idle gaps in the capture longer than this (ms) are cut short to it. 0 keeps every gap. */
  maxGapMs?: number;
  /** Packets handed over per event-loop turn, so replies and timers get their turn. */
  batch?: number;
  now?: () => number;
  /** Runs `fn` after `ms` (0: on the next turn). Tests pass a fake one with a fake clock. */
  schedule?: (fn: () => void, ms: number) => void;
  warn?: (message: string) => void;
}

const realSchedule = (fn: () => void, ms: number): void => {
  if (ms > 0) setTimeout(fn, ms);
  else setImmediate(fn);
};

/**
 * Reads a pcap file and hands its TCP packets to the engine at the pace they
 * were captured (scaled by `speed`, idle gaps cut to `maxGapMs`). One
 * reusable packet view; the engine copies what it keeps.
 */
export class OfflineSource {
  private readonly decoder: FrameDecoder;
  private readonly speed: number;
  private readonly maxGapUs: number;
  private readonly batch: number;
  private readonly now: () => number;
  private readonly schedule: (fn: () => void, ms: number) => void;
  private readonly warn: (message: string) => void;
  private stopped = false;

  constructor(
    private readonly reader: PcapReader,
    opts: OfflineSourceOptions = {},
  ) {
    this.speed = opts.speed && opts.speed > 0 ? opts.speed : 1;
    this.maxGapUs = (opts.maxGapMs ?? 0) * 1000;
    this.batch = opts.batch ?? 256;
    this.now = opts.now ?? (() => performance.now());
    this.schedule = opts.schedule ?? realSchedule;
    this.warn = opts.warn ?? (() => undefined);
    this.decoder = new FrameDecoder(() => `${reader.path} at byte ${reader.offset}`, this.warn);
  }

  get stats(): CaptureStats {
    return this.decoder.stats;
  }

  stop(): void {
    this.stopped = true;
  }

  /** Replays the file once from its start; resolves at its end. */
  run(handler: CapturedPacketHandler): Promise<void> {
    this.reader.rewind();
    return new Promise<void>((resolve, reject) => {
      const wallStart = this.now();
      let firstUs = -1;
      let lastUs = 0;
      let skippedUs = 0;
      // A record read but not yet due; its data stays valid until the next read.
      let pending: PcapRecordInPlace | null = null;
      let pendingDueMs = 0;
      const step = (): void => {
        try {
          for (let n = 0; ; n++) {
            if (this.stopped) return resolve();
            if (!pending) {
              pending = this.reader.next();
              if (!pending) {
                this.noteTruncatedTail();
                handler.flush?.(this.now());
                return resolve();
              }
              if (firstUs < 0) firstUs = lastUs = pending.timeUs;
              const gap = pending.timeUs - lastUs;
              if (this.maxGapUs > 0 && gap > this.maxGapUs) skippedUs += gap - this.maxGapUs;
              if (gap > 0) lastUs = pending.timeUs;
              pendingDueMs = (pending.timeUs - firstUs - skippedUs) / 1000 / this.speed;
            }
            const wait = pendingDueMs - (this.now() - wallStart);
            if (wait > 1 || n >= this.batch) {
              // Not due yet, or a batch is done: let replies and timers run, then come back.
              handler.flush?.(this.now());
              this.schedule(step, wait > 1 ? Math.min(wait, 1000) : 0);
              return;
            }
            this.feed(pending, handler);
            pending = null;
          }
        } catch (err) {
          reject(err);
        }
      };
      step();
    });
  }

  private noteTruncatedTail(): void {
    if (this.reader.truncatedTail && !this.stats.truncatedFileTail) {
      this.stats.truncatedFileTail = true;
      this.warn(this.reader.tailWarning() ?? `${this.reader.path}: the file ends in the middle of a packet`);
    }
  }

  private feed(rec: PcapRecordInPlace, handler: CapturedPacketHandler): void {
    const pkt = this.decoder.decode(this.reader.linkType, rec.buffer, rec.length, rec.start);
    if (!pkt) return;
    // The record's own time, for protocols that time the online server's answers.
    pkt.capturedAtMs = rec.timeUs / 1000;
    handler.handleCaptured(pkt, this.now());
  }
}
