// Data-link output through libpcap (the cap addon; see cap-addon.ts).
import { LinkType } from '../decode/link-type';
import {
  capLinkType,
  type CapHandle,
  classifyOpenError,
  newCapHandle,
  listCaptureDevices,
  LiveCaptureError,
  loadCap,
  MIN_SNAPLEN,
  PROBE_BUFFER,
} from './cap-addon';

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
    const handle = newCapHandle(cap);
    try {
      this.linkType = capLinkType(handle.open(device, 'less 1', PROBE_BUFFER, Buffer.alloc(MIN_SNAPLEN)));
    } catch (err) {
      const known = classifyOpenError(device, (err as Error).message);
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
