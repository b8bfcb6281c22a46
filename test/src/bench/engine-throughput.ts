// Scenario 1: the engine with the network left out. A synthetic capture is read, decoded and fed to a real
// ReplayEngine whose packets go to an in-process simulated target that answers at once.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import * as thisCore from '@tcpcopy/core';
import { DecodeStatus, ipv4Offset, PcapReader, TcpPacket } from '@tcpcopy/core';
import type { Figures } from './figures';
import { SimulatedTarget } from './responder';
import { packetCount, SERVER_PORT, writeSyntheticCapture, type CaptureShape } from './synthetic-pcap';

const SHAPE: CaptureShape = { connections: 8000, requests: 20, requestBytes: 300, responseBytes: 2000, stepTicks: 12 };
const TARGET_IP = 0xc633641e; // 198.51.100.30
const TARGET_PORT = 8080;
/** How often the engine's timers run, in capture time (an offline replay runs them every 2 ms). */
const TICK_MS = 2;
/**
 * Timed runs per figure, after one untimed warm-up run; the median is reported. Nine: passes within one process
 * here differ by 1.15-1.5x between the slowest and the fastest (the host's stalls come and go), and the median
 * of five still moved with them.
 */
const RUNS = 9;
/** With --engine-against: passes of each engine, alternating, after two warm-up passes each. */
const AGAINST_PASSES = 15;

/** What the bench uses of @tcpcopy/core: this checkout's, or another's (--engine-against). */
type Core = typeof thisCore;

// Memory figures need a settled heap: expose gc() without requiring `node --expose-gc`.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function settledMemory(): NodeJS.MemoryUsage {
  gc();
  gc();
  return process.memoryUsage();
}

const MiB = 1024 * 1024;

