// ProtocolContext.log is "rate-limited by the engine": a protocol that logs on every call reaches the engine's
// warn callback at most PROTOCOL_LOG_LIMIT times per client connection, plus one line saying the rest are suppressed.
import { expect } from 'chai';
import { conversation, EngineRig } from '../src/compliance/engine-rig';
import { PROTOCOL_LOG_LIMIT } from '../src/protocol/protocol-driver';
import type { SessionProtocol } from '../src/protocol/session-protocol';

/** Logs `perRequest` lines for every client segment, and passes the bytes on. */
const chatty = (perRequest: number): SessionProtocol => ({
  name: 'chatty',
  replyPayloadBytes: 0,
  createSession(ctx) {
    return {
      onClientData(data) {
        for (let i = 0; i < perRequest; i++) ctx.log(`chatter ${i}`);
        ctx.emit(data);
      },
    };
  },
});

describe('protocol log limit', () => {
  const ex = [{ request: 'GET a 10\n', response: 10 }, { request: 'GET b 10\n', response: 10 }];

  it(`a protocol logging 1000 times on one connection: at most ${PROTOCOL_LOG_LIMIT} lines and one suppression line`, () => {
    const rig = new EngineRig({ protocol: chatty(500) });
    for (const p of conversation({ ip: '192.0.2.7', port: 40000, isn: 1 }, ex)) rig.capture(p);
    rig.advance(50);
    const lines = rig.warnings.filter((w) => w.startsWith('chatty '));
    expect(lines, rig.warnings.join('\n')).to.have.length(PROTOCOL_LOG_LIMIT + 1);
    expect(lines.slice(0, PROTOCOL_LOG_LIMIT).map((l) => l.replace(/^.*: /, ''))).to.deep.equal(
      Array.from({ length: PROTOCOL_LOG_LIMIT }, (_, i) => `chatter ${i}`));
    expect(lines[PROTOCOL_LOG_LIMIT]).to.match(/^chatty 192\.0\.2\.7:40000->\S+: further messages of this connection suppressed/);
    // The limit is on the log only: the connection is replayed as usual.
    expect([...rig.sim.streams().values()]).to.deep.equal(['GET a 10\nGET b 10\n']);
    expect(rig.engine.stats.sessionsCompleted).to.equal(1);
  });

  it('the limit is per connection: each one gets its own lines', () => {
    const rig = new EngineRig({ protocol: chatty(1000) });
    for (const port of [40000, 40001, 40002]) {
      for (const p of conversation({ ip: '192.0.2.7', port, isn: 1 }, ex)) rig.capture(p);
    }
    rig.advance(50);
    for (const port of [40000, 40001, 40002]) {
      const mine = rig.warnings.filter((w) => w.startsWith(`chatty 192.0.2.7:${port}->`));
      expect(mine, `connection ${port}`).to.have.length(PROTOCOL_LOG_LIMIT + 1);
    }
    expect(rig.warnings).to.have.length(3 * (PROTOCOL_LOG_LIMIT + 1));
  });
});
