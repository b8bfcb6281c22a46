// Scenario 2: offline replay with the real parts. A workload against nginx on the online host is captured
// with tcpdump, then replayed from that pcap by the real tcpcopy CLI to nginx on the target, the replies
// coming back through the real intercept on the assistant. The two nginx access logs say what arrived.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import {
  createTopology,
  netnsUnavailableReason,
  runTcpcopy,
  runWorkload,
  sleep,
  startIntercept,
  startNginx,
  startTcpdump,
  type AccessLogEntry,
  type NginxHandle,
  type Topology,
  type WorkloadPlan,
} from '../harness';
import type { Figures } from './figures';

const SCENARIO = 'offline replay across namespaces';
const PORT = 8080;
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
/** -a: fast enough that the capture's own pacing does not count, the replay runs as fast as the target answers. */
const SPEED = 1000;
const CAPTURE_ATTEMPTS = 3;
/**
 * 9,000 requests on 90 keep-alive connections plus 1,000 one-request connections: enough that the fixed
 * costs of a run (its start, the quiet time awaited at the end) weigh little in requests/s.
 */
const PLAN: WorkloadPlan = {
  host: '198.51.100.20',
  port: PORT,
  keepAlive: { conns: 90, requests: 100 },
  short: 1000,
  respSizes: [16, 1024],
  concurrency: 8,
  timeoutMs: 60_000,
};

export async function offlineReplayNetns(figures: Figures): Promise<void> {
  const reason = netnsUnavailableReason();
  if (reason) return figures.skip(SCENARIO, `${reason}; it needs root and 'ip netns'`);
  const missing = ['tcpdump', 'nginx'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length) return figures.skip(SCENARIO, `missing programs: ${missing.join(', ')}`);

  const topo = await createTopology();
  try {
    const { pcap, sent } = await captureWorkload(topo);

    // Replay it to the target.
    const target = await startNginx(topo, 'target', { port: PORT });
    const intercept = await startIntercept(topo, [PORT]);
    let run;
    try {
      run = await runTcpcopy(topo, ['-i', pcap, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', '203.0.113.x', '-a', String(SPEED)]);
    } finally {
      await intercept.stop();
    }
    if (run.code !== 0 || !run.summary) throw new Error(`tcpcopy failed (exit ${run.code}): ${run.stderr.slice(-2000)}`);
    const arrived = await settledLog(target, sent.length);
    await target.stop();

    const lost = missingRequests(sent, arrived);
    const seconds: number = run.summary.seconds;
    figures.add('replay.requests_online', sent.length, 'requests');
    figures.add('replay.requests_replayed', arrived.length, 'requests');
    figures.add('replay.seconds', seconds, 's');
    figures.add('replay.throughput', arrived.length / seconds, 'requests/s');
    figures.add('replay.sessions', run.summary.engine.sessionsCreated, 'sessions');
    figures.add('replay.packets_sent', run.summary.engine.packetsSent, 'packets');
    figures.add('replay.retransmissions', run.summary.engine.retransmissions, 'packets');
    figures.add('replay.all_arrived', lost.length === 0 && arrived.length === sent.length, '');
    if (lost.length) console.error(`# replay: ${lost.length} requests never reached the target, e.g. ${lost.slice(0, 5).join(' ')}`);
  } finally {
    await topo.destroy();
  }
}

/**
 * Runs the workload against nginx on the online host under tcpdump. A busy machine can make tcpdump drop a
 * packet, and a capture with a hole would be replayed with a hole: such a capture is taken again.
 */
async function captureWorkload(topo: Topology): Promise<{ pcap: string; sent: AccessLogEntry[] }> {
  const online = await startNginx(topo, 'online', { port: PORT });
  try {
    for (let attempt = 1; ; attempt++) {
      const logged = online.accessLog().length;
      const pcap = path.join(topo.mkdir('pcap'), `online-${attempt}.pcap`);
      const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, `tcp port ${PORT}`);
      const work = await runWorkload(topo, PLAN);
      const captured = await cap.stop();
      if (work.code !== 0) throw new Error(`the workload failed (exit ${work.code}): ${work.summary.errors.slice(0, 5).join('; ')}`);
      const sent = online.accessLog().slice(logged);
      if (captured.droppedByKernel === 0) {
        console.log(`# replay: ${sent.length} requests on ${work.summary.connections} connections captured (${captured.captured} packets)`);
        return { pcap, sent };
      }
      const again = attempt < CAPTURE_ATTEMPTS;
      console.error(`# replay: tcpdump dropped ${captured.droppedByKernel} packets${again ? ', capturing again' : ''}`);
      if (!again) throw new Error(`tcpdump dropped packets in ${CAPTURE_ATTEMPTS} captures: no complete capture to replay`);
    }
  } finally {
    await online.stop();
  }
}

/**
 * The target's access log once it stops growing. tcpcopy is done once the target has answered, and nginx
 * logs a request as it finishes the response, so this is a short wait for the last lines, bounded.
 */
async function settledLog(nginx: NginxHandle, expected: number): Promise<AccessLogEntry[]> {
  let log = nginx.accessLog();
  for (let i = 0; i < 20 && log.length < expected; i++) {
    await sleep(100);
    const next = nginx.accessLog();
    if (next.length === log.length && i >= 5) break;
    log = next;
  }
  return log;
}

/** Requests (by URI, each unique in a workload run) the online server got and the target did not. */
function missingRequests(sent: AccessLogEntry[], arrived: AccessLogEntry[]): string[] {
  const got = new Set(arrived.map((e) => e.uri));
  return sent.map((e) => e.uri).filter((uri) => !got.has(uri));
}
