// The target's side going wrong, on the engine with a simulated target: a server down or restarting
// (SYNs refused), a host that answers nothing, and a client that starts a new connection on the ports
// of one still being replayed.
import { expect } from 'chai';
import { TCP_ACK, TCP_SYN } from '../src/decode/tcp-packet';
import { buildPacket, view } from '../src/compliance/packets';
import { conversation, EngineRig } from '../src/compliance/engine-rig';
import type { PacketSink } from '../src/output/packet-sink';
import { parseTransfers, TransferTable } from '../src/rewrite/address-map';
import { ReplayEngine } from '../src/session/replay-engine';

const client = { ip: '198.51.100.10', port: 40000, isn: 1_000_000 };
const exchanges = [{ request: 'GET a 10\n', response: 10 }, { request: 'GET b 10\n', response: 10 }];

describe('target faults (simulated target)', () => {
  it('a server restarting: refused SYNs are tried again every 50 ms, and the session goes on within 100 ms of its return', () => {
    const rig = new EngineRig();
    rig.sim.listening = 'refuse';
    for (const p of conversation(client, exchanges)) rig.capture(p);
    rig.advance(1000);
    expect(rig.sim.history, 'no connection while refused').to.have.length(0);
    expect(rig.engine.stats.synsRefused, 'refusals counted').to.be.within(15, 25);
    rig.sim.listening = 'accept';
    const back = rig.t;
    while (rig.sim.history.length === 0 && rig.t - back < 1000) rig.advance(5);
    expect(rig.t - back, 'ms until the session is connected again').to.be.at.most(100);
    rig.advance(500);
    expect(rig.sim.history[0].bytes.toString('latin1')).to.equal('GET a 10\nGET b 10\n');
    expect(rig.engine.stats.handshakeTimeouts).to.equal(0);
  });

  it('a server that stays down: SYNs every 50 ms for 5 s, then once a second; the warning says the target refused, not a routing problem', () => {
    const rig = new EngineRig();
    rig.sim.listening = 'refuse';
    for (const p of conversation(client, exchanges)) rig.capture(p);
    rig.advance(5000);
    const fast = rig.sim.synsReceived;
    expect(fast, 'SYNs in the first 5 s of refusals').to.be.within(80, 101);
    rig.advance(27_000);
    expect(rig.sim.synsReceived - fast, 'SYNs from 5 s to the 31 s handshake timeout').to.be.within(24, 27);
    expect(rig.engine.stats.handshakeTimeouts).to.equal(1);
    const w = rig.warnings.join('\n');
    expect(w).to.match(/the target refused .* \(RST to every SYN for \d+ ms\): is its server listening on 198\.51\.100\.30:8080\?/);
    expect(w).not.to.match(/routes replies to intercept/);
  });

  it('a target that answers nothing: SYNs as a client\'s kernel sends them (at 0, 1, 3, 7 and 15 s), the routing hint once, given up at 31 s', () => {
    const rig = new EngineRig();
    rig.sim.listening = 'silent';
    for (const p of conversation(client, exchanges)) rig.capture(p);
    rig.advance(30_000);
    expect(rig.sim.synsReceived, 'SYNs within the 31 s handshake timeout').to.equal(5);
    expect(rig.engine.stats.handshakeTimeouts, 'not given up before 31 s').to.equal(0);
    expect(rig.warnings, 'told once, at the 4th SYN').to.have.length(1);
    expect(rig.warnings[0]).to.match(/no answer from the target to 198\.51\.100\.10:40000->198\.51\.100\.20:80's SYNs for 7\d{3} ms .* check that the target routes replies to intercept/);
    rig.advance(2000);
    expect(rig.engine.stats.handshakeTimeouts).to.equal(1);
    expect(rig.warnings[1]).to.match(/no handshake with the target for .* after 31000 ms: check that the target routes replies to intercept/);
  });

  it('a SYN queued by a batch that took long: its retransmission timer runs from the end of the batch, as from the wire', () => {
    const rig = new EngineRig();
    rig.sim.listening = 'silent';
    const syn = conversation(client, exchanges)[0];
    // The batch's clock said rig.t; it was done 300 ms later (a flood, a GC pause), when its packets left.
    rig.capture(syn);
    expect(rig.sim.synsReceived).to.equal(1);
    rig.engine.flush(rig.t + 300);
    rig.advance(1200);
    expect(rig.sim.synsReceived, 'no second SYN 1.2 s after the batch began').to.equal(1);
    rig.advance(150);
    expect(rig.sim.synsReceived, 'the second SYN 1 s after the batch was done').to.equal(2);
  });

  it('with a sink that sends in batches, a SYN is timed from when the sink\'s batch went, not from the end of the capture batch', () => {
    let t = 1000;
    const sent: Buffer[] = [];
    const pending: Buffer[] = [];
    const sink: PacketSink & { flushBatch(): void } = {
      stats: { sent: 0, failed: 0, queued: 0 },
      onFlushed: null,
      send(buf: Buffer, offset: number, length: number) {
        pending.push(Buffer.from(buf.subarray(offset, offset + length)));
      },
      flushBatch() {
        sent.push(...pending.splice(0));
        this.onFlushed?.();
      },
      close() {},
    };
    const engine = new ReplayEngine({ transfers: new TransferTable(parseTransfers('80-198.51.100.30:8080')), sink, now: () => t });
    const syns = () => sent.filter((p) => view(p).flags === TCP_SYN).length;
    engine.handleCaptured(view(conversation(client, exchanges)[0]), t);
    engine.flush(t); // the batch of captured packets is done at 1000 ms
    t += 400; // and the sink's batch goes 400 ms later (a long garbage collection in between)
    sink.flushBatch();
    expect(syns()).to.equal(1);
    t = 2300;
    engine.tick(t);
    sink.flushBatch();
    expect(syns(), 'no second SYN 1.3 s after the capture batch, 0.9 s after the SYN left').to.equal(1);
    t = 2450;
    engine.tick(t);
    sink.flushBatch();
    expect(syns(), 'the second SYN 1 s after the first left').to.equal(2);
  });

  it('a target silent for 10 s (a route restored, say): the session waiting on it replays whole at its 5th SYN', () => {
    const rig = new EngineRig();
    rig.sim.listening = 'silent';
    for (const p of conversation(client, exchanges)) rig.capture(p);
    rig.advance(10_000);
    expect(rig.sim.synsReceived, 'SYNs at 0, 1, 3 and 7 s').to.equal(4);
    rig.sim.listening = 'accept';
    rig.advance(6000);
    expect(rig.engine.stats.handshakeTimeouts).to.equal(0);
    expect(rig.sim.history.map((c) => c.bytes.toString('latin1'))).to.deep.equal(['GET a 10\nGET b 10\n']);
  });

  it('a new SYN on the ports of a session still pending is a new connection: both replay whole, side by side', () => {
    const rig = new EngineRig();
    rig.sim.listening = 'silent'; // the first connection gets no answer yet and stays pending
    const first = conversation(client, [{ request: 'OLD 10\n', response: 10 }]);
    for (const p of first) rig.capture(p);
    rig.advance(500);
    rig.sim.listening = 'accept';
    // The client reuses its port with a new ISN far from the old stream.
    for (const p of conversation({ ...client, isn: 900_000_000 }, exchanges)) rig.capture(p);
    rig.advance(4000); // the old session's SYN goes again at 1 s and is answered now
    expect(rig.engine.stats.portReuses, 'port reuses').to.equal(1);
    expect(rig.engine.unfinishedSessions.sessions, 'nothing unfinished').to.deep.equal([]);
    expect(rig.engine.stats.sessionsAborted, 'sessions reset').to.equal(0);
    expect(rig.engine.stats.captureGaps, 'no capture loss invented').to.equal(0);
    const streams = rig.sim.history.map((c) => c.bytes.toString('latin1')).sort();
    expect(streams).to.deep.equal(['GET a 10\nGET b 10\n', 'OLD 10\n']);
    const ports = new Set(rig.sim.history.map((c) => c.key));
    expect(ports.size, 'two target connections, two 4-tuples').to.equal(2);
  });

  it('a SYN seen twice (a capture duplicate) does not replace its own session', () => {
    const rig = new EngineRig();
    const syn = buildPacket({ src: client.ip, sport: client.port, dst: '198.51.100.20', dport: 80, seq: client.isn, flags: TCP_SYN });
    rig.capture(syn);
    rig.capture(syn);
    for (const p of conversation(client, exchanges).filter((p) => (p[33] & (TCP_SYN | TCP_ACK)) !== TCP_SYN)) rig.capture(p);
    rig.advance(500);
    expect(rig.engine.stats.portReuses).to.equal(0);
    expect(rig.sim.history.map((c) => c.bytes.toString('latin1'))).to.deep.equal(['GET a 10\nGET b 10\n']);
  });
});

describe('sessions that could not finish are named', () => {
  it('by client connection and reason, the first ones named and the rest counted', () => {
    const rig = new EngineRig();
    rig.sim.listening = 'refuse';
    for (let i = 0; i < 25; i++) for (const p of conversation({ ...client, port: 41000 + i }, exchanges)) rig.capture(p);
    rig.advance(32_000);
    const u = rig.engine.unfinishedSessions;
    expect(u.sessions).to.have.length(20);
    expect(u.more).to.equal(5);
    expect(u.sessions[0]).to.deep.equal({ connection: '198.51.100.10:41000->198.51.100.20:80', reason: 'target refused' });
  });
});
