// A finished session gives its parts back at once (it points to shared, empty ones while it lingers): the
// shared parts must stay empty whatever sessions go through, and lingering sessions still do their job.
import { expect } from 'chai';
import { conversation, EngineRig } from '../src/compliance/engine-rig';
import { DecodeStatus, TCP_ACK, TCP_FIN, TCP_RST, TcpPacket } from '../src/decode/tcp-packet';
import { FINISHED } from '../src/session/session';

function sharedPartsUntouched(): void {
  expect(FINISHED.out.size, 'shared out queue').to.equal(0);
  expect(FINISHED.out.endPos, 'shared out queue end').to.equal(0);
  expect(FINISHED.out.bytes).to.equal(0);
  expect(FINISHED.captured.size, 'shared client stream').to.equal(0);
  expect(FINISHED.captured.bytes).to.equal(0);
  expect(FINISHED.timer.srtt, 'shared RTO estimator never sampled').to.be.below(0);
  expect(FINISHED.release.waiting).to.equal(false);
  expect(FINISHED.release.idleAt).to.equal(Infinity);
  expect(FINISHED.driver.readsOnline).to.equal(false);
}

describe('finished sessions', () => {
  it('leave the shared parts empty through clean closes, target resets and late packets', () => {
    const exchanges = [{ request: 'GET a 300\n', response: 300 }, { request: 'GET b 4000\n', response: 4000 }];
    for (const sim of [{}, { closeAfterAnswer: true }]) {
      const rig = new EngineRig({ sim });
      for (let i = 0; i < 20; i++) {
        const pkts = conversation({ ip: '198.51.100.10', port: 41000 + i, isn: 7_000_000 * (i + 1) }, exchanges);
        for (const p of pkts) rig.capture(p);
        // Late duplicates of the whole connection after it ended: absorbed by the lingering session.
        rig.advance(30);
        for (const p of pkts.slice(1)) rig.capture(p);
      }
      rig.advance(3000);
      expect(rig.engine.stats.sessionsCreated, JSON.stringify(sim)).to.equal(20);
      expect(rig.engine.size, 'all forgotten after lingering').to.equal(0);
      sharedPartsUntouched();
    }
  });

  it('still answer a repeated FIN of the target while they linger', () => {
    const rig = new EngineRig({ sim: { closeAfterAnswer: true } });
    // Keep a copy of what the target sends (the rig hands it to the engine and forgets it).
    const sent: Buffer[] = [];
    const push = rig.replies.push.bind(rig.replies);
    rig.replies.push = (...pkts: Buffer[]) => (sent.push(...pkts), push(...pkts));
    for (const p of conversation({ ip: '198.51.100.10', port: 42000, isn: 5_000 }, [{ request: 'GET a 93\n', response: 93 }])) rig.capture(p);
    rig.advance(50);
    expect(rig.engine.stats.sessionsCompleted).to.equal(1);
    expect(rig.engine.size, 'lingering').to.equal(1);
    // The target's FIN again, as if our last ACK had been lost: the finished session acknowledges it.
    const v = new TcpPacket();
    const fin = [...sent].reverse().find((b) => v.decode(b, 0, b.length) === DecodeStatus.OK && v.fin);
    expect(fin, 'the target closed').to.not.equal(undefined);
    v.decode(fin!, 0, fin!.length);
    const sentBefore = rig.sink.stats.sent;
    rig.engine.handleReply(v, v.payloadLength, Buffer.alloc(0), rig.t);
    expect(rig.sink.stats.sent, 'one packet in answer').to.equal(sentBefore + 1);
    const ack = new TcpPacket();
    const last = rig.sink.queue[rig.sink.queue.length - 1];
    ack.decode(last, 0, last.length);
    expect(ack.flags & (TCP_ACK | TCP_FIN | TCP_RST)).to.equal(TCP_ACK);
    expect(ack.ack, 'acknowledges the FIN').to.equal((v.seq + v.payloadLength + 1) >>> 0);
    sharedPartsUntouched();
  });
});
