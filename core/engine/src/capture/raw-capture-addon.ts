// The project's own addon (core/engine/native/netio.c, built by node-gyp when the package is
// installed): the raw-socket capture (BPF, recvmmsg) and the raw send socket (sendmmsg).
import * as os from 'node:os';
import * as path from 'node:path';

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

/** Where node-gyp puts the addon: core/engine/build/Release (this file runs from core/engine/dist/src/capture). */
const ADDON_FILE = path.join(__dirname, '..', '..', '..', 'build', 'Release', 'netio.node');

let addon: NetioAddon | null = null;

/** The addon, or an Error saying how to build it. */
export function loadNetio(): NetioAddon {
  if (addon) return addon;
  try {
    addon = require(ADDON_FILE) as NetioAddon;
  } catch (err) {
    const why = (err as Error).message.split('\n')[0];
    throw new Error(`cannot load the netio addon (${why}); build it with \`npm rebuild @tcpcopy/core\` ` +
      '(or ./scripts/setup.sh; it needs a C compiler and make)');
  }
  return addon;
}

/** The errno name or text of a negative count from the addon, for a message. */
export function errnoText(negativeErrno: number): string {
  const code = -negativeErrno;
  const name = Object.entries(os.constants.errno).find(([, n]) => n === code)?.[0];
  return name ? `${name} (errno ${code})` : `errno ${code}`;
}
