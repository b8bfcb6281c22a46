/**
 * The protocol plug-in point (first version; the full hook set is the subject
 * of its own issue). A protocol is a factory, created once; it creates one
 * ProtocolSession per replayed connection.
 *
 * Callback order, per connection:
 *   createSession(ctx)
 *   → (onTargetData | mayRelease)*   in packet order, interleaved
 *   → onClose()                       exactly once
 *
 * The engine itself knows, for every byte the client sent, how many bytes the
 * online server had sent before it (from the client's ACK numbers). A protocol
 * decides with that whether the target has answered enough for the next
 * request to go.
 */
export interface SessionProtocol {
  /** Short name, as given to `--protocol`. */
  readonly name: string;
  /** Payload bytes of each target reply that intercept must return (0: headers are enough). */
  readonly replyPayloadBytes: number;
  createSession(ctx: ProtocolContext): ProtocolSession;
}

export interface ProtocolContext {
  /** Captured client address and port, and the target they are replayed to (host-order numbers). */
  readonly clientIp: number;
  readonly clientPort: number;
  readonly targetIp: number;
  readonly targetPort: number;
  /** False when the connection's start was not captured and a handshake is faked. */
  readonly sawHandshake: boolean;
}

export interface ReleaseQuery {
  /** Bytes the online server had sent when the client sent this data (from its ACK). */
  readonly onlineServerBytes: number;
  /** Bytes the target has sent on the replayed connection so far, on the same scale. */
  readonly targetServerBytes: number;
}

export interface ProtocolSession {
  /**
   * May the next client data go? Called when client data is ready to send and
   * the target has answered less than the online server had. Returning false
   * holds the data until the next target reply (or the engine's idle fallback).
   */
  mayRelease(query: ReleaseQuery): boolean;
  /**
   * The target sent payload. `data` holds the first bytes intercept returned
   * (up to replyPayloadBytes; it may be empty) and is only valid during the call.
   */
  onTargetData?(length: number, data: Buffer): void;
  onClose?(): void;
}
