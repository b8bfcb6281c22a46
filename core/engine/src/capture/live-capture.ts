// Live capture through the `cap` addon (libpcap), for intercept.
//
// What cap 0.2.1 does, read from its binding.cc, and what it means here:
// * open(device, filter, bufSize, buffer) creates, configures and activates a pcap handle
//   (snaplen fixed at 65535, promiscuous mode always on, immediate mode when it can find it),
//   compiles the filter, and starts polling the handle's fd on the main loop. When the fd is
//   readable it calls pcap_dispatch repeatedly and, for EACH packet, memcpy()s it into the ONE
//   Buffer given to open() (cut to the buffer's size) and emits 'packet'(nbytes, truncated)
//   synchronously. So a packet is only valid during the 'packet' call, and a whole burst is
//   emitted in one go before the loop moves on (intercept batches its writes per burst).
// * The Buffer's size is the only "snaplen" we control: it bounds what is copied to JS, not
//   what the kernel stores in the ring (see DEFAULT_BUFFER).
// * It returns the link type as a string: 'ETHERNET', 'LINKTYPE_LINUX_SLL' (not 'LINUX_SLL'),
//   'RAW', 'NULL', 'IEEE802_11_RADIO', or 'Unknown linktype N' for everything else (LINUX_SLL2
//   is 276, IPV4 228).
// * It has no pcap_stats binding: kernel drop counts are NOT available. We count packets and
//   copies cut short by the buffer, nothing more.
// * When open() throws, the half-made native handle is left behind in a state where its
//   close() — and its destructor, which the GC runs — trips an assertion in libuv
//   (uv_poll_stop on a poll handle that was never initialised) and aborts the process. So a
//   failed handle must never be closed nor collected: we keep it referenced for the life of the
//   process (FAILED_HANDLES). It holds its pcap handle (and, after a filter error, its ring
//   buffer) until exit; errors at start-up are fatal for intercept anyway.
// * A Cap object cannot be opened again after close() (its `closing` flag stays set and the
//   next poll callback closes the new handle): use a new object per open.
// * Immediate mode is looked up with dlopen("libpcap.so"), the unversioned name that only
//   the libpcap development package installs. Without it, TPACKET_V3 hands packets over only
//   when a ring block fills or after the 1 s read timeout: replies would arrive late.
// * open() calls pcap_lookupnet first and, when the device has no IPv4 address, prints
//   "Warning: ... - This may not actually work" straight to the process's stderr from C.
//   Harmless ('any' is exempt), but it cannot be silenced from here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LinkType } from './pcap-file';

/** The part of cap's API we use (it ships no typings). */
interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  send(buffer: Buffer, nbytes?: number): void;
  close(): boolean;
  on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): void;
  removeAllListeners(event?: string): void;
}
interface CapDevice {
  name: string;
  description?: string;
  addresses: Array<{ addr?: string }>;
  flags?: string;
}
interface CapModule {
  Cap: { new (): CapHandle; deviceList(): CapDevice[] };
}

export type PacketHandler = (frame: Buffer, length: number, linkType: LinkType) => void;

export interface LiveCaptureOptions {
  /** Device name, several separated by commas, or 'any' (libpcap's all-devices pseudo-device). */
  device: string;
  /** BPF filter (pcap-filter syntax); '' captures everything. */
  filter?: string;
  /** Kernel ring buffer per device, bytes. Default 64 MiB (see DEFAULT_BUFFER). */
  bufferSize?: number;
  /** Bytes of each packet copied to JS (link header included). Default 65535 (everything). */
  snaplen?: number;
}

export type LiveCaptureErrorCode = 'NO_CAP' | 'NO_DEVICE' | 'BAD_FILTER' | 'PERMISSION' | 'LINKTYPE' | 'BAD_OPTION' | 'OPEN';

/** A capture problem as one line: what is wrong and how to fix it. */
export class LiveCaptureError extends Error {
  override name = 'LiveCaptureError';
  constructor(readonly code: LiveCaptureErrorCode, message: string, readonly device?: string) {
    super(message);
  }
}

