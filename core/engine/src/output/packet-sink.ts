/**
 * Where rewritten packets go. `send` is synchronous from the caller's view:
 * the bytes in buf[offset, offset+length) belong to the caller again as soon
 * as it returns, so a sink that queues must copy.
 */
export interface PacketSink {
  /** Sends one IPv4 packet (header included) toward `dstIp` (host-order number). */
  send(buf: Buffer, offset: number, length: number, dstIp: number): void;
  /** Packets accepted and dropped so far. */
  readonly stats: { sent: number; failed: number; queued: number };
  close(): void;
  /**
   * A sink that hands packets to the kernel later in batches (at the end of the event-loop turn) declares
   * this (null until set) and calls it after each batch: the engine then runs a SYN's retransmission timer
   * from there, not from when the SYN was queued. Absent: send() hands each packet out at once.
   */
  onFlushed?: (() => void) | null;
}

/** Keeps copies of every packet: for tests, benchmarks and programs that inspect the output. */
export class RecordingSink implements PacketSink {
  readonly packets: Buffer[] = [];
  readonly stats = { sent: 0, failed: 0, queued: 0 };
  constructor(private readonly keep = true) {}
  send(buf: Buffer, offset: number, length: number): void {
    this.stats.sent++;
    if (this.keep) this.packets.push(Buffer.from(buf.subarray(offset, offset + length)));
  }
  close(): void {}
}
