import { expect } from 'chai';
import { TCP_ACK, TCP_PSH } from '../src/decode/tcp-packet';
import { buildPacket } from '../src/compliance/packets';
import type { SessionProtocol } from '../src/protocol/session-protocol';
import { conversation, EngineRig, type Exchange } from '../src/compliance/engine-rig';
import { scriptResponder } from '../src/compliance/sim-target';

const client = { ip: '198.51.100.10', port: 40000, isn: 1_000_000 };
const exchanges: Array<Exchange & { request: string }> = [
  { request: 'GET a 300\n', response: 300 },
  { request: 'GET b 5000\n', response: 5000 },
  { request: 'GET c 10\n', response: 10 },
];
const expected = exchanges.map((e) => e.request).join('');

function only<T>(m: Map<string, T>): T {
  expect(m.size, 'connections at the target').to.equal(1);
  return [...m.values()][0];
}

describe('session engine (simulated target)', () => {
  it('replays a full connection byte for byte and closes it cleanly', () => {
    const rig = new EngineRig();
    for (const p of conversation(client, exchanges)) rig.capture(p);
    rig.advance(50);
    expect(only(rig.sim.streams())).to.equal(expected);
    expect(rig.engine.stats.sessionsCompleted).to.equal(1);
    expect(rig.engine.stats.sessionsAborted).to.equal(0);
    expect(rig.sim.badChecksums).to.equal(0);
  });

  it('closes cleanly when the target closes first, racing the client\'s FIN', () => {
    const rig = new EngineRig({ sim: { closeAfterAnswer: true } });
    for (const p of conversation(client, [{ request: 'GET a 93\n', response: 93 }])) rig.capture(p);
    rig.advance(50);
    expect(rig.sim.history).to.have.length(1);
    expect(only(rig.sim.streams())).to.equal('GET a 93\n');
    expect(rig.engine.stats.sessionsReconstructed).to.equal(0);
    expect(rig.engine.stats.sessionsCompleted).to.equal(1);
  });

  it('holds a request until the target has answered the previous one', () => {
    const rig = new EngineRig();
    const pkts = conversation(client, exchanges);
    // Hand everything over at once, as a fast offline replay does; gating must still order it.
    const events: string[] = [];
    const origReceive = rig.sim.receive.bind(rig.sim);
    rig.sim.receive = (b: Buffer) => {
      origReceive(b);
      events.push(rig.sim.log[rig.sim.log.length - 1] ?? '');
    };
    for (const p of pkts) rig.capture(p);
    rig.advance(20);
    const dataLines = rig.sim.log.filter((l) => l.includes(' data '));
    expect(dataLines.map((l) => l.split(' data ')[1])).to.deep.equal(['GET a 300|', 'GET b 5000|', 'GET c 10|']);
    // Every answer of the sim goes out synchronously, so a request logged after an answer was gated on it.
    expect(rig.sim.conns.size).to.equal(1);
  });

  it('does not send the next request before the response bytes arrived', () => {
    const rig = new EngineRig({ sim: { dropDataPacket: 1 } });
    // The first request is lost once: its response (and so request 2) must wait for the retransmission.
    for (const p of conversation(client, exchanges)) rig.capture(p);
    expect(only(rig.sim.streams())).to.equal('');
    rig.advance(1000);
    expect(only(rig.sim.streams())).to.equal(expected);
    expect(rig.engine.stats.retransmissions).to.be.greaterThan(0);
  });

  it('fakes a handshake for a connection whose start was not captured', () => {
    const rig = new EngineRig();
    for (const p of conversation(client, exchanges, { syn: false, fromExchange: 1 })) rig.capture(p);
    rig.advance(50);
    expect(only(rig.sim.streams())).to.equal(exchanges[1].request + exchanges[2].request);
    expect(rig.engine.stats.sessionsFakedHandshake).to.equal(1);
  });

  it('skips such connections with -O', () => {
    const rig = new EngineRig({ config: { onlyFullSessions: true } });
    for (const p of conversation(client, exchanges, { syn: false, fromExchange: 1 })) rig.capture(p);
    rig.advance(50);
    expect(rig.sim.conns.size).to.equal(0);
    expect(rig.engine.stats.capturedSkippedNoSession).to.be.greaterThan(0);
  });

  it('drops capture duplicates and reorders out-of-order segments', () => {
    const rig = new EngineRig();
    const pkts = conversation(client, [{ request: 'x'.repeat(4000) + ' 10\n', response: 10 }]);
    // SYN, ACK, d1, d2, d3, FIN → SYN, ACK, d1, d3, d2, d2(dup), d1(dup), FIN
    const [syn, ack, d1, d2, d3, fin] = pkts;
    for (const p of [syn, ack, d1, d3, d2, d2, d1, fin]) rig.capture(p);
    rig.advance(50);
    expect(only(rig.sim.streams())).to.equal('x'.repeat(4000) + ' 10\n');
    expect(rig.engine.stats.capturedDuplicates).to.be.greaterThan(0);
  });

  it('splits a segment larger than the target MSS (GRO captures)', () => {
    const rig = new EngineRig({ sim: { mss: 536 } });
    const big = 'y'.repeat(60_000) + ' 5\n';
    for (const p of conversation(client, [{ request: big, response: 5 }], { mss: 65_000 })) rig.capture(p);
    rig.advance(50);
    expect(only(rig.sim.streams())).to.equal(big);
    expect(rig.sim.badChecksums).to.equal(0);
  });

  it('survives sequence numbers wrapping around 2^32', () => {
    const rig = new EngineRig();
    const wrapping = { ...client, isn: 2 ** 32 - 700 };
    for (const p of conversation(wrapping, exchanges, { serverIsn: 2 ** 32 - 100 })) rig.capture(p);
    rig.advance(50);
    expect(only(rig.sim.streams())).to.equal(expected);
  });

  it('rebuilds the connection when the target resets it with requests left', () => {
    const rig = new EngineRig({ sim: { resetAfterAnswers: 1 } });
    for (const p of conversation(client, exchanges)) rig.capture(p);
    rig.advance(200);
    const streams = rig.sim.history.map((c) => c.bytes.toString('latin1'));
    expect(streams.join('')).to.equal(expected);
    expect(rig.engine.stats.sessionsReconstructed).to.equal(2);
  });

  it('sends correct checksums even when the captured packet carried a partial one', () => {
    const rig = new EngineRig();
    const pkts = conversation(client, [{ request: 'GET p 1\n', response: 1 }], { fin: false });
    const [syn, ack, data] = pkts;
    const v = buildPacket({
      src: client.ip, sport: client.port, dst: '198.51.100.20', dport: 80,
      seq: client.isn + 1, ack: 5001, flags: TCP_ACK | TCP_PSH, payload: Buffer.from('GET p 1\n'), partialChecksum: true,
    });
    expect(v.equals(data)).to.equal(false);
    for (const p of [syn, ack, v]) rig.capture(p);
    rig.advance(20);
    expect(only(rig.sim.streams())).to.equal('GET p 1\n');
    expect(rig.sim.badChecksums).to.equal(0);
  });

  it('rewrites client addresses with -c and keeps two clients on one fake address apart', () => {
    const rig = new EngineRig({ clients: [0xcb007105] }); // 203.0.113.5
    const a = conversation({ ip: '198.51.100.10', port: 40000, isn: 1 }, exchanges);
    const b = conversation({ ip: '198.51.100.11', port: 40000, isn: 2 }, exchanges);
    for (let i = 0; i < a.length; i++) {
      rig.capture(a[i]);
      rig.capture(b[i]);
    }
    rig.advance(50);
    const keys = [...rig.sim.conns.keys()];
    expect(keys).to.have.length(2);
    expect(keys.every((k) => k.startsWith('203.0.113.5:'))).to.equal(true);
    expect(new Set(keys).size).to.equal(2);
    for (const s of rig.sim.streams().values()) expect(s).to.equal(expected);
  });

  it('moves client ports on a second pass so it never meets the first', () => {
    const rig = new EngineRig();
    for (const p of conversation(client, exchanges)) rig.capture(p);
    rig.advance(50);
    rig.engine.closeAll(rig.t);
    rig.engine.startPass(1);
    for (const p of conversation(client, exchanges)) rig.capture(p);
    rig.advance(50);
    const keys = [...rig.sim.conns.keys()];
    expect(keys).to.have.length(2);
    for (const s of rig.sim.streams().values()) expect(s).to.equal(expected);
  });

  it('releases held data after the idle release when the target answers shorter', () => {
    const rig = new EngineRig({ config: { idleReleaseMs: 100 } });
    // Online the first response was 900 bytes; the target answers 300.
    const ex = [{ request: 'GET a 300\n', response: 900 }, { request: 'GET b 1\n', response: 1 }];
    for (const p of conversation(client, ex)) rig.capture(p);
    expect(only(rig.sim.streams())).to.equal('GET a 300\n');
    rig.advance(300);
    expect(only(rig.sim.streams())).to.equal('GET a 300\nGET b 1\n');
    expect(rig.engine.stats.idleReleases).to.equal(1);
  });
});

