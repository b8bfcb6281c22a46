// Offline replay end to end: a real workload against a real server on the online host is captured with
// tcpdump, then replayed from that pcap with the real tcpcopy and intercept to the target host; the target
// must receive, connection by connection, exactly the bytes the online server received.
import { expect } from 'chai';
import * as path from 'node:path';
import {
  countPackets,
  createTopology,
  requireRoot,
  requireTools,
  runTcpcopy,
  startIntercept,
  startRecorder,
  startTcpdump,
  startWorkload,
  assertSameStreams,
  byConnection,
  expectedStreams,
  type Topology,
  type WorkloadConnection,
  type WorkloadPlan,
} from '../src/harness';

const PORT = 8080;
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';

describe('offline replay across namespaces (real tcpcopy, intercept, servers)', function () {
  this.timeout(180_000);
  let topo: Topology;
  let pcap: string;
  let conns: WorkloadConnection[];
  const plan: WorkloadPlan = {
    host: '198.51.100.20',
    port: PORT,
    short: 12,
    keepAlive: { conns: 4, requests: 12 },
    pipelined: { conns: 2, requests: 6 },
    post: { bytes: 300_000 },
    midStream: { conns: 3, before: 2, after: 4 },
    respSizes: [16, 102_400, 1024, 0],
    concurrency: 6,
    timeoutMs: 30_000,
  } as WorkloadPlan;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['tcpdump']);
    topo = await createTopology();
    const online = await startRecorder(topo, 'online', PORT);
    const run = startWorkload(topo, plan);
    await run.ready;
    // The capture starts while the mid-stream connections are open: their start is not in it.
    pcap = path.join(topo.mkdir('pcap'), 'online.pcap');
    const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, `tcp port ${PORT}`);
    run.go();
    const result = await run.done;
    await cap.stop();
    await online.stop();
    expect(result.code, result.stderr).to.equal(0);
    conns = result.connections;
  });

  after(async () => {
    await topo?.destroy();
  });

  async function replay(args: string[], opts: { runs?: number } = {}) {
    const target = await startRecorder(topo, 'target', PORT);
    const stops: Array<() => Promise<unknown>> = [() => target.stop()];
    const runs = [];
    const onlineSees = path.join(topo.mkdir('pcap'), `online-sees-${Date.now()}.pcap`);
    try {
      const intercept = await startIntercept(topo, [PORT]);
      stops.unshift(() => intercept.stop());
      const watch = await startTcpdump(topo, 'online', topo.hosts.online.iface, onlineSees, `ip and src host ${TARGET}`);
      stops.unshift(() => watch.stop());
      // What the target sees, kept with the run's files for diagnosis (TCPE_KEEP_WORKDIR=1).
      const targetSees = await startTcpdump(topo, 'target', topo.hosts.target.iface, onlineSees.replace('online-sees', 'target-sees'), `tcp port ${PORT}`);
      stops.unshift(() => targetSees.stop());
      for (let i = 0; i < (opts.runs ?? 1); i++) {
        runs.push(await runTcpcopy(topo, ['-i', pcap, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', '203.0.113.x', ...args]));
      }
    } finally {
      for (const stop of stops) await stop();
    }
    for (const r of runs) expect(r.code, r.stderr).to.equal(0);
    return { runs, streams: byConnection(await target.streams()), repliesAtOnline: countPackets(onlineSees) };
  }

  it('delivers every connection byte for byte, including those captured mid-stream', async () => {
    const { runs, streams, repliesAtOnline } = await replay([]);
    assertSameStreams(expectedStreams(conns, plan.midStream!.before, true), streams, 1, runs);
    expect(runs[0].summary.engine.sessionsFakedHandshake).to.equal(plan.midStream!.conns);
    expect(repliesAtOnline, 'target replies seen on the tcpcopy host').to.equal(0);
  });

  it('with -O leaves out the connections whose start was not captured', async () => {
    const { runs, streams } = await replay(['-O']);
    assertSameStreams(expectedStreams(conns, plan.midStream!.before, false), streams, 1, runs);
  });

  it('with -a 20 -T 3 delivers every connection three times', async () => {
    const { runs, streams } = await replay(['-a', '20', '-T', '3']);
    assertSameStreams(expectedStreams(conns, plan.midStream!.before, true), streams, 3, runs);
    expect(runs[0].summary.passes).to.equal(3);
  });

  it('replaying the same capture twice in a row loses nothing (TIME_WAIT on the target)', async () => {
    const { runs, streams } = await replay(['-a', '20'], { runs: 2 });
    assertSameStreams(expectedStreams(conns, plan.midStream!.before, true), streams, 2, runs);
  });
});
