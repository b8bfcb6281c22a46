// --metrics HOST:PORT: Prometheus metrics over HTTP at /metrics, for tcpcopy and intercept. The metrics
// are read from the commands' counters when Prometheus scrapes (prom-client collect() callbacks), so
// serving them costs nothing per packet. One listening socket, closed at exit. The commands load this
// file only with --metrics (prom-client takes tens of ms to load).
import * as http from 'node:http';
import * as net from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { MetricsAddress } from './metrics-address';
import { UsageError } from './process-control';

/** A registry with the process metrics of prom-client (CPU, memory, event loop, GC) under `prefix`. */
export function processRegistry(prefix: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix });
  return registry;
}

/** What a metric reads at scrape time: one value, values by label, or null for no sample (not known). */
export type Samples = number | null | ReadonlyArray<readonly [Record<string, string>, number]>;

function fill(metric: Counter | Gauge, samples: Samples, put: (labels: Record<string, string>, value: number) => void): void {
  metric.reset();
  if (typeof samples === 'number') put({}, samples);
  else if (Array.isArray(samples)) for (const [labels, value] of samples) put(labels, value);
  else metric.remove({}); // not known: no sample rather than a made-up 0
}

/** A counter (`name` ends in _total) whose value is read from a running total when scraped. */
export function counterFrom(registry: Registry, name: string, help: string, read: () => Samples, labelNames: string[] = []): void {
  const counter: Counter = new Counter({
    name, help, labelNames, registers: [registry],
    collect: () => fill(counter, read(), (labels, value) => counter.inc(labels, Math.max(0, value))),
  });
}

/** A gauge read when scraped. */
export function gaugeFrom(registry: Registry, name: string, help: string, read: () => Samples, labelNames: string[] = []): void {
  const gauge: Gauge = new Gauge({
    name, help, labelNames, registers: [registry],
    collect: () => fill(gauge, read(), (labels, value) => gauge.set(labels, value)),
  });
}

/** The HTTP server of --metrics: GET /metrics, nothing else. */
export class MetricsServer {
  private constructor(private readonly server: http.Server, readonly url: string) {}

  /** Listens on `address`; a port in use or an address not of this host is a UsageError (exit 2). */
  static async start(address: MetricsAddress, registry: Registry): Promise<MetricsServer> {
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if ((req.method !== 'GET' && req.method !== 'HEAD') || path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at GET /metrics\n');
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      );
    });
    // Scrapes are short; a client that keeps a connection idle must not hold it for long.
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    const host = address.host.includes(':') ? `[${address.host}]` : address.host || '0.0.0.0';
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new UsageError(`cannot serve metrics on ${host}:${address.port}: ${listenProblem(err)}`)));
      server.listen({ host: address.host || undefined, port: address.port }, () => resolve());
    });
    server.unref(); // never what keeps a command running
    return new MetricsServer(server, `http://${host}:${(server.address() as net.AddressInfo).port}/metrics`);
  }

  /** Stops listening and drops open scrape connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function listenProblem(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'the port is in use (stop what listens there, or give --metrics another port)';
    case 'EADDRNOTAVAIL':
      return 'that is not an address of this host (give one from `ip addr`, 127.0.0.1, or :PORT for every address)';
    case 'EACCES':
      return 'permission denied (ports below 1024 need root: give --metrics a higher port)';
    default:
      return `${err.code ?? err.message} (check --metrics)`;
  }
}
