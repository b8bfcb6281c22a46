import { expect } from 'chai';
import { MAX_REPLY_PAYLOAD_BYTES, type ProtocolContext, type ProtocolSession, type SessionProtocol } from '../protocol/session-protocol';
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
  /**
   * A short conversation in the protocol, request by request (two or more). A server-first protocol
   * may leave it out: its serverFirst conversation is then used for every case.
   */
  exchanges?: ComplianceExchange[];
  /**
   * What the protocol sends first on a connection it resumes (a login, say), and the target's answer
   * to it: the resume case then expects it before the rest of the conversation.
   */
  resumePrelude?: { client: Buffer; server: Buffer };
  /**
   * The server-first case, for protocols whose server greets first and whose login depends on the
   * greeting (a salt): the online server's greeting, the target's (another salt), and a conversation
   * that starts with the client's login. The login's `expect` is what the target must get instead.
   */
  serverFirst?: {
    onlineGreeting: Buffer;
    targetGreeting: Buffer;
    /** Login first, then commands (three or more exchanges). */
    exchanges: ComplianceExchange[];
    /** What the protocol sends on a connection resumed after the login, and the target's answer (after its greeting). */
    resumePrelude?: { client: Buffer; server: Buffer };
    /** A connection captured after its login can be resumed (default true; raw TCP cannot know to wait for a greeting). */
    resume?: boolean;
  };
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

/** Every hook a ProtocolSession may have. */
const HOOKS = ['onClientData', 'onOnlineData', 'onConnect', 'onTargetData', 'onIdleRelease', 'onTargetClose', 'mayRelease', 'beforeSend', 'onClose'] as const;

/** Records the order of hook calls of every session a protocol creates (every hook the protocol has passes through). */
function spied(protocol: SessionProtocol, calls: string[][]): SessionProtocol {
  return {
    name: protocol.name,
    replyPayloadBytes: protocol.replyPayloadBytes,
    createSession(ctx: ProtocolContext): ProtocolSession {
      const log = ['createSession'];
      calls.push(log);
      const inner = protocol.createSession(ctx);
      const outer: Record<string, unknown> = {};
      for (const name of HOOKS) {
        const hook = inner[name] as ((...args: unknown[]) => unknown) | undefined;
        if (!hook) continue;
        outer[name] = (...args: unknown[]) => {
          log.push(name);
          return hook.apply(inner, args);
        };
      }
      if (!inner.onClose) outer.onClose = () => log.push('onClose');
      return outer as ProtocolSession;
    },
  };
}

