// Bad input never crashes the MySQL protocol: captured client streams and target replies that are cut,
// corrupted, duplicated or not MySQL at all are replayed through the real session engine (EngineRig, the
// engine's own defaults: -t 120 s, -k 240 s) against a simulated target. No exception escapes, no hook
// throws into the engine (protocolFaults 0), every session ends within bounded simulated time, and a client
// stream that is not MySQL is given up and counted (streamsCorrupt, or the skip counter that names why).
import { conversation, EngineRig, scriptResponder, view, type Responder, type SimOptions } from '@tcpcopy/core/compliance';
import type { ClientDataInfo, ProtocolOptions, SessionProtocol } from '@tcpcopy/core';
import { expect } from 'chai';
import fc from 'fast-check';
import { createProtocol, type MysqlStats } from '../src';
import { nativePasswordToken } from '../src/auth/native-password';
import { Capability } from '../src/wire/constants';
import { frame, parseHandshakeResponse } from '../src/wire/handshake';
import {
  adminConversation,
  command,
  greeting,
  handshakeResponse,
  ok,
  SERVER_CAPS,
  sslRequest,
  TARGET_SCRAMBLE,
  validConversation,
  type ConversationExchange,
} from './support';

const PASSWORD = 'pw';
const OPTIONS: ProtocolOptions = { user: `app:${PASSWORD}` };
const CLIENT = { ip: '198.51.100.10', port: 40000, isn: 7_000_000 };
/** How long a case may run, simulated: the engine's -t (120 s) and -k (240 s) with plenty to spare. */
const SIMULATED_LIMIT_MS = 600_000;

interface Conversation {
  onlineGreeting: Buffer;
  targetGreeting: Buffer;
  exchanges: ConversationExchange[];
}
const CONVERSATIONS: Conversation[] = [validConversation(PASSWORD), adminConversation(PASSWORD)];
const MAIN = CONVERSATIONS[0];

/** One captured client packet and the bytes the online server answered after it (the client's ACK moves by them). */
interface Item {
  bytes: Buffer;
  response: number;
}

const itemsOf = (conv: Conversation): Item[] => conv.exchanges.map((e) => ({ bytes: e.client, response: e.server.length }));

interface Case {
  conv?: Conversation;
  items: Item[];
  /** The connection's SYN was captured (else it is resumed). */
  syn?: boolean;
  fin?: boolean;
  mss?: number;
  burst?: boolean;
  /** Index of a captured data segment the capture lost. */
  lostSegment?: number | null;
  /** What the target says: a scripted conversation by default. */
  responder?: Responder;
  sim?: SimOptions;
  options?: ProtocolOptions;
}

interface Outcome {
  rig: EngineRig;
  stats: MysqlStats;
  escaped: unknown;
  /** Simulated ms until the engine had no session left, -1 when some was left at the limit. */
  endedAfter: number;
  /** Every byte the target received, over all its connections. */
  received: Buffer;
  /** The client bytes the first session was given (the capture's, less a lost segment, up to the session's end). */
  delivered: Buffer;
}

/** Replays one case to the end: captured, then the clock run until no session is left (bounded). */
function replay(c: Case): Outcome {
  const conv = c.conv ?? MAIN;
  const protocol = createProtocol(c.options ?? OPTIONS);
  const given: Buffer[][] = [];
  const rig = new EngineRig({ protocol: recording(protocol, given), sim: { ...c.sim, responder: c.responder ?? scriptResponder(conv.exchanges, conv.targetGreeting) } });
  let packets = conversation(CLIENT, c.items.map((i) => ({ request: i.bytes, response: i.response })), {
    syn: c.syn ?? true,
    fin: c.fin ?? true,
    mss: c.mss,
    greeting: conv.onlineGreeting.length,
  });
  const data = packets.filter((p) => view(p).payloadLength > 0);
  if (c.lostSegment != null && data.length > 0) {
    const lost = data[c.lostSegment % data.length];
    packets = packets.filter((p) => p !== lost);
  }
  let escaped: unknown = null;
  let endedAfter = -1;
  const start = rig.t;
  try {
    if (c.burst) rig.captureBurst(packets);
    else for (const p of packets) rig.capture(p);
    rig.advance(2000); // the conversation, in 5 ms steps
    while (rig.engine.size > 0 && rig.t - start < SIMULATED_LIMIT_MS) {
      // Then the timeouts, in 1 s steps.
      rig.t += 1000;
      rig.engine.tick(rig.t);
      rig.settle();
    }
    if (rig.engine.size === 0) endedAfter = rig.t - start;
  } catch (err) {
    escaped = err;
  }
  return {
    rig,
    stats: protocol.stats!() as unknown as MysqlStats,
    escaped,
    endedAfter,
    received: Buffer.concat(rig.sim.history.map((s) => s.bytes)),
    delivered: Buffer.concat(given[0] ?? []),
  };
}

