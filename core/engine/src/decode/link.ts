// Link layer: find the IPv4 header in a captured frame, and build Ethernet headers for output.
// Everything works in place on the caller's buffer and allocates nothing (per-packet hot path).
import { LinkType } from './link-type';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_VLAN = 0x8100; // 802.1Q
export const ETHERTYPE_QINQ = 0x88a8; // 802.1ad
const ETHERTYPE_QINQ_OLD = 0x9100; // pre-standard QinQ, still seen on some switches
/** More stacked tags than this is not a real frame; stop rather than walk garbage. */
const MAX_VLAN_TAGS = 4;
const IPV4_MIN_HEADER = 20;

/** Bytes of link-layer header before the network layer, not counting VLAN tags. */
export function linkHeaderLength(linkType: LinkType): number {
  switch (linkType) {
    case LinkType.ETHERNET: return 14;
    case LinkType.LINUX_SLL: return 16;
    case LinkType.LINUX_SLL2: return 20;
    case LinkType.RAW:
    case LinkType.IPV4: return 0;
    default: return -1;
  }
}

/**
 * Follow an ethertype at `typeAt` whose payload starts at `payloadAt`, through up to
 * MAX_VLAN_TAGS VLAN tags (each: 2 bytes TCI, 2 bytes inner ethertype), to an IPv4 header
 * that must end before `end`. Positions are absolute in `frame`.
 */
function throughVlans(frame: Buffer, end: number, typeAt: number, payloadAt: number): number {
  let type = (frame[typeAt] << 8) | frame[typeAt + 1];
  let off = payloadAt;
  for (let tags = 0; type !== ETHERTYPE_IPV4; tags++) {
    if ((type !== ETHERTYPE_VLAN && type !== ETHERTYPE_QINQ && type !== ETHERTYPE_QINQ_OLD) ||
        tags === MAX_VLAN_TAGS || off + 4 > end) {
      return -1;
    }
    type = (frame[off + 2] << 8) | frame[off + 3];
    off += 4;
  }
  return off + IPV4_MIN_HEADER <= end ? off : -1;
}

/**
 * Byte offset in `frame` of the IPv4 header of the frame held at frame[start, start + length), or -1
 * when the frame does not carry IPv4 (ARP, IPv6, …) or is too short to hold the link header plus
 * 20 bytes of IP. `start` lets a caller read a frame in place inside a larger buffer (a pcap
 * file's chunk) without making a view of it.
 *
 *   ETHERNET   dst(6) src(6) type(2), type 0x0800, after any 802.1Q/802.1ad tags
 *   LINUX_SLL  pkttype(2) hatype(2) halen(2) addr(8) protocol(2)           → 16
 *   LINUX_SLL2 protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8) → 20
 *   RAW, IPV4  the frame is the IP packet (RAW may also be IPv6: check the version nibble)
 */
export function ipv4Offset(linkType: LinkType, frame: Buffer, length: number, start = 0): number {
  const end = start + length < frame.length ? start + length : frame.length;
  const len = end - start;
  switch (linkType) {
    case LinkType.ETHERNET:
      return len >= 14 ? throughVlans(frame, end, start + 12, start + 14) : -1;
    case LinkType.LINUX_SLL:
      // libpcap re-inserts a stripped VLAN tag here, so tags can appear in cooked captures too.
      return len >= 16 ? throughVlans(frame, end, start + 14, start + 16) : -1;
    case LinkType.LINUX_SLL2:
      return len >= 20 ? throughVlans(frame, end, start, start + 20) : -1;
    case LinkType.RAW:
    case LinkType.IPV4:
      return len >= IPV4_MIN_HEADER && (frame[start] >> 4) === 4 ? start : -1;
    default:
      return -1;
  }
}

/**
 * Write a 14-byte Ethernet header (dst MAC, src MAC, ethertype) at buf[offset].
 * Returns the number of bytes written (14).
 */
export function writeEthernetHeader(buf: Buffer, offset: number, dstMac: Buffer, srcMac: Buffer, etherType: number): number {
  if (dstMac.length < 6 || srcMac.length < 6) throw new RangeError('a MAC address is 6 bytes');
  if (offset < 0 || offset + 14 > buf.length) throw new RangeError(`no room for an Ethernet header at offset ${offset}`);
  dstMac.copy(buf, offset, 0, 6);
  srcMac.copy(buf, offset + 6, 0, 6);
  buf[offset + 12] = (etherType >> 8) & 0xff;
  buf[offset + 13] = etherType & 0xff;
  return 14;
}
