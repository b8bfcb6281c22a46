// Servers for end-to-end tests, each started inside a host namespace of a Topology:
// - nginx (Debian's), a real server with keep-alive, pipelining and large bodies;
// - the recorder (scripts/recorder-server.js), the oracle that stores every connection's received bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostName, Topology } from './netns';
import type { ProcHandle } from './proc';
import { isAlive, sleep } from './proc';

/** test/scripts/<name>, from the compiled location test/dist/src/harness. */
export function scriptPath(name: string): string {
  const p = path.resolve(__dirname, '..', '..', '..', 'scripts', name);
  if (!fs.existsSync(p)) throw new Error(`helper script not found: ${p}`);
  return p;
}

const PATTERN = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n');

/** The deterministic body of n bytes both servers send (the pattern repeated, cut to n). */
export function responseBody(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let off = 0; off < n; off += PATTERN.length) PATTERN.copy(b, off, 0, Math.min(PATTERN.length, n - off));
  return b;
}

// ---- nginx -------------------------------------------------------------------------------------------

export interface NginxOptions {
  /** Default 80. */
  port?: number;
  /** Default: the host's address. */
  addr?: string;
  /** Response sizes served for X-Resp-Size (files html/size/N). Default [0, 16, 1024, 102400, 1048576]. */
  sizes?: number[];
}

export interface AccessLogEntry {
  remoteAddr: string;
  remotePort: number;
  /** nginx's connection serial number. */
  connection: number;
  /** Index of the request within its connection (1-based). */
  connectionRequests: number;
  request: string;
  method: string;
  uri: string;
  status: number;
  requestLength: number;
  bytesSent: number;
}

export interface NginxHandle {
  readonly pid: number;
  readonly prefix: string;
  readonly addr: string;
  readonly port: number;
  readonly proc: ProcHandle;
  /** The access log so far, parsed. */
  accessLog(): AccessLogEntry[];
  errorLog(): string;
  /** Graceful quit (SIGQUIT), waiting for the master to exit; escalates to SIGKILL after 5 s. */
  stop(): Promise<void>;
}

export const DEFAULT_SIZES = [0, 16, 1024, 102_400, 1_048_576];

/** The log format the access-log parser expects. */
const LOG_FORMAT = `'$remote_addr $remote_port $connection $connection_requests "$request" $status $request_length $bytes_sent'`;

/**
 * The start of an nginx config that keeps everything inside PREFIX (pid, logs, temp files), runs one
 * worker in the foreground, and opens the http block (the caller goes on with its log and servers).
 */
export function nginxConfStart(prefix: string): string {
  // Debian has no group "nobody" (nginx's default), only "nogroup".
  const group = /^nogroup:/m.test(fs.readFileSync('/etc/group', 'utf8')) ? 'nogroup' : 'nobody';
  const p = (rel: string) => path.join(prefix, rel);
  return `daemon off;
master_process on;
worker_processes 1;
user nobody ${group};
pid ${p('nginx.pid')};
error_log ${p('logs/error.log')} info;
events { worker_connections 1024; }
http {
  client_body_temp_path ${p('tmp/body')};
  proxy_temp_path ${p('tmp/proxy')};
  fastcgi_temp_path ${p('tmp/fastcgi')};
  uwsgi_temp_path ${p('tmp/uwsgi')};
  scgi_temp_path ${p('tmp/scgi')};
`;
}

function nginxConf(prefix: string, listen: string): string {
  const p = (rel: string) => path.join(prefix, rel);
  return `${nginxConfStart(prefix)}  log_format tcpe ${LOG_FORMAT};
  access_log ${p('logs/access.log')} tcpe;
  default_type application/octet-stream;
  keepalive_requests 100000;
  keepalive_timeout 60s;
  client_max_body_size 10m;
  # Response size from the X-Resp-Size request header (digits only), as the recorder does.
  map $http_x_resp_size $resp_size { default 16; "~^(?<n>[0-9]{1,8})$" $n; }
  server {
    listen ${listen};
    root ${p('html')};
    # Static files answer POST with 405 and would only discard the body, so: mirror_request_body makes
    # nginx read the WHOLE body before the content phase (the mirror subrequest goes to a location that
    # ignores it), and error_page turns the 405 into a 200 GET of the same file.
    mirror /_sink;
    mirror_request_body on;
    location = /_sink { internal; return 204; }
    # /, /blob/1k, /blob/100k, /blob/1m, /size/N: plain static files.
    location / { error_page 405 =200 $uri; }
    # The workload's /c/<conn>/r/<req>: a body of X-Resp-Size bytes.
    location /c/ {
      try_files /size/$resp_size =404;
      error_page 405 =200 /size/$resp_size;
    }
  }
}
`;
}

/**
 * Starts nginx on the config at PREFIX/nginx.conf (daemon off, pid file in the prefix) and waits,
 * bounded, until the master has written its pid file: it has then bound its listening socket.
 */
