// intercept's live capture: one AF_PACKET socket per device (or one for all) of the pktcap addon.
// Replies wait in the socket's receive buffer (kernel memory, -B) and are read in batches into one
// small preallocated buffer; every packet starts at its IP header (LinkType.RAW) on any device.
// Same shape as LiveCapture (libpcap through cap), which tcpcopy's --capture pcap keeps using.
import * as os from 'node:os';
import { LinkType } from '../decode/link-type';
import { classifyOpenError, LiveCaptureError } from './cap-addon';
import { checkCaptureBuffer, checkDevicesKnown, checkSnaplen, parseDeviceList } from './capture-options';
import type { PacketHandler } from './live-capture';
import { errnoText } from './native-addon';
import {
  loadPktcap,
  PKTCAP_IGNORE_OUTGOING,
  PKTCAP_PROMISC,
  PktcapStat,
  type PktcapAddon,
  type PktcapHandle,
} from './packet-socket-addon';

export interface PacketSocketCaptureOptions {
  /** Device name, several separated by commas, or 'any' (every device). */
  device: string;
  /** pcap-filter syntax, applied to the packet from its IP header on; '' captures everything. */
  filter?: string;
  /** Socket receive buffer per device, bytes (kernel memory; root may go past net.core.rmem_max). Default 16 MiB. */
  bufferSize?: number;
  /** Bytes of each packet read (a slot of the batch buffer). Default 65536: a whole IPv4 packet. */
  snaplen?: number;
  /**
   * 'both' (default) also captures what this host sends, as libpcap does (intercept on the target
   * host sees the replies leave); 'in' asks the kernel to skip outgoing packets (Linux ≥ 4.20).
   */
  direction?: 'both' | 'in';
  /** Put named devices in promiscuous mode while capturing, as libpcap does. Default true. */
  promiscuous?: boolean;
  /** A read failed (e.g. the device went down); said once per distinct error. */
  onError?: (message: string) => void;
}

export interface PacketSocketDeviceStats {
  device: string;
  linkType: string;
  packets: number;
  /** Packets longer than a slot: only their first `snaplen` bytes reached us. */
  truncated: number;
  /** Packets the kernel dropped because the receive buffer was full. */
  drops: number;
}

export interface PacketSocketCaptureStats {
  packets: number;
  truncated: number;
  /** Lost by capture: dropped by the kernel, receive buffer full (summed over devices). */
  drops: number;
  devices: PacketSocketDeviceStats[];
}

/** Packets per recvmmsg: the batch buffer is SLOTS × snaplen bytes, the only packet memory we hold. */
const SLOTS = 32;
/** recvmmsg calls per wake-up at most (SLOTS × this packets) before other events get their turn. */
const MAX_ROUNDS = 8;
const DEFAULT_BUFFER = 16 * 1024 * 1024;
const DEFAULT_SNAPLEN = 65536;
/** IPv4 (≤ 60) + TCP (≤ 60) headers. */
const MIN_SNAPLEN = 120;
/** What the compiled filter lets through per packet: more than any slot, so the kernel never cuts and MSG_TRUNC tells the real length. */
const FILTER_SNAPLEN = 262144;

interface DeviceSocket {
  handle: PktcapHandle;
  stats: PacketSocketDeviceStats;
  open: boolean;
}

export class PacketSocketCapture {
  readonly devices: readonly string[];
  readonly filter: string;
  readonly bufferSize: number;
  readonly snaplen: number;
  /** Things worth telling the user that do not stop the capture. */
  readonly warnings: string[] = [];
  private readonly sockets: DeviceSocket[] = [];
  private readonly statsOut = new Float64Array(PktcapStat.COUNT);
  private addon: PktcapAddon | null = null;
  private lastError = 0;

  constructor(private readonly opts: PacketSocketCaptureOptions) {
    this.devices = parseDeviceList(opts.device);
    this.filter = opts.filter ?? '';
    this.bufferSize = opts.bufferSize ?? DEFAULT_BUFFER;
    this.snaplen = opts.snaplen ?? DEFAULT_SNAPLEN;
    checkCaptureBuffer(this.bufferSize);
    checkSnaplen(this.snaplen, MIN_SNAPLEN, FILTER_SNAPLEN);
  }

  /** Link type of each device: always RAW (packets start at the IP header). */
  get linkTypes(): ReadonlyMap<string, LinkType> {
    return new Map(this.sockets.map((s) => [s.stats.device, LinkType.RAW]));
  }