describe('session engine: copies, sampling, no-wait, lost capture packets', () => {
  const one: Array<Exchange & { request: string }> = [
    { request: 'GET a 100\n', response: 100 },
    { request: 'GET b 10\n', response: 10 },
  ];

  it('-n 3 replays every connection three times on distinct client ports', () => {
    const rig = new EngineRig({ config: { copies: 3 } });
    for (const p of conversation(client, one)) rig.capture(p);
    rig.advance(50);
    const streams = [...rig.sim.streams().entries()];
    expect(streams).to.have.length(3);
    expect(new Set(streams.map(([k]) => k)).size).to.equal(3);
    for (const [, s] of streams) expect(s).to.equal('GET a 100\nGET b 10\n');
    expect(rig.engine.stats.sessionsCompleted).to.equal(3);
  });

  it('-f moves every client port by 2048 per factor', () => {
    const rig = new EngineRig({ config: { portFactor: 2 } });
    for (const p of conversation(client, one)) rig.capture(p);
    rig.advance(50);
    expect([...rig.sim.conns.keys()]).to.deep.equal([`198.51.100.10:${client.port + 4096}`]);
  });

  it('-r 50 replays about half of the connections, each whole or not at all', () => {
    const rig = new EngineRig({ config: { samplePercent: 50 } });
    const n = 400;
    for (let i = 0; i < n; i++) {
      for (const p of conversation({ ip: `198.51.100.${10 + (i % 50)}`, port: 20000 + i, isn: i * 1000 }, one)) rig.capture(p);
    }
    rig.advance(50);
    const replayed = rig.sim.conns.size;
    expect(replayed).to.be.within(n * 0.4, n * 0.6);
    for (const s of rig.sim.streams().values()) expect(s).to.equal('GET a 100\nGET b 10\n');
    expect(rig.engine.stats.sessionsCompleted).to.equal(replayed);
  });

  it('-g starts at 1% and ramps up by 1% a second', () => {
    const rig = new EngineRig({ config: { gradual: true } });
    let early = 0;
    for (let i = 0; i < 300; i++) {
      for (const p of conversation({ ip: '198.51.100.10', port: 20000 + i, isn: i * 1000 }, one)) rig.capture(p);
    }
    early = rig.sim.conns.size;
    rig.t += 60_000;
    for (let i = 300; i < 600; i++) {
      for (const p of conversation({ ip: '198.51.100.10', port: 20000 + i, isn: i * 1000 }, one)) rig.capture(p);
    }
    const later = rig.sim.conns.size - early;
    expect(early).to.be.lessThan(20);
    expect(later).to.be.within(120, 240);
  });

  it('-W sends the next request without waiting for the response', () => {
    const silent = { onData: () => [] as Buffer[] };
    const received = (noWait: boolean) => {
      const rig = new EngineRig({ config: { noWait }, sim: { responder: silent } });
      for (const p of conversation(client, one, { fin: false })) rig.capture(p);
      return only(rig.sim.streams());
    };
    expect(received(false)).to.equal('GET a 100\n');
    expect(received(true)).to.equal('GET a 100\nGET b 10\n');
  });

  it('skips a hole the capture left in the client stream, counted, and replays what follows', () => {
    const rig = new EngineRig({ config: { captureGapMs: 200 } });
    const pkts = conversation(client, [{ request: 'x'.repeat(3000) + ' 5\n', response: 5 }]);
    // SYN, ACK, d1, d2, d3, FIN: the capture lost d2.
    for (const p of [pkts[0], pkts[1], pkts[2], pkts[4], pkts[5]]) rig.capture(p);
    rig.advance(100);
    expect(rig.engine.stats.captureGaps).to.equal(0);
    rig.advance(300);
    expect(rig.engine.stats.captureGaps).to.equal(1);
    expect(rig.engine.stats.captureGapBytes).to.equal(1448);
    expect(only(rig.sim.streams()).length).to.equal(3003 - 1448);
  });
});

