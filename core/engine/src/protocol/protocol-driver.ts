import type { ProtocolContext, ProtocolSession, ReleaseQuery, SessionProtocol } from './session-protocol';

/**
 * The one place that calls protocol hooks. Optional hooks get their defaults
 * here, and a protocol that throws is isolated to its connection: the error is
 * counted and reported, the connection falls back to the default behaviour.
 */
export class ProtocolDriver {
  private session: ProtocolSession | null;
  private closed = false;

  constructor(
    protocol: SessionProtocol,
    ctx: ProtocolContext,
    private readonly onFault: (hook: string, err: unknown) => void,
  ) {
    try {
      this.session = protocol.createSession(ctx);
    } catch (err) {
      this.session = null;
      onFault('createSession', err);
    }
  }

  mayRelease(query: ReleaseQuery): boolean {
    if (this.session) {
      try {
        return this.session.mayRelease(query);
      } catch (err) {
        this.fault('mayRelease', err);
      }
    }
    return query.targetServerBytes >= query.onlineServerBytes;
  }

  onTargetData(length: number, data: Buffer): void {
    const hook = this.session?.onTargetData;
    if (!hook) return;
    try {
      hook.call(this.session, length, data);
    } catch (err) {
      this.fault('onTargetData', err);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const hook = this.session?.onClose;
    if (!hook) return;
    try {
      hook.call(this.session);
    } catch (err) {
      this.fault('onClose', err);
    }
  }

  private fault(hook: string, err: unknown): void {
    this.session = null;
    this.onFault(hook, err);
  }
}

/** The engine's built-in default when no protocol module is given: the raw byte-count rule. */
export const DEFAULT_PROTOCOL: SessionProtocol = {
  name: 'raw',
  replyPayloadBytes: 0,
  createSession: () => ({
    mayRelease: (q: ReleaseQuery) => q.targetServerBytes >= q.onlineServerBytes,
  }),
};
