// Live capture through an IP raw socket (AF_INET, SOCK_RAW, IPPROTO_TCP) of the netio addon: every
// inbound TCP segment of the host, on every device, minus what the kernel's BPF filter rejects;
// read in batches (recvmmsg) into one preallocated buffer.
import * as fs from 'node:fs';
import { LiveCaptureError } from './cap-addon';
import { checkCaptureBuffer } from './capture-options';
import { errnoText } from './native-addon';
import { loadNetio, type NetioAddon, type NetioHandle } from './raw-capture-addon';

export interface RawCaptureOptions {
  /** A classic BPF program (encodeBpfProgram); without one every inbound TCP segment is read. */
  filter?: Buffer;
  /** Socket receive buffer, bytes (root may go past net.core.rmem_max). Default 64 MiB. */
  receiveBuffer?: number;
  /**
   * After a wake-up that read packets and emptied the socket, it is read again only this many ms later, so that
   * the packets in between are read in one batch (0: every packet as it comes). Default {@link DEFAULT_CAPTURE_HOLD_MS}.
   */
  holdMs?: number;
  onError?: (message: string) => void;
}

/** Packet i of a batch is slots[i] (lengths[i] bytes), for i < count; valid until the handler returns. */
export type RawBatchHandler = (slots: readonly Buffer[], lengths: Int32Array, count: number) => void;

/** Packets per recvmmsg. */
const SLOTS = 64;
/** recvmmsg calls per wake-up at most (SLOTS × this packets) before other events get their turn. */
const MAX_ROUNDS = 8;
/** An IPv4 packet is at most 65535 bytes (GRO merges up to that). */
const SLOT_SIZE = 65536;
const DEFAULT_RECEIVE_BUFFER = 64 * 1024 * 1024;
/**
 * At a few thousand packets a second most packets would wake the event loop alone, and in node a wake-up
 * costs tens of microseconds of CPU whatever it brings. Holding the socket for 5 ms after a read that
 * emptied it batches them: a packet is replayed up to 5 ms later (nothing waits on it online), and against
 * 1 ms tcpcopy used 18-30 % less CPU per request at 500-2,000 connections/s and 4,000 keep-alive requests/s,
 * intercept 14-24 % less (it gets the sends in bursts too; docs/benchmarks.md, "The capture hold"). The
 * buffer holds far more than 5 ms of any load, and a read that finds more than a wake-up takes is not held.
 */
export const DEFAULT_CAPTURE_HOLD_MS = 5;

export class RawCapture {
  /** recvmmsg calls that returned packets, and the packets. */
  readonly counters = { batches: 0, packets: 0 };
  private handle: NetioHandle | null = null;
  private addon: NetioAddon | null = null;
  private inode = '';
  private lastDrops = -1;
  private lastError = 0;

  constructor(private readonly opts: RawCaptureOptions = {}) {
    checkCaptureBuffer(opts.receiveBuffer ?? DEFAULT_RECEIVE_BUFFER);
  }

  /** Opens the socket and starts reading; throws a LiveCaptureError when it cannot. */
  start(onBatch: RawBatchHandler): void {
    if (this.addon) throw new LiveCaptureError('BAD_OPTION', 'start() was already called (use a new RawCapture to capture again)');
    let addon: NetioAddon;
    try {
      addon = loadNetio();
    } catch (err) {
      throw new LiveCaptureError('OPEN', (err as Error).message);
    }
    this.addon = addon;
    // Not zeroed: the kernel writes each slot before we read it, and untouched pages cost no memory.
    const arena = Buffer.allocUnsafeSlow(SLOTS * SLOT_SIZE);
    const slots = Array.from({ length: SLOTS }, (_, i) => arena.subarray(i * SLOT_SIZE, (i + 1) * SLOT_SIZE));
    const lengths = new Int32Array(SLOTS);
    const counters = this.counters;
    const onRead = (count: number): void => {
      if (count < 0) {
        this.readFailed(count);
        return;
      }
      counters.batches++;
      counters.packets += count;
      onBatch(slots, lengths, count);
    };
    try {
      this.handle = addon.captureOpen(arena, SLOT_SIZE, lengths, this.opts.filter ?? null,
        this.opts.receiveBuffer ?? DEFAULT_RECEIVE_BUFFER, MAX_ROUNDS, onRead, this.opts.holdMs ?? DEFAULT_CAPTURE_HOLD_MS);
    } catch (err) {
      const e = err as Error & { code?: string };
      throw new LiveCaptureError(
        e.code === 'EPERM' || e.code === 'EACCES' ? 'PERMISSION' : 'OPEN',
        `cannot open a raw socket to capture: ${e.message} (run as root or grant CAP_NET_RAW)`,
      );
    }
    this.inode = socketInode(addon.captureFd(this.handle));
  }

  /** Packets the kernel dropped because the socket's buffer was full (-1: unknown). */
  kernelDrops(): number {
    if (this.handle && this.inode) this.lastDrops = readRawSocketDrops(this.inode);
    return this.lastDrops;
  }

  close(): void {
    if (!this.handle || !this.addon) return;
    this.kernelDrops();
    this.addon.captureClose(this.handle);
    this.handle = null;
  }

  private readFailed(count: number): void {
    if (count === this.lastError) return;
    this.lastError = count;
    this.opts.onError?.(`raw socket capture: read failed: ${errnoText(count)}`);
  }
}

/** The inode of socket descriptor `fd` ('' when /proc cannot say). */
function socketInode(fd: number): string {
  try {
    return /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))?.[1] ?? '';
  } catch {
    return '';
  }
}

/** The kernel's drop counter of one raw socket (the last column of /proc/net/raw), or -1. */
function readRawSocketDrops(inode: string): number {
  try {
    for (const line of fs.readFileSync('/proc/net/raw', 'utf8').split('\n')) {
      const cols = line.trim().split(/\s+/);
      if (cols[9] === inode) return Number(cols[cols.length - 1]);
    }
  } catch {
    // no /proc
  }
  return -1;
}