export interface DeviceCaptureStats {
  device: string;
  linkType: string;
  packets: number;
  /** Packets longer than the snaplen buffer: only its first bytes reached us. */
  truncated: number;
}

export interface LiveCaptureStats {
  packets: number;
  truncated: number;
  /** Always null: cap exposes no pcap_stats, so kernel/interface drops cannot be read. */
  drops: null;
  devices: DeviceCaptureStats[];
}

/**
 * cap fixes libpcap's snaplen at 65535, and in immediate mode libpcap may size every ring slot
 * for that much. The ring then holds far fewer packets than its byte size suggests. Measured
 * on a veth, 2 vCPUs, 300 000 52-byte replies at about 150 000/s: a 16 MiB ring lost 3 % of
 * them, 64 MiB 0.5 %, 256 MiB 0.2 %. The C intercept, with a 134-byte snaplen, got by with 16 MiB.
 */
const DEFAULT_BUFFER = 64 * 1024 * 1024;
const DEFAULT_SNAPLEN = 65535;
/** Link header (≤ 20 + VLAN tags) + IPv4 header (≤ 60) + TCP header (≤ 60). */
const MIN_SNAPLEN = 160;
const PROBE_BUFFER = 256 * 1024;

/** Failed cap handles, kept alive so that the GC never runs their (crashing) destructor. */
const FAILED_HANDLES: CapHandle[] = [];

let capModule: CapModule | null = null;

function loadCap(): CapModule {
  if (capModule) return capModule;
  try {
    capModule = require('cap') as CapModule;
  } catch (err) {
    throw new LiveCaptureError('NO_CAP', `cannot load the cap addon (${(err as Error).message.split('\n')[0]}); ` +
      'install libpcap-dev and run `npm rebuild cap`');
  }
  return capModule;
}

/** LinkType for cap's link type string, or null when we cannot decode that link layer. */
export function capLinkType(name: string): LinkType | null {
  switch (name) {
    case 'ETHERNET': return LinkType.ETHERNET;
    case 'LINKTYPE_LINUX_SLL':
    case 'LINUX_SLL': return LinkType.LINUX_SLL;
    case 'RAW': return LinkType.RAW;
    default: break;
  }
  const m = /^Unknown linktype (\d+)$/.exec(name);
  if (!m) return null;
  switch (Number(m[1])) {
    case 1: return LinkType.ETHERNET;
    case 12: case 14: case 101: return LinkType.RAW; // DLT_RAW differs between systems
    case 113: return LinkType.LINUX_SLL;
    case 228: return LinkType.IPV4;
    case 276: return LinkType.LINUX_SLL2;
    default: return null;
  }
}

/**
 * True when the unversioned libpcap.so that cap dlopen()s for immediate mode is present in a
 * usual library directory (a heuristic: we cannot ask the addon whether it found it).
 */
export function immediateModeAvailable(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    `/usr/lib/${process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch}-linux-gnu`,
    `/lib/${process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch}-linux-gnu`,
    '/usr/lib64', '/lib64', '/usr/lib', '/lib', '/usr/local/lib',
  ];
  return dirs.some((d) => fs.existsSync(path.join(d, 'libpcap.so')));
}

/** Names of the devices libpcap sees (in this network namespace), or null if it cannot list them. */
export function listCaptureDevices(): string[] | null {
  try {
    return loadCap().Cap.deviceList().map((d) => d.name);
  } catch {
    return null;
  }
}

function classify(device: string, message: string): LiveCaptureError | null {
  if (/permission|not permitted|EPERM|EACCES/i.test(message)) {
    return new LiveCaptureError('PERMISSION', `no permission to capture on ${device}: ${message} (run as root, ` +
      'or give node CAP_NET_RAW and CAP_NET_ADMIN: setcap cap_net_raw,cap_net_admin+eip "$(readlink -f "$(which node)")")', device);
  }
  if (/no such device|doesn't exist|does not exist/i.test(message)) {
    return new LiveCaptureError('NO_DEVICE', `no network device "${device}": ${message} (see \`ip link\` for the names)`, device);
  }
  if (/not up|is down/i.test(message)) {
    return new LiveCaptureError('OPEN', `device ${device} is down: ${message} (bring it up: \`ip link set ${device} up\`)`, device);
  }
  return null;
}

