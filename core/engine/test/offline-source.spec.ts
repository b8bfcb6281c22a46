import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OfflineSource } from '../src/capture/offline-source';
import { PcapReader } from '../src/capture/pcap-reader';
import { PcapWriter } from '../src/capture/pcap-writer';
import { LinkType } from '../src/decode/link-type';
import type { TcpPacket } from '../src/decode/tcp-packet';
import { TCP_ACK, TCP_PSH } from '../src/decode/tcp-packet';
import { buildPacket } from '../src/compliance/packets';

const dirs: string[] = [];

/** A pcap (raw IP) of one packet at each given time offset (ms), seq = the packet's index. */
function capture(offsetsMs: number[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offline-src-'));
  dirs.push(dir);
  const file = path.join(dir, 'c.pcap');
  const w = PcapWriter.create(file, { linkType: LinkType.RAW });
  const t0 = 1_700_000_000_000_000;
  offsetsMs.forEach((ms, i) => {
    w.write(buildPacket({ src: '198.51.100.10', sport: 1000, dst: '198.51.100.20', dport: 80, seq: i, ack: 1, flags: TCP_ACK | TCP_PSH, payload: Buffer.from('x') }), t0 + ms * 1000);
  });
  w.close();
  return file;
}

/** Runs a source on a fake clock; returns the fake time (ms) at which each packet was handed over. */
async function handOverTimes(file: string, speed: number, maxGapMs: number): Promise<number[]> {
  let t = 0;
  const times: number[] = [];
  const queue: Array<() => void> = [];
  const src = new OfflineSource(PcapReader.open(file), {
    speed,
    maxGapMs,
    now: () => t,
    schedule: (fn, ms) => queue.push(() => { t += ms; fn(); }),
  });
  const done = src.run({ handleCaptured: (p: TcpPacket) => { times[p.seq] = t; } });
  for (let i = 0; i < 10_000 && queue.length > 0; i++) queue.shift()!();
  await done;
  return times;
}

describe('offline source pacing', () => {
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const offsets = [0, 100, 300, 5300, 5310];

  it('hands packets over at their captured times', async () => {
    const times = await handOverTimes(capture(offsets), 1, 0);
    times.forEach((t, i) => expect(t).to.be.within(offsets[i] - 1, offsets[i] + 1));
  });

  it('-a divides the gaps', async () => {
    const times = await handOverTimes(capture(offsets), 10, 0);
    times.forEach((t, i) => expect(t).to.be.within(offsets[i] / 10 - 1, offsets[i] / 10 + 1));
  });

  it('-I cuts long idle gaps to the limit and keeps the short ones', async () => {
    const times = await handOverTimes(capture(offsets), 1, 1000);
    // The 5000 ms gap becomes 1000 ms; later packets keep their spacing.
    expect(times.map(Math.round)).to.deep.equal([0, 100, 300, 1300, 1310]);
  });
});
