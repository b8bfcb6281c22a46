// Capture checks: do the devices exist and does the filter compile (libpcap opens them), and, for
// tcpcopy, does the online port see any packets within a short window.
import { LiveCapture, LiveCaptureError } from '@tcpcopy/core';
import { fail, ok, warn, type Finding } from './findings';

export interface CaptureCheck {
  /** -i: device(s), comma-separated, or any. */
  devices: string;
  filter: string;
  /** Where the filter comes from, for the messages: "-F" or "built from -x". */
  filterOrigin: string;
  /** Watch this long for matching packets; 0 only opens and closes the capture. */
  windowMs: number;
  /** What the packets are, for the messages: "packets for port 80". */
  what: string;
}

/** A small kernel ring: the doctor only counts packets. */
const DOCTOR_BUFFER = 1024 * 1024;

export async function checkCapture(c: CaptureCheck): Promise<Finding[]> {
  let capture: LiveCapture;
  let packets = 0;
  try {
    capture = new LiveCapture({ device: c.devices, filter: c.filter, bufferSize: DOCTOR_BUFFER, snaplen: 256 });
    capture.start(() => {
      packets++;
    });
  } catch (err) {
    return [captureFailure(err, c)];
  }
  const findings: Finding[] = [
    ok('capture', `libpcap opens ${c.devices} with the filter "${c.filter}" (${c.filterOrigin})`),
    ...capture.warnings.map((w) => warn('capture', w)),
  ];
  if (c.windowMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, c.windowMs));
    const seconds = (c.windowMs / 1000).toFixed(c.windowMs % 1000 ? 1 : 0);
    findings.push(packets > 0
      ? ok('traffic', `${packets} ${c.what} seen on ${c.devices} in ${seconds} s`)
      : warn('traffic', `no ${c.what} seen on ${c.devices} in ${seconds} s (normal if the service is idle)`,
        'check -x names the port the service listens on and -i the device its clients come in on (see `ss -ltn`, `ip addr`)'));
  }
  capture.close();
  return findings;
}

function captureFailure(err: unknown, c: CaptureCheck): Finding {
  if (!(err instanceof LiveCaptureError)) return fail('capture', `cannot capture on ${c.devices}: ${(err as Error)?.message ?? err}`);
  switch (err.code) {
    case 'NO_DEVICE':
      return fail('device', err.message, 'give -i a device from `ip link`, or any');
    case 'BAD_FILTER':
      return fail('filter', `${err.message} [${c.filterOrigin}]`, 'fix -F (see `man pcap-filter`)');
    default:
      return fail('capture', err.message);
  }
}
