import type { RequestStats, RequestStatsSnapshot } from './request-stats';

/**
 * The protocol plug-in point. A protocol module exports a SessionProtocol (or a
 * function that makes one from its options); the engine creates one
 * ProtocolSession per replayed client connection.
 *
 * Callback order, per client connection: the engine calls the hooks in this
 * order, and the compliance suite (`@tcpcopy/core/compliance`) checks what a
 * protocol can see of it (createSession first, onConnect before any
 * target-side hook, onClose exactly once and last):
 *
 *   createSession(ctx)                      once
 *   onClientData(data, info)*               the client's bytes, in order and without gaps, as the
 *                                           capture delivers them (also before any connection to
 *                                           the target exists)
 *   onOnlineData(data, info)*               the online server's bytes, when the capture has them
 *   onConnect(info)                         each time a connection to the target is opened: first
 *                                           with resumed=false when the client's SYN was captured,
 *                                           resumed=true when its start was not captured or when
 *                                           the target dropped the connection with requests left.
 *                                           It may come before or after the first onClientData.
 *   onTargetData(data, length, info)*       new target payload on the current connection, in order
 *   onIdleRelease(tag)*                     the engine let a held chunk go without the protocol's yes
 *   onTargetClose(reset)*                   the target closed (FIN) or reset the current connection
 *   mayRelease(tag, query)*                 before the first byte of each emitted chunk goes
 *   beforeSend(tag, data)*                  after the chunk was released, just before its first byte
 *                                           goes on the current connection (again on each new one)
 *   onClose()                               exactly once, last
 *
 * onClientData, onTargetData, mayRelease and beforeSend interleave after onConnect.
 *
 * A server-first protocol (the server greets, the client logs in) works so: it
 * says no in beforeSend to everything until it has read the target's greeting
 * on the current connection, then, from onTargetData, puts its own login ahead
 * of the held chunks with emitNext, answers the target's authentication the
 * same way, says yes once logged in, and lines the byte counts up with
 * alignServerBytes. A connection it resumes has no captured login: it makes one.
 *
 * The client data passed to onClientData is the engine's own copy: it stays
 * valid and unchanged, so a protocol may emit it or slices of it without
 * copying (it must not modify it). Target data is only valid during the call,
 * and the info and query objects are reused from call to call: read them, do
 * not keep them.
 *
 * A hook that throws ends the protocol's part in that connection only: the
 * error is counted and logged, no hook of that session is called again
 * (onClose included), and the connection continues as raw TCP.
 */
export interface SessionProtocol {
  /** Short name, as given to `--protocol`. */
  readonly name: string;
  /**
   * Payload bytes of each target reply that intercept must return besides the
   * headers: 0 when the headers are enough (byte counting), larger to parse
   * responses (at most {@link MAX_REPLY_PAYLOAD_BYTES}; the compliance suite
   * checks it).
   */
  readonly replyPayloadBytes: number;
  createSession(ctx: ProtocolContext): ProtocolSession;
  /** The protocol's own counters for the end-of-run summary (sessions it skipped and why, answers compared, ...). */
  stats?(): Readonly<Record<string, number>>;
  /**
   * For a protocol that frames requests: the requests answered so far, online and by the target,
   * by status and with latency percentiles, for the end-of-run report (`tcpcopy --report`). Fill
   * one {@link RequestStats} from the sessions and return its snapshot. Protocols that do not
   * frame requests leave it out.
   */
  requestStats?(): RequestStatsSnapshot;
}

/** A module may export this instead of a SessionProtocol to take `--protocol-opt key=value` options. */
export type SessionProtocolFactory = (options: ProtocolOptions) => SessionProtocol;

export type ProtocolOptions = Readonly<Record<string, string>>;

export interface ProtocolContext {
  /** Captured client address and port, and the target they are replayed to (host-order numbers). */
  readonly clientIp: number;
  readonly clientPort: number;
  readonly targetIp: number;
  readonly targetPort: number;
  /** False when the connection's start was not captured (the handshake is faked). */
  readonly sawHandshake: boolean;
  /**
   * Queues bytes for the target, after everything queued before. `tag` is the
   * protocol's own label for them (a request number, say); mayRelease gets it
   * back. The engine keeps a reference: do not change `data` afterwards.
   * Emitting nothing for some client bytes drops them (the rest of the
   * connection is unaffected: the engine numbers what it sends itself).
   */
  emit(data: Buffer, tag?: number): void;
  /**
   * Queues bytes ahead of everything not yet sent on the current connection
   * (after a chunk already partly sent): a login computed from the target's
   * greeting, an answer to its authentication request. During onConnect it is
   * the same as emit. Not allowed from mayRelease or beforeSend (it throws).
   */
  emitNext(data: Buffer, tag?: number): void;
  /**
   * Declares that the target's replies so far stand for `onlineServerBytes`
   * bytes of the online server's, and rebases ReleaseQuery.targetServerBytes
   * accordingly: for conversations with round trips the online one did not
   * have (a login on a resumed connection, an extra authentication step).
   */
  alignServerBytes(onlineServerBytes: number): void;
  /**
   * Payload bytes of each target reply that intercept returns for this
   * connection from now on; clamped to 0..{@link MAX_REPLY_PAYLOAD_BYTES}.
   */
  setReplyPayloadBytes(bytes: number): void;
  /** Reports something about this connection (the engine passes at most 5 per connection, then says it stopped). */
  log(message: string): void;
}