describe('session engine: protocol-framed streams', () => {
  /** Emits each request line in two chunks with the same tag; requests go one at a time. */
  const splitting: SessionProtocol = {
    name: 'split',
    replyPayloadBytes: 100,
    createSession(ctx) {
      let n = 0;
      let pending = '';
      return {
        onClientData(data) {
          const lines = (pending + data.toString('latin1')).split('\n');
          pending = lines.pop() ?? '';
          for (const l of lines) {
            n++;
            ctx.emit(Buffer.from(l.slice(0, 4), 'latin1'), n);
            ctx.emit(Buffer.from(l.slice(4) + '\n', 'latin1'), n);
          }
        },
      };
    },
  };

  it('a reconnect sends a half-acknowledged request again from its start', () => {
    const rig = new EngineRig({ protocol: splitting, sim: { resetAfterBytes: 'GET a 100\n'.length + 4 } });
    for (const p of conversation(client, [{ request: 'GET a 100\n', response: 100 }, { request: 'GET b 10\n', response: 10 }])) rig.capture(p);
    rig.advance(100);
    const streams = rig.sim.history.map((c) => c.bytes.toString('latin1'));
    expect(streams[0]).to.equal('GET a 100\nGET ');
    expect(streams[1]).to.equal('GET b 10\n');
    expect(rig.engine.stats.sessionsReconstructed).to.equal(1);
  });

  it('hands the protocol only new target bytes, with the gap before them', () => {
    const seen: Array<[number, number, number]> = [];
    const watching: SessionProtocol = {
      name: 'watch',
      replyPayloadBytes: 65000,
      createSession: () => ({ onTargetData: (data, length, info) => void seen.push([data.length, length, info.gap]) }),
    };
    const rig = new EngineRig({ protocol: watching, sim: { mss: 100 } });
    // Intercept misses the second reply packet: the protocol is told of a 100-byte gap.
    const origReplies = rig.replies;
    let n = 0;
    const keep = origReplies.push.bind(origReplies);
    origReplies.push = (...items: Buffer[]) => {
      for (const p of items) if (!(p.length > 60 && ++n === 2)) keep(p);
      return origReplies.length;
    };
    for (const p of conversation(client, [{ request: 'GET a 300\n', response: 300 }])) rig.capture(p);
    rig.advance(50);
    expect(seen).to.deep.equal([[100, 100, 0], [100, 100, 100]]);
  });
});

