import { CHANNEL_MAGIC, MessageType } from './channel-messages';

/** Frame header and magic: the first 8 bytes of a HELLO or a HELLO_ACK. */
const SNIFF_BYTES = 8;

/**
 * Checks the first 8 bytes a peer sends before the frame parser sees them. A peer that speaks
 * another protocol (an HTTP server or client, the C tcpcopy or intercept) would otherwise leave
 * the parser waiting for the end of a "frame" whose length is two random bytes; this way it is
 * told apart at once. One per connection; reset() for the next attempt on the same channel.
 */
export class HandshakeSniff {
  /** The 8 bytes passed the check: later chunks need none. */
  done = false;
  private readonly head = Buffer.alloc(SNIFF_BYTES);
  private length = 0;

  private readonly alsoFirst: readonly number[];

  /**
   * @param expected the handshake frame the peer must start with; its magic is checked
   * @param alsoFirst other frame type(s) accepted first, unchecked (tcpcopy: ERROR, AUTH_CHALLENGE), or -1
   */
  constructor(private readonly expected: MessageType, alsoFirst: number | readonly number[] = -1) {
    this.alsoFirst = typeof alsoFirst === 'number' ? [alsoFirst] : alsoFirst;
  }

  reset(): void {
    this.done = false;
    this.length = 0;
  }

  /** Takes the bytes still unchecked from the start of `chunk`; false if the peer is not one of ours. */
  check(chunk: Buffer): boolean {
    const h = this.head;
    const take = Math.min(SNIFF_BYTES - this.length, chunk.length);
    chunk.copy(h, this.length, 0, take);
    this.length += take;
    const ok = h[0] === this.expected
      ? this.length < SNIFF_BYTES || h.readUInt32BE(4) === CHANNEL_MAGIC
      : this.alsoFirst.includes(h[0]);
    if (ok && this.length >= SNIFF_BYTES) this.done = true;
    return ok;
  }
}
