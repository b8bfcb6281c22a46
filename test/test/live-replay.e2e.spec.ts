// Live replay end to end: real load from the client host against nginx on the online host, tcpcopy
// capturing there, nginx on the target, intercept on the assistant. The loss ratio is
// 1 - (requests in the target's access log) / (requests in the online access log).
import { expect } from 'chai';
import {
  createTopology,
  pacedLoad,
  requireRoot,
  settledCount,
  startIntercept,
  startLiveTcpcopy,
  startNginx,
  startWorkload,
  type NginxHandle,
  type Topology,
  type WorkloadPlan,
} from '../src/harness';

const TARGET = '198.51.100.30';
const URL = 'http://198.51.100.20/blob/1k';

describe('live replay across namespaces (real load, nginx, tcpcopy capturing live)', function () {
  this.timeout(120_000);
  let topo: Topology;
  let online: NginxHandle;
  let target: NginxHandle;
  let stopIntercept: () => Promise<void>;

  before(async function () {
    requireRoot(this);
    topo = await createTopology();
    online = await startNginx(topo, 'online');
    target = await startNginx(topo, 'target');
    stopIntercept = (await startIntercept(topo, [80])).stop;
  });
  after(async () => {
    await stopIntercept?.();
    await topo?.destroy();
  });

  const count = (log: NginxHandle, tag: string) => log.accessLog().filter((e) => e.uri.includes(`?${tag}=`)).length;
  const targetLog = () => target;

  async function run(tag: string, args: string[], load: { requests: number; rate: number; conns: number; keepAlive?: boolean }) {
    const tcpcopy = await startLiveTcpcopy(topo, ['-x', `80-${TARGET}:80`, '-c', '203.0.113.x', ...args]);
    let result;
    try {
      result = await pacedLoad(topo, { url: URL, tag, ...load });
    } finally {
      await settledCount(() => count(target, tag));
    }
    const stopped = await tcpcopy.stop();
    expect(result.code, 'load').to.equal(0);
    expect(stopped.code, stopped.stderr).to.equal(0);
    return { online: count(online, tag), target: await settledCount(() => count(target, tag)), summary: stopped.summary };
  }

  it('loses nothing with short connections at 300 requests/s', async () => {
    const r = await run('short', [], { requests: 900, rate: 300, conns: 20 });
    expect(r.online).to.equal(900);
    expect(r.summary.capture.kernelDrops, 'packets the kernel dropped before the raw socket read them').to.equal(0);
    expect(r.target, `loss ratio ${1 - r.target / r.online}`).to.equal(r.online);
  });

  it('loses nothing with keep-alive connections at 300 requests/s', async () => {
    const r = await run('keepalive', [], { requests: 900, rate: 300, conns: 8, keepAlive: true });
    expect(r.online).to.equal(900);
    expect(r.target, `loss ratio ${1 - r.target / r.online}`).to.equal(r.online);
  });

  it('-n 2 doubles the requests at the target', async () => {
    const r = await run('double', ['-n', '2'], { requests: 400, rate: 200, conns: 8, keepAlive: true });
    expect(r.target).to.equal(2 * r.online);
  });

  it('-r 50 replays about half of the connections', async () => {
    const r = await run('half', ['-r', '50'], { requests: 600, rate: 300, conns: 20 });
    expect(r.target / r.online).to.be.within(0.35, 0.65);
  });

  it('-c puts the fake client addresses in the target\'s log', async () => {
    await run('fake', [], { requests: 100, rate: 200, conns: 4 });
    const addrs = new Set(target.accessLog().filter((e) => e.uri.includes('?fake=')).map((e) => e.remoteAddr));
    expect([...addrs].every((a) => a.startsWith('203.0.113.')), [...addrs].join(',')).to.equal(true);
  });

  it('replays connections that were open before tcpcopy started', async () => {
    const plan = { host: '198.51.100.20', port: 80, midStream: { conns: 4, before: 3, after: 5 }, respSizes: [1024], timeoutMs: 30_000 } as WorkloadPlan;
    const work = startWorkload(topo, plan);
    await work.ready;
    const tcpcopy = await startLiveTcpcopy(topo, ['-x', `80-${TARGET}:80`, '-c', '203.0.113.x']);
    work.go();
    const result = await work.done;
    expect(result.code, result.stderr).to.equal(0);
    const wanted: string[] = [];
    for (let c = 0; c < 4; c++) for (let r = 3; r < 8; r++) wanted.push(`/c/${c}/r/${r}`);
    const seen = () => new Set(target.accessLog().map((e) => e.uri));
    await settledCount(() => wanted.filter((u) => seen().has(u)).length);
    const stopped = await tcpcopy.stop();
    expect(wanted.filter((u) => !seen().has(u)), 'requests after the start missing at the target').to.deep.equal([]);
    expect(stopped.summary.engine.sessionsFakedHandshake).to.equal(4);
  });

  it('a tcpcopy stalled for a second (SIGSTOP) catches up: the capture and the channel queue, nothing is lost', async () => {
    const tcpcopy = await startLiveTcpcopy(topo, ['-x', `80-${TARGET}:80`, '-c', '203.0.113.x']);
    const load = pacedLoad(topo, { url: URL, tag: 'stall', requests: 900, rate: 300, conns: 8, keepAlive: true });
    await new Promise((r) => setTimeout(r, 800));
    process.kill(tcpcopy.proc.pid, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 1000));
    process.kill(tcpcopy.proc.pid, 'SIGCONT');
    const result = await load;
    const target = await settledCount(() => count(targetLog(), 'stall'), 1500);
    const stopped = await tcpcopy.stop();
    expect(result.code).to.equal(0);
    expect(count(online, 'stall')).to.equal(900);
    expect(target, `lost ${900 - target}; tcpcopy counters ${JSON.stringify(stopped.summary?.engine)}`).to.equal(900);
  });

  it('SIGKILL of tcpcopy mid-run leaves the online server serving', async () => {
    const tcpcopy = await startLiveTcpcopy(topo, ['-x', `80-${TARGET}:80`, '-c', '203.0.113.x']);
    const load = pacedLoad(topo, { url: URL, tag: 'kill', requests: 600, rate: 300, conns: 8, keepAlive: true });
    await new Promise((r) => setTimeout(r, 700));
    process.kill(tcpcopy.proc.pid, 'SIGKILL');
    const result = await load;
    expect(result.code).to.equal(0);
    expect(result.ok).to.equal(600);
    expect(count(online, 'kill')).to.equal(600);
  });
});