/**
 * Live capture on one or more devices through cap. Each packet is handed to the callback in
 * cap's reusable buffer: process it in place and do not keep it.
 */
export class LiveCapture {
  readonly devices: readonly string[];
  readonly filter: string;
  readonly bufferSize: number;
  readonly snaplen: number;
  /** Things worth telling the user that do not stop the capture. */
  readonly warnings: string[] = [];
  private readonly handles: Array<{ cap: CapHandle; stats: DeviceCaptureStats; linkType: LinkType; open: boolean }> = [];
  private buffer: Buffer | null = null;
  private started = false;

  constructor(opts: LiveCaptureOptions) {
    const devices = opts.device.split(',').map((d) => d.trim()).filter(Boolean);
    if (devices.length === 0) throw new LiveCaptureError('BAD_OPTION', 'no capture device given (use a name from `ip link`, or any)');
    if (new Set(devices).size !== devices.length) {
      throw new LiveCaptureError('BAD_OPTION', `device list "${opts.device}" names a device twice (list each device once)`);
    }
    if (devices.length > 1 && devices.includes('any')) {
      throw new LiveCaptureError('BAD_OPTION', `device list "${opts.device}" has "any" and others (give either any, which captures on every device, or a list of devices)`);
    }
    this.devices = devices;
    this.filter = opts.filter ?? '';
    this.bufferSize = opts.bufferSize ?? DEFAULT_BUFFER;
    this.snaplen = opts.snaplen ?? DEFAULT_SNAPLEN;
    if (!Number.isInteger(this.bufferSize) || this.bufferSize < 65536 || this.bufferSize > 0x7fffffff) {
      throw new LiveCaptureError('BAD_OPTION', `capture buffer of ${this.bufferSize} bytes is out of range (use 64 KiB to 2 GiB)`);
    }
    if (!Number.isInteger(this.snaplen) || this.snaplen < MIN_SNAPLEN || this.snaplen > 262144) {
      throw new LiveCaptureError('BAD_OPTION', `snaplen ${this.snaplen} is out of range (use ${MIN_SNAPLEN} to 262144 bytes)`);
    }
  }

  /** Link type of each device (known after start()). */
  get linkTypes(): ReadonlyMap<string, LinkType> {
    return new Map(this.handles.map((h) => [h.stats.device, h.linkType]));
  }