/** `protocol`, with the client bytes each of its sessions is given copied to `given` (one list per session). */
function recording(protocol: SessionProtocol, given: Buffer[][]): SessionProtocol {
  return {
    ...protocol,
    createSession(ctx) {
      const inner = protocol.createSession(ctx);
      const mine: Buffer[] = [];
      given.push(mine);
      return new Proxy(inner, {
        get(target, key) {
          if (key === 'onClientData') {
            return (data: Buffer, info: ClientDataInfo) => {
              mine.push(Buffer.from(data));
              return target.onClientData!(data, info);
            };
          }
          const v = Reflect.get(target, key) as unknown;
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
    },
  };
}

/** Why the protocol gave a connection up, summed: each names a reason; any of them counts the connection. */
function givenUp(s: MysqlStats): number {
  return s.streamsCorrupt + s.targetUnreadable + s.skippedTls + s.skippedCompressed + s.skippedNoPassword + s.skippedNoLogin + s.skippedUnsupportedAuth + s.loginsRefused;
}

/** No exception, no hook that threw, no session left: asserted for every case. */
function expectSurvived(o: Outcome, what = ''): void {
  const context = `\n${what ? `${what}\n` : ''}warnings: ${o.rig.warnings.join('\n  ')}`;
  expect(o.escaped, `an exception escaped: ${(o.escaped as Error)?.stack ?? o.escaped}${context}\n`).to.equal(null);
  expect(o.rig.engine.stats.protocolFaults, `hooks that threw into the engine${context}`).to.equal(0);
  expect(o.endedAfter, `sessions still open after ${SIMULATED_LIMIT_MS / 1000} s simulated${context}`).to.be.at.least(0);
}

/** The client's stream cut into MySQL packets the simple way: the packets, and the bytes of an incomplete last one. */
function framePackets(stream: Buffer): { packets: Array<{ seq: number; payload: Buffer }>; tail: number } {
  const packets: Array<{ seq: number; payload: Buffer }> = [];
  let at = 0;
  while (stream.length - at >= 4) {
    const length = stream.readUIntLE(at, 3);
    if (at + 4 + length > stream.length) break;
    packets.push({ seq: stream[at + 3], payload: stream.subarray(at + 4, at + 4 + length) });
    at += 4 + length;
  }
  return { packets, tail: stream.length - at };
}

/** A greeting without SECURE_CONNECTION or PLUGIN_AUTH_LENENC_CLIENT_DATA: auth answers travel NUL-terminated. */
const NO_SECURE = ~(Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA);
const LOGIN_CAPS = handshakeCaps(MAIN.exchanges[0].client);

function handshakeCaps(login: Buffer): number {
  return login.readUInt32LE(4);
}

/** A target that greets with `greet` and answers every packet with OK. */
function okTarget(greet: Buffer): Responder {
  return { onConnect: () => [greet], onData: () => [ok(2)] };
}

describe('mysql: bad input never crashes the protocol; the connection is given up and counted', function () {
  this.timeout(20_000);

  describe('the conversations the mutations start from', () => {
    CONVERSATIONS.forEach((conv, i) => {
      it(`conversation ${i + 1} replays exactly, ending cleanly`, () => {
        const o = replay({ conv, items: itemsOf(conv) });
        expectSurvived(o);
        expect(o.received.toString('hex')).to.equal(Buffer.concat(conv.exchanges.map((e) => e.expect)).toString('hex'));
        expect(givenUp(o.stats)).to.equal(0);
        expect(o.stats.loginsReplayed).to.equal(1);
        expect(o.rig.engine.stats.sessionsCompleted).to.equal(1);
        expect(o.rig.engine.stats.idleReleases).to.equal(0);
      });
    });
  });

  describe('hand-written cases', () => {
    const login = MAIN.exchanges[0];

    it('a login packet cut in the middle, then FIN: nothing reaches the target, the session completes, streamsCorrupt 1', () => {
      const o = replay({ items: [{ bytes: login.client.subarray(0, 30), response: 0 }] });
      expectSurvived(o);
      expect(o.received.length, 'bytes the target received').to.equal(0);
      expect(o.rig.sim.history, 'target connections').to.have.length(1);
      expect(o.stats).to.include({ streamsCorrupt: 1, loginsReplayed: 0, commands: 0 });
      expect(givenUp(o.stats)).to.equal(1);
      expect(o.rig.engine.stats).to.include({ sessionsCompleted: 1, sessionsAborted: 0 });
    });

    it('a login packet cut in the middle and no FIN (the capture ends): the session idles out at -k, streamsCorrupt 1', () => {
      const o = replay({ items: [{ bytes: login.client.subarray(0, 30), response: 0 }], fin: false });
      expectSurvived(o);
      expect(o.received.length).to.equal(0);
      expect(o.stats).to.include({ streamsCorrupt: 1, loginsReplayed: 0 });
      expect(o.rig.engine.stats.idleTimeouts).to.equal(1);
      expect(o.endedAfter, 'ended within -k (240 s) and the linger').to.be.at.most(245_000);
    });

    for (const length of [0xffffff, 0xfffffe]) {
      it(`a command whose length field says ${length.toString(16)} (16 MB), then FIN: the login and the query before it go, it does not; streamsCorrupt 1`, () => {
        const huge = Buffer.from(command(0x03, 'SELECT c FROM t WHERE n > 0'));
        huge.writeUIntLE(length, 0, 3);
        const query = MAIN.exchanges[1];
        const o = replay({ items: [itemsOf(MAIN)[0], itemsOf(MAIN)[1], { bytes: huge, response: 0 }] });
        expectSurvived(o);
        expect(o.received.toString('hex'), 'the target got the login and the query, nothing more').to.equal(Buffer.concat([login.expect, query.expect]).toString('hex'));
        expect(o.stats).to.include({ loginsReplayed: 1, commands: 1, answersOk: 1, streamsCorrupt: 1 });
        expect(givenUp(o.stats)).to.equal(1);
        expect(o.rig.engine.stats.sessionsCompleted).to.equal(1);
      });
    }

    it('a corrupt length field, and the client gone before the target greets: the login still goes, before the FIN', () => {
      // The capture is done (the client's FIN included) while the target has not greeted yet: the FIN must wait for
      // the login replayed behind it (it went first, and the target got nothing, when the greeting came late).
      const bad = Buffer.from(command(0x03, 'UPDATE t SET n = 0 WHERE id = 4'));
      bad.writeUIntLE(0xabcd, 0, 3); // 43,981 bytes said, a few dozen follow
      const rig = new EngineRig({ protocol: createProtocol(OPTIONS), sim: { holdGreeting: true, responder: okTarget(MAIN.targetGreeting) } });
      const items = [itemsOf(MAIN)[0], { bytes: bad, response: 11 }, { bytes: Buffer.from(command(0x03, 'SELECT 5')), response: 11 }];
      for (const p of conversation(CLIENT, items.map((i) => ({ request: i.bytes, response: i.response })), { greeting: MAIN.onlineGreeting.length, mss: 7 })) {
        rig.capture(p);
      }
      rig.advance(200);
      expect(rig.sim.history[0]?.bytes.length ?? 0, 'nothing before the greeting').to.equal(0);
      rig.sim.releaseGreetings();
      rig.advance(2000);
      const received = Buffer.concat(rig.sim.history.map((c) => c.bytes));
      expect(received.toString('hex'), 'the login, nothing of the bad bytes').to.equal(login.expect.toString('hex'));
      expect(rig.sim.history, 'one target connection').to.have.length(1);
      expect(rig.engine.stats).to.include({ sessionsCompleted: 1, protocolFaults: 0 });
    });

    it('an SSLRequest, then a TLS ClientHello: skippedTls 1, nothing sent to the target after the handshake', () => {
      const clientHello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]), Buffer.alloc(0x40, 0xa5)]);
      const o = replay({ items: [{ bytes: sslRequest(), response: 0 }, { bytes: clientHello, response: 2000 }, { bytes: Buffer.alloc(300, 0x17), response: 500 }] });
      expectSurvived(o);
      expect(o.rig.sim.history, 'target connections').to.have.length(1);
      expect(o.received.length, 'bytes the target received').to.equal(0);
      expect(o.stats).to.include({ skippedTls: 1, streamsCorrupt: 0, loginsReplayed: 0, commands: 0 });
      expect(givenUp(o.stats)).to.equal(1);
    });

    it('a HandshakeResponse asking for CLIENT_COMPRESS, then compressed packets: skippedCompressed 1, nothing sent to the target', () => {
      const compressedLogin = handshakeResponse({ caps: (LOGIN_CAPS | Capability.COMPRESS) >>> 0 });
      // Compressed packets: a 7-byte header (compressed length, sequence id, uncompressed length), then zlib bytes.
      const compressed = Buffer.concat([Buffer.from([0x0c, 0, 0, 0, 0x20, 0, 0]), Buffer.from('789c63606060000000040001', 'hex')]);
      const o = replay({ items: [{ bytes: compressedLogin, response: 11 }, { bytes: compressed, response: 11 }] });
      expectSurvived(o);
      expect(o.received.length, 'bytes the target received').to.equal(0);
      expect(o.stats).to.include({ skippedCompressed: 1, streamsCorrupt: 0, loginsReplayed: 0, commands: 0 });
      expect(givenUp(o.stats)).to.equal(1);
    });

    it('garbage before the login: streamsCorrupt 1, nothing sent', () => {
      const o = replay({ items: [{ bytes: Buffer.from('GET / HTTP/1.1\r\nHost: db\r\n\r\n'), response: 0 }, ...itemsOf(MAIN)] });
      expectSurvived(o);
      expect(o.received.length).to.equal(0);
      expect(o.stats).to.include({ streamsCorrupt: 1, loginsReplayed: 0 });
    });

    it('a target whose greeting is garbage: the connection is given up, counted, nothing sent', () => {
      const o = replay({ items: itemsOf(MAIN), responder: okTarget(frame(0, Buffer.from('SSH-2.0-OpenSSH_9.2p1\r\n'))) });
      expectSurvived(o);
      expect(o.received.length).to.equal(0);
      expect(o.stats).to.include({ targetUnreadable: 1, streamsCorrupt: 0, loginsReplayed: 0, commands: 0 });
    });

    it('a target whose greeting is cut short: nothing sent, the session ends', () => {
      const o = replay({ items: itemsOf(MAIN), responder: { onConnect: () => [MAIN.targetGreeting.subarray(0, 40)], onData: () => [] } });
      expectSurvived(o);
      expect(o.received.length).to.equal(0);
      expect(o.stats.loginsReplayed).to.equal(0);
    });
  });

  // Inputs that made a hook throw (protocolFaults, the connection then replayed as raw TCP), each as small as it gets.
  describe('regressions: bad input that made the protocol throw', () => {
    it('COM_CHANGE_USER on a connection whose login lacks CLIENT_SECURE_CONNECTION (auth answers NUL-terminated) does not throw', () => {
      const oldStyle = handshakeResponse({ caps: (LOGIN_CAPS & NO_SECURE) >>> 0, token: Buffer.from('abcdefghijabcdefghij') });
      const cu = command(0x11, Buffer.from('app\0abcdefghijabcdefghij\0\0', 'latin1'));
      const o = replay({ items: [{ bytes: oldStyle, response: 11 }, { bytes: cu, response: 11 }], responder: okTarget(MAIN.targetGreeting) });
      expectSurvived(o, 'session.ts command(): buildChangeUser() with a zero-filled auth placeholder and no SECURE_CONNECTION');
      expect(o.stats.loginsReplayed).to.equal(1);
      expect(o.stats.commands + givenUp(o.stats), 'the change of user replayed, or the connection given up and counted').to.equal(1);
    });

    it('a login without SECURE_CONNECTION whose answer for the target\'s scramble holds a NUL byte does not throw', () => {
      const oldStyle = handshakeResponse({ caps: (LOGIN_CAPS & NO_SECURE) >>> 0, token: Buffer.from('abcdefghijabcdefghij') });
      // A target scramble for which the native-password answer contains a 0 byte (one in about 13 does).
      let scramble = TARGET_SCRAMBLE;
      for (let n = 0; !nativePasswordToken(PASSWORD, scramble).includes(0); n++) scramble = Buffer.from(`TARGET-scramble-${String(n).padStart(4, '0')}`);
      const o = replay({ items: [{ bytes: oldStyle, response: 11 }], responder: okTarget(greeting(scramble)) });
      expectSurvived(o, 'login.ts targetLogin(): buildHandshakeResponse() NUL-terminates an answer that contains a NUL');
      expect(o.stats.loginsReplayed + givenUp(o.stats), 'logged in, or given up and counted').to.equal(1);
    });

    it('a target greeting without SECURE_CONNECTION that asks for mysql_clear_password does not throw', () => {
      const g = greeting(TARGET_SCRAMBLE, { caps: (SERVER_CAPS & NO_SECURE) >>> 0, plugin: 'mysql_clear_password' });
      const o = replay({ items: [itemsOf(MAIN)[0]], responder: okTarget(g) });
      expectSurvived(o, 'login.ts targetLogin(): the clear password answer ends in a NUL, then is NUL-terminated again');
      expect(o.stats.loginsReplayed + givenUp(o.stats), 'logged in, or given up and counted').to.equal(1);
    });

    it('a malformed RSA public key from the target (caching_sha2_password full authentication) does not throw', () => {
      const g = greeting(TARGET_SCRAMBLE, { plugin: 'caching_sha2_password' });
      let round = 0;
      const badKey = Buffer.from('\x01-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n', 'latin1');
      const responder: Responder = {
        onConnect: () => [g],
        // After our login: "perform full authentication"; after our key request: a key that is not one.
        onData: () => (round++ === 0 ? [frame(2, Buffer.from([0x01, 0x04]))] : [frame(4, badKey)]),
      };
      const o = replay({ items: [itemsOf(MAIN)[0]], responder });
      expectSurvived(o, 'login.ts AuthExchange.step(): rsaEncryptedPassword() -> crypto.createPublicKey() throws');
      expect(o.stats.skippedUnsupportedAuth + o.stats.loginsRefused, 'the login given up, counted').to.equal(1);
    });

    it('COM_INIT_DB naming a schema with a NUL byte, then the target drops the connection: logging in again does not throw', () => {
      const initDb = command(0x02, Buffer.from('sh\0p', 'latin1'));
      const items = [itemsOf(MAIN)[0], { bytes: initDb, response: 11 }, { bytes: command(0x03, 'SELECT 1'), response: 11 }];
      // The first connection is reset once it has the login and the COM_INIT_DB; the SELECT goes on a second one.
      const o = replay({ items, responder: okTarget(MAIN.targetGreeting), sim: { resetAfterBytes: MAIN.exchanges[0].expect.length + initDb.length } });
      expectSurvived(o, 'session.ts command(): COM_INIT_DB keeps the schema; login.ts targetLogin() NUL-terminates it on the next login');
      expect(o.rig.sim.history.length, 'target connections').to.equal(2);
      expect(o.stats.loginsReplayed + givenUp(o.stats), 'logged in again, or given up and counted').to.equal(2);
    });
  });

  describe('regressions: bad input that kept a session open', () => {
    it('a connection captured mid-way whose bytes start inside a packet, and no FIN: the session still ends (-k)', () => {
      // The protocol skips the bytes (no command starts there) and emits nothing, so the engine never connects.
      const middle = Buffer.from("'x'),(2,'y'),(3,'z')", 'latin1'); // the end of a long INSERT
      const o = replay({ items: [{ bytes: middle, response: 0 }], syn: false, fin: false });
      expect(o.stats.resyncSkippedBytes, 'bytes skipped looking for a command').to.equal(middle.length);
      expectSurvived(o, 'core/engine session.ts onCaptured(): a CLOSED session with nothing to send and no FIN never arms a deadline');
      expect(o.rig.engine.stats.idleTimeouts, 'ended by -k').to.equal(1);
    });

    it('a target that resets every connection right after its greeting: the session is given up, not reconnected forever', () => {
      const o = replay({ items: itemsOf(MAIN), sim: { resetAfterAnswers: 1 } });
      expectSurvived(o, 'the login goes again on every new connection; the target resets each one');
      expect(o.rig.engine.stats.sessionsReconstructed, 'new connections to the target').to.be.at.most(32);
    });
  });

  describe('fuzz: mutated conversations (fast-check, fixed seed)', () => {
    type Mutation =
      | { kind: 'truncate'; at: number }
      | { kind: 'flip'; at: number; xor: number }
      | { kind: 'length'; packet: number; value: number }
      | { kind: 'seq'; packet: number; value: number }
      | { kind: 'duplicate'; packet: number }
      | { kind: 'drop'; packet: number }
      | { kind: 'garbage'; bytes: Uint8Array };
    type TargetFault =
      | { kind: 'none' }
      | { kind: 'greeting' | 'reply'; how: 'garbage'; index: number; bytes: Uint8Array }
      | { kind: 'greeting' | 'reply'; how: 'cut'; index: number; at: number }
      | { kind: 'greeting' | 'reply'; how: 'flip'; index: number; at: number; xor: number }
      | { kind: 'greeting' | 'reply'; how: 'silent'; index: number };

    const lengthValue = fc.oneof(fc.constantFrom(0, 1, 4, 0xfb, 0xffff, 0x800000, 0xfffffe, 0xffffff), fc.integer({ min: 0, max: 0xffffff }));
    const mutation: fc.Arbitrary<Mutation> = fc.oneof(
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constant('length' as const), packet: fc.nat(), value: lengthValue }),
      fc.record({ kind: fc.constant('seq' as const), packet: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('duplicate' as const), packet: fc.nat() }),
      fc.record({ kind: fc.constant('drop' as const), packet: fc.nat() }),
      fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 80 }) }),
    );
    const targetFault: fc.Arbitrary<TargetFault> = fc.oneof(
      { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
      fc.record({ kind: fc.constantFrom('greeting' as const, 'reply' as const), how: fc.constant('garbage' as const), index: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 120 }) }),
      fc.record({ kind: fc.constantFrom('greeting' as const, 'reply' as const), how: fc.constant('cut' as const), index: fc.nat(), at: fc.nat() }),
      fc.record({ kind: fc.constantFrom('greeting' as const, 'reply' as const), how: fc.constant('flip' as const), index: fc.nat(), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constantFrom('greeting' as const, 'reply' as const), how: fc.constant('silent' as const), index: fc.nat() }),
    );
    const fuzzCase = fc.record({
      conversation: fc.nat({ max: CONVERSATIONS.length - 1 }),
      mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
      target: targetFault,
      syn: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      /** A default user, so a connection without its login may be resumed. */
      defaultUser: fc.boolean(),
      fin: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      mss: fc.oneof(fc.constant(1448), fc.integer({ min: 1, max: 200 })),
      targetMss: fc.oneof(fc.constant(1460), fc.integer({ min: 1, max: 64 })),
      burst: fc.boolean(),
      lostSegment: fc.option(fc.nat(), { freq: 6 }),
      reset: fc.option(fc.integer({ min: 1, max: 4 }), { freq: 6 }),
    });
    type FuzzCase = typeof fuzzCase extends fc.Arbitrary<infer T> ? T : never;

    function mutate(items: Item[], m: Mutation): Item[] {
      const out = items.map((i) => ({ bytes: Buffer.from(i.bytes), response: i.response }));
      const total = out.reduce((n, i) => n + i.bytes.length, 0);
      const pick = (n: number) => n % out.length;
      const locate = (pos: number) => {
        for (let k = 0; k < out.length; k++) {
          if (pos < out[k].bytes.length) return { k, off: pos };
          pos -= out[k].bytes.length;
        }
        return null;
      };
      switch (m.kind) {
        case 'truncate': {
          const where = locate(m.at % (total + 1));
          if (!where) return out;
          out[where.k].bytes = out[where.k].bytes.subarray(0, where.off);
          return out.slice(0, where.k + 1);
        }
        case 'flip': {
          const where = total > 0 ? locate(m.at % total) : null;
          if (where) out[where.k].bytes[where.off] ^= m.xor;
          return out;
        }
        case 'length':
        case 'seq': {
          if (out.length === 0) return out;
          const b = out[pick(m.packet)].bytes;
          if (m.kind === 'length' && b.length >= 3) b.writeUIntLE(m.value, 0, 3);
          if (m.kind === 'seq' && b.length >= 4) b[3] = m.value;
          return out;
        }
        case 'duplicate': {
          if (out.length === 0) return out;
          const k = pick(m.packet);
          // The copy follows at once, as a client that sent it twice.
          out.splice(k, 0, { bytes: Buffer.from(out[k].bytes), response: 0 });
          return out;
        }
        case 'drop':
          if (out.length > 0) out.splice(pick(m.packet), 1);
          return out;
        case 'garbage':
          return [{ bytes: Buffer.from(m.bytes), response: 0 }, ...out];
      }
    }

    function faulty(buf: Buffer, f: Exclude<TargetFault, { kind: 'none' }>): Buffer {
      switch (f.how) {
        case 'garbage':
          return Buffer.from(f.bytes);
        case 'cut':
          return buf.subarray(0, buf.length === 0 ? 0 : f.at % buf.length);
        case 'flip': {
          const b = Buffer.from(buf);
          if (b.length > 0) b[f.at % b.length] ^= f.xor;
          return b;
        }
        case 'silent':
          return Buffer.alloc(0);
      }
    }

    function targetOf(conv: Conversation, f: TargetFault): Responder {
      if (f.kind === 'none') return scriptResponder(conv.exchanges, conv.targetGreeting);
      if (f.kind === 'greeting') {
        const g = faulty(conv.targetGreeting, f);
        return scriptResponder(conv.exchanges, g.length > 0 ? g : undefined);
      }
      const i = f.index % conv.exchanges.length;
      const exchanges = conv.exchanges.map((e, k) => (k === i ? { ...e, server: faulty(e.server, f) } : e));
      return scriptResponder(exchanges, conv.targetGreeting);
    }

    function run(k: FuzzCase): Outcome {
      const conv = CONVERSATIONS[k.conversation];
      let items = itemsOf(conv);
      for (const m of k.mutations) items = mutate(items, m);
      return replay({
        conv,
        items,
        syn: k.syn,
        fin: k.fin,
        mss: k.mss,
        burst: k.burst,
        lostSegment: k.lostSegment,
        responder: targetOf(conv, k.target),
        sim: { mss: k.targetMss, resetAfterAnswers: k.reset ?? undefined },
        options: k.defaultUser ? { ...OPTIONS, 'default-user': 'app' } : OPTIONS,
      });
    }

    it('no exception, no protocol fault, every session ends; a client stream that is not MySQL is given up and counted', () => {
      let notMysql = 0;
      let counted = 0;
      fc.assert(
        fc.property(fuzzCase, (c) => {
          const o = run(c);
          expectSurvived(o, JSON.stringify(c));
          if (!c.syn) return; // a resumed connection: what it skips to find a command is counted elsewhere
          const { packets, tail } = framePackets(o.delivered);
          const loginOk = packets.length === 0 || parseHandshakeResponse(packets[0].payload) !== null;
          if (tail === 0 && loginOk) return;
          // Not MySQL: ends inside a packet (cut, or a length field that lies), or its first packet is no login.
          notMysql++;
          expect(givenUp(o.stats), `not MySQL (tail ${tail} bytes, login ${loginOk ? 'ok' : 'bad'}) but not counted: ${JSON.stringify(o.stats)}`).to.be.at.least(1);
          if (!loginOk) expect(o.received.length, 'bytes sent for a connection whose login is not one').to.equal(0);
          counted++;
        }),
        { seed: 0x6d7973, numRuns: 3000 },
      );
      // The generator must actually produce broken streams, not only harmless ones.
      expect(notMysql, 'cases whose client stream was not MySQL').to.be.greaterThan(1000);
      expect(counted).to.equal(notMysql);
    });
  });
});
