// The global `Buffer` is a getter on globalThis: a generic lookup and a call at every use in optimized code.
import { Buffer } from 'node:buffer';
import {
  byteCountRelease,
  MAX_REPLY_PAYLOAD_BYTES,
  type ClientDataInfo,
  type ConnectInfo,
  type OnlineDataInfo,
  type ProtocolContext,
  type ProtocolSession,
  type ReleaseQuery,
  type SendVerdict,
  type SessionProtocol,
} from './session-protocol';

/** Reused for every onTargetData call (protocols must not keep it). */
const targetInfo = { gap: 0 };

/** Tag of the client's FIN or RST in mayRelease questions. */

/** Lines a protocol may log per client connection (ctx.log); one more says that the rest are suppressed. */
export const PROTOCOL_LOG_LIMIT = 5;

/**
 * What the engine lends a protocol session. The session itself implements it (methods, not closures: a
 * closure per hook and session cost hundreds of bytes for every session alive).
 */
export interface DriverHost {
  readonly clientIp: number;
  readonly clientPort: number;
  readonly targetIp: number;
  readonly targetPort: number;
  readonly sawHandshake: boolean;
  /** ctx.emit and ctx.emitNext. */
  emitOut(data: Buffer, tag: number): void;
  emitNextOut(data: Buffer, tag: number): void;
  alignServerBytes(onlineServerBytes: number): void;
  setReplyPayloadBytes(bytes: number): void;
  /** ctx.log, within the per-connection limit. */
  protocolLog(message: string): void;
  /** A hook threw: the protocol is out of this connection. */
  protocolFault(hook: string, err: unknown): void;
}

/**
 * The one place that calls protocol hooks: defaults for optional hooks live
 * here, the documented order is kept, and a protocol that throws is isolated
 * to its connection (counted by the host, which then carries on as raw TCP).
 */
export class ProtocolDriver {
  private session: ProtocolSession | null = null;
  private closed = false;
  private emitted = false;
  /** Inside mayRelease or beforeSend, where the out queue must not change under the engine. */
  private asking = false;
  /** ctx.log calls so far, counted up to PROTOCOL_LOG_LIMIT + 1. */
  private logged = 0;

  constructor(
    protocol: SessionProtocol,
    private readonly host: DriverHost,
  ) {
    const ctx = new DriverContext(this, host);
    try {
      this.session = protocol.createSession(ctx);
    } catch (err) {
      this.fault('createSession', err);
    }
  }

  /** ctx.emit */
  contextEmit(data: Buffer, tag: number): void {
    if (this.closed) return;
    this.emitted = true;
    this.host.emitOut(data, tag);
  }

  /** ctx.emitNext */
  contextEmitNext(data: Buffer, tag: number): void {
    if (this.asking) throw new Error('emitNext is not allowed from mayRelease or beforeSend');
    if (this.closed) return;
    this.emitted = true;
    this.host.emitNextOut(data, tag);
  }

  /** ctx.alignServerBytes */
  contextAlign(onlineServerBytes: number): void {
    if (!this.closed) this.host.alignServerBytes(onlineServerBytes);
  }

  /** ctx.setReplyPayloadBytes */
  contextReplyPayloadBytes(bytes: number): void {
    if (!this.closed) this.host.setReplyPayloadBytes(Math.min(MAX_REPLY_PAYLOAD_BYTES, Math.max(0, bytes | 0)));
  }

  clientData(data: Buffer, info: ClientDataInfo): void {
    if (this.closed) return;
    const hook = this.session?.onClientData;
    if (!hook) {
      this.host.emitOut(data, 0);
      return;
    }
    this.emitted = false;
    try {
      hook.call(this.session, data, info);
    } catch (err) {
      this.fault('onClientData', err);
      // Carry on as raw TCP; the bytes of the failed call go as they are unless some were emitted.
      if (!this.emitted) this.host.emitOut(data, 0);
    }
  }

  /** False when the protocol refuses the connection. */
  connect(info: ConnectInfo): boolean {
    if (this.closed) return false;
    const hook = this.session?.onConnect;
    if (!hook) return true;
    try {
      return hook.call(this.session, info) !== false;
    } catch (err) {
      this.fault('onConnect', err);
      return true;
    }
  }

  targetData(data: Buffer, length: number, gap: number): void {
    if (this.closed) return;
    const hook = this.session?.onTargetData;
    if (!hook) return;
    targetInfo.gap = gap;
    try {
      hook.call(this.session, data, length, targetInfo);
    } catch (err) {
      this.fault('onTargetData', err);
    }
  }

  /** True when the protocol reads the online server's replies (they are only handed over then). */
  get readsOnline(): boolean {
    return !!this.session?.onOnlineData && !this.closed;
  }

  onlineData(data: Buffer, info: OnlineDataInfo): void {
    const hook = this.session?.onOnlineData;
    if (!hook || this.closed) return;
    try {
      hook.call(this.session, data, info);
    } catch (err) {
      this.fault('onOnlineData', err);
    }
  }

  targetClose(reset: boolean): void {
    if (this.closed) return;
    const hook = this.session?.onTargetClose;
    if (!hook) return;
    try {
      hook.call(this.session, reset);
    } catch (err) {
      this.fault('onTargetClose', err);
    }
  }

