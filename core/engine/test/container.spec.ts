import { expect } from 'chai';
import * as path from 'node:path';
import { createReplayContainer, Tokens } from '../src/container';
import { replayOffline } from '../src/replay/offline-replay';
import { RecordingSink } from '../src/output/packet-sink';
import { parseTransfers, TransferTable } from '../src/rewrite/address-map';
import { ReplayEngine } from '../src/session/replay-engine';
import type { SessionProtocol } from '../src/protocol/session-protocol';

describe('injectable parts (tsyringe)', () => {
  it('assembles an engine from registered parts and replays a pcap in-process', async () => {
    const c = createReplayContainer();
    const sink = new RecordingSink();
    const created: string[] = [];
    const protocol: SessionProtocol = {
      name: 'counting',
      replyPayloadBytes: 0,
      createSession: () => {
        created.push('session');
        return { mayRelease: () => true };
      },
    };
    c.registerInstance(Tokens.PacketSink, sink);
    c.registerInstance(Tokens.TransferTable, new TransferTable(parseTransfers('47801-198.51.100.30:80')));
    c.registerInstance(Tokens.SessionProtocol, protocol);
    c.registerInstance(Tokens.EngineConfig, { handshakeTimeoutMs: 50 });
    const engine = c.resolve(Tokens.ReplayEngine);
    expect(engine).to.be.instanceOf(ReplayEngine);
    expect(c.resolve(Tokens.ReplayEngine)).to.equal(engine);
    // The fixture is loopback traffic to port 47801 (no target answers here: SYNs go out, handshakes time out).
    const result = await replayOffline(engine, {
      file: path.join(__dirname, '..', '..', 'test', 'fixtures', 'eth-us.pcap'),
      speed: 1000,
      tailTimeoutMs: 1000,
    });
    expect(result.capture.tcpPackets).to.be.greaterThan(0);
    expect(engine.stats.sessionsCreated).to.equal(1);
    expect(created).to.deep.equal(['session']);
    expect(sink.packets.length).to.be.greaterThan(0);
    expect(sink.packets[0][33] & 0x02, 'first packet is a SYN').to.equal(0x02);
  });

  it('says which part is missing', () => {
    const c = createReplayContainer();
    expect(() => c.resolve(Tokens.ReplayEngine)).to.throw(/PacketSink/);
  });
});
