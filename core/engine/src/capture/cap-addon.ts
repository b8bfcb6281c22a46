// The cap addon (libpcap) as tcpcopy uses it: LiveCapture captures with it, PcapSender sends with it.
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
//   what the kernel stores in the ring (see DEFAULT_BUFFER in live-capture.ts).
// * It returns the link type as a string: 'ETHERNET', 'LINKTYPE_LINUX_SLL' (not 'LINUX_SLL'),
//   'RAW', 'NULL', 'IEEE802_11_RADIO', or 'Unknown linktype N' for everything else (LINUX_SLL2
//   is 276, IPV4 228).
// * It has no pcap_stats binding: kernel drop counts are NOT available. We count packets and
//   copies cut short by the buffer, nothing more.
// * When open() throws, the half-made native handle is left behind in a state where its
//   close() — and its destructor, which the GC runs — trips an assertion in libuv
//   (uv_poll_stop on a poll handle that was never initialised) and aborts the process. So a
//   failed handle must never be closed. It holds its pcap handle (and, after a filter error, its
//   ring buffer) until exit; errors at start-up are fatal for the replay anyway.
// * close() stops the handle's uv_poll but never uv_close()s it, so it stays in libuv's list of
//   the loop's handles; once the GC deletes the object the poll lives in, the next handle opened
//   or closed next to it in that list (a timer, a socket) writes into freed memory. `tcpcopy
//   doctor` ended by SIGSEGV twice in CI while connecting its channels after closing its libpcap
//   capture. So no Cap object is ever collected: every one made is kept referenced for the life
//   of the process (KEPT_HANDLES; a few per run, each small once closed).
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
import { LinkType } from '../decode/link-type';

/** The part of cap's API we use (it ships no typings). */
export interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  send(buffer: Buffer, nbytes?: number): void;
  close(): boolean;
  on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): void;
  removeAllListeners(event?: string): void;
}
export interface CapDevice {
  name: string;
  description?: string;
  addresses: Array<{ addr?: string }>;
  flags?: string;
}
export interface CapModule {
  Cap: { new (): CapHandle; deviceList(): CapDevice[] };
}

export type LiveCaptureErrorCode = 'NO_CAP' | 'NO_DEVICE' | 'BAD_FILTER' | 'PERMISSION' | 'LINKTYPE' | 'BAD_OPTION' | 'OPEN';

/** A libpcap problem (capturing or sending) as one line: what is wrong and how to fix it. */
export class LiveCaptureError extends Error {
  override name = 'LiveCaptureError';
  constructor(readonly code: LiveCaptureErrorCode, message: string, readonly device?: string) {
    super(message);
  }
}

/** Smallest copy buffer: link header (≤ 20 + VLAN tags) + IPv4 header (≤ 60) + TCP header (≤ 60). */
export const MIN_SNAPLEN = 160;
/** Ring buffer of a handle opened only to probe a device or to send. */
export const PROBE_BUFFER = 256 * 1024;

/** Every cap handle made: kept alive so that the GC never deletes one (see above). */
const KEPT_HANDLES: CapHandle[] = [];

/** A new cap handle, referenced for the life of the process (see above): use it for one open(). */
export function newCapHandle(cap: CapModule): CapHandle {
  const handle = new cap.Cap();
  KEPT_HANDLES.push(handle);
  return handle;
}

let capModule: CapModule | null = null;

export function loadCap(): CapModule {
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

/** A LiveCaptureError for the open() failures we recognise, else null. */
export function classifyOpenError(device: string, message: string): LiveCaptureError | null {
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
