// The HTTP protocol end to end, with nginx on both sides: a workload (keep-alive, pipelined, short
// connections, a 300 KB POST, a 1 MB download) and scripts/http-client.js (a streamed chunked upload, a chunked
// gzip download, Expect: 100-continue, HEAD, an HTTP/1.0 close-delimited download) run against the online
// nginx under tcpdump; the capture is replayed twice with `--protocol http`: as it is, and with header
// rewrites and a deny-url filter. The target nginx's JSON access log says what arrived; a capture on the
// target host says in which order requests and responses crossed its wire.
import { expect } from 'chai';
import * as path from 'node:path';
import {
  createTopology,
  requireRoot,
  requireTools,
  runTcpcopy,
  runWorkload,
  scriptPath,
  sleep,
  startIntercept,
  startTcpdump,
  type TcpcopyRun,
  type Topology,
  type WorkloadPlan,
  type WorkloadResult,
} from '../src/harness';
import { startHttpNginx, type HttpLogEntry } from '../src/harness/http-nginx';
import { firstCarrier, readTcpConnections, splitRequests, splitResponses } from '../src/harness/http-streams';

const PORT = 80;
const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const MB = 1_048_576;
const POST_BYTES = 300 * 1024;

const SHORT = 4;
const KEEP_ALIVE = { conns: 4, requests: 12 };
const PIPELINED = { conns: 3, requests: 10 };
// The last request of the last keep-alive connection asks for 1 MB; no other request reaches that index.
const BIG_AT = SHORT + KEEP_ALIVE.conns - 1 + KEEP_ALIVE.requests - 1;
const RESP_SIZES = Array.from({ length: 64 }, (_, i) => (i === BIG_AT ? MB : [16, 1024, 0, 102_400][i % 4]));
const POST_CONN = SHORT + KEEP_ALIVE.conns + PIPELINED.conns;
const CLIENT_CONN = 900;

const plan: WorkloadPlan = {
  host: ONLINE,
  port: PORT,
  short: SHORT,
  keepAlive: KEEP_ALIVE,
  pipelined: PIPELINED,
  post: { bytes: POST_BYTES },
  respSizes: RESP_SIZES,
  concurrency: 8,
  timeoutMs: 20_000,
};

const DENY = /^\/c\/\d+\/r\/3$/;
const REWRITE_OPTS = [
  '--protocol-opt', 'set-header=X-Test: replayed',
  '--protocol-opt', 'set-header=Host: target.example',
  '--protocol-opt', 'remove-header=User-Agent',
  '--protocol-opt', `deny-url=${DENY.source}`,
];

