import { ipv4Offset } from '../decode/link';
import { DECODE_STATUS_TEXT, DecodeStatus, TcpPacket } from '../decode/tcp-packet';
import type { LinkType } from '../decode/link-type';

/** Why captured frames were not replayed: every skip is counted. */
export class CaptureStats {
  records = 0;
  tcpPackets = 0;
  notIpv4 = 0;
  notTcp = 0;
  fragments = 0;
  malformed = 0;
  truncatedBySnaplen = 0;
  truncatedFileTail = false;
  /** Packets the kernel dropped before we read them (raw socket capture); -1 when it cannot be known (libpcap through cap). */
  kernelDrops = -1;
}

/**
 * Turns captured frames into TcpPacket views (one reusable view), counting
 * every frame it cannot use. Shared by the file and the live sources.
 */
export class FrameDecoder {
  readonly stats = new CaptureStats();
  private readonly view = new TcpPacket();
  private warnedMalformed = 0;
  private warnedSnaplen = false;

  constructor(
    private readonly where: () => string,
    private readonly warn: (message: string) => void = () => undefined,
  ) {}

  /**
   * The TCP packet of the frame at frame[start, start + length), or null (counted) when it is not one we
   * can replay. Valid until the next call.
   */
  decode(linkType: LinkType, frame: Buffer, length: number, start = 0): TcpPacket | null {
    const st = this.stats;
    st.records++;
    const off = ipv4Offset(linkType, frame, length, start);
    if (off < 0) {
      st.notIpv4++;
      return null;
    }
    const status = this.view.decode(frame, off, start + length - off);
    switch (status) {
      case DecodeStatus.OK:
        st.tcpPackets++;
        return this.view;
      case DecodeStatus.NOT_TCP:
        st.notTcp++;
        return null;
      case DecodeStatus.FRAGMENT:
        st.fragments++;
        return null;
      case DecodeStatus.TRUNCATED:
        st.truncatedBySnaplen++;
        if (!this.warnedSnaplen) {
          this.warnedSnaplen = true;
          this.warn(`${this.where()}: packets were cut by the capture's snaplen; their data cannot be replayed (capture whole packets: tcpdump -s 0, or a larger -S)`);
        }
        return null;
      default:
        st.malformed++;
        if (this.warnedMalformed++ < 5) this.warn(`${this.where()}: skipping packet ${st.records}: ${DECODE_STATUS_TEXT[status]}`);
        return null;
    }
  }
}
