import { MAX_PACKET_PAYLOAD } from './constants';

/** Receives each physical packet of the followed stream, in order, once its last byte arrived. */
export interface ReplyListener {
  /**
   * `head` holds the first min(length, head limit) payload bytes, fewer when some of them fell into
   * unknown bytes (then `head.length` is short of that). It is a view of the fed data or a buffer
   * the reader reuses: valid only during this call, copy what must outlive it.
   * `continued` is true for a physical packet that continues the previous one (which was
   * 0xFFFFFF bytes long): together they form one logical packet.
   */
  packet(seq: number, length: number, head: Buffer, continued: boolean): void;
}

export const DEFAULT_HEAD_LIMIT = 64;

const HEADER_SIZE = 4;

/**
 * Follows a MySQL packet stream (the target's replies) when only part of each segment's payload
 * may be known, as when a capture was cut short: it needs every 4-byte packet header, and keeps
 * only the first bytes (the head) of each payload, never the whole stream.
 *
 * A header that falls into unknown bytes makes the position of every later packet unknowable:
 * the reader then sets {@link lost} and reports nothing more until {@link reset}.
 */
export class ReplyReader {
  /** True once the packet boundaries could not be followed any more. */
  lost = false;
  lostReason = '';

  private headLimit = DEFAULT_HEAD_LIMIT;
  private readonly header = Buffer.alloc(HEADER_SIZE);
  /** Header bytes gathered for the packet being read; 4 once inside its payload. */
  private headerHave = 0;
  private seq = 0;
  private length = 0;
  private remaining = 0;
  private continued = false;
  /** The previous packet was 0xFFFFFF long, so the next one continues it. */
  private nextContinues = false;
  /** Reused store for heads split across feeds (or cut by unknown bytes). */
  private headStore = Buffer.alloc(DEFAULT_HEAD_LIMIT);
  /** The head view, when the head lies wholly in one feed's known bytes. */
  private headView: Buffer | null = null;
  private headWant = 0;
  private headHave = 0;
  /** An unknown byte interrupted the head: later bytes of it are not collected. */
  private headCut = false;

  constructor(private readonly listener: ReplyListener) {}

  /** Payload bytes kept per packet from the next packet on (default 64). */
  get headBytes(): number {
    return this.headLimit;
  }

  /**
   * Deliver the following packets whole, up to `limit` payload bytes each (for a greeting, an auth
   * switch request or an RSA public key), until {@link wantHeads}. Applies from the next packet
   * whose header is not complete yet. At most 0xFFFFFF (one physical packet).
   */
  wantWhole(limit: number): void {
    this.headLimit = Math.max(0, Math.min(MAX_PACKET_PAYLOAD, Math.floor(limit) || 0));
  }

  /** Back to keeping only `limit` (default 64) payload bytes of each following packet. */
  wantHeads(limit = DEFAULT_HEAD_LIMIT): void {
    this.wantWhole(limit);
  }

  /** True between packets (no header or payload byte of a packet pending). */
  get atPacketBoundary(): boolean {
    return this.headerHave === 0;
  }

  /**
   * `length` bytes of the stream arrived, of which the first `data.length` are known (the rest
   * unknown: usually data.length === length).
   */
  feed(data: Buffer, length: number = data.length): void {
    if (this.lost) return;
    const total = Number.isFinite(length) && length > data.length ? Math.floor(length) : data.length;
    const known = data.length;
    let pos = 0;
    while (pos < total) {
      if (this.headerHave < HEADER_SIZE) {
        if (pos >= known) {
          this.lose(`packet header in ${total - pos} unknown bytes`);
          return;
        }
        this.header[this.headerHave++] = data[pos++];
        if (this.headerHave === HEADER_SIZE) {
          this.startPacket();
          if (this.remaining === 0) this.endPacket();
        }
        continue;
      }
      const take = Math.min(this.remaining, total - pos);
      if (this.headHave < this.headWant && !this.headCut) this.collectHead(data, pos, known, take);
      pos += take;
      this.remaining -= take;
      if (this.remaining === 0) this.endPacket();
    }
  }

  /** Forgets the stream position: the next byte fed starts a packet header. Keeps the head limit. */
  reset(): void {
    this.lost = false;
    this.lostReason = '';
    this.headerHave = 0;
    this.remaining = 0;
    this.nextContinues = false;
    this.clearHead();
  }

  private startPacket(): void {
    const h = this.header;
    this.length = h[0] | (h[1] << 8) | (h[2] << 16);
    this.seq = h[3];
    this.remaining = this.length;
    this.continued = this.nextContinues;
    this.nextContinues = this.length === MAX_PACKET_PAYLOAD;
    this.headWant = Math.min(this.length, this.headLimit);
    this.headHave = 0;
    this.headView = null;
    this.headCut = false;
    // A big wantWhole must not pin its store once the limit is back down.
    if (this.headStore.length > Math.max(this.headLimit, DEFAULT_HEAD_LIMIT)) this.headStore = Buffer.alloc(DEFAULT_HEAD_LIMIT);
  }

  /** Gathers head bytes among the next `take` payload bytes at `pos` (`known` bytes of `data` known). */
  private collectHead(data: Buffer, pos: number, known: number, take: number): void {
    const wanted = Math.min(this.headWant - this.headHave, take);
    const available = Math.max(0, Math.min(wanted, known - pos));
    if (this.headHave === 0 && available === this.headWant) {
      this.headView = data.subarray(pos, pos + available);
    } else if (available > 0) {
      // Grown only when a head must be copied; a head within one feed is a view.
      if (this.headStore.length < this.headWant) this.headStore = Buffer.alloc(Math.max(this.headWant, DEFAULT_HEAD_LIMIT));
      data.copy(this.headStore, this.headHave, pos, pos + available);
    }
    this.headHave += available;
    if (available < wanted) this.headCut = true;
  }

  private endPacket(): void {
    const head = this.headView ?? this.headStore.subarray(0, this.headHave);
    const { seq, length, continued } = this;
    this.headerHave = 0;
    this.clearHead();
    this.listener.packet(seq, length, head, continued);
  }

  private clearHead(): void {
    this.headView = null;
    this.headHave = 0;
    this.headWant = 0;
    this.headCut = false;
  }

  private lose(reason: string): void {
    this.lost = true;
    this.lostReason = reason;
  }
}
