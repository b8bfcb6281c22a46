// `npm run demo`: one offline replay end to end, between network namespaces, with a short report.
//
// A workload on the client talks to nginx on the online host while tcpdump captures it there; then intercept
// starts on the assistant and tcpcopy replays the capture to nginx on the target. The two nginx access logs are
// compared connection by connection. Exit code 0 only if every request the online server saw reached the
// target, on one connection per online connection, in the same order.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  TCPCOPY_BIN,
  createTopology,
  netnsUnavailableReason,
  startIntercept,
  startNginx,
  startTcpdump,
  runWorkload,
  withTimeout,
  nginxConnections,
  type AccessLogEntry,
  type NginxConnection,
  type Capture,
  type InterceptHandle,
  type NginxHandle,
  type Topology,
  type WorkloadPlan,
} from './harness';

const PORT = 80;
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const FAKE_CLIENTS = '203.0.113.x';
const TCPCOPY_TIMEOUT_MS = 60_000;

const plan: WorkloadPlan = {
  host: '198.51.100.20',
  port: PORT,
  short: 60,
  keepAlive: { conns: 8, requests: 25 },
  pipelined: { conns: 3, requests: 10 },
  post: { bytes: 300 * 1024 },
  respSizes: [16, 1024, 0, 102_400, 16],
  concurrency: 8,
  timeoutMs: 20_000,
};

const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const step = (what: string): void => void process.stdout.write(`  [${elapsed().padStart(6)}] ${what}\n`);

let topo: Topology | undefined;
let interrupted = false;
/** The last line, printed once everything is cleaned up. */
let verdict = '';

