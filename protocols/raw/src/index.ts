import type { ProtocolSession, ReleaseQuery, SessionProtocol } from '@tcpcopy/core';

/**
 * Raw TCP: no knowledge of the application protocol. Request boundaries come
 * from the client's ACK numbers: data the client sent after receiving N bytes
 * from the online server goes once the target has sent N bytes too (the
 * engine's idle fallback covers a target that answers shorter).
 */
class RawSession implements ProtocolSession {
  mayRelease(q: ReleaseQuery): boolean {
    return q.targetServerBytes >= q.onlineServerBytes;
  }
}

export const rawProtocol: SessionProtocol = {
  name: 'raw',
  replyPayloadBytes: 0,
  createSession: () => new RawSession(),
};

export default rawProtocol;
