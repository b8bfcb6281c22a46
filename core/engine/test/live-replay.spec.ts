import { expect } from 'chai';
import type { LiveSource } from '../src/capture/live-source';
import { CaptureStats } from '../src/capture/frame-decoder';
import { RecordingSink } from '../src/output/packet-sink';
import { replayLive } from '../src/replay/live-replay';
import { parseTransfers, TransferTable } from '../src/rewrite/address-map';
import { ReplayEngine } from '../src/session/replay-engine';
import { conversation } from '../src/compliance/engine-rig';
import { view } from '../src/compliance/packets';
import { TCP_SYN } from '../src/decode/tcp-packet';

class ManualSource implements LiveSource {
  readonly stats = new CaptureStats();
  handler: { handleCaptured(p: ReturnType<typeof view>, now: number): void } | null = null;
  closed = false;
  start(handler: { handleCaptured(p: ReturnType<typeof view>, now: number): void }): void {
    this.handler = handler;
  }
  close(): void {
    this.closed = true;
  }
  describe(): string {
    return 'manual';
  }
}

describe('live replay: -m memory limit', () => {
  it('refuses new connections near the limit, keeps existing ones, and stops cleanly at it', async () => {
    const engine = new ReplayEngine({ transfers: new TransferTable(parseTransfers('80-198.51.100.30:80')), sink: new RecordingSink() });
    const source = new ManualSource();
    let rss = 100;
    const warnings: string[] = [];
    const live = replayLive(engine, source, { memoryLimitBytes: 1000, rss: () => rss, warn: (m) => warnings.push(m) });
    const feed = (port: number) => {
      for (const p of conversation({ ip: '198.51.100.10', port, isn: port }, [{ request: 'GET\n', response: 1 }], { fin: false })) {
        source.handler!.handleCaptured(view(p), engine.now());
      }
    };
    feed(1000);
    expect(engine.stats.sessionsCreated).to.equal(1);
    rss = 900; // above 85 %
    // The memory check runs every 250 ms: wait for the warning it gives as it stops admitting, not a fixed time.
    for (const end = Date.now() + 2000; !warnings.some((w) => w.includes('near the -m limit')) && Date.now() < end; ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(engine.admitting).to.equal(false);
    feed(1001);
    expect(engine.stats.sessionsCreated).to.equal(1);
    expect(engine.stats.capturedRefusedMemory).to.be.greaterThan(0);
    rss = 990; // at 97 %
    const end = await Promise.race([live.done, new Promise((r) => setTimeout(() => r('timeout'), 2000))]);
    expect(end).to.equal('memory');
    expect(source.closed).to.equal(true);
    expect(warnings.join('\n')).to.match(/near the -m limit[\s\S]*at the -m limit/);
  });

  it('judges memory on a reading taken after the collection has handed its pages back, not at once', async () => {
    const engine = new ReplayEngine({ transfers: new TransferTable(parseTransfers('80-198.51.100.30:80')), sink: new RecordingSink() });
    // Above 85 % until collected; like V8, the collection returns its pages a few milliseconds later.
    let rss = 900;
    let collections = 0;
    const collect = () => {
      collections++;
      setTimeout(() => (rss = 500), 5);
    };
    const warnings: string[] = [];
    const live = replayLive(engine, new ManualSource(), { memoryLimitBytes: 1000, rss: () => rss, collect, warn: (m) => warnings.push(m) });
    for (const end = Date.now() + 2000; collections === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
    // Two more checks (every 250 ms) after the collection.
    await new Promise((r) => setTimeout(r, 600));
    live.stop();
    expect(collections, 'collections').to.equal(1);
    expect(warnings, 'the guard never refused: the memory was garbage').to.deep.equal([]);
    expect(engine.admitting).to.equal(true);
  });
});

describe('live replay: the engine\'s timers', () => {
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
    for (const end = Date.now() + ms; !cond(); await wait(2)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }

  it('wake for the sessions\' deadlines, not every tick: none with no session, a SYN sent again on time with a few', async () => {
    const sink = new RecordingSink();
    const engine = new ReplayEngine({ transfers: new TransferTable(parseTransfers('80-198.51.100.30:80')), sink });
    let ticks = 0;
    const tick = engine.tick.bind(engine);
    engine.tick = (now?: number) => {
      ticks++;
      tick(now);
    };
    const source = new ManualSource();
    const live = replayLive(engine, source, { tickMs: 2 });
    try {
      const startTicks = ticks; // one at the start
      // Nothing to time: 25 ticks' time goes by without one (the old interval ticked every 2 ms regardless).
      await wait(50);
      expect(ticks - startTicks, 'ticks with no session').to.equal(0);
      // A session whose target never answers: its only deadline is the SYN's retransmission, 1 s on.
      const syn = conversation({ ip: '198.51.100.10', port: 1000, isn: 1000 }, [{ request: 'GET\n', response: 1 }], { fin: false })[0];
      const sentAt = Date.now();
      source.handler!.handleCaptured(view(syn), engine.now());
      engine.flush();
      const syns = () => sink.packets.filter((p) => view(p).flags === TCP_SYN).length;
      expect(syns()).to.equal(1);
      const before = ticks;
      await until('the SYN sent again', () => syns() === 2);
      const after = Date.now() - sentAt;
      expect(after, 'ms until the second SYN').to.be.within(990, 1300);
      expect(ticks - before, 'ticks on the way (500 with a 2 ms interval)').to.be.at.most(5);
    } finally {
      live.stop();
    }
    const atStop = ticks;
    await wait(20);
    expect(ticks, 'no tick after stop()').to.equal(atStop);
  });
});