export async function runNginx(topo: Topology, host: HostName, prefix: string): Promise<{ proc: ProcHandle; errorLog: () => string }> {
  const proc = topo.spawn(host, 'nginx', ['-p', prefix, '-c', 'nginx.conf', '-e', 'logs/error.log']);
  const pidFile = path.join(prefix, 'nginx.pid');
  for (let i = 0; i < 250; i++) {
    if (proc.exitStatus()) break;
    if (fs.existsSync(pidFile) && Number(fs.readFileSync(pidFile, 'utf8')) === proc.pid) break;
    await sleep(20);
  }
  const errorLog = () => {
    try {
      return fs.readFileSync(path.join(prefix, 'logs/error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  if (!fs.existsSync(pidFile) || !isAlive(proc.pid)) {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw new Error(`nginx did not start in ${host}: ${proc.stderr()}\n${errorLog().slice(-2000)}`);
  }
  return { proc, errorLog };
}

export async function startNginx(topo: Topology, host: HostName, opts: NginxOptions = {}): Promise<NginxHandle> {
  const addr = opts.addr ?? topo.hosts[host].addr;
  const port = opts.port ?? 80;
  const prefix = topo.mkdir(`nginx-${host}-${port}`);
  for (const d of ['logs', 'tmp', 'html/size', 'html/blob']) fs.mkdirSync(path.join(prefix, d), { recursive: true });
  // Workers run as nobody: every file must be world-readable and every directory traversable.
  const write = (rel: string, data: Buffer | string) => fs.writeFileSync(path.join(prefix, 'html', rel), data, { mode: 0o644 });
  for (const n of opts.sizes ?? DEFAULT_SIZES) write(`size/${n}`, responseBody(n));
  write('blob/1k', responseBody(1024));
  write('blob/100k', responseBody(102_400));
  write('blob/1m', responseBody(1_048_576));
  write('index.html', 'tcpe nginx\n');
  fs.writeFileSync(path.join(prefix, 'nginx.conf'), nginxConf(prefix, `${addr}:${port}`));
  for (const d of ['', 'html', 'html/size', 'html/blob', 'logs', 'tmp']) fs.chmodSync(path.join(prefix, d), 0o755);

  const { proc, errorLog } = await runNginx(topo, host, prefix);
  return {
    pid: proc.pid,
    prefix,
    addr,
    port,
    proc,
    accessLog: () => parseAccessLog(fs.readFileSync(path.join(prefix, 'logs/access.log'), 'utf8')),
    errorLog,
    async stop() {
      await proc.stop('SIGQUIT', 5000);
    },
  };
}

/** The requests nginx served on one of its connections. */
export interface NginxConnection {
  /** nginx's $connection. */
  id: number;
  remote: string;
  /** In $connection_requests order. */
  entries: AccessLogEntry[];
}

/** Access log entries grouped by nginx connection, each in $connection_requests order. */
export function nginxConnections(log: AccessLogEntry[]): NginxConnection[] {
  const m = new Map<number, NginxConnection>();
  for (const e of log) {
    let c = m.get(e.connection);
    if (!c) m.set(e.connection, (c = { id: e.connection, remote: `${e.remoteAddr}:${e.remotePort}`, entries: [] }));
    c.entries.push(e);
  }
  for (const c of m.values()) c.entries.sort((a, b) => a.connectionRequests - b.connectionRequests);
  return [...m.values()];
}

export function parseAccessLog(text: string): AccessLogEntry[] {
  const re = /^(\S+) (\d+) (\d+) (\d+) "([^"]*)" (\d+) (\d+) (\d+)$/;
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const m = re.exec(line);
      if (!m) throw new Error(`unexpected access log line: ${line}`);
      const [method = '', uri = ''] = m[5].split(' ');
      return {
        remoteAddr: m[1],
        remotePort: Number(m[2]),
        connection: Number(m[3]),
        connectionRequests: Number(m[4]),
        request: m[5],
        method,
        uri,
        status: Number(m[6]),
        requestLength: Number(m[7]),
        bytesSent: Number(m[8]),
      };
    });
}

// ---- recorder ----------------------------------------------------------------------------------------

export interface RecordedStream {
  /** "addr:port" of the peer, as the server saw it. */
  remote: string;
  remoteAddr: string;
  remotePort: number;
  /** Accept order (0-based). */
  seq: number;
  bytes: Buffer;
  file: string;
}

export interface RecorderHandle {
  readonly pid: number;
  readonly addr: string;
  readonly port: number;
  readonly outDir: string;
  readonly proc: ProcHandle;
  /** SIGTERM: the recorder closes its files and exits (bounded wait). */
  stop(): Promise<void>;
  /** Every recorded connection in accept order. Complete once stop() has resolved. */
  streams(): Promise<RecordedStream[]>;
}

export interface RecorderOptions {
  /** Default: the host's address. */
  addr?: string;
}

let recorderRuns = 0;

export async function startRecorder(topo: Topology, host: HostName, port: number, opts: RecorderOptions = {}): Promise<RecorderHandle> {
  const addr = opts.addr ?? topo.hosts[host].addr;
  const outDir = topo.mkdir(`recorder-${host}-${port}-${recorderRuns++}`);
  const proc = topo.spawn(host, process.execPath, [scriptPath('recorder-server.js'), '--host', addr, '--port', String(port), '--out', outDir]);
  try {
    await proc.waitFor(/^LISTENING /m, { timeoutMs: 5000 });
  } catch (e) {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw e;
  }
  return {
    pid: proc.pid,
    addr,
    port,
    outDir,
    proc,
    async stop() {
      await proc.stop('SIGTERM', 5000);
    },
    async streams() {
      const files = (await fs.promises.readdir(outDir)).filter((f) => f.endsWith('.bin')).sort();
      return Promise.all(
        files.map(async (f) => {
          const m = /^(\d+)-(.+)_(\d+)\.bin$/.exec(f);
          if (!m) throw new Error(`unexpected recorder file ${f}`);
          return {
            seq: Number(m[1]),
            remoteAddr: m[2],
            remotePort: Number(m[3]),
            remote: `${m[2]}:${m[3]}`,
            bytes: await fs.promises.readFile(path.join(outDir, f)),
            file: path.join(outDir, f),
          };
        }),
      );
    },
  };
}
