// Valid inputs for the packet decoders' fuzz properties: TCP option lists, IPv4/TCP packets (IP and
// TCP options, payload, fragments, segmentation-offload total length 0) and link-layer frames
// around them. The mutations of @tcpcopy/core/fuzz start from these.
import fc from 'fast-check';
import { LinkType } from '../../src/decode/link-type';

// ---- TCP options -------------------------------------------------------------------------

/** One TCP option, as a test knows it. */
export type TcpOption =
  | { kind: 'nop' }
  | { kind: 'mss'; mss: number }
  | { kind: 'wscale'; shift: number }
  | { kind: 'sackPermitted' }
  | { kind: 'sack'; blocks: Array<[number, number]> }
  | { kind: 'timestamp'; val: number; ecr: number }
  | { kind: 'other'; type: number; data: Uint8Array };

const u32 = fc.nat({ max: 0xffffffff });

export const tcpOption: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.record({ kind: fc.constant('nop' as const) }),
  fc.record({ kind: fc.constant('mss' as const), mss: fc.nat({ max: 0xffff }) }),
  fc.record({ kind: fc.constant('wscale' as const), shift: fc.nat({ max: 255 }) }),
  fc.record({ kind: fc.constant('sackPermitted' as const) }),
  fc.record({ kind: fc.constant('sack' as const), blocks: fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('timestamp' as const), val: u32, ecr: u32 }),
  // Unknown kinds are skipped by their length (EOL 0 and NOP 1 have none; 2-5 and 8 are known).
  fc.record({ kind: fc.constant('other' as const), type: fc.constantFrom(6, 7, 9, 19, 28, 29, 30, 34, 253, 254), data: fc.uint8Array({ maxLength: 10 }) }),
);

export function encodeOption(o: TcpOption): Buffer {
  switch (o.kind) {
    case 'nop': return Buffer.of(1);
    case 'mss': return Buffer.of(2, 4, o.mss >> 8, o.mss & 0xff);
    case 'wscale': return Buffer.of(3, 3, o.shift);
    case 'sackPermitted': return Buffer.of(4, 2);
    case 'sack': {
      const b = Buffer.alloc(2 + 8 * o.blocks.length);
      b[0] = 5;
      b[1] = b.length;
      o.blocks.forEach(([l, r], i) => {
        b.writeUInt32BE(l, 2 + 8 * i);
        b.writeUInt32BE(r, 6 + 8 * i);
      });
      return b;
    }
    case 'timestamp': {
      const b = Buffer.alloc(10);
      b[0] = 8;
      b[1] = 10;
      b.writeUInt32BE(o.val, 2);
      b.writeUInt32BE(o.ecr, 6);
      return b;
    }
    case 'other': return Buffer.concat([Buffer.of(o.type, 2 + o.data.length), o.data]);
  }
}

/** A list of options whose encoding fits the 40 bytes of a TCP header, and its bytes padded with EOL to a multiple of 4. */
export const tcpOptionList: fc.Arbitrary<{ options: TcpOption[]; bytes: Buffer }> = fc
  .array(tcpOption, { maxLength: 8 })
  .map((all) => {
    const options: TcpOption[] = [];
    let length = 0;
    for (const o of all) {
      const n = encodeOption(o).length;
      if (length + n > 40) continue;
      options.push(o);
      length += n;
    }
    const raw = Buffer.concat(options.map(encodeOption));
    return { options, bytes: Buffer.concat([raw, Buffer.alloc((4 - (raw.length % 4)) % 4)]) };
  });

// ---- IPv4 / TCP packets ------------------------------------------------------------------

export interface PacketSpec {
  srcIp: number;
  dstIp: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  ipId: number;
  ttl: number;
  /** The flags/fragment-offset word: DF (0x4000) or 0 for a whole packet. */
  fragment: number;
  protocol: number;
  ipOptions: Buffer;
  tcpOptions: Buffer;
  payload: Buffer;
  /** Write 0 in the total length, as segmentation offload leaves it. */
  zeroTotal: boolean;
}

export const packetSpec: fc.Arbitrary<PacketSpec> = fc.record({
  srcIp: u32,
  dstIp: u32,
  srcPort: fc.nat({ max: 0xffff }),
  dstPort: fc.nat({ max: 0xffff }),
  seq: u32,
  ack: u32,
  flags: fc.nat({ max: 0xff }),
  window: fc.nat({ max: 0xffff }),
  ipId: fc.nat({ max: 0xffff }),
  ttl: fc.nat({ max: 255 }),
  fragment: fc.constantFrom(0, 0x4000),
  protocol: fc.constant(6),
  // IP options: 0 to 40 bytes in words (their content does not matter to the decoder).
  ipOptions: fc.nat({ max: 10 }).chain((words) => fc.uint8Array({ minLength: 4 * words, maxLength: 4 * words })).map((a) => Buffer.from(a)),
  tcpOptions: tcpOptionList.map((l) => l.bytes),
  payload: fc.oneof(
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 1600 }) },
  ).map((a) => Buffer.from(a)),
  zeroTotal: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