/** One nginx connection's requests, in order, under a name that is the same online and at the target. */
function connections(log: HttpLogEntry[]): Map<string, HttpLogEntry[]> {
  const byConn = new Map<number, HttpLogEntry[]>();
  for (const e of log) byConn.set(e.conn, [...(byConn.get(e.conn) ?? []), e]);
  const out = new Map<string, HttpLogEntry[]>();
  for (const entries of byConn.values()) {
    entries.sort((a, b) => a.n - b.n);
    const ids = [...new Set(entries.map((e) => /^\/c\/(\d+)\//.exec(e.uri)?.[1]).filter(Boolean))];
    // The HTTP/1.0 connection of http-client.js carries only /gz/text.
    const name = ids.length ? ids.join('+') : entries.map((e) => e.request).join('|');
    if (out.has(name)) throw new Error(`two connections named ${name}`);
    out.set(name, entries);
  }
  return out;
}

const summaryLine = (e: HttpLogEntry) => `${e.request} -> ${e.status}, ${e.requestLength} request bytes`;

describe('http protocol end to end (nginx on both sides)', function () {
  this.timeout(90_000);
  let topo: Topology;
  let work: WorkloadResult;
  let client: { code: number | null; summary: { steps: Array<Record<string, unknown>>; errors: string[] } };
  let online: HttpLogEntry[];
  let plain: { run: TcpcopyRun; log: HttpLogEntry[]; pcap: string };
  let rewritten: { run: TcpcopyRun; log: HttpLogEntry[] };

  before(async function () {
    requireRoot(this);
    requireTools(this, ['nginx', 'tcpdump']);
    const started = Date.now();
    topo = await createTopology();
    const stops: Array<() => Promise<unknown>> = [];
    try {
      const onlineNginx = await startHttpNginx(topo, 'online', PORT);
      stops.push(() => onlineNginx.stop());
      const targetNginx = await startHttpNginx(topo, 'target', PORT);
      stops.push(() => targetNginx.stop());

      const pcap = path.join(topo.mkdir('pcap'), 'online.pcap');
      const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, `tcp port ${PORT}`);
      stops.push(() => cap.stop());
      const clientProc = topo.spawn('client', process.execPath, [scriptPath('http-client.js'), '--host', ONLINE, '--port', String(PORT), '--conn', String(CLIENT_CONN)]);
      [work] = await Promise.all([runWorkload(topo, plan), clientProc.exited]);
      const m = /^SUMMARY (.*)$/m.exec(clientProc.stdout());
      client = { code: clientProc.exitStatus()?.code ?? null, summary: m ? JSON.parse(m[1]) : { steps: [], errors: [clientProc.stderr()] } };
      const counts = await cap.stop();
      expect(counts.droppedByKernel, 'packets tcpdump lost').to.equal(0);
      online = onlineNginx.accessLog();

      const intercept = await startIntercept(topo, [PORT]);
      stops.push(() => intercept.stop());
      const base = ['-i', pcap, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', '203.0.113.x', '--protocol', 'http'];
      /** One replay; returns the access-log entries it added at the target. */
      const replay = async (extra: string[], capture?: string) => {
        const before = targetNginx.accessLog().length;
        const tcpdump = capture ? await startTcpdump(topo, 'target', topo.hosts.target.iface, capture, `tcp port ${PORT}`) : null;
        const run = await runTcpcopy(topo, [...base, ...extra], 30_000);
        await tcpdump?.stop();
        // nginx logs a request when it is done with it: give the last ones a moment.
        let log = targetNginx.accessLog();
        for (let i = 0, last = -1; i < 50 && log.length !== last; i++) {
          last = log.length;
          await sleep(50);
          log = targetNginx.accessLog();
        }
        return { run, log: log.slice(before) };
      };
      const targetPcap = path.join(topo.mkdir('pcap'), 'target-plain.pcap');
      plain = { ...(await replay([], targetPcap)), pcap: targetPcap };
      rewritten = await replay(REWRITE_OPTS);
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    }
    process.stderr.write(`      [http e2e setup and replays: ${Date.now() - started} ms]\n`);
  });

  after(async () => {
    await topo?.destroy();
  });

  it('online: the workload and the HTTP client got every answer (chunked, 100 Continue, close-delimited)', () => {
    expect(work.code, work.stderr).to.equal(0);
    expect(client.code, JSON.stringify(client.summary)).to.equal(0);
    const names = client.summary.steps.map((s) => s.name);
    expect(names).to.deep.equal(['chunked upload', 'chunked download', 'expect 100-continue', 'head', 'last', 'close-delimited download']);
    const expected = SHORT + KEEP_ALIVE.conns * KEEP_ALIVE.requests + PIPELINED.conns * PIPELINED.requests + 1 + names.length;
    expect(online).to.have.length(expected);
  });

  for (const which of ['plain', 'rewritten'] as const) {
    it(`${which} replay: no protocol fault, no idle release, nothing aborted, nothing skipped`, () => {
      const { run } = which === 'plain' ? plain : rewritten;
      expect(run.code, run.stderr).to.equal(0);
      const e = run.summary?.engine;
      expect(e, run.stdout).to.be.an('object');
      // No idle release: every request went because its predecessor's response was seen complete
      // (chunked, HEAD, 100 Continue, close-delimited included), and no dropped request was waited for.
      expect({ faults: e.protocolFaults, fallbacks: e.idleReleases, aborted: e.sessionsAborted, timeouts: e.handshakeTimeouts + e.sessionTimeouts }, JSON.stringify(e)).to.deep.equal({
        faults: 0,
        fallbacks: 0,
        aborted: 0,
        timeouts: 0,
      });
      expect(run.stderr).not.to.match(/cannot follow|skipped \d+ client bytes|failed in/);
    });
  }

  it('plain replay: every connection arrives with the same requests, in the same order, whole', () => {
    const want = connections(online);
    const got = connections(plain.log);
    const problems: string[] = [];
    for (const [name, entries] of want) {
      const g = got.get(name);
      if (!g) {
        problems.push(`connection ${name}: not at the target`);
        continue;
      }
      const a = entries.map(summaryLine);
      const b = g.map(summaryLine);
      const i = a.findIndex((x, k) => b[k] !== x);
      if (i >= 0 || a.length !== b.length) problems.push(`connection ${name}, request ${i + 1}: online "${a[i]}", target "${b[i] ?? '(missing)'}"`);
      if (g.some((e, k) => e.n !== k + 1)) problems.push(`connection ${name}: target $connection_requests ${g.map((e) => e.n).join(',')}`);
    }
    expect(problems, problems.slice(0, 10).join('\n')).to.deep.equal([]);
    expect([...got.keys()].sort()).to.deep.equal([...want.keys()].sort());
  });

  it('plain replay: the 300 KB POST, the 1 MB download, the chunked upload and the HTTP/1.0 download arrived whole', () => {
    const at = (request: string) => plain.log.find((e) => e.request === request);
    const post = at(`POST /c/${POST_CONN}/r/0 HTTP/1.1`);
    expect(post?.status).to.equal(200);
    expect(post!.requestLength).to.be.greaterThan(POST_BYTES);
    const big = at(`GET /c/${SHORT + KEEP_ALIVE.conns - 1}/r/${KEEP_ALIVE.requests - 1} HTTP/1.1`);
    expect(big?.bytesSent).to.be.greaterThan(MB);
    const upload = at(`POST /c/${CLIENT_CONN}/r/0 HTTP/1.1`);
    const uploadOnline = online.find((e) => e.request === upload?.request);
    expect(upload?.transferEncoding).to.equal('chunked');
    expect(upload!.requestLength, 'chunked upload bytes').to.equal(uploadOnline!.requestLength).and.to.be.greaterThan(100_000);
    expect(at(`POST /c/${CLIENT_CONN}/r/2 HTTP/1.1`)?.expect).to.equal('100-continue');
    expect(at('GET /gz/text HTTP/1.0')?.status).to.equal(200);
  });

  it('plain replay, target capture: no request reached the target before it had finished the previous response', () => {
    const conns = readTcpConnections(plain.pcap, PORT).filter((c) => c.client.startsWith('203.0.113.'));
    const problems: string[] = [];
    let requests = 0;
    let continued = 0;
    for (const c of conns) {
      const reqs = splitRequests(c.up.bytes);
      const resps = splitResponses(c.down.bytes, reqs.map((r) => r.method));
      const finals = resps.filter((r) => r.status >= 200);
      requests += reqs.length;
      if (finals.length !== reqs.length) problems.push(`${c.client}: ${reqs.length} requests, ${finals.length} complete responses`);
      for (let i = 1; i < Math.min(reqs.length, finals.length + 1); i++) {
        const reqAt = firstCarrier(c.up, reqs[i].start);
        const prevDoneAt = firstCarrier(c.down, finals[i - 1].end - 1);
        if (!(reqAt > prevDoneAt)) problems.push(`${c.client}: request ${i + 1} (packet ${reqAt}) before response ${i} was complete (packet ${prevDoneAt})`);
      }
      // A body announced with Expect: 100-continue went after the target's 100 Continue.
      for (const r of reqs.filter((q) => /100-continue/i.test(q.headers.expect ?? ''))) {
        const interim = resps.find((x) => x.status === 100 && x.start >= (finals[reqs.indexOf(r) - 1]?.end ?? 0));
        if (!interim) problems.push(`${c.client}: no 100 Continue for ${r.method}`);
        else if (!(firstCarrier(c.up, r.headEnd) > firstCarrier(c.down, interim.end - 1))) problems.push(`${c.client}: body before the 100 Continue`);
        else continued++;
      }
    }
    expect(problems, problems.slice(0, 10).join('\n')).to.deep.equal([]);
    expect(conns).to.have.length(connections(online).size);
    expect(requests).to.equal(online.length);
    expect(continued).to.equal(1);
  });

  it('set-header and remove-header change exactly those headers (Host included), nothing else', () => {
    const byRequest = new Map(online.map((e) => [e.request, e]));
    const problems: string[] = [];
    for (const t of rewritten.log) {
      const o = byRequest.get(t.request);
      if (!o) {
        problems.push(`${t.request}: not online`);
        continue;
      }
      if (t.xTest !== 'replayed' || t.host !== 'target.example' || t.userAgent !== '') problems.push(`${t.request}: X-Test "${t.xTest}", Host "${t.host}", User-Agent "${t.userAgent}"`);
      // Exactly: one line added, one removed, the Host value replaced; the rest byte for byte.
      const delta = 'X-Test: replayed\r\n'.length - (o.userAgent ? `User-Agent: ${o.userAgent}\r\n`.length : 0) + ('target.example'.length - o.host.length);
      if (t.requestLength - o.requestLength !== delta) problems.push(`${t.request}: ${t.requestLength} request bytes, online ${o.requestLength}, want a difference of ${delta}`);
      if (t.status !== o.status) problems.push(`${t.request}: status ${t.status}, online ${o.status}`);
    }
    expect(problems, problems.slice(0, 10).join('\n')).to.deep.equal([]);
    expect(online.filter((e) => e.userAgent !== '' && e.xTest === '')).to.have.length(online.length);
  });

  it('deny-url drops exactly the matching requests; the rest of those connections still arrives, in order', () => {
    const want = connections(online.filter((e) => !DENY.test(e.uri)));
    const got = connections(rewritten.log);
    const dropped = online.filter((e) => DENY.test(e.uri));
    // Request 3 sits in the middle of every keep-alive and pipelined connection (and is the HEAD of http-client.js).
    expect(dropped).to.have.length(KEEP_ALIVE.conns + PIPELINED.conns + 1);
    expect(rewritten.log.filter((e) => DENY.test(e.uri))).to.deep.equal([]);
    const problems: string[] = [];
    for (const [name, entries] of want) {
      const g = got.get(name)?.map((e) => `${e.request} -> ${e.status}`);
      const w = entries.map((e) => `${e.request} -> ${e.status}`);
      if (JSON.stringify(g) !== JSON.stringify(w)) problems.push(`connection ${name}: online ${w.length} requests, target ${g?.length ?? 0}: ${g?.join('; ')}`);
    }
    expect(problems, problems.slice(0, 10).join('\n')).to.deep.equal([]);
    expect(rewritten.log).to.have.length(online.length - dropped.length);
  });
});