function onSignal(sig: NodeJS.Signals): void {
  if (interrupted) return;
  interrupted = true;
  process.stderr.write(`\n${sig}: stopping and removing the namespaces\n`);
  const code = sig === 'SIGINT' ? 130 : 143;
  const t = topo;
  if (!t) process.exit(code);
  // The harness's own exit hook (installed by createTopology, so it runs after this one) removes everything
  // synchronously as well; this waits for the polite version, bounded.
  withTimeout(t.destroy(), 15_000, 'topology cleanup')
    .catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`))
    .finally(() => process.exit(code));
}

type Conn = NginxConnection;
const connections = nginxConnections;

/** The workload connection number in /c/<conn>/r/<req>, or -1. */
function workloadConn(c: Conn): number {
  const m = /^\/c\/(\d+)\/r\//.exec(c.entries[0]?.uri ?? '');
  return m ? Number(m[1]) : -1;
}

interface Comparison {
  onlineRequests: number;
  targetRequests: number;
  onlineConns: number;
  targetConns: number;
  inOrder: number;
  problems: string[];
}

function compare(online: AccessLogEntry[], target: AccessLogEntry[]): Comparison {
  const on = connections(online);
  const tg = connections(target);
  const tgByConn = new Map<number, Conn[]>();
  for (const c of tg) tgByConn.set(workloadConn(c), [...(tgByConn.get(workloadConn(c)) ?? []), c]);
  const problems: string[] = [];
  let inOrder = 0;
  for (const c of on) {
    const n = workloadConn(c);
    const want = c.entries.map((e) => `${e.request} ${e.status}`);
    const got = tgByConn.get(n) ?? [];
    if (got.length !== 1) {
      problems.push(`online connection ${c.id} (workload conn ${n}, ${want.length} requests): ${got.length} connections at the target`);
      continue;
    }
    const have = got[0].entries.map((e) => `${e.request} ${e.status}`);
    const i = want.findIndex((w, k) => have[k] !== w);
    if (i < 0 && have.length === want.length) inOrder++;
    else if (i >= 0) problems.push(`workload conn ${n}: request ${i + 1} online "${want[i]}", at the target "${have[i] ?? '(none)'}"`);
    else problems.push(`workload conn ${n}: ${have.length} requests at the target, ${want.length} online`);
  }
  const onlineNumbers = new Set(on.map(workloadConn));
  for (const c of tg) {
    if (!onlineNumbers.has(workloadConn(c))) problems.push(`target connection ${c.id} from ${c.remote} matches no online connection (${c.entries[0]?.request})`);
  }
  return { onlineRequests: online.length, targetRequests: target.length, onlineConns: on.length, targetConns: tg.length, inOrder, problems };
}

async function main(): Promise<number> {
  const why = netnsUnavailableReason();
  if (why) {
    say(`demo: cannot run: ${why}. It needs root and iproute2's 'ip netns' (see README.md: ./scripts/setup.sh).`);
    return 2;
  }
  const missing = ['nginx', 'tcpdump'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { timeout: 5000 }).status !== 0);
  if (missing.length) {
    say(`demo: cannot run: ${missing.join(' and ')} not installed (./scripts/setup.sh installs them).`);
    return 2;
  }

  say('tcpcopy-ts demo: capture an HTTP workload on the online host, replay it to the target host');
  step('creating the network namespaces');
  topo = await createTopology();
  const t = topo;
  const stops: Array<() => Promise<unknown>> = [];
  let onlineNginx: NginxHandle;
  let targetNginx: NginxHandle;
  let cap: Capture;
  let captured = { captured: 0, droppedByKernel: 0 };
  let intercept: InterceptHandle | undefined;
  const pcap = path.join(t.mkdir('pcap'), 'online.pcap');
  try {
    step('starting nginx on the online and the target host');
    onlineNginx = await startNginx(t, 'online', { port: PORT });
    stops.push(() => onlineNginx.stop());
    targetNginx = await startNginx(t, 'target', { port: PORT });
    stops.push(() => targetNginx.stop());

    step(`capturing on the online host with tcpdump while the client runs the workload`);
    cap = await startTcpdump(t, 'online', t.hosts.online.iface, pcap, `tcp port ${PORT}`);
    stops.push(() => cap.stop());
    const work = await runWorkload(t, plan);
    captured = await cap.stop();
    if (work.code !== 0) {
      say(`demo: the workload failed against the online nginx (exit ${work.code}):\n${work.stderr.trim().split('\n').slice(0, 5).join('\n')}`);
      verdict = 'FAIL: the workload did not run cleanly against the online nginx, so there was nothing sound to replay';
      return 1;
    }

    step('starting intercept on the assistant');
    intercept = await startIntercept(t, [PORT]);
    stops.push(() => intercept!.stop());

    const reportFile = path.join(path.dirname(pcap), 'report.json');
    // A status line every 50 ms (the replay is short), the HTTP protocol for request counts, statuses and latencies.
    const args = ['-i', pcap, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', FAKE_CLIENTS,
      '--protocol', 'http', '--stats-interval', '0.05', '--report', reportFile];
    step(`replaying: tcpcopy ${args.join(' ').replace(pcap, 'online.pcap').replace(reportFile, 'report.json')}`);
    const tc = t.spawn('online', process.execPath, [TCPCOPY_BIN, ...args]);
    const st = await withTimeout(tc.exited, TCPCOPY_TIMEOUT_MS, 'tcpcopy').catch(async (e: Error) => {
      await tc.stop('SIGKILL', 2000).catch(() => undefined);
      throw e;
    });
    if (interrupted) return 130;
    const tcpcopyLines = tc.stderr().split('\n').filter(Boolean).map((l) => l.replace(/^tcpcopy: /, ''));
    const endAt = tcpcopyLines.findIndex((l) => /^replay finished/.test(l));
    const endSummary = endAt >= 0 ? tcpcopyLines.slice(endAt) : ['(no end summary)'];
    const statusLines = tcpcopyLines.slice(0, Math.max(endAt, 0)).filter((l) => / s; sessions \d+:/.test(l));
    const warnings = tcpcopyLines.slice(0, Math.max(endAt, 0)).filter((l) => !statusLines.includes(l));
    const report = readReport(reportFile);

    // Graceful stops flush the access logs.
    await intercept.stop();
    await targetNginx.stop();
    await onlineNginx.stop();
    const cmp = compare(onlineNginx.accessLog(), targetNginx.accessLog());

    const ok = st.code === 0 && cmp.problems.length === 0 && cmp.onlineRequests > 0 && cmp.inOrder === cmp.onlineConns && cmp.targetRequests === cmp.onlineRequests;
    const ka = plan.keepAlive!;
    const pl = plan.pipelined!;
    const H = t.hosts;
    say();
    say(`  client     ${H.client.addr}   workload: ${plan.short} short + ${ka.conns}x${ka.requests} keep-alive + ${pl.conns}x${pl.requests} pipelined connections, one ${plan.post!.bytes / 1024} KB POST`);
    say(`  online     ${H.online.addr}   nginx :${PORT}; tcpdump -> online.pcap (${captured.captured} packets); tcpcopy`);
    say(`  target     ${H.target.addr}   nginx :${PORT}, the server under test; routes ${FAKE_CLIENTS.replace('.x', '.0/24')} via ${ASSISTANT}`);
    say(`  assistant  ${H.assistant.addr}   intercept: returns the target's replies to tcpcopy (ip_forward=0)`);
    say();
    say(`  requests     online ${String(cmp.onlineRequests).padEnd(6)} target ${cmp.targetRequests}`);
    say(`  connections  online ${String(cmp.onlineConns).padEnd(6)} target ${cmp.targetConns}`);
    say(`  order        ${cmp.inOrder} of ${cmp.onlineConns} connections: same requests, same order, same statuses${cmp.inOrder === cmp.onlineConns ? '' : ' (NOT all)'}`);
    say(`  tcpcopy      exit ${st.code ?? st.signal}; its status line (--stats-interval 0.05), the last of ${statusLines.length}:`);
    say(`               ${statusLines.at(-1) ?? '(none)'}`);
    say(`               its end summary:`);
    for (const l of endSummary) say(`               ${l}`);
    for (const w of warnings.slice(0, 5)) say(`               ${w}`);
    say(`  report.json  ${report}`);
    for (const p of cmp.problems.slice(0, 10)) say(`  problem      ${p}`);
    if (cmp.problems.length > 10) say(`  problem      ... and ${cmp.problems.length - 10} more`);
    say();
    verdict = ok
      ? `PASS: all ${cmp.onlineRequests} requests on ${cmp.onlineConns} connections reached the target in order`
      : `FAIL: the target did not get every online request in order`;
    return ok ? 0 : 1;
  } finally {
    step('removing the namespaces');
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await t.destroy();
  }
}

/** The figures of tcpcopy's --report that compare the two servers, on one line. */
function readReport(file: string): string {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8'));
    const p = r.protocol ?? {};
    const side = (k: 'online' | 'target'): string =>
      `${k} ${p.requests?.[k]} requests, statuses ${JSON.stringify(p.status?.[k] ?? {})}, ` +
      `p50/p99 ${p.latency_ms?.[k]?.p50}/${p.latency_ms?.[k]?.p99} ms`;
    return `${side('online')}\n               ${side('target')}`;
  } catch (err) {
    return `(not readable: ${(err as Error).message})`;
  }
}

process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
main().then(
  (code) => {
    if (interrupted) return; // the signal handler exits once the namespaces are gone
    if (verdict) say(`${verdict} (${elapsed()})`);
    process.exit(code);
  },
  async (e: Error) => {
    if (interrupted) return;
    say(`demo: ${e.message}`);
    if (topo && !topo.destroyed) await topo.destroy().catch(() => undefined);
    say('FAIL: the demo did not run to the end');
    process.exit(1);
  },
);
