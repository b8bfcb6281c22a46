import { expect } from 'chai';
import { conversation, EngineRig, type Exchange } from '../src/compliance/engine-rig';
import { RTO_MAX_MS, RTO_MIN_MS, RtoEstimator } from '../src/session/rto-estimator';

const client = { ip: '198.51.100.10', port: 40000, isn: 1_000_000 };

describe('retransmission timeout (RFC 6298)', () => {
  it('smooths samples: SRTT, RTTVAR and RTO as the RFC computes them, within Linux\'s floor and the RFC\'s ceiling', () => {
    const t = new RtoEstimator();
    t.sample(400);
    expect([t.srtt, t.rttvar, t.rto]).to.deep.equal([400, 200, 1200]);
    t.sample(400);
    expect([t.srtt, t.rttvar, t.rto]).to.deep.equal([400, 150, 1000]);
    const near = new RtoEstimator();
    for (let i = 0; i < 20; i++) near.sample(1);
    expect(near.rto, 'a near target').to.equal(RTO_MIN_MS);
    near.backoff();
    expect(near.rto).to.equal(2 * RTO_MIN_MS);
    for (let i = 0; i < 20; i++) near.backoff();
    expect(near.rto).to.equal(RTO_MAX_MS);
  });

  it('times one segment at a time and takes no sample across a retransmission (Karn)', () => {
    const t = new RtoEstimator();
    t.sent(100, 0);
    t.sent(200, 10); // already timing: ignored
    t.acked(100, 50);
    expect(t.srtt).to.equal(50);
    t.sent(300, 100);
    t.retransmitted();
    t.acked(300, 900);
    expect(t.srtt, 'no sample from an ambiguous ACK').to.equal(50);
  });

  const exchanges: Exchange[] = Array.from({ length: 20 }, (_, i) => ({ request: `GET ${i} 3000\n`, response: 3000 }));

  it('a distant target (400 ms away): no spurious retransmission after the handshake, as the timer follows the path', () => {
    const rig = new EngineRig();
    rig.replyDelayMs = 400;
    for (const p of conversation(client, exchanges)) rig.capture(p);
    rig.advance(30_000);
    expect(rig.sim.history[0].bytes.toString('latin1')).to.equal(exchanges.map((e) => e.request).join(''));
    expect(rig.engine.stats.retransmissions, 'retransmissions').to.equal(0);
    expect(rig.engine.stats.sessionsCompleted).to.equal(1);
  });

  it('a target that moves away mid-session: at most a retransmission or two, then the timer has caught up', () => {
    const rig = new EngineRig();
    rig.replyDelayMs = 5;
    const pkts = conversation(client, exchanges);
    const half = Math.floor(pkts.length / 2);
    for (const p of pkts.slice(0, half)) rig.capture(p);
    rig.advance(2000);
    rig.replyDelayMs = 600;
    for (const p of pkts.slice(half)) rig.capture(p);
    rig.advance(40_000);
    expect(rig.sim.history[0].bytes.toString('latin1')).to.equal(exchanges.map((e) => e.request).join(''));
    expect(rig.engine.stats.retransmissions, 'retransmissions').to.be.at.most(2);
  });
});
