// --metrics: the HOST:PORT parser, tcpcopy's and intercept's metrics as Prometheus text for given counters
// (read at scrape time: a counter changes between two scrapes without anything else being called), the
// HTTP server (GET /metrics, 404 elsewhere, a port in use refused, closed for good), and the commands'
// one-line errors.
import type { InterceptStats, PacketSocketCaptureStats } from '@tcpcopy/core';
import { expect } from 'chai';
import * as http from 'node:http';
import { interceptMetrics } from '../src/intercept-metrics';
import { MetricsServer } from '../src/metrics';
import { parseMetricsAddress } from '../src/metrics-address';
import { UsageError } from '../src/process-control';
import { tcpcopyMetrics } from '../src/tcpcopy-metrics';
import { PAST_OPTIONS, runCommand } from './support/commands';
import { summaryWith } from './support/summary';

/** The value of one sample line `name{labels} value`, or undefined when there is none. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function get(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in 5 s`)));
    req.on('error', reject);
  });
}

describe('metrics', () => {
  describe('--metrics HOST:PORT', () => {
    it('takes IPv4, [IPv6], localhost and :PORT (every address)', () => {
      expect(parseMetricsAddress('127.0.0.1:9464')).to.deep.equal({ host: '127.0.0.1', port: 9464 });
      expect(parseMetricsAddress('[::1]:9464')).to.deep.equal({ host: '::1', port: 9464 });
      expect(parseMetricsAddress('localhost:1')).to.deep.equal({ host: 'localhost', port: 1 });
      expect(parseMetricsAddress(':65535')).to.deep.equal({ host: '', port: 65535 });
    });

    for (const [bad, says] of [
      ['9464', 'not HOST:PORT'], ['127.0.0.1', 'not HOST:PORT'], ['127.0.0.1:0', 'out of range'], ['127.0.0.1:70000', 'out of range'],
      ['example.com:9464', 'not an IP address'], ['[nope]:1', 'not an IP address'], ['::1:9464', 'not HOST:PORT'],
    ]) {
      it(`refuses ${bad}: ${says}`, () => {
        expect(() => parseMetricsAddress(bad)).to.throw(UsageError, says);
      });
    }
  });

  describe('tcpcopy_*', () => {
    it('are read from the counters when scraped, with Prometheus names and the process metrics', async () => {
      let summary = summaryWith({
        tcpPackets: 500, kernelDrops: 0, failed: 2,
        engine: { sessionsCreated: 10, sessionsCompleted: 6, sessionsAborted: 1, handshakeTimeouts: 1, packetsSent: 480, repliesReceived: 400, bytesSent: 9000 },
        protocol: { name: 'mysql', commands: 7, answersOk: 6 },
      });
      const registry = tcpcopyMetrics(() => summary);
      let text = await registry.metrics();
      expect(sample(text, 'tcpcopy_sessions_total')).to.equal(10);
      expect(sample(text, 'tcpcopy_sessions_active')).to.equal(3);
      expect(sample(text, 'tcpcopy_sessions_closed_total')).to.equal(6);
      expect(sample(text, 'tcpcopy_sessions_reset_total')).to.equal(1);
      expect(sample(text, 'tcpcopy_sessions_given_up_total{reason="handshake_timeout"}')).to.equal(1);
      expect(sample(text, 'tcpcopy_captured_packets_total')).to.equal(500);
      expect(sample(text, 'tcpcopy_capture_dropped_packets_total')).to.equal(0);
      expect(sample(text, 'tcpcopy_packets_sent_total')).to.equal(480);
      expect(sample(text, 'tcpcopy_payload_sent_bytes_total')).to.equal(9000);
      expect(sample(text, 'tcpcopy_send_errors_total')).to.equal(2);
      expect(sample(text, 'tcpcopy_replies_total')).to.equal(400);
      expect(sample(text, 'tcpcopy_protocol_events_total{protocol="mysql",counter="commands"}')).to.equal(7);
      expect(sample(text, 'tcpcopy_intercept_channels_connected')).to.equal(2);
      expect(text).to.include('# TYPE tcpcopy_sessions_total counter');
      expect(text).to.include('# TYPE tcpcopy_sessions_active gauge');
      expect(sample(text, 'tcpcopy_process_resident_memory_bytes')).to.be.greaterThan(0);
      expect(text, 'no request samples without request framing').not.to.match(/^tcpcopy_requests_total/m);

      summary = summaryWith({ engine: { sessionsCreated: 11 } });
      text = await registry.metrics();
      expect(sample(text, 'tcpcopy_sessions_total'), 'the next scrape reads the counters again').to.equal(11);
      expect(text, 'kernel drops unknown (libpcap, a file): no sample').not.to.match(/^tcpcopy_capture_dropped_packets_total /m);
    });

    it('requests by side and status, and latency quantiles in seconds, from a protocol that frames requests', async () => {
      const latency = { count: 3, min: 1, mean: 2, p50: 2, p90: 3, p99: 4, max: 4 };
      const none = { count: 0, min: null, mean: null, p50: null, p90: null, p99: null, max: null };
      const requests = { requests: { online: 5, target: 4 }, status: { online: { 200: 5 }, target: { 200: 3, 404: 1 } }, latencyMs: { online: none, target: latency } };
      const text = await tcpcopyMetrics(() => summaryWith({ requests })).metrics();
      expect(sample(text, 'tcpcopy_requests_total{side="target"}')).to.equal(4);
      expect(sample(text, 'tcpcopy_requests_total{side="online"}')).to.equal(5);
      expect(sample(text, 'tcpcopy_request_statuses_total{side="target",status="404"}')).to.equal(1);
      expect(sample(text, 'tcpcopy_request_latency_seconds{side="target",quantile="0.99"}')).to.equal(0.004);
      expect(text).not.to.include('side="online",quantile');
    });

    it('before the replay runs: no samples of the replay, the process metrics already', async () => {
      const text = await tcpcopyMetrics(() => null).metrics();
      expect(text).not.to.match(/^tcpcopy_sessions_total /m);
      expect(text).to.include('# TYPE tcpcopy_sessions_total counter');
      expect(sample(text, 'tcpcopy_process_resident_memory_bytes')).to.be.greaterThan(0);
    });
  });

  it('intercept_*: replies, routes, tcpcopys, capture (packets, kernel drops, cut short)', async () => {
    const stats = { captured: 30, routed: 28, held: 2, heldDelivered: 1, unmatched: 1, dropped: 1, passed: 0, malformed: 1, notIpv4: 1, routes: 4, clients: 2 } as InterceptStats;
    let capture: PacketSocketCaptureStats = { packets: 31, drops: 7, truncated: 2, devices: [] };
    const registry = interceptMetrics(() => stats, () => capture);
    let text = await registry.metrics();
    expect(sample(text, 'intercept_replies_total')).to.equal(30);
    expect(sample(text, 'intercept_replies_routed_total')).to.equal(28);
    expect(sample(text, 'intercept_replies_unmatched_total')).to.equal(1);
    expect(sample(text, 'intercept_malformed_packets_total')).to.equal(2);
    expect(sample(text, 'intercept_routes')).to.equal(4);
    expect(sample(text, 'intercept_tcpcopys_connected')).to.equal(2);
    expect(sample(text, 'intercept_captured_packets_total')).to.equal(31);
    expect(sample(text, 'intercept_capture_kernel_drops_total')).to.equal(7);
    expect(sample(text, 'intercept_capture_truncated_packets_total')).to.equal(2);
    expect(text).to.include('# TYPE intercept_capture_kernel_drops_total counter');
    expect(sample(text, 'intercept_process_resident_memory_bytes')).to.be.greaterThan(0);

    capture = { packets: 40, drops: 12, truncated: 2, devices: [] };
    text = await registry.metrics();
    expect(sample(text, 'intercept_capture_kernel_drops_total'), 'the next scrape reads the capture again').to.equal(12);
  });

  describe('the HTTP server', () => {
    let server: MetricsServer | null = null;
    afterEach(async () => {
      await server?.close();
      server = null;
    });

    it('serves GET /metrics in Prometheus\' text format, 404 elsewhere, and stops listening when closed', async () => {
      let sessions = 1;
      server = await MetricsServer.start({ host: '127.0.0.1', port: 0 }, tcpcopyMetrics(() => summaryWith({ engine: { sessionsCreated: sessions } })));
      const first = await get(server.url);
      expect(first.status).to.equal(200);
      expect(first.type).to.match(/^text\/plain; version=0\.0\.4/);
      expect(sample(first.body, 'tcpcopy_sessions_total')).to.equal(1);
      sessions = 5;
      expect(sample((await get(server.url)).body, 'tcpcopy_sessions_total')).to.equal(5);
      expect((await get(server.url.replace('/metrics', '/'))).status).to.equal(404);
      const url = server.url;
      await server.close();
      server = null;
      const refused = await get(url).then(() => 'answered', (e: NodeJS.ErrnoException) => e.code);
      expect(refused).to.equal('ECONNREFUSED');
    });

    it('a port in use: a UsageError that says so and how to fix it', async () => {
      server = await MetricsServer.start({ host: '127.0.0.1', port: 0 }, tcpcopyMetrics(() => null));
      const port = Number(new URL(server.url).port);
      const err = await MetricsServer.start({ host: '127.0.0.1', port }, tcpcopyMetrics(() => null)).then(() => null, (e: Error) => e);
      expect(err).to.be.instanceOf(UsageError);
      expect(err!.message).to.equal(`cannot serve metrics on 127.0.0.1:${port}: the port is in use (stop what listens there, or give --metrics another port)`);
    });

    it('an address that is not this host\'s: a UsageError', async () => {
      const err = await MetricsServer.start({ host: '192.0.2.77', port: 9464 }, tcpcopyMetrics(() => null)).then(() => null, (e: Error) => e);
      expect(err).to.be.instanceOf(UsageError);
      expect(err!.message).to.match(/^cannot serve metrics on 192\.0\.2\.77:9464: that is not an address of this host/);
    });
  });

  describe('the commands', () => {
    for (const name of ['tcpcopy', 'intercept'] as const) {
      it(`${name}: a bad --metrics is one line and exit 2`, () => {
        const r = runCommand(name, [...PAST_OPTIONS[name], '--metrics', 'nowhere']);
        expect(r.code, r.stderr).to.equal(2);
        expect(r.stderr).to.equal(`${name}: --metrics nowhere: not HOST:PORT (give HOST:PORT, e.g. 127.0.0.1:9464, or :9464 for every address)\n`);
      });
    }

    it('tcpcopy: a --metrics port in use is one line and exit 2, before the replay starts', async () => {
      const holder = http.createServer();
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      const port = (holder.address() as { port: number }).port;
      try {
        const r = runCommand('tcpcopy', [...PAST_OPTIONS.tcpcopy, '--metrics', `127.0.0.1:${port}`]);
        expect(r.code, r.stderr).to.equal(2);
        expect(r.stderr).to.equal(`tcpcopy: cannot serve metrics on 127.0.0.1:${port}: the port is in use (stop what listens there, or give --metrics another port)\n`);
      } finally {
        holder.close();
      }
    });
  });
});
