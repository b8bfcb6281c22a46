// The examples run for real: the in-process replay program (examples/replay-pcap) replays a captured
// workload across namespaces, and the one-file custom protocol (examples/custom-protocol) is loaded by
// path with --protocol.
import { expect } from 'chai';
import * as path from 'node:path';
import {
  assertSameStreams,
  byConnection,
  createTopology,
  expectedStreams,
  requireRoot,
  requireTools,
  runWorkload,
  startIntercept,
  startRecorder,
  startTcpdump,
  withTimeout,
  type Topology,
  type WorkloadPlan,
} from '../src/harness';

const PORT = 8080;
/** The example program, by its package's entry (its main). */
const EXAMPLE = require.resolve('@tcpcopy/example-replay-pcap');

describe('examples across namespaces', function () {
  this.timeout(60_000);
  let topo: Topology;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['tcpdump']);
    topo = await createTopology();
  });
  after(async () => {
    await topo?.destroy();
  });

  it('replay-pcap replays a capture in-process through the library API', async () => {
    const plan = { host: '198.51.100.20', port: PORT, short: 6, keepAlive: { conns: 3, requests: 8 }, respSizes: [16, 20_000], timeoutMs: 20_000 } as WorkloadPlan;
    const online = await startRecorder(topo, 'online', PORT);
    const pcap = path.join(topo.mkdir('pcap'), 'examples.pcap');
    const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, `tcp port ${PORT}`);
    const result = await runWorkload(topo, plan);
    await cap.stop();
    await online.stop();
    expect(result.code, result.stderr).to.equal(0);

    const target = await startRecorder(topo, 'target', PORT);
    const intercept = await startIntercept(topo, [PORT]);
    let out = '';
    try {
      const run = topo.spawn('online', process.execPath, [EXAMPLE, pcap, String(PORT), `198.51.100.30:${PORT}`, '198.51.100.40', '203.0.113.9']);
      const status = await withTimeout(run.exited, 30_000, 'replay-pcap example').catch(async (e) => {
        await run.stop('SIGKILL', 2000).catch(() => undefined);
        throw e;
      });
      out = run.stdout() + run.stderr();
      expect(status.code, out).to.equal(0);
    } finally {
      await intercept.stop();
      await target.stop();
    }
    expect(out).to.match(/replayed 9 connections \(9 closed cleanly\)/);
    assertSameStreams(expectedStreams(result.connections, 0, true), byConnection(await target.streams()), 1, []);
  });
});
