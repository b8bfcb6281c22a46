import { expect } from 'chai';
import type { ProtocolContext, ProtocolSession, SessionProtocol } from '../protocol/session-protocol';
import { conversation, EngineRig } from './engine-rig';
import { scriptResponder, type Responder, type SimConnection } from './sim-target';

/** One request and its response, as the online client and server exchanged them. */
export interface ComplianceExchange {
  /** What the client sent. */
  client: Buffer;
  /** What the server answered. */
  server: Buffer;
  /** What the target must receive for this request, when the protocol rewrites it (default: `client`). */
  expect?: Buffer;
}

export interface ComplianceSetup {
  protocol: SessionProtocol;
  /** A short conversation in the protocol, request by request (two or more). */
  exchanges: ComplianceExchange[];
  /** The server speaks first with this greeting. */
  greeting?: Buffer;
  /**
   * What the protocol sends first on a connection it resumes (a login, say), and the target's answer
   * to it: the resume case then expects it before the rest of the conversation.
   */
  resumePrelude?: { client: Buffer; server: Buffer };
  features?: {
    /** Each request goes only after the previous response was complete (default true). */
    sequential?: boolean;
    /** A connection captured from its second request on can be replayed (default true). */
    resume?: boolean;
  };
}

const CLIENT = { ip: '198.51.100.10', port: 40000, isn: 7_000_000 };

/** A seeded generator, so a failing garbage case can be reproduced. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Records the order of hook calls of every session a protocol creates. */
function spied(protocol: SessionProtocol, calls: string[][]): SessionProtocol {
  return {
    name: protocol.name,
    replyPayloadBytes: protocol.replyPayloadBytes,
    createSession(ctx: ProtocolContext): ProtocolSession {
      const log = ['createSession'];
      calls.push(log);
      const inner = protocol.createSession(ctx);
      const wrap = <K extends keyof ProtocolSession>(name: K) => {
        const hook = inner[name] as ((...args: unknown[]) => unknown) | undefined;
        if (!hook) return undefined;
        return (...args: unknown[]) => {
          log.push(name);
          return hook.apply(inner, args);
        };
      };
      return {
        onClientData: wrap('onClientData') as ProtocolSession['onClientData'],
        onConnect: wrap('onConnect') as ProtocolSession['onConnect'],
        onTargetData: wrap('onTargetData') as ProtocolSession['onTargetData'],
        mayRelease: wrap('mayRelease') as ProtocolSession['mayRelease'],
        onClose: (() => {
          log.push('onClose');
          inner.onClose?.();
        }) as ProtocolSession['onClose'],
      };
    },
  };
}

/**
 * Wraps a responder to count requests that left the engine before it had
 * received the whole answer to the previous one (`delivered` tells how many
 * answer bytes the engine has been handed for a client address).
 */
function watchOrder(
  inner: Responder,
  exchanges: ReadonlyArray<{ expect: Buffer; server: Buffer }>,
  greeting: number,
  delivered: (key: string) => number,
): { responder: Responder; early: () => number } {
  let early = 0;
  const pos = new Map<string, { index: number; have: number }>();
  return {
    early: () => early,
    responder: {
      onConnect: inner.onConnect?.bind(inner),
      onData(conn, data) {
        let p = pos.get(conn.key);
        if (!p) pos.set(conn.key, (p = { index: 0, have: 0 }));
        if (p.have === 0 && p.index > 0) {
          let answered = greeting;
          for (let i = 0; i < p.index; i++) answered += exchanges[i].server.length;
          if (delivered(conn.key) < answered) early++;
        }
        p.have += data.length;
        while (p.index < exchanges.length && p.have >= exchanges[p.index].expect.length) {
          p.have -= exchanges[p.index].expect.length;
          p.index++;
        }
        return inner.onData(conn, data);
      },
    },
  };
}

/**
 * The compliance suite every protocol package runs (ours and third parties'),
 * from a spec file: `protocolComplianceTests('redis', { protocol, exchanges })`.
 * It replays the given conversation through the real session engine against a
 * simulated target and checks what every protocol must do. Needs mocha's
 * globals (describe/it) and chai.
 */
