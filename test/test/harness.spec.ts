// Proves the end-to-end harness: topology, servers, workload and capture, before any test relies on them.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  createTopology,
  FAKE_CLIENT_NET,
  HOSTS,
  isAlive,
  listNamespaces,
  readPackets,
  requireRoot,
  requireTools,
  runWorkload,
  sleep,
  spawnProc,
  startNginx,
  startRecorder,
  startTcpdump,
  startWorkload,
  tcpPayload,
  Topology,
  WorkloadPlan,
  withTimeout,
  WorkloadResult,
} from '../src/harness';
import type { RecordedStream } from '../src/harness';

const SYN_ONLY = 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn';

/** Payload bytes of the matching packets, retransmissions counted once (a busy CI box may retransmit). */
function payloadBytes(file: string, filter: string): number {
  return tcpPayload(file, filter).unique;
}

/** Client ports that sent a SYN (a retransmitted SYN counts once). */
function synPorts(file: string, filter: string): Set<string> {
  return new Set(readPackets(file, `(${filter}) and ${SYN_ONLY}`).map((l) => /IP \S+\.(\d+) >/.exec(l)![1]));
}

function expectWorkloadOk(r: WorkloadResult, requests: number): void {
  expect(r.summary.errors, r.stderr).to.deep.equal([]);
  expect(r.code).to.equal(0);
  expect(r.summary.requestsSent).to.equal(requests);
  expect(r.summary.responsesOk).to.equal(requests);
}

/** Every workload connection has exactly one recorded stream, from its address, with exactly its bytes. */
function expectStreamsMatch(streams: RecordedStream[], r: WorkloadResult): void {
  expect(streams.map((s) => s.remote).sort()).to.deep.equal(r.connections.map((c) => c.local).sort());
  const byRemote = new Map(streams.map((s) => [s.remote, s]));
  for (const c of r.connections) {
    const s = byRemote.get(c.local)!;
    expect(s.bytes.length, `conn ${c.conn} (${c.kind}) length`).to.equal(c.sent.length);
    expect(s.bytes.equals(c.sent), `conn ${c.conn} (${c.kind}) bytes`).to.equal(true);
  }
}

