// Checks of the options every live capture takes (devices, buffer, snaplen), with the same messages whichever
// capture (libpcap through cap, AF_PACKET, raw socket) is asked.
import { LiveCaptureError } from './cap-addon';

/** The devices of a comma-separated list: names, each once, or 'any' alone. Throws a LiveCaptureError otherwise. */
export function parseDeviceList(list: string): string[] {
  const devices = list.split(',').map((d) => d.trim()).filter(Boolean);
  if (devices.length === 0) throw new LiveCaptureError('BAD_OPTION', 'no capture device given (use a name from `ip link`, or any)');
  if (new Set(devices).size !== devices.length) {
    throw new LiveCaptureError('BAD_OPTION', `device list "${list}" names a device twice (list each device once)`);
  }
  if (devices.length > 1 && devices.includes('any')) {
    throw new LiveCaptureError('BAD_OPTION', `device list "${list}" has "any" and others (give either any, which captures on every device, or a list of devices)`);
  }
  return devices;
}

/** Throws unless `bytes` is a receive buffer the kernel can be asked for (64 KiB to 2 GiB). */
export function checkCaptureBuffer(bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 65536 || bytes > 0x7fffffff) {
    throw new LiveCaptureError('BAD_OPTION', `capture buffer of ${bytes} bytes is out of range (use 64 KiB to 2 GiB)`);
  }
}

/** Throws unless `snaplen` is a whole number of bytes from `min` to `max`. */
export function checkSnaplen(snaplen: number, min: number, max: number): void {
  if (!Number.isInteger(snaplen) || snaplen < min || snaplen > max) {
    throw new LiveCaptureError('BAD_OPTION', `snaplen ${snaplen} is out of range (use ${min} to ${max} bytes)`);
  }
}

/**
 * Throws NO_DEVICE for the first of `devices` (other than any) that is not in `known`; the message offers
 * `offered`, the names worth suggesting.
 */
export function checkDevicesKnown(devices: readonly string[], known: readonly string[], offered: readonly string[] = known): void {
  for (const d of devices) {
    if (d !== 'any' && !known.includes(d)) {
      throw new LiveCaptureError('NO_DEVICE', `no network device "${d}" (pick one of ${offered.join(', ')}; see \`ip link\`)`, d);
    }
  }
}