export function protocolComplianceTests(name: string, setup: ComplianceSetup): void {
  const sequential = setup.features?.sequential ?? true;
  const resume = setup.features?.resume ?? true;
  const script = setup.exchanges.map((e) => ({ expect: e.expect ?? e.client, server: e.server }));
  const expected = Buffer.concat(script.map((e) => e.expect));
  const asExchanges = () => setup.exchanges.map((e) => ({ request: e.client, response: e.server.length }));

  function replay(opts: { mss?: number; targetMss?: number; protocol?: SessionProtocol; from?: number; burst?: boolean } = {}) {
    const from = opts.from ?? 0;
    const prelude = from > 0 && setup.resumePrelude ? [{ expect: setup.resumePrelude.client, server: setup.resumePrelude.server }] : [];
    const served = [...prelude, ...script.slice(from)];
    let rig: EngineRig | undefined;
    const order = watchOrder(scriptResponder(served, setup.greeting), served, setup.greeting?.length ?? 0, (key) =>
      rig?.repliedBytes.get(key) ?? 0,
    );
    rig = new EngineRig({
      protocol: opts.protocol ?? setup.protocol,
      sim: { responder: order.responder, mss: opts.targetMss },
      config: { gateIdleMs: 2000 },
    });
    const packets = conversation(CLIENT, asExchanges(), {
      mss: opts.mss,
      greeting: setup.greeting?.length,
      syn: from === 0,
      fromExchange: from,
    });
    if (opts.burst) rig.captureBurst(packets);
    else for (const p of packets) rig.capture(p);
    rig.advance(100);
    return { rig, early: order.early(), received: Buffer.concat(rig.sim.history.map((c) => c.bytes)) };
  }

  describe(`${name}: SessionProtocol compliance`, () => {
    it('declares a name, the reply bytes it needs and a session factory', () => {
      const p = setup.protocol;
      expect(p.name, 'name').to.be.a('string').and.not.equal('');
      expect(Number.isInteger(p.replyPayloadBytes) && p.replyPayloadBytes >= 0 && p.replyPayloadBytes <= 65000, 'replyPayloadBytes in 0..65000').to.equal(true);
      expect(p.createSession, 'createSession').to.be.a('function');
      expect(setup.exchanges.length, 'the setup gives at least two exchanges').to.be.greaterThan(1);
    });

    it('replays the conversation exactly, recognising every response without the idle fallback', () => {
      const { rig, received } = replay();
      expect(received.toString('latin1')).to.equal(expected.toString('latin1'));
      expect(rig.sim.history[0]?.answered, 'answers the target gave').to.equal(script.length + (setup.greeting ? 1 : 0));
      expect(rig.engine.stats.protocolFaults, 'hooks that threw').to.equal(0);
      expect(rig.engine.stats.gateFallbacks, 'requests released only by the idle fallback').to.equal(0);
      expect(rig.engine.stats.sessionsCompleted, 'sessions closed cleanly').to.equal(1);
    });

    if (sequential) {
      it('sends no request before the target completed the previous response, even when all were captured at once', () => {
        const { rig, early, received } = replay({ burst: true });
        expect(received.toString('latin1')).to.equal(expected.toString('latin1'));
        expect(rig.engine.stats.gateFallbacks, 'requests released only by the idle fallback').to.equal(0);
        expect(early, 'requests that reached the target before the previous answer').to.equal(0);
      });
    }

    for (const mss of [1, 5, 536]) {
      it(`gives the same result when the capture cut the client's bytes into ${mss}-byte segments`, () => {
        const { rig, received } = replay({ mss });
        expect(received.toString('latin1')).to.equal(expected.toString('latin1'));
        expect(rig.engine.stats.protocolFaults).to.equal(0);
      });
    }

    it('gives the same result when the target answers in 3-byte segments', () => {
      const { rig, received } = replay({ targetMss: 3 });
      expect(received.toString('latin1')).to.equal(expected.toString('latin1'));
      expect(rig.engine.stats.gateFallbacks).to.equal(0);
      expect(rig.engine.stats.protocolFaults).to.equal(0);
    });

    if (resume) {
      it('resumes a connection captured from its second request on', () => {
        const { rig, received } = replay({ from: 1 });
        const rest = Buffer.concat([...(setup.resumePrelude ? [setup.resumePrelude.client] : []), ...script.slice(1).map((e) => e.expect)]);
        expect(received.toString('latin1')).to.equal(rest.toString('latin1'));
        expect(rig.engine.stats.protocolFaults).to.equal(0);
        expect(rig.engine.stats.sessionsFakedHandshake).to.equal(1);
      });
    }

    it('calls the hooks in the documented order, onClose exactly once and last', () => {
      const calls: string[][] = [];
      replay({ protocol: spied(setup.protocol, calls) });
      expect(calls).to.have.length(1);
      const log = calls[0];
      expect(log[0]).to.equal('createSession');
      expect(log.filter((c) => c === 'onClose')).to.have.length(1);
      expect(log[log.length - 1]).to.equal('onClose');
      const firstConnect = log.indexOf('onConnect');
      const firstTarget = log.findIndex((c) => c === 'onTargetData' || c === 'mayRelease');
      if (firstConnect >= 0 && firstTarget >= 0) expect(firstConnect).to.be.lessThan(firstTarget);
    });

    it('never throws on garbage from the client or the target', () => {
      const rnd = prng(0x5eed);
      for (let round = 0; round < 30; round++) {
        const junk = () => Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256)));
        const garbage: Responder = { onConnect: () => (rnd() < 0.5 ? [junk()] : []), onData: () => [junk()] };
        const rig = new EngineRig({ protocol: setup.protocol, sim: { responder: garbage }, config: { gateIdleMs: 20 } });
        const exchanges = Array.from({ length: 3 }, () => ({ request: junk(), response: Math.floor(rnd() * 400) }));
        for (const p of conversation({ ...CLIENT, port: 41000 + round }, exchanges, { syn: rnd() < 0.5, mss: 1 + Math.floor(rnd() * 200) })) {
          rig.capture(p);
        }
        rig.advance(200);
        expect(rig.engine.stats.protocolFaults, `round ${round}: hooks that threw`).to.equal(0);
      }
    });
  });
}