describe('session engine: what a protocol sends first, holds, drops or rewrites', () => {
  /**
   * Server-first in miniature: every client line is held (beforeSend) until the target's first reply,
   * then two packets of ours go ahead of them (emitNext), in the order emitted; lines starting with "x"
   * are dropped, and "N" in a line becomes the connection number at send time (same length) or, for
   * lines ending in "+", a longer line.
   */
  const gated = (opts: { connections: number[] }): SessionProtocol => ({
    name: 'gated',
    replyPayloadBytes: 100,
    createSession(ctx) {
      let ready = false;
      let n = 0;
      return {
        onClientData(data) {
          for (const l of data.toString('latin1').split(/(?<=\n)/)) ctx.emit(Buffer.from(l, 'latin1'), ++n);
        },
        onConnect() {
          ready = false;
          opts.connections.push(1);
        },
        onTargetData() {
          if (ready) return;
          ready = true;
          ctx.emitNext(Buffer.from('LOGIN 5\n'), -2);
          ctx.emitNext(Buffer.from('SETUP 5\n'), -3);
        },
        mayRelease: () => true,
        beforeSend(tag, data) {
          if (tag < -1) return true;
          if (!ready) return false;
          if (data[0] === 0x78) return 'drop';
          const text = data.toString('latin1').replace('N', String(opts.connections.length));
          if (text.endsWith('+\n')) return Buffer.from(text.replace('+\n', ' and more\n'), 'latin1');
          data.write(text, 'latin1');
          return true;
        },
      };
    },
  });

  it('holds client bytes until the target speaks, puts the protocol\'s packets first in order, drops and rewrites at send time', () => {
    const connections: number[] = [];
    const rig = new EngineRig({ protocol: gated({ connections }), sim: { responder: scriptResponder([
      { expect: Buffer.from('LOGIN 5\n'), server: Buffer.from('ok') },
      { expect: Buffer.from('SETUP 5\n'), server: Buffer.from('ok') },
      { expect: Buffer.from('GET N1 5\n'), server: Buffer.alloc(5, 'a') },
      { expect: Buffer.from('GET 3+ and more\n'), server: Buffer.alloc(5, 'b') },
    ], Buffer.from('hello')) } });
    const pkts = conversation(client, [{ request: 'GET N1 5\nxdrop me\nGET 3+\n', response: 10 }]);
    for (const p of pkts) rig.capture(p);
    rig.advance(100);
    expect(rig.sim.history[0].bytes.toString('latin1')).to.equal('LOGIN 5\nSETUP 5\nGET 11 5\nGET 3 and more\n');
    expect(rig.engine.stats.protocolFaults).to.equal(0);
  });
});

