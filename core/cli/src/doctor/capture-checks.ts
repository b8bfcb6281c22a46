// Capture checks, with the very capture the command opens: intercept's packet sockets (filter compiled for
// packets that start at the IP header), tcpcopy's IP raw socket (the default) or libpcap (--capture pcap,
// -F, -S). Does it open (devices, filter), and, for tcpcopy, does the online port see packets in a short window.
import * as fs from 'node:fs';
import {
  LiveCapture,
  LiveCaptureError,
  PacketSocketCapture,
  RawSocketLiveSource,
  type Transfer,
} from '@tcpcopy/core';
import { fail, ok, warn, type Finding } from './findings';

/** How the command captures. */
export type CaptureMethod =
  /** intercept: AF_PACKET sockets; `ether`/`vlan` terms do not compile there. bufferSize is intercept's -B. */
  | { kind: 'packet-socket'; devices: string; filter: string; filterOrigin: string; bufferSize: number }
  /** tcpcopy --capture pcap (implied by -F or -S): libpcap, the filter compiled for each device's link type. */
  | { kind: 'pcap'; devices: string; filter: string; filterOrigin: string }
  /** tcpcopy's default: one IP raw socket (inbound TCP on every device), a kernel filter built from -x. */
  | { kind: 'raw-socket'; devices: string; transfers: readonly Transfer[] };

export interface CaptureCheck {
  method: CaptureMethod;
  /** Watch this long for matching packets; 0 only opens and closes the capture. */
  windowMs: number;
  /** What the packets are, for the messages: "packets for port 80". */
  what: string;
}

/** A small buffer where the size is the doctor's to choose: it only counts packets. */
const DOCTOR_BUFFER = 1024 * 1024;
/** Headers are all the doctor needs of a packet. */
const DOCTOR_SNAPLEN = 256;

interface OpenCapture {
  /** The ok line: what opened, with what. */
  opened: string;
  /** Where packets are looked for, for the traffic line: "on eth0". */
  where: string;
  warnings: readonly string[];
  close(): void;
}

export async function checkCapture(c: CaptureCheck): Promise<Finding[]> {
  let capture: OpenCapture;
  let packets = 0;
  try {
    capture = openCapture(c.method, () => {
      packets++;
    });
  } catch (err) {
    return [captureFailure(err, c.method)];
  }
  const findings: Finding[] = [ok('capture', capture.opened), ...capture.warnings.map((w) => warn('capture', w))];
  if (c.windowMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, c.windowMs));
    const seconds = (c.windowMs / 1000).toFixed(c.windowMs % 1000 ? 1 : 0);
    findings.push(packets > 0
      ? ok('traffic', `${packets} ${c.what} seen ${capture.where} in ${seconds} s`)
      : warn('traffic', `no ${c.what} seen ${capture.where} in ${seconds} s (normal if the service is idle)`,
        'check -x names the port the service listens on and -i the device its clients come in on (see `ss -ltn`, `ip addr`)'));
  }
  capture.close();
  return findings;
}

/** Opens the capture as the command would; throws a LiveCaptureError (or the source's Error) when it cannot. */
function openCapture(m: CaptureMethod, onPacket: () => void): OpenCapture {
  switch (m.kind) {
    case 'packet-socket': {
      const capture = new PacketSocketCapture({ device: m.devices, filter: m.filter, bufferSize: m.bufferSize, snaplen: DOCTOR_SNAPLEN });
      capture.start(onPacket);
      return {
        opened: `packet sockets open ${m.devices} with the filter "${m.filter}" (${m.filterOrigin}), as intercept opens them`,
        where: `on ${m.devices}`,
        warnings: capture.warnings,
        close: () => capture.close(),
      };
    }
    case 'pcap': {
      const capture = new LiveCapture({ device: m.devices, filter: m.filter, bufferSize: DOCTOR_BUFFER, snaplen: DOCTOR_SNAPLEN });
      capture.start(onPacket);
      return {
        opened: `libpcap opens ${m.devices} with the filter "${m.filter}" (${m.filterOrigin})`,
        where: `on ${m.devices}`,
        warnings: capture.warnings,
        close: () => capture.close(),
      };
    }
    case 'raw-socket': {
      checkDevicesExist(m.devices);
      const warnings: string[] = [];
      const source = new RawSocketLiveSource({ receiveBuffer: DOCTOR_BUFFER, transfers: m.transfers, warn: (w) => warnings.push(w) });
      source.start({ handleCaptured: onPacket });
      return {
        opened: `tcpcopy's capture opens: ${source.describe()}`,
        where: 'on any device',
        warnings,
        close: () => source.close(),
      };
    }
  }
}

/** The raw socket takes every device's packets, but tcpcopy refuses -i names that are no device. */
function checkDevicesExist(list: string): void {
  for (const dev of list.split(',').map((d) => d.trim())) {
    if (dev !== 'any' && !fs.existsSync(`/sys/class/net/${dev}`)) {
      const names = fs.readdirSync('/sys/class/net').sort().join(', ');
      throw new LiveCaptureError('NO_DEVICE', `no network device "${dev}" (pick one of ${names}; see \`ip link\`)`, dev);
    }
  }
}

function captureFailure(err: unknown, m: CaptureMethod): Finding {
  if (!(err instanceof LiveCaptureError)) return fail('capture', `cannot capture on ${m.devices}: ${(err as Error)?.message ?? err}`);
  switch (err.code) {
    case 'NO_DEVICE':
      return fail('device', err.message, 'give -i a device from `ip link`, or any');
    case 'BAD_FILTER':
      return fail('filter', `${err.message} [${m.kind === 'raw-socket' ? 'built from -x' : m.filterOrigin}]`,
        m.kind === 'packet-socket' ? 'leave link-layer terms (ether, vlan) out of -F: intercept filters from the IP header on' : 'fix -F (see `man pcap-filter`)');
    default:
      return fail('capture', err.message);
  }
}