  /**
   * Opens every device and starts delivering packets to `onPacket` (from the event loop, one
   * batch at a time; the frame is a reused slot: process it in place, do not keep it). Throws a
   * LiveCaptureError, with nothing left open, when the filter or a device cannot be used.
   */
  start(onPacket: PacketHandler): void {
    if (this.addon) throw new LiveCaptureError('BAD_OPTION', 'start() was already called (use a new PacketSocketCapture to capture again)');
    let addon: PktcapAddon;
    try {
      addon = loadPktcap();
    } catch (err) {
      throw new LiveCaptureError('NO_CAP', (err as Error).message);
    }
    this.addon = addon;
    const program = this.compile(addon);
    checkDevicesKnown(this.devices, addon.interfaces());
    // One batch buffer for all devices: each socket's batch is handed over synchronously on the one
    // JS thread, so they never overwrite each other. Not zeroed: the kernel writes a slot before we
    // read it, and untouched pages cost no memory.
    const arena = Buffer.allocUnsafeSlow(SLOTS * this.snaplen);
    const slots = Array.from({ length: SLOTS }, (_, i) => arena.subarray(i * this.snaplen, (i + 1) * this.snaplen));
    const lengths = new Int32Array(SLOTS);
    try {
      for (const device of this.devices) this.openDevice(addon, device, program, arena, slots, lengths, onPacket);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private compile(addon: PktcapAddon): Buffer {
    try {
      return addon.compileFilter(this.filter, FILTER_SNAPLEN);
    } catch (err) {
      throw new LiveCaptureError('BAD_FILTER', `filter "${this.filter}" does not compile: ${(err as Error).message} ` +
        '(see `man pcap-filter`; packets are filtered from their IP header on, so link-layer terms such as ether ' +
        'or vlan do not apply; quote the whole filter as one argument)');
    }
  }

  private openDevice(addon: PktcapAddon, device: string, program: Buffer, arena: Buffer, slots: Buffer[],
    lengths: Int32Array, onPacket: PacketHandler): void {
    const stats: PacketSocketDeviceStats = { device, linkType: LinkType[LinkType.RAW], packets: 0, truncated: 0, drops: 0 };
    const snaplen = this.snaplen;
    const onBatch = (count: number): void => {
      if (count < 0) {
        this.readFailed(device, count);
        return;
      }
      stats.packets += count;
      for (let i = 0; i < count; i++) {
        let length = lengths[i];
        if (length > snaplen) {
          stats.truncated++;
          length = snaplen;
        }
        onPacket(slots[i], length, LinkType.RAW);
      }
    };
    const flags = (this.opts.promiscuous === false ? 0 : PKTCAP_PROMISC) | (this.opts.direction === 'in' ? PKTCAP_IGNORE_OUTGOING : 0);
    let handle: PktcapHandle;
    try {
      handle = addon.open(device === 'any' ? '' : device, program, arena, snaplen, lengths, this.bufferSize, flags, MAX_ROUNDS, onBatch);
    } catch (err) {
      throw openError(device, err as Error & { code?: string });
    }
    this.sockets.push({ handle, stats, open: true });
    addon.stats(handle, this.statsOut);
    const granted = this.statsOut[PktcapStat.RECEIVE_BUFFER] / 2;
    if (granted >= 0 && granted < this.bufferSize) {
      this.warnings.push(`the kernel gave the capture on ${device} a receive buffer of ${mib(granted)} MiB, not the ${mib(this.bufferSize)} ` +
        'MiB asked: replies may be lost under load (run as root, which may go past net.core.rmem_max, or raise it: ' +
        `sysctl -w net.core.rmem_max=${this.bufferSize})`);
    }
  }

  stats(): PacketSocketCaptureStats {
    let packets = 0;
    let truncated = 0;
    let drops = 0;
    for (const s of this.sockets) {
      if (this.addon) {
        this.addon.stats(s.handle, this.statsOut);
        s.stats.drops = this.statsOut[PktcapStat.KERNEL_DROPS];
      }
      packets += s.stats.packets;
      truncated += s.stats.truncated;
      drops += s.stats.drops;
    }
    return { packets, truncated, drops, devices: this.sockets.map((s) => ({ ...s.stats })) };
  }

  /** Stops capturing on every device (stats() stays readable). Idempotent. */
  close(): void {
    for (const s of this.sockets) {
      if (!s.open || !this.addon) continue;
      s.open = false;
      this.addon.close(s.handle);
    }
  }

  private readFailed(device: string, count: number): void {
    if (count === this.lastError) return;
    this.lastError = count;
    this.opts.onError?.(`capture on ${device}: read failed: ${errnoText(count)}` +
      (-count === os.constants.errno.ENETDOWN ? ' (a device went down; capture resumes when it is up again)' : '') +
      (-count === os.constants.errno.EIO ? ' (capture on this device has stopped: restart intercept)' : ''));
  }
}

/** A LiveCaptureError for a socket that would not open. */
function openError(device: string, err: Error & { code?: string }): LiveCaptureError {
  const known = classifyOpenError(device, err.message);
  if (known) return known;
  return new LiveCaptureError('OPEN', `cannot capture on ${device}: ${err.message} (check the device with \`ip link show ${device}\`)`, device);
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(bytes < 1024 * 1024 ? 2 : 0);
}