/** The packet's bytes: IPv4 header (with its options), TCP header (with its options), payload. No checksums. */
export function packetBytes(p: PacketSpec): Buffer {
  const ihl = 20 + p.ipOptions.length;
  const doff = 20 + p.tcpOptions.length;
  const b = Buffer.alloc(ihl + doff + p.payload.length);
  b[0] = 0x40 | (ihl >> 2);
  b.writeUInt16BE(p.zeroTotal ? 0 : b.length, 2);
  b.writeUInt16BE(p.ipId, 4);
  b.writeUInt16BE(p.fragment, 6);
  b[8] = p.ttl;
  b[9] = p.protocol;
  b.writeUInt32BE(p.srcIp, 12);
  b.writeUInt32BE(p.dstIp, 16);
  p.ipOptions.copy(b, 20);
  const t = ihl;
  b.writeUInt16BE(p.srcPort, t);
  b.writeUInt16BE(p.dstPort, t + 2);
  b.writeUInt32BE(p.seq, t + 4);
  b.writeUInt32BE(p.ack, t + 8);
  b[t + 12] = (doff >> 2) << 4;
  b[t + 13] = p.flags;
  b.writeUInt16BE(p.window, t + 14);
  p.tcpOptions.copy(b, t + 20);
  p.payload.copy(b, ihl + doff);
  return b;
}

/** Valid IPv4/TCP packets. */
export const validPacket: fc.Arbitrary<Buffer> = packetSpec.map(packetBytes);

// ---- link-layer frames -------------------------------------------------------------------

export const LINK_TYPES: readonly LinkType[] = [LinkType.ETHERNET, LinkType.RAW, LinkType.LINUX_SLL, LinkType.IPV4, LinkType.LINUX_SLL2];
/** 802.1Q, 802.1ad and the pre-standard QinQ tag. */
export const VLAN_TPIDS: readonly number[] = [0x8100, 0x88a8, 0x9100];

export interface FrameSpec {
  linkType: LinkType;
  /** TPIDs of the VLAN tags before the IPv4 ethertype (not for RAW/IPV4). */
  tags: number[];
  /** Bytes of the link header that the decoder does not look at (MACs, SLL fields). */
  filler: Uint8Array;
}

export const frameSpec: fc.Arbitrary<FrameSpec> = fc.record({
  linkType: fc.constantFrom(...LINK_TYPES),
  tags: fc.array(fc.constantFrom(...VLAN_TPIDS), { maxLength: 5 }),
  filler: fc.uint8Array({ minLength: 18, maxLength: 18 }),
});

/** Bytes before the network layer for that link type (tags not counted). */
export function linkHeaderBytes(linkType: LinkType): number {
  switch (linkType) {
    case LinkType.ETHERNET: return 14;
    case LinkType.LINUX_SLL: return 16;
    case LinkType.LINUX_SLL2: return 20;
    default: return 0;
  }
}

/** Offset of the ethertype field in the link header (-1: no link header). */
function typeOffset(linkType: LinkType): number {
  switch (linkType) {
    case LinkType.ETHERNET: return 12;
    case LinkType.LINUX_SLL: return 14;
    case LinkType.LINUX_SLL2: return 0;
    default: return -1;
  }
}

/** The frame around `packet`, and where the decoder must find the IPv4 header (-1 past 4 VLAN tags). */
export function frameAround(spec: FrameSpec, packet: Buffer): { frame: Buffer; ipOffset: number } {
  const hdr = linkHeaderBytes(spec.linkType);
  if (hdr === 0) return { frame: packet, ipOffset: 0 };
  const types = [...spec.tags, 0x0800];
  const head = Buffer.alloc(hdr + 4 * spec.tags.length);
  Buffer.from(spec.filler).copy(head, 0, 0, hdr);
  const at = typeOffset(spec.linkType);
  head.writeUInt16BE(types[0], at);
  for (let i = 0; i < spec.tags.length; i++) {
    const tag = hdr + 4 * i;
    head.writeUInt16BE(spec.filler[i] * 16 + i, tag); // TCI: any value
    head.writeUInt16BE(types[i + 1], tag + 2);
  }
  const ipOffset = spec.tags.length <= 4 ? head.length : -1;
  return { frame: Buffer.concat([head, packet]), ipOffset };
}

/** Valid frames of every link type we read, with their IPv4 offset. */
export const validFrame: fc.Arbitrary<{ linkType: LinkType; frame: Buffer; ipOffset: number }> = fc
  .tuple(frameSpec, validPacket)
  .map(([spec, packet]) => ({ linkType: spec.linkType, ...frameAround(spec, packet) }));
