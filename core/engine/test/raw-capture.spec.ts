// The netio addon for real, on loopback (needs root, as tcpcopy does): RawSocketSink sends packets
// through the raw IP socket, RawSocketLiveSource captures them with the kernel filter built from -x.
// A packet sent to 127.0.0.x is delivered locally, where raw TCP sockets see it.
import { expect } from 'chai';
import { RawSocketLiveSource } from '../src/capture/live-source';
import { LiveCaptureError } from '../src/capture/cap-addon';
import { buildPacket } from '../src/compliance/packets';
import { TCP_ACK, TCP_PSH, type TcpPacket } from '../src/decode/tcp-packet';
import { RawSocketSink } from '../src/output/raw-socket-sink';
import { parseTransfers } from '../src/rewrite/address-map';

/** Ports of this run (a random high pair, so that loopback traffic of other tests never matches). */
const PORT = 20000 + Math.floor(Math.random() * 20000);
const OTHER_PORT = PORT + 1;
const CLIENT_PORT = PORT + 2;
const LOOPBACK = 0x7f000001;
/** The marker packet's sequence number: once it is captured, everything sent before it that could pass has. */
const MARKER = 999_999;

const packet = (dst: string, dport: number, seq: number): Buffer =>
  buildPacket({ src: '127.0.0.1', sport: CLIENT_PORT, dst, dport, seq, ack: 1, flags: TCP_ACK | TCP_PSH, payload: 'netio' });