describe('session engine: a connection the protocol refuses', () => {
  const refusing: SessionProtocol = { name: 'refusing', replyPayloadBytes: 0, createSession: () => ({ onConnect: () => false }) };

  it('stays refused as a whole: its later packets are absorbed, not taken for new connections', () => {
    const rig = new EngineRig({ protocol: refusing });
    const pkts = conversation(client, [{ request: 'GET a 10\n', response: 10 }, { request: 'GET b 10\n', response: 10 }, { request: 'GET c 10\n', response: 10 }], { syn: false });
    for (const p of pkts) {
      rig.capture(p);
      rig.advance(3000); // longer than a finished session lingers
    }
    expect(rig.engine.stats.sessionsCreated, 'sessions').to.equal(1);
    expect(rig.engine.stats.sessionsRefused, 'refusals').to.equal(1);
    expect(rig.sim.history, 'connections to the target').to.have.length(0);
  });
});

describe('session engine: a protocol that throws', () => {
  const ex = [{ request: 'GET a 10\n', response: 10 }, { request: 'GET b 10\n', response: 10 }];
  const faulty = (where: 'createSession' | 'onClientData' | 'mayRelease' | 'onTargetData'): SessionProtocol => ({
    name: 'faulty',
    replyPayloadBytes: 100,
    createSession(ctx) {
      const bad = ctx.clientPort === 40001;
      if (bad && where === 'createSession') throw new Error('boom in createSession');
      return {
        onClientData(data) {
          if (bad && where === 'onClientData') throw new Error('boom in onClientData');
          ctx.emit(data);
        },
        mayRelease(_tag, q) {
          if (bad && where === 'mayRelease') throw new Error('boom in mayRelease');
          return q.targetServerBytes >= q.onlineServerBytes;
        },
        onTargetData() {
          if (bad && where === 'onTargetData') throw new Error('boom in onTargetData');
        },
      };
    },
  });

  for (const where of ['createSession', 'onClientData', 'mayRelease', 'onTargetData'] as const) {
    it(`is isolated to its connection when ${where} throws: counted, logged, the connection goes on as raw TCP`, () => {
      const rig = new EngineRig({ protocol: faulty(where) });
      for (const port of [40000, 40001, 40002]) {
        for (const p of conversation({ ...client, port }, ex)) rig.capture(p);
      }
      rig.advance(50);
      expect(rig.engine.stats.protocolFaults).to.equal(1);
      expect(rig.warnings.filter((w) => w.includes(`boom in ${where}`))).to.have.length(1);
      expect([...rig.sim.streams().values()]).to.deep.equal(['GET a 10\nGET b 10\n', 'GET a 10\nGET b 10\n', 'GET a 10\nGET b 10\n']);
      expect(rig.engine.stats.sessionsCompleted).to.equal(3);
    });
  }
});

describe('session engine: -H, -t, -k', () => {
  const ex = [{ request: 'GET a 10\n', response: 10 }];

  it('-H gives a loopback client a real address before -c', () => {
    const rig = new EngineRig({ config: { localAddress: 0xc6336405 } }); // 198.51.100.5
    for (const p of conversation({ ip: '127.0.0.1', port: 40000, isn: 1 }, ex)) rig.capture(p);
    rig.advance(20);
    expect([...rig.sim.conns.keys()]).to.deep.equal(['198.51.100.5:40000']);
  });

  it('-t gives up a session whose target owes an answer, with an RST, counted', () => {
    const silent = { onData: () => [] as Buffer[] };
    const rig = new EngineRig({ config: { sessionTimeoutMs: 3000, idleReleaseMs: 100_000 }, sim: { responder: silent } });
    for (const p of conversation(client, [...ex, { request: 'GET b 1\n', response: 1 }], { fin: false })) rig.capture(p);
    rig.advance(2900);
    expect(rig.engine.stats.sessionTimeouts).to.equal(0);
    rig.advance(200);
    expect(rig.engine.stats.sessionTimeouts).to.equal(1);
    expect(rig.sim.log.some((l) => l.endsWith(' rst'))).to.equal(true);
  });

  it('-k closes a session that has had nothing to do', () => {
    const rig = new EngineRig({ config: { keepaliveTimeoutMs: 4000 } });
    for (const p of conversation(client, ex, { fin: false })) rig.capture(p);
    rig.advance(3900);
    expect(rig.engine.stats.idleTimeouts).to.equal(0);
    rig.advance(200);
    expect(rig.engine.stats.idleTimeouts).to.equal(1);
  });
});

