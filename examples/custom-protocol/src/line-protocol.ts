/**
 * A custom protocol in one short file: a line protocol where every request
 * and every response is one line ending in "\n". Requests go one at a time
 * (each after the previous response line arrived), and the option
 * `rename=old:new` rewrites a word in every request.
 *
 *   tcpcopy --protocol ./line-protocol.js --protocol-opt rename=alice:bob ...
 */
import type { ProtocolContext, ProtocolOptions, ProtocolSession, SessionProtocol } from '@tcpcopy/core';

export function createProtocol(options: ProtocolOptions = {}): SessionProtocol {
  const [from, to] = (options.rename ?? ':').split(':');
  if (options.rename !== undefined && (!from || to === undefined)) throw new Error(`rename=${options.rename}: expected old:new`);
  return {
    name: 'line',
    replyPayloadBytes: 2048, // every byte of a reply packet: responses are found by their "\n"
    createSession(ctx: ProtocolContext): ProtocolSession {
      let partial = '';
      let sent = 0; // requests emitted
      let answered = 0; // response lines seen
      return {
        onClientData(data) {
          const lines = (partial + data.toString('latin1')).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) ctx.emit(Buffer.from((from ? line.split(from).join(to) : line) + '\n', 'latin1'), ++sent);
        },
        onTargetData(data) {
          for (const byte of data) if (byte === 0x0a) answered++;
        },
        // Request n goes once n-1 answers are in; the client's FIN (tag -1) once all are.
        mayRelease: (tag) => (tag < 0 ? answered >= sent : answered >= tag - 1),
      };
    },
  };
}

export default createProtocol;
