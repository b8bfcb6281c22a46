// The context a protocol session gets: the connection's addresses, and functions that work however they are
// called (as methods, or taken out of the context first), each the same function every time it is read.
import { expect } from 'chai';
import { conversation, EngineRig } from '../src/compliance/engine-rig';
import { ProtocolDriver, type DriverHost } from '../src/protocol/protocol-driver';
import type { ProtocolContext, SessionProtocol } from '../src/protocol/session-protocol';

function host(emitted: Array<[string, number]>): DriverHost {
  return {
    clientIp: 0xc0000207, clientPort: 40000, targetIp: 0xc6336414, targetPort: 80, sawHandshake: true,
    emitOut: (data, tag) => emitted.push([data.toString('latin1'), tag]),
    emitNextOut: (data, tag) => emitted.push([`next:${data.toString('latin1')}`, tag]),
    alignServerBytes: () => undefined,
    setReplyPayloadBytes: () => undefined,
    protocolLog: () => undefined,
    protocolFault: (hook, err) => {
      throw new Error(`${hook}: ${String(err)}`);
    },
  };
}

describe('ProtocolContext', () => {
  it('carries the connection and gives the same function each time one is read', () => {
    let ctx!: ProtocolContext;
    new ProtocolDriver({ name: 'p', replyPayloadBytes: 0, createSession: (c) => ((ctx = c), {}) }, host([]));
    expect(ctx).to.include({ clientIp: 0xc0000207, clientPort: 40000, targetIp: 0xc6336414, targetPort: 80, sawHandshake: true });
    expect(ctx.emit).to.equal(ctx.emit);
    expect(ctx.emitNext).to.equal(ctx.emitNext);
    expect(ctx.log).to.equal(ctx.log);
  });

  it('functions taken out of the context work on their own, tag 0 by default', () => {
    const emitted: Array<[string, number]> = [];
    const driver = new ProtocolDriver({
      name: 'p',
      replyPayloadBytes: 0,
      createSession: ({ emit, emitNext }) => ({
        onClientData(data) {
          emit(data);
          emit(data, 7);
          emitNext(Buffer.from('login'), 9);
        },
      }),
    }, host(emitted));
    driver.clientData(Buffer.from('GET /'), { onlineServerBytes: 0, captureTimeMs: 0 });
    expect(emitted).to.deep.equal([['GET /', 0], ['GET /', 7], ['next:login', 9]]);
  });

  it('emitNext still refuses to run from mayRelease, and a closed connection takes nothing', () => {
    const emitted: Array<[string, number]> = [];
    const faults: string[] = [];
    const h = { ...host(emitted), protocolFault: (hook: string, err: unknown) => faults.push(`${hook}: ${(err as Error).message}`) };
    let ctx!: ProtocolContext;
    const driver = new ProtocolDriver({
      name: 'p',
      replyPayloadBytes: 0,
      createSession: (c) => {
        ctx = c;
        return { mayRelease: () => (c.emitNext(Buffer.from('x')), true) };
      },
    }, h);
    driver.mayRelease(1, { onlineServerBytes: 0, targetServerBytes: 0 } as never);
    expect(faults).to.deep.equal(['mayRelease: emitNext is not allowed from mayRelease or beforeSend']);
    driver.close();
    ctx.emit(Buffer.from('late'));
    expect(emitted).to.deep.equal([]);
  });

  it('raw TCP through a protocol that never reads its context replays as captured', () => {
    const bare: SessionProtocol = { name: 'bare', replyPayloadBytes: 0, createSession: () => ({}) };
    const rig = new EngineRig({ protocol: bare });
    for (const p of conversation({ ip: '192.0.2.7', port: 40001, isn: 1 }, [{ request: 'GET a 10\n', response: 10 }, { request: 'GET b 5\n', response: 5 }])) {
      rig.capture(p);
    }
    rig.advance(50);
    expect([...rig.sim.streams().values()]).to.deep.equal(['GET a 10\nGET b 5\n']);
  });
});