describe('e2e harness (network namespaces)', function () {
  this.timeout(60_000);
  let topo: Topology;
  const started: number[] = []; // PIDs that must be gone after destroy()

  // A mix of everything: 4 + 3×5 + 2×4 + 1 = 28 requests on 10 connections, responses of 16 B and 100 KB.
  const plan = (port: number): WorkloadPlan => ({
    host: topo.hosts.online.addr,
    port,
    short: 4,
    keepAlive: { conns: 3, requests: 5 },
    pipelined: { conns: 2, requests: 4 },
    post: { bytes: 300 * 1024 },
    respSizes: [16, 102_400, 16],
    concurrency: 4,
    timeoutMs: 20_000,
  });
  const PLAN_REQUESTS = 4 + 3 * 5 + 2 * 4 + 1;
  const PLAN_CONNS = 4 + 3 + 2 + 1;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['nginx', 'tcpdump', 'ethtool', 'sysctl', 'bridge']);
    const t0 = Date.now();
    topo = await createTopology();
    console.log(`      [topology ${topo.runId} up in ${Date.now() - t0} ms]`);
  });

  after(async function () {
    await topo?.destroy();
  });

  it('builds four hosts on a bridge in a fifth namespace, with the routes and sysctls asked for', async function () {
    for (const h of HOSTS) {
      const { iface, addr } = topo.hosts[h];
      expect(iface.length).to.be.at.most(15);
      expect(topo.hosts[h].switchPort.length).to.be.at.most(15);
      const a = await topo.exec(h, 'ip', ['-o', '-4', 'addr', 'show', 'dev', iface]);
      expect(a.stdout).to.contain(`inet ${addr}/24`);
      const lo = await topo.exec(h, 'ip', ['-o', 'link', 'show', 'lo']);
      expect(lo.stdout).to.match(/<[^>]*\bUP\b/);
      const rp = await topo.exec(h, 'sysctl', ['-n', 'net.ipv4.conf.all.rp_filter', `net.ipv4.conf.${iface}.rp_filter`]);
      expect(rp.stdout.split('\n').filter(Boolean)).to.deep.equal(['0', '0']);
    }
    expect((await topo.exec('assistant', 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim()).to.equal('0');
    const route = await topo.exec('target', 'ip', ['route', 'show', FAKE_CLIENT_NET]);
    expect(route.stdout).to.contain(`via ${topo.hosts.assistant.addr}`);
    const ports = await topo.exec('switch', 'ip', ['-o', 'link', 'show', 'master', topo.switch.bridge]);
    expect(ports.stdout.split('\n').filter(Boolean)).to.have.length(4);
    // The root namespace holds nothing of this run.
    const root = spawnProc('ip', ['-o', 'link']);
    await root.exited;
    expect(root.stdout()).not.to.contain(topo.runId);
    // Default: tx checksum offload stays on.
    const k = await topo.exec('online', 'ethtool', ['-k', topo.hosts.online.iface]);
    expect(k.stdout).to.match(/^tx-checksumming: on/m);
  });

  it('recorder on online:8080 records exactly the bytes of each workload connection; tcpdump sees them', async function () {
    const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, path.join(topo.workdir, 'recorder.pcap'), 'tcp port 8080');
    const rec = await startRecorder(topo, 'online', 8080);
    started.push(cap.pid, rec.pid);
    const t0 = Date.now();
    const r = await runWorkload(topo, plan(8080));
    const elapsed = Date.now() - t0;
    await rec.stop();
    const counts = await cap.stop();
    console.log(`      [workload ${elapsed} ms (script ${r.summary.elapsedMs} ms); ${counts.captured} packets captured, link-type ${cap.linkType}]`);

    expectWorkloadOk(r, PLAN_REQUESTS);
    expect(r.connections).to.have.length(PLAN_CONNS);
    const post = r.connections.find((c) => c.kind === 'post')!;
    expect(post.sent.length).to.be.greaterThan(300 * 1024);
    expectStreamsMatch(await rec.streams(), r);

    expect(counts.droppedByKernel).to.equal(0);
    const client = topo.hosts.client.addr;
    const ports = r.connections.map((c) => c.local.split(':')[1]).sort();
    expect([...synPorts(cap.file, `src host ${client}`)].sort()).to.deep.equal(ports);
    // Every byte the workload sent crossed the online host's interface exactly once (no loss on veths).
    expect(payloadBytes(cap.file, `src host ${client} and dst port 8080`)).to.equal(r.summary.bytesSent);
    // With offload on, captured checksums are partial and frames may exceed the MTU (GSO): report it.
    const verbose = readPackets(cap.file, `src host ${client}`, ['-v']).join('\n');
    const maxLen = Math.max(...readPackets(cap.file, '').map((l) => Number(/length (\d+)/.exec(l)?.[1] ?? 0)));
    const p = tcpPayload(cap.file, `src host ${client}`);
    console.log(`      [client payload: ${p.packets} packets, ${p.total} bytes, ${p.total - p.unique} retransmitted]`);
    console.log(`      [offload on: ${(verbose.match(/incorrect ->/g) ?? []).length} client packets with a partial checksum; largest TCP payload ${maxLen} B]`);
  });

  it('nginx on online:80 serves keep-alive, pipelined and a 300 KB POST, and logs every request', async function () {
    const ngx = await startNginx(topo, 'online');
    started.push(ngx.pid);
    const t0 = Date.now();
    const r = await runWorkload(topo, plan(80));
    console.log(`      [nginx workload ${Date.now() - t0} ms]`);
    expectWorkloadOk(r, PLAN_REQUESTS);
    await ngx.stop();
    expect(isAlive(ngx.pid)).to.equal(false);

    const log = ngx.accessLog();
    expect(log).to.have.length(PLAN_REQUESTS);
    expect(log.every((e) => e.status === 200), JSON.stringify(log)).to.equal(true);
    expect(log.every((e) => e.remoteAddr === topo.hosts.client.addr)).to.equal(true);
    expect(new Set(log.map((e) => e.uri)).size).to.equal(PLAN_REQUESTS); // ids are unique
    expect(new Set(log.map((e) => e.connection)).size).to.equal(PLAN_CONNS);
    const post = log.find((e) => e.method === 'POST')!;
    expect(post.requestLength).to.be.greaterThan(300 * 1024);
    // Requests per connection match the plan (keep-alive 5, pipelined 4).
    const perConn = new Map<number, number>();
    for (const e of log) perConn.set(e.connection, Math.max(perConn.get(e.connection) ?? 0, e.connectionRequests));
    expect([...perConn.values()].sort()).to.deep.equal([1, 1, 1, 1, 1, 4, 4, 5, 5, 5]);
  });

  it('nginx reads a whole POST body (to a static file) before it answers', async function () {
    const ngx = await startNginx(topo, 'online', { port: 8000 });
    started.push(ngx.pid);
    // Half the body, a pause, the rest: the response must come only after the rest.
    const head = 'POST /blob/1k HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n';
    const script = `
      const s = require('net').connect(8000, '${topo.hosts.online.addr}');
      let first = -1, restAt = -1; const t0 = Date.now();
      s.on('data', () => { if (first < 0) first = Date.now() - t0; });
      s.write(${JSON.stringify(head)});
      s.write(Buffer.alloc(100000, 97));
      setTimeout(() => { restAt = Date.now() - t0; s.write(Buffer.alloc(100000, 98)); }, 400);
      setTimeout(() => { console.log(JSON.stringify({ first, restAt })); s.destroy(); }, 800);`;
    const out = await topo.exec('client', process.execPath, ['-e', script], { timeoutMs: 5000 });
    const { first, restAt } = JSON.parse(out.stdout);
    await ngx.stop();
    expect(restAt).to.be.greaterThan(0);
    expect(first, 'time of the first response byte').to.be.at.least(restAt);
    const [e] = ngx.accessLog();
    expect([e.status, e.requestLength]).to.deep.equal([200, head.length + 200_000]);
    expect(e.bytesSent).to.be.greaterThan(1024);
  });

  it('a capture started between READY and GO sees mid-stream connections without their start', async function () {
    const rec = await startRecorder(topo, 'online', 8081);
    started.push(rec.pid);
    const run = startWorkload(topo, {
      host: topo.hosts.online.addr,
      port: 8081,
      midStream: { conns: 3, before: 2, after: 3 },
      short: 2,
      respSizes: [16, 102_400],
      timeoutMs: 20_000,
    });
    await run.ready;
    const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, path.join(topo.workdir, 'mid.pcap'), 'tcp port 8081');
    started.push(cap.pid);
    run.go();
    const r = await run.done;
    await rec.stop();
    await cap.stop();

    expectWorkloadOk(r, 3 * 5 + 2);
    expectStreamsMatch(await rec.streams(), r);
    const client = topo.hosts.client.addr;
    for (const c of r.connections) {
      const port = c.local.split(':')[1];
      const syns = synPorts(cap.file, `src host ${client} and src port ${port}`).size;
      const data = payloadBytes(cap.file, `src host ${client} and src port ${port}`);
      if (c.kind === 'midStream') {
        expect(syns, `mid-stream conn ${c.conn} SYN`).to.equal(0);
        // Only the 3 requests after GO were captured.
        expect(data).to.be.greaterThan(0).and.lessThan(c.sent.length);
      } else {
        expect(syns).to.equal(1);
        expect(data).to.equal(c.sent.length);
      }
    }
  });

  it('recorder records a connection that starts mid-request and answers the requests after the garbage', async function () {
    const rec = await startRecorder(topo, 'online', 8082);
    started.push(rec.pid);
    // What a capture started mid-connection replays: the tail of a body, half a header, then requests.
    const sent = Buffer.concat([
      Buffer.from([0, 255, 13, 10, 0x47]),
      Buffer.from('xx tail of a body\r\nX-Half: header\r\n\r\n'),
      Buffer.from('GET /c/7/r/3 HTTP/1.1\r\nX-Resp-Size: 5\r\n\r\nGET /c/7/r/4 HTTP/1.1\r\nConnection: close\r\n\r\n'),
    ]);
    const script = `
      const s = require('net').connect(8082, '${topo.hosts.online.addr}');
      const got = [];
      s.on('data', (d) => got.push(d));
      s.on('close', () => console.log(Buffer.concat(got).toString('latin1')));
      s.write(Buffer.from('${sent.toString('base64')}', 'base64'));`;
    const out = await topo.exec('client', process.execPath, ['-e', script], { timeoutMs: 5000 });
    await rec.stop();
    expect(out.stdout).to.equal(
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Echo: /c/7/r/3\r\n\r\n01234' +
        'HTTP/1.1 200 OK\r\nContent-Length: 16\r\nX-Echo: /c/7/r/4\r\nConnection: close\r\n\r\n0123456789abcdef\n',
    );
    const streams = await rec.streams();
    expect(streams).to.have.length(1);
    expect(streams[0].bytes.equals(sent)).to.equal(true);
  });

  it('target → 203.0.113.5 reaches the assistant and goes no further (no forward, no ICMP)', async function () {
    const filter = 'host 203.0.113.5';
    const atAssistant = await startTcpdump(topo, 'assistant', topo.hosts.assistant.iface, path.join(topo.workdir, 'bh-assistant.pcap'), filter);
    const atOnline = await startTcpdump(topo, 'online', topo.hosts.online.iface, path.join(topo.workdir, 'bh-online.pcap'), filter);
    const atTarget = await startTcpdump(topo, 'target', topo.hosts.target.iface, path.join(topo.workdir, 'bh-target.pcap'), 'icmp');
    started.push(atAssistant.pid, atOnline.pid, atTarget.pid);
    // Three UDP datagrams and one TCP connect attempt (one SYN; the attempt is abandoned after 300 ms).
    const script = `
      const u = require('dgram').createSocket('udp4');
      let n = 0; const send = () => u.send('reply-to-fake-client', 9, '203.0.113.5', () => { if (++n < 3) send(); else u.close(); });
      send();
      const s = require('net').connect(80, '203.0.113.5');
      s.on('error', () => undefined);
      setTimeout(() => { s.destroy(); console.log('done'); }, 300);`;
    await topo.exec('target', process.execPath, ['-e', script], { timeoutMs: 10_000 });
    await sleep(200); // anything forwarded would have arrived by now
    await atAssistant.stop();
    await atOnline.stop();
    await atTarget.stop();
    expect(readPackets(atAssistant.file, 'udp and dst host 203.0.113.5 and dst port 9')).to.have.length(3);
    expect(readPackets(atAssistant.file, `dst host 203.0.113.5 and ${SYN_ONLY}`)).to.have.length.at.least(1);
    expect(readPackets(atOnline.file, '')).to.deep.equal([]);
    expect(readPackets(atTarget.file, '')).to.deep.equal([]);
  });

  it('offload options: tx checksum and segmentation offload off give full checksums and MTU-sized frames', async function () {
    const t2 = await createTopology({ txChecksumOffload: false, segmentationOffload: false });
    try {
      const k = await t2.exec('client', 'ethtool', ['-k', t2.hosts.client.iface]);
      expect(k.stdout).to.match(/^tx-checksumming: off/m);
      expect(k.stdout).to.match(/^tcp-segmentation-offload: off/m);
      const cap = await startTcpdump(t2, 'online', t2.hosts.online.iface, path.join(t2.workdir, 'nooffload.pcap'), 'tcp port 8080');
      const rec = await startRecorder(t2, 'online', 8080);
      const r = await runWorkload(t2, { host: t2.hosts.online.addr, port: 8080, keepAlive: { conns: 2, requests: 3 }, post: { bytes: 100_000 }, respSizes: [102_400] });
      await rec.stop();
      await cap.stop();
      expectWorkloadOk(r, 7);
      const client = t2.hosts.client.addr;
      const verbose = readPackets(cap.file, `src host ${client}`, ['-v']).join('\n');
      expect(verbose).to.contain('cksum');
      expect(verbose).not.to.contain('incorrect');
      const lens = readPackets(cap.file, '').map((l) => Number(/length (\d+)/.exec(l)?.[1] ?? 0));
      expect(Math.max(...lens)).to.be.at.most(1460);
      expect(payloadBytes(cap.file, `src host ${client}`)).to.equal(r.summary.bytesSent);
    } finally {
      await t2.destroy();
    }
    expect(listNamespaces().filter((n) => n.includes(t2.runId))).to.deep.equal([]);
  });

  it('destroy() kills every process by PID, removes every namespace of the run, and is idempotent', async function () {
    const sleeper = topo.spawn('assistant', 'sleep', ['30']);
    // A grandchild the topology never saw: still inside a namespace, so destroy() finds it.
    const sh = topo.spawn('target', 'sh', ['-c', 'sleep 30 & echo $!; wait']);
    const grandchild = Number((await sh.waitFor(/^(\d+)$/m))[1]);
    started.push(sleeper.pid, sh.pid, grandchild);
    const workdir = topo.workdir;
    const t0 = Date.now();
    await topo.destroy();
    console.log(`      [destroy ${Date.now() - t0} ms]`);
    await topo.destroy();
    expect(listNamespaces().filter((n) => n.includes(topo.runId))).to.deep.equal([]);
    expect(started.filter(isAlive)).to.deep.equal([]);
    expect(fs.existsSync(workdir)).to.equal(false);
  });

  it('a process that is interrupted (SIGINT) removes its namespaces and processes on the way out', async function () {
    const harness = path.resolve(__dirname, '..', 'src', 'harness', 'index.js');
    const script = `
      const h = require(${JSON.stringify(harness)});
      h.createTopology().then((t) => {
        const p = t.spawn('online', 'sleep', ['30']);
        console.log('UP', t.runId, p.pid);
      });
      setTimeout(() => process.exit(3), 20000);`;
    const child = spawnProc(process.execPath, ['-e', script]);
    try {
      const [, runId, pid] = await child.waitFor(/^UP (\S+) (\d+)$/m, { timeoutMs: 10_000 });
      expect(listNamespaces().filter((n) => n.includes(runId))).to.have.length(5);
      process.kill(child.pid, 'SIGINT');
      const st = await withTimeout(child.exited, 10_000, 'interrupted child to exit');
      expect(st.signal ?? st.code).to.equal('SIGINT');
      expect(listNamespaces().filter((n) => n.includes(runId))).to.deep.equal([]);
      expect(isAlive(Number(pid))).to.equal(false);
    } finally {
      await child.stop('SIGKILL', 2000);
    }
  });
});
