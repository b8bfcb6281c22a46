import type { ProtocolSession, SessionProtocol } from '@tcpcopy/core';

/**
 * Raw TCP: no knowledge of the application protocol. Bytes go as captured;
 * request boundaries come from the client's ACK numbers: data the client sent
 * after receiving N bytes from the online server goes once the target has sent
 * N bytes too (the engine's idle release covers a target that answers shorter).
 *
 * That is what the engine does for a session without hooks, so every connection
 * shares one empty session: nothing is kept per connection.
 */
const RAW_SESSION: ProtocolSession = Object.freeze({});

export const rawProtocol: SessionProtocol = {
  name: 'raw',
  replyPayloadBytes: 0,
  createSession: (): ProtocolSession => RAW_SESSION,
};

export default rawProtocol;
