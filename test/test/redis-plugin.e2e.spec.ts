// The Redis plugin end to end: real clients (redis-benchmark, plain and pipelined, redis-cli, and a
// client connected before the capture started) work against a password-protected Redis on the online
// host while tcpdump captures; the capture is replayed with the real tcpcopy, loading the plugin by its
// package name, to a fresh Redis with ANOTHER password. Every command must run exactly once and in
// order per connection, so the target's keyspace must equal the online one exactly (DEBUG DIGEST):
// INCR totals and list lengths catch a lost or doubled command, and AUTH must have been rewritten
// (and sent first on the mid-stream connection) or the target would refuse everything.
import { expect } from 'chai';
import * as path from 'node:path';
import {
  createTopology,
  requireRoot,
  requireTools,
  runTcpcopy,
  startIntercept,
  startTcpdump,
  type TcpcopyRun,
  type Topology,
} from '../src/harness';
import { keyspaceSummary, runRedisBenchmark, startMidStreamClient, startRedis, type KeyspaceSummary } from '../src/harness/redis';

const PORT = 6379;
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const ONLINE_PASSWORD = 'online-secret';
const TARGET_PASSWORD = 'a-different-target-secret';
/** Six write commands on 500 random keys each: the final state is the same whatever order connections run in. */
const BENCH = ['-t', 'set,incr,lpush,rpush,sadd,hset', '-n', '2000', '-r', '500', '-c', '8'];

describe('redis plugin: replaying a captured Redis workload (real tcpcopy, intercept, redis-server)', function () {
  this.timeout(120_000);
  let topo: Topology;
  let pcap: string;
  let online: KeyspaceSummary;
  let midStreamReplies = 0;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['tcpdump', 'redis-server', 'redis-cli', 'redis-benchmark']);
    const t0 = Date.now();
    topo = await createTopology();
    const server = await startRedis(topo, 'online', { password: ONLINE_PASSWORD });
    try {
      // Connected and logged in before the capture: replayed from the middle, its AUTH never captured.
      const mid = startMidStreamClient(topo, 'client', server, 'mid');
      await mid.ready;
      pcap = path.join(topo.mkdir('pcap'), 'redis.pcap');
      const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, `tcp port ${PORT}`, { bufferKiB: 131072 });
      midStreamReplies = await mid.go();
      const plain = await runRedisBenchmark(topo, 'client', server, BENCH);
      const piped = await runRedisBenchmark(topo, 'client', server, [...BENCH, '-P', '16']);
      process.stderr.write(`      [redis-benchmark requests/s: ${JSON.stringify(plain.rates)}; -P 16: ${JSON.stringify(piped.rates)}]\n`);
      await server.cli(['RPUSH', 'cli:list', 'one', 'two', 'three'], { from: 'client' });
      await server.cli(['HSET', 'cli:hash', 'a', '1', 'b', '2'], { from: 'client' });
      await server.cli(['INCRBY', 'cli:counter', '41'], { from: 'client' });
      await server.cli(['INCR', 'cli:counter'], { from: 'client' });
      const stats = await cap.stop();
      process.stderr.write(`      [capture: ${JSON.stringify(stats)}]\n`);
      expect(stats.droppedByKernel, 'packets tcpdump lost').to.equal(0);
      // Written before the capture started: not in it, so not expected at the target.
      await server.cli(['DEL', 'mid:before']);
      online = await keyspaceSummary(server);
    } finally {
      await server.stop();
    }
    process.stderr.write(`      [workload and capture: ${Date.now() - t0} ms; online keyspace ${JSON.stringify(online)}]\n`);
  });

  after(async () => {
    await topo?.destroy();
  });

  /** Replays the capture to a fresh target Redis with TARGET_PASSWORD; returns its keyspace afterwards. */
  async function replay(protocolArgs: string[]): Promise<{ run: TcpcopyRun; target: KeyspaceSummary; ms: number }> {
    const t0 = Date.now();
    const server = await startRedis(topo, 'target', { password: TARGET_PASSWORD });
    try {
      const intercept = await startIntercept(topo, [PORT]);
      let run: TcpcopyRun;
      try {
        run = await runTcpcopy(topo, ['-i', pcap, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', '203.0.113.x', '-a', '4', ...protocolArgs], 60_000);
      } finally {
        await intercept.stop();
      }
      expect(run.code, run.stderr).to.equal(0);
      return { run, target: await keyspaceSummary(server), ms: Date.now() - t0 };
    } finally {
      await server.stop();
    }
  }

  it('leaves the target with exactly the online keyspace, logging in with its own password', async () => {
    expect(midStreamReplies, 'replies the mid-stream client checked').to.be.greaterThan(100);
    expect(online.integerSum, 'INCR totals online').to.be.greaterThan(4000);
    const { run, target, ms } = await replay(['--protocol', 'tcpcopy-protocol-redis', '--protocol-opt', `password=${TARGET_PASSWORD}`]);
    const engine = run.summary?.engine ?? {};
    process.stderr.write(`      [replay: ${ms} ms; ${JSON.stringify(engine)}]\n`);
    expect(target, `target keyspace vs online\n${run.stderr.slice(-3000)}`).to.deep.equal(online);
    expect(engine.protocolFaults ?? 0, 'protocol faults').to.equal(0);
    expect(engine.sessionsFakedHandshake, 'connections captured mid-stream').to.equal(1);
    // The reply count kept up: no command ever waited for the engine's idle release.
    expect(engine.idleReleases, 'idle releases').to.equal(0);
    process.stderr.write(`      [tcpcopy stderr: ${JSON.stringify(run.stderr.trim().split('\n').slice(0, 5))}]\n`);
  });

  it('without the password option the target refuses every command (the control)', async () => {
    const { target } = await replay(['--protocol', 'tcpcopy-protocol-redis']);
    expect(target.keys).to.equal(0);
  });
});