function dstOf(pkt: Buffer): number {
  return pkt.readUInt32BE(16);
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Seen {
  dst: number;
  dport: number;
  seq: number;
  payload: string;
}

describe('raw socket capture and send (netio addon)', function () {
  this.timeout(20_000);
  let source: RawSocketLiveSource | null = null;
  let sink: RawSocketSink | null = null;
  const seen: Seen[] = [];
  const warnings: string[] = [];
  let flushes = 0;

  beforeEach(() => {
    seen.length = 0;
    warnings.length = 0;
    flushes = 0;
    // Online 127.0.0.1:PORT; the target (127.0.0.9, same port) is left out as our own output would be.
    source = new RawSocketLiveSource({ transfers: parseTransfers(`127.0.0.1:${PORT}-127.0.0.9:${PORT}`), warn: (m) => warnings.push(m) });
    source.start({
      handleCaptured: (pkt: TcpPacket) => {
        seen.push({ dst: pkt.dstIp, dport: pkt.dstPort, seq: pkt.seq, payload: pkt.buf.toString('latin1', pkt.payload, pkt.end) });
      },
      flush: () => flushes++,
    });
    sink = new RawSocketSink((m) => warnings.push(m));
  });

  afterEach(() => {
    source?.close();
    sink?.close();
    source = sink = null;
  });

  /** Sends `packets` in one turn, then the marker, and waits until the marker is captured. */
  async function sendAndSettle(packets: Buffer[]): Promise<void> {
    for (const p of packets) sink!.send(p, 0, p.length, dstOf(p));
    await turn();
    const marker = packet('127.0.0.1', PORT, MARKER);
    sink!.send(marker, 0, marker.length, LOOPBACK);
    await until('the marker packet captured', () => seen.some((s) => s.seq === MARKER));
  }

  it('the kernel filter passes the -x packets only; a turn\'s packets go out in one sendmmsg', async () => {
    const wanted = Array.from({ length: 50 }, (_, i) => packet('127.0.0.1', PORT, i + 1));
    const otherPort = Array.from({ length: 50 }, (_, i) => packet('127.0.0.1', OTHER_PORT, 1000 + i));
    const otherHost = Array.from({ length: 20 }, (_, i) => packet('127.0.0.2', PORT, 2000 + i));
    const toTarget = Array.from({ length: 10 }, (_, i) => packet('127.0.0.9', PORT, 3000 + i));
    // Interleaved, in one turn.
    const all: Buffer[] = [];
    for (let i = 0; i < 50; i++) all.push(wanted[i], otherPort[i], ...(i < 20 ? [otherHost[i]] : []), ...(i < 10 ? [toTarget[i]] : []));
    await sendAndSettle(all);

    expect(seen.map((s) => s.seq)).to.deep.equal([...wanted.map((_, i) => i + 1), MARKER]);
    expect(seen.every((s) => s.dst === LOOPBACK && s.dport === PORT && s.payload === 'netio')).to.equal(true);
    // What the filter rejected never reached user space: the decoder saw the passing packets only.
    expect(source!.stats.records).to.equal(51);
    expect(source!.stats.kernelDrops).to.equal(0);
    expect(sink!.stats).to.deep.equal({ sent: all.length + 1, failed: 0, queued: 0 });
    expect(sink!.sendCalls, 'one sendmmsg per turn').to.equal(2);
    expect(flushes, 'the engine is flushed once per batch read, not per packet').to.be.within(1, 51);
    expect(warnings).to.deep.equal([]);
    expect(source!.describe()).to.match(/kernel filter of \d+ BPF instructions passes the -x ports; left to fill 5 ms after a read that empties it/);
  });

  it('after a read the socket is held: packets sent during the hold come up together when it ends, none early', async () => {
    source!.close();
    const HOLD_MS = 150;
    const capturedAt = new Map<number, number>();
    source = new RawSocketLiveSource({ transfers: parseTransfers(`127.0.0.1:${PORT}-127.0.0.9:${PORT}`), holdMs: HOLD_MS, warn: (m) => warnings.push(m) });
    source.start({
      handleCaptured: (pkt: TcpPacket) => {
        capturedAt.set(pkt.seq, performance.now());
        seen.push({ dst: pkt.dstIp, dport: pkt.dstPort, seq: pkt.seq, payload: pkt.buf.toString('latin1', pkt.payload, pkt.end) });
      },
      flush: () => flushes++,
    });
    const first = packet('127.0.0.1', PORT, 1);
    sink!.send(first, 0, first.length, LOOPBACK);
    await until('the first packet captured', () => seen.length === 1);
    const before = flushes;
    // Three packets, each in a turn (and a sendmmsg) of its own, while the socket is held.
    for (let i = 2; i <= 4; i++) {
      const p = packet('127.0.0.1', PORT, i);
      sink!.send(p, 0, p.length, LOOPBACK);
      await turn();
    }
    await until('the held packets captured', () => seen.length === 4);
    // The hold began once the first packet's read was handled, and a libuv timer never fires early.
    expect(capturedAt.get(2)! - capturedAt.get(1)!, 'ms from the first packet to the held ones').to.be.at.least(HOLD_MS - 10);
    expect(flushes - before, 'reads that brought the three held packets').to.equal(1);
    expect(seen.map((s) => s.seq)).to.deep.equal([1, 2, 3, 4]);
    expect(sink!.sendCalls, 'each held packet went in a sendmmsg of its own').to.equal(4);
  });

  it('a wake-up that reads as much as it may (8 x 64 packets) is not held: the rest comes at the next turn', async () => {
    source!.close();
    const HOLD_MS = 300;
    const capturedAt: number[] = [];
    let reads = 0;
    source = new RawSocketLiveSource({ transfers: parseTransfers(`127.0.0.1:${PORT}-127.0.0.9:${PORT}`), holdMs: HOLD_MS, warn: (m) => warnings.push(m) });
    source.start({
      handleCaptured: () => {
        capturedAt.push(performance.now());
      },
      flush: () => reads++,
    });
    // 700 packets in one turn: more than one wake-up reads (512), fewer than loopback's backlog queue drops (1,000).
    const COUNT = 700;
    for (let i = 1; i <= COUNT; i++) {
      const p = packet('127.0.0.1', PORT, i);
      sink!.send(p, 0, p.length, LOOPBACK);
    }
    await until(`${COUNT} packets captured`, () => capturedAt.length === COUNT);
    expect(reads, 'reads that brought them').to.be.at.least(2);
    // Held after the first 512, the other 188 would have come HOLD_MS later.
    expect(capturedAt[COUNT - 1] - capturedAt[0], 'ms from the first packet to the last').to.be.below(HOLD_MS / 2);
    expect(source.stats.kernelDrops).to.equal(0);
  });

  it('a packet the kernel refuses fails alone and is reported once; the rest of the batch goes', async () => {
    const before = Array.from({ length: 5 }, (_, i) => packet('127.0.0.1', PORT, i + 1));
    const after = Array.from({ length: 5 }, (_, i) => packet('127.0.0.1', PORT, i + 6));
    // A broadcast destination without SO_BROADCAST: EACCES for that packet.
    const refused = packet('255.255.255.255', PORT, 77);
    await sendAndSettle([...before, refused, ...after, refused]);
    expect(seen.map((s) => s.seq)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, MARKER]);
    expect(sink!.stats).to.deep.equal({ sent: 11, failed: 2, queued: 0 });
    expect(warnings).to.deep.equal(['raw socket send failed: Permission denied']);
  });

  it('the queue is bounded: what it cannot hold is dropped and counted', async () => {
    const small = new RawSocketSink(undefined, { maxQueued: 8 });
    try {
      for (let i = 0; i < 20; i++) {
        const p = packet('127.0.0.1', OTHER_PORT, i);
        small.send(p, 0, p.length, LOOPBACK);
      }
      expect(small.stats).to.deep.equal({ sent: 0, failed: 12, queued: 0 });
      await turn();
      expect(small.stats).to.deep.equal({ sent: 8, failed: 12, queued: 0 });
    } finally {
      small.close();
    }
  });

  it('send() copies: the caller may reuse its buffer at once; close() sends what is queued', async () => {
    const scratch = Buffer.alloc(200);
    for (let i = 1; i <= 3; i++) {
      const p = packet('127.0.0.1', PORT, i);
      p.copy(scratch, 10);
      sink!.send(scratch, 10, p.length, LOOPBACK);
      scratch.fill(0);
    }
    sink!.close();
    expect(sink!.stats).to.deep.equal({ sent: 3, failed: 0, queued: 0 });
    await until('three packets captured', () => seen.length === 3);
    expect(seen.map((s) => s.seq)).to.deep.equal([1, 2, 3]);
    // After close nothing goes, and that is counted.
    sink!.send(scratch, 0, 40, LOOPBACK);
    expect(sink!.stats.failed).to.equal(1);
  });

  it('a receive buffer out of range is a clear error', () => {
    const bad = new RawSocketLiveSource({ receiveBuffer: 1000, transfers: parseTransfers(`${PORT}-127.0.0.9:${PORT}`) });
    expect(() => bad.start({ handleCaptured: () => undefined })).to.throw(LiveCaptureError, /capture buffer of 1000 bytes is out of range \(use 64 KiB to 2 GiB\)/);
    bad.close();
  });
});