export async function engineThroughput(figures: Figures, opts: { engineAgainst?: string } = {}): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-bench-'));
  try {
    const file = path.join(dir, 'synthetic.pcap');
    const written = writeSyntheticCapture(file, SHAPE);
    if (written !== packetCount(SHAPE)) throw new Error(`wrote ${written} packets, expected ${packetCount(SHAPE)}`);
    console.log(
      `# engine: ${SHAPE.connections} connections x ${SHAPE.requests} requests of ${SHAPE.requestBytes} B ` +
        `(responses ${SHAPE.responseBytes} B), ${written} packets, ${(fs.statSync(file).size / MiB).toFixed(1)} MiB pcap`,
    );
    // Timings are medians of a few runs after a warm-up one (JIT, page cache): a shared 2-core machine is noisy.
    decodeLoop(file);
    const decodeSeconds = median(Array.from({ length: RUNS }, () => decodeLoop(file)));
    figures.add('decode.throughput', written / decodeSeconds, 'packets/s');
    // One engine replays the capture again and again, as tcpcopy's one engine sees traffic for hours; what a
    // pass leaves behind in it is the memory figure.
    const rig = new LongLivedEngine(thisCore);
    replayOnce(file, rig);
    const seconds: number[] = [];
    for (let k = 0; k < RUNS; k++) seconds.push(replayOnce(file, rig).seconds);
    // The memory pass is not timed: after the forced full collections before it, a pass runs 25-50 % slower
    // (--trace-deopt: code of the engine and of the simulated target thrown away for "weak objects" there,
    // maps that no live object used any more). It used to be one of the three timed runs.
    const before = settledMemory();
    const run = replayOnce(file, rig);
    const after = settledMemory();
    const perPacket = median(seconds) / written;
    figures.add('engine.throughput', 1 / perPacket, 'captured packets/s');
    figures.add('engine.time_per_packet', perPacket * 1e9, 'ns');
    figures.add('engine.captured_packets', run.capturedPackets, 'packets');
    figures.add('engine.packets_sent', run.packetsSent, 'packets');
    figures.add('engine.replies', run.repliesReceived, 'packets');
    figures.add('engine.peak_sessions', run.peakSessions, 'sessions');
    // What the engine holds after one more pass, with every session finished and forgotten.
    figures.add('engine.heap_growth', (after.heapUsed - before.heapUsed) / MiB, 'MiB');
    figures.add('engine.rss_growth', (after.rss - before.rss) / MiB, 'MiB');
    if (opts.engineAgainst !== undefined) engineAgainst(figures, file, written, opts.engineAgainst);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** PcapReader + link offset + TcpPacket.decode (in place in the reader's buffer), nothing else. Returns the seconds it took. */
function decodeLoop(file: string): number {
  const reader = PcapReader.open(file);
  const view = new TcpPacket();
  let bad = 0;
  const t0 = performance.now();
  try {
    for (let rec = reader.next(); rec; rec = reader.next()) {
      const off = ipv4Offset(reader.linkType, rec.buffer, rec.length, rec.start);
      if (off < 0 || view.decode(rec.buffer, off, rec.start + rec.length - off) !== DecodeStatus.OK) bad++;
    }
  } finally {
    reader.close();
  }
  if (bad) throw new Error(`${bad} packets of the synthetic capture did not decode`);
  return (performance.now() - t0) / 1000;
}

/**
 * This engine against another checkout's (`--engine-against TREE`): both replay the capture in one process,
 * pass for pass alternating which goes first, each with the same bench code around it, so that the machine's
 * drift (a third either way over minutes here) falls on both alike. The ratio is the median of the passes'.
 */
function engineAgainst(figures: Figures, file: string, packets: number, tree: string): void {
  const entry = path.resolve(tree, 'core', 'engine');
  let other: Core;
  try {
    other = require(entry) as Core;
  } catch (err) {
    throw new Error(`--engine-against ${tree}: cannot load its engine (${entry}): ${(err as Error).message}; build that checkout first (npx tsc -b)`);
  }
  const rigs = [new LongLivedEngine(thisCore), new LongLivedEngine(other)];
  for (const rig of rigs) for (let k = 0; k < 2; k++) replayOnce(file, rig);
  const rates: number[][] = [[], []];
  for (let k = 0; k < AGAINST_PASSES; k++) {
    for (const i of k % 2 ? [1, 0] : [0, 1]) rates[i].push(packets / replayOnce(file, rigs[i]).seconds);
  }
  figures.add('engine.against.this_throughput', median(rates[0]), 'captured packets/s');
  figures.add('engine.against.other_throughput', median(rates[1]), 'captured packets/s');
  figures.add('engine.against.ratio', median(rates[0].map((r, k) => r / rates[1][k])), 'x (this / other, median of passes)');
}

/** A long-lived engine and its simulated target, on capture time (the replay at "infinite" speed): timers fire as the capture says. */
class LongLivedEngine {
  clock = 0;
  readonly target: SimulatedTarget;
  readonly engine: thisCore.ReplayEngine;

  constructor(readonly core: Core) {
    this.target = new SimulatedTarget(TARGET_IP, TARGET_PORT, SHAPE.requestBytes, SHAPE.responseBytes, core.TcpPacket);
    this.engine = new core.ReplayEngine({
      transfers: new core.TransferTable(core.parseTransfers(`${SERVER_PORT}-${core.formatIpv4(TARGET_IP)}:${TARGET_PORT}`)),
      sink: this.target,
      now: () => this.clock,
      warn: (m) => console.error(`# engine warning: ${m}`),
    });
    this.target.attach(this.engine);
  }
}

interface PassResult {
  seconds: number;
  peakSessions: number;
  capturedPackets: number;
  packetsSent: number;
  repliesReceived: number;
}

/** Replays the capture once more through the rig's engine and checks that everything was replayed and closed. */
function replayOnce(file: string, rig: LongLivedEngine): PassResult {
  const { engine, target } = rig;
  // The rig's own core (another checkout's with --engine-against), not this module's imports.
  const { PcapReader, TcpPacket, DecodeStatus, ipv4Offset } = rig.core;
  const st = engine.stats;
  const start = { ...st };
  const answeredBefore = target.requestsAnswered;
  // Each pass starts a second after the last one ended: the clock never goes back.
  const base = rig.clock + 1000;
  const reader = PcapReader.open(file);
  const view = new TcpPacket();
  let firstUs = -1;
  let nextTick = 0;
  let peakSessions = 0;
  let undecoded = 0;
  const t0 = performance.now();
  try {
    for (let rec = reader.next(); rec; rec = reader.next()) {
      if (firstUs < 0) firstUs = rec.timeUs;
      const clock = (rig.clock = base + (rec.timeUs - firstUs) / 1000);
      const off = ipv4Offset(reader.linkType, rec.buffer, rec.length, rec.start);
      if (off < 0 || view.decode(rec.buffer, off, rec.start + rec.length - off) !== DecodeStatus.OK) {
        undecoded++;
        continue;
      }
      engine.handleCaptured(view, clock);
      target.deliver(clock);
      if (clock >= nextTick) {
        engine.tick(clock);
        target.deliver(clock);
        nextTick = clock + TICK_MS;
        if (engine.size > peakSessions) peakSessions = engine.size;
      }
    }
  } finally {
    reader.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  // Let finished sessions outlive their linger time, so the engine forgets them all. One jump longer than
  // a turn of the engine's timer wheel (1024 x 5 ms) visits every slot, so every due timer fires.
  rig.clock += engine.config.lingerMs + 6000;
  engine.tick(rig.clock);
  target.deliver(rig.clock);

  const problems: string[] = [];
  const requests = SHAPE.connections * SHAPE.requests;
  const answered = target.requestsAnswered - answeredBefore;
  const completed = st.sessionsCompleted - start.sessionsCompleted;
  const retransmissions = st.retransmissions - start.retransmissions;
  if (undecoded) problems.push(`${undecoded} packets did not decode`);
  if (answered !== requests) problems.push(`the target answered ${answered} requests, not ${requests}`);
  if (completed !== SHAPE.connections) problems.push(`${completed} sessions completed, not ${SHAPE.connections}`);
  if (retransmissions) problems.push(`${retransmissions} retransmissions`);
  if (engine.size !== 0 || target.open !== 0) problems.push(`${engine.size} sessions / ${target.open} target connections left`);
  if (problems.length) throw new Error(`the engine bench did not replay the capture cleanly: ${problems.join('; ')}\n${JSON.stringify(st)}`);

  return {
    seconds,
    peakSessions,
    capturedPackets: st.capturedPackets - start.capturedPackets,
    packetsSent: st.packetsSent - start.packetsSent,
    repliesReceived: st.repliesReceived - start.repliesReceived,
  };
}
