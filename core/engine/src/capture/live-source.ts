import { LinkType } from '../decode/link-type';
import type { CapturedPacketHandler } from './offline-source';
import { CaptureStats, FrameDecoder } from './frame-decoder';
import { LiveCaptureError } from './cap-addon';
import { LiveCapture } from './live-capture';
import { encodeBpfProgram, transferBpfProgram, type BpfTransfer } from './bpf-program';
import { DEFAULT_CAPTURE_HOLD_MS, RawCapture } from './raw-capture';

/** A live source of captured client→server packets. */
export interface LiveSource {
  /** Starts delivering packets; throws a clear error when the capture cannot start. */
  start(handler: CapturedPacketHandler): void;
  close(): void;
  readonly stats: CaptureStats;
  /** One line for the start-up message: what is captured where. */
  describe(): string;
}

/** Calls handler.flush once after each burst of packets (one event-loop turn). */
function burstFlusher(handler: CapturedPacketHandler, now: () => number): () => void {
  let queued = false;
  const flush = (): void => {
    queued = false;
    handler.flush?.(now());
  };
  return () => {
    if (queued) return;
    queued = true;
    setImmediate(flush);
  };
}

export interface PcapLiveSourceOptions {
  /** -i: device(s), comma-separated, or any. */
  device: string;
  /** -F: BPF filter. */
  filter: string;
  /** -B: kernel ring buffer per device, bytes. */
  bufferSize?: number;
  /** -S: bytes of each packet copied. */
  snaplen?: number;
  now?: () => number;
  warn?: (message: string) => void;
}

/**
 * Live capture through libpcap: the kernel's BPF filter passes only the
 * transfers' packets, so the rest of the host's traffic costs nothing here.
 */
export class PcapLiveSource implements LiveSource {
  private readonly capture: LiveCapture;
  private readonly decoder: FrameDecoder;
  private readonly now: () => number;

  constructor(private readonly opts: PcapLiveSourceOptions) {
    this.capture = new LiveCapture({ device: opts.device, filter: opts.filter, bufferSize: opts.bufferSize, snaplen: opts.snaplen });
    this.now = opts.now ?? (() => performance.now());
    this.decoder = new FrameDecoder(() => `capture on ${opts.device}`, opts.warn);
  }

  get stats(): CaptureStats {
    return this.decoder.stats;
  }

  start(handler: CapturedPacketHandler): void {
    const flushSoon = burstFlusher(handler, this.now);
    const decoder = this.decoder;
    const now = this.now;
    this.capture.start((frame, length, linkType) => {
      const pkt = decoder.decode(linkType, frame, length);
      if (pkt) handler.handleCaptured(pkt, now());
      flushSoon();
    });
    for (const w of this.capture.warnings) this.opts.warn?.(w);
  }

  describe(): string {
    const links = [...this.capture.linkTypes].map(([dev, lt]) => `${dev} (${LinkType[lt]})`).join(', ');
    return `libpcap on ${links} with filter "${this.opts.filter}"`;
  }

  close(): void {
    this.capture?.close();
  }
}

export interface RawSocketLiveSourceOptions {
  /** -B: the socket's receive buffer, bytes. */
  receiveBuffer?: number;
  /** -x: with them, a kernel filter (BPF) passes only their client packets; without, every inbound TCP segment comes up. */
  transfers?: readonly BpfTransfer[];
  /** After a read, how long the socket is left to fill before the next one (RawCaptureOptions.holdMs). */
  holdMs?: number;
  now?: () => number;
  warn?: (message: string) => void;
}

/**
 * Live capture through an IP-layer raw socket: inbound TCP on every device, no libpcap needed. The
 * kernel's BPF filter built from -x keeps the rest of the host's traffic out of user space; the
 * transfers are still picked in the engine (the filter is a first cut, not the rule).
 */
export class RawSocketLiveSource implements LiveSource {
  private capture: RawCapture | null = null;
  private readonly decoder: FrameDecoder;
  private readonly now: () => number;
  private filterLength = 0;

  constructor(private readonly opts: RawSocketLiveSourceOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
    this.decoder = new FrameDecoder(() => 'raw socket capture', opts.warn);
  }

  get stats(): CaptureStats {
    if (this.capture) this.decoder.stats.kernelDrops = this.capture.kernelDrops();
    return this.decoder.stats;
  }

  start(handler: CapturedPacketHandler): void {
    const transfers = this.opts.transfers ?? [];
    let filter: Buffer | undefined;
    if (transfers.length) {
      let program;
      try {
        program = transferBpfProgram(transfers);
      } catch (err) {
        throw new LiveCaptureError('BAD_OPTION', (err as Error).message);
      }
      this.filterLength = program.length;
      filter = encodeBpfProgram(program);
    }
    const capture = (this.capture = new RawCapture({ filter, receiveBuffer: this.opts.receiveBuffer, holdMs: this.opts.holdMs, onError: this.opts.warn }));
    const decoder = this.decoder;
    capture.start((slots, lengths, count) => {
      // One clock reading per batch: its packets were all queued by the time recvmmsg ran.
      const now = this.now();
      for (let i = 0; i < count; i++) {
        const pkt = decoder.decode(LinkType.RAW, slots[i], lengths[i]);
        if (pkt) handler.handleCaptured(pkt, now);
      }
      handler.flush?.(this.now());
    });
  }

  describe(): string {
    // The hold delays the replay by up to that long: an operator should see it in the start line.
    const hold = this.opts.holdMs ?? DEFAULT_CAPTURE_HOLD_MS;
    const held = hold > 0 ? `; left to fill ${hold} ms after a read that empties it, --capture-hold` : '';
    return this.filterLength
      ? `an IP raw socket (inbound TCP on every device; a kernel filter of ${this.filterLength} BPF instructions passes the -x ports${held})`
      : `an IP raw socket (all inbound TCP, picked by -x${held})`;
  }

  close(): void {
    this.capture?.close();
  }
}