  idleRelease(tag: number): void {
    if (this.closed) return;
    const hook = this.session?.onIdleRelease;
    if (!hook) return;
    try {
      hook.call(this.session, tag);
    } catch (err) {
      this.fault('onIdleRelease', err);
    }
  }

  mayRelease(tag: number, query: ReleaseQuery): boolean {
    const hook = this.session?.mayRelease;
    if (!hook || this.closed) return byteCountRelease(query);
    this.asking = true;
    try {
      return hook.call(this.session, tag, query) === true;
    } catch (err) {
      this.fault('mayRelease', err);
      return byteCountRelease(query);
    } finally {
      this.asking = false;
    }
  }

  /** True when the protocol may rewrite chunks just before they go (the engine then drops cached checksums). */
  get rewritesOnSend(): boolean {
    return !!this.session?.beforeSend && !this.closed;
  }

  /** May the chunk go now on this connection (rewritten in place by the protocol, perhaps)? */
  beforeSend(tag: number, data: Buffer): SendVerdict {
    const hook = this.session?.beforeSend;
    if (!hook || this.closed) return true;
    this.asking = true;
    try {
      const verdict = hook.call(this.session, tag, data);
      if (verdict === 'drop' || Buffer.isBuffer(verdict)) return verdict;
      return verdict !== false;
    } catch (err) {
      this.fault('beforeSend', err);
      return true;
    } finally {
      this.asking = false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const session = this.session;
    // Nothing is asked of a closed protocol: its state (parsers, buffers, the context it kept) goes now,
    // not when the finished connection is forgotten after lingering.
    this.session = null;
    const hook = session?.onClose;
    if (!hook) return;
    try {
      hook.call(session);
    } catch (err) {
      this.fault('onClose', err);
    }
  }

  /**
   * ctx.log, limited per connection: a protocol that logs on every request would otherwise flood
   * the log (and use up the warnings a caller shows) with lines about one connection.
   */
  log(message: string): void {
    if (this.logged > PROTOCOL_LOG_LIMIT) return;
    this.host.protocolLog(this.logged < PROTOCOL_LOG_LIMIT ? message
      : `further messages of this connection suppressed (at most ${PROTOCOL_LOG_LIMIT} per connection)`);
    this.logged++;
  }

  private fault(hook: string, err: unknown): void {
    this.session = null;
    this.host.protocolFault(hook, err);
  }
}

/**
 * What a protocol session gets as its ProtocolContext. Each function is made when the protocol first reads
 * it, then kept: a session whose protocol emits only pays for `emit`, one that never reads its context (raw
 * TCP) for none, where five closures per connection cost ~300 bytes for every session alive. A function read
 * from it works on its own (`const { emit } = ctx` is fine).
 */
class DriverContext implements ProtocolContext {
  readonly clientIp: number;
  readonly clientPort: number;
  readonly targetIp: number;
  readonly targetPort: number;
  readonly sawHandshake: boolean;
  private emitFn: ProtocolContext['emit'] | null = null;
  private emitNextFn: ProtocolContext['emitNext'] | null = null;
  private alignFn: ProtocolContext['alignServerBytes'] | null = null;
  private replyBytesFn: ProtocolContext['setReplyPayloadBytes'] | null = null;
  private logFn: ProtocolContext['log'] | null = null;

  constructor(
    private readonly driver: ProtocolDriver,
    host: DriverHost,
  ) {
    this.clientIp = host.clientIp;
    this.clientPort = host.clientPort;
    this.targetIp = host.targetIp;
    this.targetPort = host.targetPort;
    this.sawHandshake = host.sawHandshake;
  }

  get emit(): ProtocolContext['emit'] {
    const d = this.driver;
    return (this.emitFn ??= (data: Buffer, tag = 0) => d.contextEmit(data, tag));
  }

  get emitNext(): ProtocolContext['emitNext'] {
    const d = this.driver;
    return (this.emitNextFn ??= (data: Buffer, tag = 0) => d.contextEmitNext(data, tag));
  }

  get alignServerBytes(): ProtocolContext['alignServerBytes'] {
    const d = this.driver;
    return (this.alignFn ??= (onlineServerBytes: number) => d.contextAlign(onlineServerBytes));
  }

  get setReplyPayloadBytes(): ProtocolContext['setReplyPayloadBytes'] {
    const d = this.driver;
    return (this.replyBytesFn ??= (bytes: number) => d.contextReplyPayloadBytes(bytes));
  }

  get log(): ProtocolContext['log'] {
    const d = this.driver;
    return (this.logFn ??= (message: string) => d.log(message));
  }
}

/** A session without hooks: the driver's defaults are raw TCP. One for every connection, nothing kept per connection. */
const NO_HOOKS: ProtocolSession = Object.freeze({});

/** The engine's built-in default when no protocol module is given: bytes go as captured, released by byte count. */
export const DEFAULT_PROTOCOL: SessionProtocol = {
  name: 'raw',
  replyPayloadBytes: 0,
  createSession: () => NO_HOOKS,
};
