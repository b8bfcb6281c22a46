// Link-layer header types (LINKTYPE_* numbers, as pcap files and libpcap give them).

/** Link-layer header types that tcpcopy decodes (see link.ts). */
export enum LinkType {
  ETHERNET = 1,
  RAW = 101,
  LINUX_SLL = 113,
  IPV4 = 228,
  /** What `tcpdump -i any` writes on current Linux (libpcap >= 1.10). */
  LINUX_SLL2 = 276,
}

/** Every LinkType, in LINKTYPE order. */
export const SUPPORTED_LINK_TYPES: readonly number[] = [
  LinkType.ETHERNET, LinkType.RAW, LinkType.LINUX_SLL, LinkType.IPV4, LinkType.LINUX_SLL2,
];

// Names of the link types one is likely to meet, so that error messages can say what a file is.
const LINKTYPE_NAMES: { [n: number]: string } = {
  0: 'NULL (BSD loopback)', 1: 'ETHERNET', 6: 'IEEE802_5', 8: 'SLIP', 9: 'PPP', 10: 'FDDI',
  12: 'RAW (BSD DLT value)', 14: 'RAW (BSD DLT value)',
  50: 'PPP_HDLC', 51: 'PPP_ETHER', 101: 'RAW', 104: 'C_HDLC', 105: 'IEEE802_11',
  108: 'LOOP (OpenBSD loopback)', 113: 'LINUX_SLL', 119: 'IEEE802_11_PRISM',
  127: 'IEEE802_11_RADIOTAP', 147: 'USER0', 192: 'PPI', 195: 'IEEE802_15_4',
  220: 'USB_LINUX_MMAPPED', 228: 'IPV4', 229: 'IPV6', 239: 'NFLOG', 249: 'NETLINK',
  252: 'WIRESHARK_UPPER_PDU', 276: 'LINUX_SLL2',
};

/** Human name of a LINKTYPE_* number, e.g. 276 → "LINUX_SLL2", 999 → "unknown". */
export function linkTypeName(n: number): string {
  return LINKTYPE_NAMES[n] ?? 'unknown';
}
