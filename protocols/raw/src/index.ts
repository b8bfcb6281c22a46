import { byteCountRelease, type ProtocolSession, type SessionProtocol } from '@tcpcopy/core';

/**
 * Raw TCP: no knowledge of the application protocol. Bytes go as captured;
 * request boundaries come from the client's ACK numbers: data the client sent
 * after receiving N bytes from the online server goes once the target has sent
 * N bytes too (the engine's idle release covers a target that answers shorter).
 */
export const rawProtocol: SessionProtocol = {
  name: 'raw',
  replyPayloadBytes: 0,
  createSession: (ctx): ProtocolSession => ({
    onClientData: (data) => ctx.emit(data),
    mayRelease: (_tag, query) => byteCountRelease(query),
  }),
};

export default rawProtocol;