/** Checks a hook log against the documented order. */
function expectHookOrder(log: string[]): void {
  expect(log[0]).to.equal('createSession');
  expect(log.filter((c) => c === 'onClose')).to.have.length(1);
  expect(log[log.length - 1]).to.equal('onClose');
  const firstConnect = log.indexOf('onConnect');
  const afterConnect = ['onTargetData', 'mayRelease', 'beforeSend', 'onIdleRelease', 'onTargetClose'];
  const firstTarget = log.findIndex((c) => afterConnect.includes(c));
  if (firstConnect >= 0 && firstTarget >= 0) expect(firstConnect, log.join(' ')).to.be.lessThan(firstTarget);
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

/** A conversation to replay: request by request, with the servers' greetings when the server speaks first. */
interface Conversation {
  exchanges: ComplianceExchange[];
  onlineGreeting?: Buffer;
  targetGreeting?: Buffer;
  resumePrelude?: { client: Buffer; server: Buffer };
}

interface ReplayOptions {
  mss?: number;
  targetMss?: number;
  protocol?: SessionProtocol;
  /** Capture from this exchange on (the connection's start not captured). */
  from?: number;
  burst?: boolean;
  conv?: Conversation;
  /** The target greets only when the test says (a server slow to greet). */
  holdGreeting?: boolean;
}

/** What the target must receive for a whole conversation. */
function expectedBytes(conv: Conversation): Buffer {
  return Buffer.concat(conv.exchanges.map((e) => e.expect ?? e.client));
}

/** Replays `conv` through the real session engine against a simulated target; returns the rig and what the target got. */
function replayConversation(conv: Conversation, protocol: SessionProtocol, opts: ReplayOptions) {
  const from = opts.from ?? 0;
  const script = conv.exchanges.map((e) => ({ expect: e.expect ?? e.client, server: e.server }));
  const prelude = from > 0 && conv.resumePrelude ? [{ expect: conv.resumePrelude.client, server: conv.resumePrelude.server }] : [];
  const served = [...prelude, ...script.slice(from)];
  let rig: EngineRig | undefined;
  const order = watchOrder(scriptResponder(served, conv.targetGreeting), served, conv.targetGreeting?.length ?? 0, (key) =>
    rig?.repliedBytes.get(key) ?? 0,
  );
  rig = new EngineRig({
    protocol,
    sim: { responder: order.responder, mss: opts.targetMss, holdGreeting: opts.holdGreeting },
    config: { idleReleaseMs: 2000 },
  });
  const packets = conversation(
    CLIENT,
    conv.exchanges.map((e) => ({ request: e.client, response: e.server.length })),
    { mss: opts.mss, greeting: conv.onlineGreeting?.length, syn: from === 0, fromExchange: from },
  );
  if (opts.burst) rig.captureBurst(packets);
  else for (const p of packets) rig.capture(p);
  const finish = () => {
    rig!.advance(100);
    return { rig: rig!, early: order.early(), received: Buffer.concat(rig!.sim.history.map((c) => c.bytes)) };
  };
  if (opts.holdGreeting) {
    // Let time pass with the greeting held back: a server-first protocol must send nothing meanwhile.
    rig.advance(100);
    const before = rig.sim.history.reduce((n, c) => n + c.bytes.length, 0);
    rig.sim.releaseGreetings();
    rig.settle();
    return { ...finish(), sentBeforeGreeting: before };
  }
  return { ...finish(), sentBeforeGreeting: 0 };
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
  const sf = setup.serverFirst;
  const greeted: Conversation | null = sf
    ? { exchanges: sf.exchanges, onlineGreeting: sf.onlineGreeting, targetGreeting: sf.targetGreeting, resumePrelude: sf.resumePrelude }
    : null;
  if (!setup.exchanges && !greeted) throw new Error(`${name}: the compliance setup needs exchanges or serverFirst`);
  const main: Conversation = setup.exchanges ? { exchanges: setup.exchanges, resumePrelude: setup.resumePrelude } : greeted!;
  const expected = expectedBytes(main);

  function replay(opts: ReplayOptions = {}) {
    return replayConversation(opts.conv ?? main, opts.protocol ?? setup.protocol, opts);
  }

  describe(`${name}: SessionProtocol compliance`, () => {
    it('declares a name, the reply bytes it needs and a session factory', () => {
      const p = setup.protocol;
      expect(p.name, 'name').to.be.a('string').and.not.equal('');
      expect(Number.isInteger(p.replyPayloadBytes) && p.replyPayloadBytes >= 0 && p.replyPayloadBytes <= MAX_REPLY_PAYLOAD_BYTES, `replyPayloadBytes in 0..${MAX_REPLY_PAYLOAD_BYTES}`).to.equal(true);
      expect(p.createSession, 'createSession').to.be.a('function');
      expect(main.exchanges.length, 'the setup gives at least two exchanges').to.be.greaterThan(1);
    });

    it('replays the conversation exactly, recognising every response without the idle release', () => {
      const { rig, received } = replay();
      expect(received.toString('latin1')).to.equal(expected.toString('latin1'));
      expect(rig.sim.history[0]?.answered, 'answers the target gave').to.equal(main.exchanges.length + (main.targetGreeting ? 1 : 0));
      expect(rig.engine.stats.protocolFaults, 'hooks that threw').to.equal(0);
      expect(rig.engine.stats.idleReleases, 'requests released only by the idle release').to.equal(0);
      expect(rig.engine.stats.sessionsCompleted, 'sessions closed cleanly').to.equal(1);
    });

    if (sequential) {
      it('sends no request before the target completed the previous response, even when all were captured at once', () => {
        const { rig, early, received } = replay({ burst: true });
        expect(received.toString('latin1')).to.equal(expected.toString('latin1'));
        expect(rig.engine.stats.idleReleases, 'requests released only by the idle release').to.equal(0);
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
      expect(rig.engine.stats.idleReleases).to.equal(0);
      expect(rig.engine.stats.protocolFaults).to.equal(0);
    });

    if (resume) {
      it('resumes a connection captured from its second request on', () => {
        const { rig, received } = replay({ from: 1 });
        const rest = Buffer.concat([...(main.resumePrelude ? [main.resumePrelude.client] : []), expectedBytes({ exchanges: main.exchanges.slice(1) })]);
        expect(received.toString('latin1')).to.equal(rest.toString('latin1'));
        expect(rig.engine.stats.protocolFaults).to.equal(0);
        expect(rig.engine.stats.sessionsFakedHandshake).to.equal(1);
      });
    }

    it('calls the hooks in the documented order, onClose exactly once and last', () => {
      const calls: string[][] = [];
      replay({ protocol: spied(setup.protocol, calls) });
      expect(calls).to.have.length(1);
      expectHookOrder(calls[0]);
    });

    if (greeted) {
      const login = expectedBytes({ exchanges: greeted.exchanges.slice(0, 1) });
      it('server first: sends nothing before the target greets, then the login made for its greeting, then the commands', () => {
        const { rig, received, early, sentBeforeGreeting } = replay({ conv: greeted, holdGreeting: true });
        expect(sentBeforeGreeting, 'bytes sent before the target greeted').to.equal(0);
        expect(received.toString('latin1')).to.equal(expectedBytes(greeted).toString('latin1'));
        expect(received.subarray(0, login.length).toString('hex'), 'the login, for the target\'s greeting').to.equal(login.toString('hex'));
        expect(early, 'requests that reached the target before the previous answer').to.equal(0);
        expect(rig.engine.stats.idleReleases, 'requests released only by the idle release').to.equal(0);
        expect(rig.engine.stats.protocolFaults, 'hooks that threw').to.equal(0);
        expect(rig.engine.stats.sessionsCompleted, 'sessions closed cleanly').to.equal(1);
      });

      it('server first: the same when everything was captured before the target answered anything', () => {
        const { rig, received, early } = replay({ conv: greeted, burst: true });
        expect(received.toString('latin1')).to.equal(expectedBytes(greeted).toString('latin1'));
        expect(early, 'requests that reached the target before the previous answer').to.equal(0);
        expect(rig.engine.stats.idleReleases).to.equal(0);
      });

      if (sf!.resume ?? true) {
        it('server first: resumes a connection captured after its login, logging in first', () => {
          const { rig, received, early } = replay({ conv: greeted, from: 1, holdGreeting: true });
          const rest = Buffer.concat([...(greeted.resumePrelude ? [greeted.resumePrelude.client] : []), expectedBytes({ exchanges: greeted.exchanges.slice(1) })]);
          expect(received.toString('latin1')).to.equal(rest.toString('latin1'));
          expect(early, 'requests that reached the target before the previous answer').to.equal(0);
          expect(rig.engine.stats.protocolFaults).to.equal(0);
          expect(rig.engine.stats.sessionsFakedHandshake).to.equal(1);
        });
      }

      it('server first: calls the hooks in the documented order', () => {
        const calls: string[][] = [];
        replay({ conv: greeted, holdGreeting: true, protocol: spied(setup.protocol, calls) });
        expect(calls).to.have.length(1);
        expectHookOrder(calls[0]);
      });
    }

    it('never throws on garbage from the client or the target', () => {
      const rnd = prng(0x5eed);
      for (let round = 0; round < 30; round++) {
        const junk = () => Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256)));
        const garbage: Responder = { onConnect: () => (rnd() < 0.5 ? [junk()] : []), onData: () => [junk()] };
        const rig = new EngineRig({ protocol: setup.protocol, sim: { responder: garbage }, config: { idleReleaseMs: 20 } });
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