  /**
   * Opens every device and starts delivering packets to `onPacket` (from the event loop, one
   * burst at a time). Throws a LiveCaptureError, with nothing left open, when a device cannot
   * be captured on.
   */
  start(onPacket: PacketHandler): void {
    if (this.started) throw new LiveCaptureError('BAD_OPTION', 'start() was already called (use a new LiveCapture to capture again)');
    const cap = loadCap();
    const known = listCaptureDevices();
    if (known) {
      for (const d of this.devices) {
        if (d !== 'any' && !known.includes(d)) {
          const names = known.filter((n) => !/^(dbus|bluetooth|nf(log|queue)|usbmon)/.test(n)).join(', ');
          throw new LiveCaptureError('NO_DEVICE', `no network device "${d}" (pick one of ${names}; see \`ip link\`)`, d);
        }
      }
    }
    if (!immediateModeAvailable()) {
      this.warnings.push('libpcap.so not found (install libpcap-dev): cap cannot switch libpcap to immediate mode, ' +
        'so captured packets may reach us up to 1 s late');
    }
    // One copy buffer for all devices: cap fills it and emits synchronously, one packet at a
    // time on the one JS thread, so the handles can never overwrite each other's packet.
    const buffer = (this.buffer = Buffer.alloc(this.snaplen));
    this.started = true;
    try {
      for (const device of this.devices) this.openDevice(cap, device, buffer, onPacket);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private openDevice(cap: CapModule, device: string, buffer: Buffer, onPacket: PacketHandler): void {
    const handle = new cap.Cap();
    let name: string;
    try {
      name = handle.open(device, this.filter, this.bufferSize, buffer);
    } catch (err) {
      FAILED_HANDLES.push(handle);
      throw this.openError(cap, device, (err as Error).message);
    }
    const linkType = capLinkType(name);
    if (linkType === null) {
      handle.close();
      throw new LiveCaptureError('LINKTYPE', `device ${device} has link type ${name.replace(/^Unknown linktype /, '')}, ` +
        'which intercept cannot decode (capture on an Ethernet device, or on any)', device);
    }
    const stats: DeviceCaptureStats = { device, linkType: LinkType[linkType], packets: 0, truncated: 0 };
    handle.on('packet', (nbytes, truncated) => {
      stats.packets++;
      if (truncated) stats.truncated++;
      onPacket(buffer, nbytes, linkType);
    });
    this.handles.push({ cap: handle, stats, linkType, open: true });
  }

  /**
   * Says why open() failed. libpcap's messages do not say which step failed, so when the
   * message is not clearly about the device or permissions and there is a filter, open the
   * device again without one: if that works, the filter was the problem.
   */
  private openError(cap: CapModule, device: string, message: string): LiveCaptureError {
    const known = classify(device, message);
    if (known) return known;
    if (this.filter !== '') {
      const probe = new cap.Cap();
      try {
        probe.open(device, '', PROBE_BUFFER, Buffer.alloc(MIN_SNAPLEN));
        probe.close();
        return new LiveCaptureError('BAD_FILTER', `filter "${this.filter}" does not compile: ${message} ` +
          '(see `man pcap-filter`; quote the whole filter as one argument)', device);
      } catch (err) {
        FAILED_HANDLES.push(probe);
        const again = classify(device, (err as Error).message);
        if (again) return again;
      }
    }
    return new LiveCaptureError('OPEN', `cannot capture on ${device}: ${message} (check the device with \`ip link show ${device}\`)`, device);
  }

  stats(): LiveCaptureStats {
    let packets = 0;
    let truncated = 0;
    for (const h of this.handles) {
      packets += h.stats.packets;
      truncated += h.stats.truncated;
    }
    return { packets, truncated, drops: null, devices: this.handles.map((h) => ({ ...h.stats })) };
  }

  /** Stops capturing on every device (stats() stays readable). Idempotent. */
  close(): void {
    for (const h of this.handles) {
      if (!h.open) continue;
      h.open = false;
      h.cap.removeAllListeners('packet');
      h.cap.close();
    }
  }
}

/**
 * A libpcap handle opened only to send frames (data-link output). Its filter
 * matches nothing, so it never delivers packets to us.
 */
export class PcapSender {
  private readonly handle: CapHandle;
  readonly linkType: LinkType | null;

  constructor(readonly device: string) {
    const cap = loadCap();
    const known = listCaptureDevices();
    if (known && !known.includes(device)) {
      throw new LiveCaptureError('NO_DEVICE', `no network device "${device}" to send on (see \`ip link\`)`, device);
    }
    const handle = new cap.Cap();
    try {
      this.linkType = capLinkType(handle.open(device, 'less 1', PROBE_BUFFER, Buffer.alloc(MIN_SNAPLEN)));
    } catch (err) {
      FAILED_HANDLES.push(handle);
      const known = classify(device, (err as Error).message);
      if (known?.code === 'PERMISSION') {
        throw new LiveCaptureError('PERMISSION', known.message.replace('to capture on', 'to send on'), device);
      }
      throw known ?? new LiveCaptureError('OPEN', `cannot send on ${device}: ${(err as Error).message}`, device);
    }
    if (this.linkType !== LinkType.ETHERNET) {
      handle.close();
      throw new LiveCaptureError('LINKTYPE', `device ${device} is not Ethernet: data-link output needs an Ethernet device`, device);
    }
    this.handle = handle;
  }

  /** pcap_sendpacket: synchronous; throws on failure. */
  send(frame: Buffer, length: number): void {
    this.handle.send(frame, length);
  }

  close(): void {
    this.handle.close();
  }
}
