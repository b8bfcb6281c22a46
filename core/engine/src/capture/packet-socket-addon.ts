// The pktcap addon (core/engine/native/packet-capture.c, built by node-gyp with the package): intercept's
// capture through AF_PACKET sockets, with filters compiled by libpcap.
import { loadNativeAddon } from './native-addon';

/** An open capture socket of the addon; only the addon's functions can use it. */
export type PktcapHandle = { readonly __pktcap: unique symbol };

/** Bits of open()'s flags. */
export const PKTCAP_PROMISC = 1;
export const PKTCAP_IGNORE_OUTGOING = 2;

/** Indices into the Float64Array stats() fills. */
export const PktcapStat = {
  /** Packets the kernel handed to the socket or dropped for want of room, since open. */
  KERNEL_PACKETS: 0,
  /** Packets the kernel dropped because the receive buffer was full, since open. */
  KERNEL_DROPS: 1,
  /** The receive buffer the kernel granted (it accounts twice what was asked); -1 once closed. */
  RECEIVE_BUFFER: 2,
  COUNT: 3,
} as const;

export interface PktcapAddon {
  /** A pcap filter as classic BPF for packets that start at the IP header; throws (code BAD_FILTER) with libpcap's reason. */
  compileFilter(filter: string, snaplen: number): Buffer;
  /** Device names of this network namespace. */
  interfaces(): string[];
  /**
   * Opens and starts a capture socket on `device` ('' for every device). Batch packet i is at
   * arena[i * slotSize], lengths[i] its real length (more than slotSize: cut short); a negative
   * count is -errno. Throws an Error whose code is the errno name.
   */
  open(
    device: string,
    filter: Buffer,
    arena: Buffer,
    slotSize: number,
    lengths: Int32Array,
    receiveBuffer: number,
    flags: number,
    maxRounds: number,
    onBatch: (count: number) => void,
  ): PktcapHandle;
  /** Fills `out` (PktcapStat indices); readable after close too. */
  stats(handle: PktcapHandle, out: Float64Array): void;
  close(handle: PktcapHandle): void;
}

/** The addon, or an Error saying how to build it. */
export function loadPktcap(): PktcapAddon {
  return loadNativeAddon<PktcapAddon>('pktcap', 'a C compiler, make and libpcap-dev');
}
