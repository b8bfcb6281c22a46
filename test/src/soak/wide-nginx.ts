// nginx for tens of thousands of connections: the harness's nginx (servers.ts) allows 1,024 per worker,
// this one `workerConnections` (default 20,000) with the descriptors to match. Static files only:
// /small (16 bytes) and /blob/1k; an access log of "addr port connection request# "request" status".
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostName, Topology } from '../harness/netns';
import type { ProcHandle } from '../harness/proc';
import { nginxConfStart, responseBody, runNginx } from '../harness/servers';

export interface WideLogEntry {
  remote: string;
  port: number;
  /** nginx's $connection and $connection_requests. */
  conn: number;
  n: number;
  uri: string;
  status: number;
}

export interface WideNginx {
  readonly proc: ProcHandle;
  readonly prefix: string;
  readonly accessLogFile: string;
  accessLog(): WideLogEntry[];
  errorLog(): string;
  stop(): Promise<void>;
}

export async function startWideNginx(topo: Topology, host: HostName, opts: { port?: number; workerConnections?: number } = {}): Promise<WideNginx> {
  const port = opts.port ?? 80;
  const workerConnections = opts.workerConnections ?? 20_000;
  const prefix = topo.mkdir(`wide-nginx-${host}-${port}`);
  for (const d of ['logs', 'tmp', 'html/blob']) fs.mkdirSync(path.join(prefix, d), { recursive: true });
  fs.writeFileSync(path.join(prefix, 'html', 'small'), responseBody(16), { mode: 0o644 });
  fs.writeFileSync(path.join(prefix, 'html', 'blob', '1k'), responseBody(1024), { mode: 0o644 });
  const start = nginxConfStart(prefix);
  // Every connection is a descriptor (twice behind a proxy; once here), within the hard limit we may set.
  const nofile = Math.min(workerConnections + 1000, hardNofileLimit());
  const events = /events \{ worker_connections \d+; \}/;
  if (!events.test(start)) throw new Error('nginxConfStart has no "events { worker_connections N; }" to widen');
  const p = (rel: string) => path.join(prefix, rel);
  const conf = start.replace(events, `worker_rlimit_nofile ${nofile};\nevents { worker_connections ${workerConnections}; }`) +
    `  log_format wide '$remote_addr $remote_port $connection $connection_requests "$request" $status';
  access_log ${p('logs/access.log')} wide buffer=256k flush=200ms;
  default_type application/octet-stream;
  keepalive_requests 100000;
  keepalive_timeout 120s;
  server {
    listen ${topo.hosts[host].addr}:${port} backlog=16384;
    root ${p('html')};
  }
}
`;
  fs.writeFileSync(path.join(prefix, 'nginx.conf'), conf);
  for (const d of ['', 'html', 'html/blob', 'logs', 'tmp']) fs.chmodSync(path.join(prefix, d), 0o755);
  const { proc, errorLog } = await runNginx(topo, host, prefix);
  const accessLogFile = p('logs/access.log');
  return {
    proc,
    prefix,
    accessLogFile,
    accessLog: () => (fs.existsSync(accessLogFile) ? parseWideLog(fs.readFileSync(accessLogFile, 'latin1')) : []),
    errorLog,
    async stop() {
      await proc.stop('SIGQUIT', 10_000);
    },
  };
}

/** The hard RLIMIT_NOFILE of processes started from here (nginx, as root without CAP_SYS_RESOURCE, cannot pass it). */
function hardNofileLimit(): number {
  const r = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8', timeout: 5000 });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 1_048_576;
}

export function parseWideLog(text: string): WideLogEntry[] {
  const re = /^(\S+) (\d+) (\d+) (\d+) "\S+ (\S+)[^"]*" (\d+)$/;
  const out: WideLogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const m = re.exec(line);
    if (!m) throw new Error(`unexpected access log line: ${line}`);
    out.push({ remote: m[1], port: Number(m[2]), conn: Number(m[3]), n: Number(m[4]), uri: m[5], status: Number(m[6]) });
  }
  return out;
}
