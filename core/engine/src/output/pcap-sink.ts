import { PcapSender } from '../capture/pcap-sender';
import { writeEthernetHeader, ETHERTYPE_IPV4 } from '../decode/link';
import { formatIpv4 } from '../decode/ip-address';
import type { Transfer } from '../rewrite/address-map';
import type { PacketSink } from './packet-sink';

/**
 * Data-link output (-o DEVICE): each IP packet goes out in an Ethernet frame
 * through libpcap, with the MAC addresses given in -x. For hosts whose
 * connection tracking or firewall would stop IP-layer raw packets.
 */
export class PcapSink implements PacketSink {
  readonly stats = { sent: 0, failed: 0, queued: 0 };
  private readonly sender: PcapSender;
  private readonly frame = Buffer.alloc(14 + 65535);
  private readonly macs = new Map<number, { src: Buffer; dst: Buffer }>();
  private lastError = '';

  constructor(device: string, transfers: readonly Transfer[], private readonly onError: (message: string) => void = () => undefined) {
    for (const t of transfers) {
      if (!t.srcMac || !t.dstMac) {
        throw new Error(`-o ${device} sends Ethernet frames: give both MACs in -x, as port@srcMAC-${formatIpv4(t.targetIp)}:${t.targetPort}@nextHopMAC`);
      }
      this.macs.set(t.targetIp, { src: t.srcMac, dst: t.dstMac });
    }
    this.sender = new PcapSender(device);
  }

  send(buf: Buffer, offset: number, length: number, dstIp: number): void {
    const mac = this.macs.get(dstIp);
    if (!mac) {
      this.stats.failed++;
      return;
    }
    writeEthernetHeader(this.frame, 0, mac.dst, mac.src, ETHERTYPE_IPV4);
    buf.copy(this.frame, 14, offset, offset + length);
    try {
      this.sender.send(this.frame, 14 + length);
      this.stats.sent++;
    } catch (err) {
      this.stats.failed++;
      const text = (err as Error).message;
      if (text !== this.lastError) {
        this.lastError = text;
        this.onError(`data-link send failed: ${text}`);
      }
    }
  }

  close(): void {
    this.sender.close();
  }
}