describe('session engine: delayed ACKs', () => {
  it('acknowledges a short response with the next request or after 40 ms, and a long one at once', () => {
    const rig = new EngineRig();
    let pureAcks = 0;
    const send = rig.sink.send.bind(rig.sink);
    rig.sink.send = (buf: Buffer, off: number, len: number) => {
      if (len === 52 && (buf[off + 33] & 0x3f) === 0x10) pureAcks++; // ACK only, timestamps, no payload
      send(buf, off, len);
    };
    // The second request is captured 100 ms after the first: the first response's ACK cannot wait for it.
    const [syn, ack, r1, r2, fin] = conversation(client, [{ request: 'GET a 10\n', response: 10 }, { request: 'GET b 30000\n', response: 30000 }]);
    for (const p of [syn, ack, r1]) rig.capture(p);
    const afterHandshake = pureAcks;
    rig.advance(30);
    expect(pureAcks, 'no ACK yet for one small segment').to.equal(afterHandshake);
    rig.advance(20);
    expect(pureAcks, 'the delayed ACK went after 40 ms').to.equal(afterHandshake + 1);
    rig.capture(r2);
    // Two segments or more: acknowledged at the end of the batch of replies, without the delay.
    expect(pureAcks - afterHandshake - 1).to.be.at.least(1);
    rig.capture(fin);
    rig.advance(50);
    expect(only(rig.sim.streams())).to.equal('GET a 10\nGET b 30000\n');
  });
});

describe('session engine: a target window that stays shut', () => {
  it('probes it after an RTO and goes on once the target opens it', () => {
    const rig = new EngineRig({ sim: { zeroWindowUntilProbe: true } });
    for (const p of conversation(client, [{ request: 'GET a 10\n', response: 10 }])) rig.capture(p);
    expect(only(rig.sim.streams()), 'nothing goes into a shut window').to.equal('');
    rig.advance(1000);
    expect(rig.engine.stats.windowProbes).to.equal(1);
    expect(rig.sim.log.some((l) => l.endsWith(' probe'))).to.equal(true);
    expect(only(rig.sim.streams())).to.equal('GET a 10\n');
    expect(rig.engine.stats.retransmissions, 'the refused probe byte went again in order, not by RTO').to.equal(0);
  });
});

describe('session engine: timer wake-ups', () => {
  it('short connections that end close together share a few wheel slots: a live tcpcopy wakes a few times, not every 5 ms', () => {
    const rig = new EngineRig();
    const N = 200;
    // One every 2 ms (500/s), each with a short response: its delayed ACK is armed, then carried by our FIN.
    for (let i = 0; i < N; i++) {
      for (const p of conversation({ ip: '198.51.100.10', port: 20000 + i, isn: i * 1000 }, [{ request: 'GET a 10\n', response: 10 }])) rig.capture(p);
      rig.t += 2;
    }
    expect(rig.engine.stats.sessionsCompleted).to.equal(N);
    // As live replay drives the wheel: sleep until the next filed slot (at least 5 ms on), run the timers there.
    const wheel = rig.engine.wheel;
    let wakes = 0;
    for (let next = wheel.nextFiledTime(); next !== Infinity && wakes < 2000; next = wheel.nextFiledTime()) {
      rig.t = Math.max(next, rig.t + 5);
      rig.engine.tick(rig.t);
      rig.settle();
      wakes++;
    }
    expect(rig.engine.size, 'sessions left').to.equal(0);
    // 400 ms of endings lingering 2 s: their expiries fall on 50 ms marks. Before, each 5 ms slot held one, and
    // each delayed ACK a FIN had carried left its session filed in a slot of its own until that slot came.
    expect(wakes, 'wake-ups until every session is forgotten').to.be.at.most(15);
  });
});
