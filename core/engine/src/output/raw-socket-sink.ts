import { loadNetio, type NetioAddon, type NetioHandle } from '../capture/raw-capture-addon';
import type { PacketSink } from './packet-sink';
import { flushAtEndOfTurn } from '../event-loop/end-of-turn';

const NO_OP = (): void => undefined;
/** Bound on packets waiting for the kernel (queued this turn, or refused with EAGAIN/ENOBUFS). */
const MAX_QUEUED = 65536;
/** Bound on their bytes: reserved, but only touched as far as a backlog reaches. */
const MAX_QUEUED_BYTES = 32 * 1024 * 1024;
/** The socket's send buffer: one turn's burst fits without EAGAIN. */
const SEND_BUFFER = 4 * 1024 * 1024;

export interface RawSocketSinkOptions {
  /** Packets the queue holds at most (default 65536); beyond, packets are dropped and counted as failed. */
  maxQueued?: number;
  /** The socket's send buffer, bytes (default 4 MiB; the kernel's minimum applies). */
  sendBuffer?: number;
}

/**
 * Sends hand-built IPv4 packets through a raw socket with IP_HDRINCL (the forged source address
 * goes out unchanged). send() copies the packet into the netio addon's queue, so the caller's
 * buffer is free at once; the queue goes out with sendmmsg at the end of the event-loop turn,
 * one syscall per up to 1024 packets. When the kernel's buffer is full the rest waits for the
 * socket to be writable; packets the queue cannot hold, or the kernel refuses, are counted as failed.
 */
export class RawSocketSink implements PacketSink {
  private readonly addon: NetioAddon;
  private readonly handle: NetioHandle;
  /** sent, failed, queued (had to wait for the kernel), sendmmsg calls: written by the addon. */
  private readonly counters = new Float64Array(4);
  private flushQueued = false;
  private readonly flushNow: () => void;
  private reportedFailures = 0;
  private lastError = '';
  private closed = false;
  onFlushed: (() => void) | null = null;

  constructor(private readonly onError: (message: string) => void = NO_OP, opts: RawSocketSinkOptions = {}) {
    this.addon = loadNetio();
    try {
      this.handle = this.addon.senderOpen(this.counters, opts.maxQueued ?? MAX_QUEUED, MAX_QUEUED_BYTES, opts.sendBuffer ?? SEND_BUFFER);
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.code === 'EPERM' || e.code === 'EACCES') {
        throw new Error('cannot open a raw IP socket: operation not permitted; run as root or grant CAP_NET_RAW');
      }
      throw new Error(`cannot open a raw IP socket: ${e.message}`);
    }
    this.flushNow = () => {
      this.flushQueued = false;
      this.flush();
    };
  }

  get stats(): { sent: number; failed: number; queued: number } {
    const c = this.counters;
    return { sent: c[0], failed: c[1], queued: c[2] };
  }

  /** sendmmsg calls so far (each sends one or more packets). */
  get sendCalls(): number {
    return this.counters[3];
  }

  send(buf: Buffer, offset: number, length: number, dstIp: number): void {
    if (this.closed) {
      this.counters[1]++;
      return;
    }
    this.addon.senderQueue(this.handle, buf, offset, length, dstIp);
    if (!this.flushQueued) {
      this.flushQueued = true;
      flushAtEndOfTurn(this.flushNow, false);
    }
  }

  /** Sends what is queued now (the sink does it by itself at the end of each event-loop turn). */
  flush(): void {
    if (this.closed) return;
    this.addon.senderFlush(this.handle);
    if (this.counters[1] !== this.reportedFailures) this.reportFailures();
    this.onFlushed?.();
  }

  close(): void {
    if (this.closed) return;
    this.addon.senderClose(this.handle);
    this.closed = true;
  }

  /** Reports why packets failed, once per distinct reason. */
  private reportFailures(): void {
    this.reportedFailures = this.counters[1];
    const text = this.addon.senderLastError(this.handle);
    if (text && text !== this.lastError) {
      this.lastError = text;
      this.onError(`raw socket send failed: ${text}`);
    }
  }
}