export interface ClientDataInfo {
  /** Bytes the online server had sent when the client sent this data (from the client's ACK). */
  readonly onlineServerBytes: number;
  /**
   * When the packet that completed this data was captured, in ms on the capture's clock (a pcap
   * file's timestamps; live, the time tcpcopy received it): only differences mean something, with
   * {@link OnlineDataInfo.captureTimeMs}. The engine always sets it; hand-made calls may not.
   */
  readonly captureTimeMs?: number;
}

export interface TargetDataInfo {
  /** Target bytes skipped just before this data because no reply carried them. */
  readonly gap: number;
}

/** What onOnlineData gets besides the bytes. */
export interface OnlineDataInfo extends TargetDataInfo {
  /** When the packet carrying these bytes was captured, on the clock of {@link ClientDataInfo.captureTimeMs}. */
  readonly captureTimeMs?: number;
}

export interface ConnectInfo {
  /** True when the target did not see this connection's start: a mid-stream capture or a reconnect. */
  readonly resumed: boolean;
}

export interface ReleaseQuery {
  /** Bytes the online server had sent when the client sent the chunk's first byte. */
  readonly onlineServerBytes: number;
  /** Bytes the target has sent so far (across reconnects, on the same scale). */
  readonly targetServerBytes: number;
}

export interface ProtocolSession {
  /**
   * Client bytes in order. Default: emit them unchanged (tag 0). A protocol
   * that frames requests emits each one (rewritten or not) with its tag.
   */
  onClientData?(data: Buffer, info: ClientDataInfo): void;
  /**
   * A connection to the target was opened. Returning false refuses it: the
   * connection is not replayed (counted). A protocol may emit a prelude here
   * (a login, say), which goes before anything not yet sent.
   */
  onConnect?(info: ConnectInfo): boolean | void;
  /**
   * New target payload, in stream order (bytes already seen are cut off):
   * `length` bytes arrived, of which `data` holds the first ones intercept
   * returned (up to replyPayloadBytes; it may be shorter, or empty).
   * `info.gap` > 0 says that many bytes before these were never seen (a reply
   * intercept missed): a parsing protocol should resynchronise.
   */
  onTargetData?(data: Buffer, length: number, info: TargetDataInfo): void;
  /**
   * The online server's bytes to the client, when the capture holds them (a
   * pcap file taken with tcpdump usually does; a live raw-socket capture does
   * not): in order, retransmissions cut off, `info.gap` bytes missed before
   * these. For comparing the target's answers with the online ones; it has
   * no say in what is sent. The data is valid only during the call.
   */
  onOnlineData?(data: Buffer, info: OnlineDataInfo): void;
  /**
   * The target stayed quiet while the chunk tagged `tag` ({@link CLOSE_TAG}:
   * the client's FIN or RST) was held, and the engine let it go anyway (`--idle-release`).
   */
  onIdleRelease?(tag: number): void;
  /**
   * The target closed (reset=false: its FIN, after all its data) or reset the
   * current connection. A reconnect may follow (onConnect with resumed=true).
   */
  onTargetClose?(reset: boolean): void;
  /**
   * May the chunk emitted with `tag` go now ({@link CLOSE_TAG}: the client's
   * FIN or RST)? Asked before its first byte is sent, again after every target
   * reply until it says yes (only `true` is a yes). Default: once the
   * target has sent as many bytes as the online server had (the raw rule).
   * If the target stays quiet, the engine's idle release releases it anyway.
   */
  mayRelease?(tag: number, query: ReleaseQuery): boolean;
  /**
   * The chunk emitted with `tag` was released and its first byte is about to
   * go on the current connection (asked again on each new connection). `data`
   * is the buffer the protocol emitted: it may overwrite bytes in place, same
   * length (a statement id known only from the target's reply, say). False
   * holds the chunk and what follows: asked again after each target reply.
   * 'drop' takes the chunk out of the stream for good (a login made for an
   * older connection, a command that can no longer run). A Buffer replaces
   * the chunk's bytes, any length (a command that must say more on a new
   * connection than on the old one); it is not asked about again on this
   * connection. Unlike mayRelease,
   * the idle release does not override a no; the session timeout (-t) bounds
   * the wait. Default: yes, unchanged.
   */
  beforeSend?(tag: number, data: Buffer): SendVerdict;
  onClose?(): void;
}

/**
 * The tag of the client's FIN or RST in mayRelease and onIdleRelease (a
 * protocol's own tags are its business; this one is the engine's).
 */
export const CLOSE_TAG = -1;

/**
 * The most payload bytes of each target reply a protocol may ask intercept to
 * return (SessionProtocol.replyPayloadBytes, ProtocolContext.setReplyPayloadBytes).
 */
export const MAX_REPLY_PAYLOAD_BYTES = 65000;

/** beforeSend's answer: send now, hold, drop for good, or send these bytes instead. */
export type SendVerdict = boolean | 'drop' | Buffer;

/** The default release rule: the target has answered as much as the online server had. */
export function byteCountRelease(query: ReleaseQuery): boolean {
  return query.targetServerBytes >= query.onlineServerBytes;
}
