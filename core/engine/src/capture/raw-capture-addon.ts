// The project's own addon (core/engine/native/netio.c, built by node-gyp when the package is
// installed): the raw-socket capture (BPF, recvmmsg) and the raw send socket (sendmmsg).
import { loadNativeAddon } from './native-addon';

/** An open socket of the addon; only the addon's functions can use it. */
export type NetioHandle = { readonly __netio: unique symbol };

export interface NetioAddon {
  /** Opens and starts the capture socket: batch `count` packets are at arena[i * slotSize], lengths[i] bytes; a negative count is -errno. */
  captureOpen(
    arena: Buffer,
    slotSize: number,
    lengths: Int32Array,
    filter: Buffer | null,
    receiveBuffer: number,
    maxRounds: number,
    onBatch: (count: number) => void,
    /** After a wake-up that read packets, read again only this many ms later (0: at every readiness). */
    holdMs: number,
  ): NetioHandle;
  captureFd(handle: NetioHandle): number;
  captureClose(handle: NetioHandle): void;
  /** Opens the send socket; counters: sent, failed, queued (had to wait for the kernel), sendmmsg calls. */
  senderOpen(counters: Float64Array, maxPackets: number, maxBytes: number, sendBuffer: number): NetioHandle;
  /** Copies one packet into the send queue; false (counted as failed) when the queue is full. */
  senderQueue(handle: NetioHandle, buf: Buffer, offset: number, length: number, dstIp: number): boolean;
  /** Sends what is queued as far as the kernel takes it; returns the packets still waiting. */
  senderFlush(handle: NetioHandle): number;
  /** Why the last failed packet failed, '' when none has. */
  senderLastError(handle: NetioHandle): string;
  senderClose(handle: NetioHandle): void;
}

/** The addon, or an Error saying how to build it. */
export function loadNetio(): NetioAddon {
  return loadNativeAddon<NetioAddon>('netio', 'a C compiler and make');
}
