// nginx for the HTTP protocol's end-to-end test: like servers.ts's startNginx, plus
// - an access log of one JSON object per request, with the request headers the test checks
//   (Host, X-Test, User-Agent, Transfer-Encoding, Expect);
// - /gz/: gzip-compressed answers without Content-Length (chunked to HTTP/1.1 clients, close-delimited
//   to HTTP/1.0 ones), so the replay meets both kinds of response the workload's files never produce.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostName, Topology } from './netns';
import type { ProcHandle } from './proc';
import { nginxConfStart, responseBody, runNginx } from './servers';

export interface HttpLogEntry {
  /** nginx's $connection and $connection_requests. */
  conn: number;
  n: number;
  remote: string;
  port: number;
  request: string;
  method: string;
  uri: string;
  status: number;
  requestLength: number;
  bytesSent: number;
  /** Request headers ('' when absent). */
  host: string;
  xTest: string;
  userAgent: string;
  transferEncoding: string;
  expect: string;
}

export interface HttpNginxHandle {
  readonly proc: ProcHandle;
  readonly prefix: string;
  /** Every access-log entry so far. */
  accessLog(): HttpLogEntry[];
  errorLog(): string;
  stop(): Promise<void>;
}

const SIZES = [0, 16, 1024, 102_400, 1_048_576];

const LOG_FORMAT =
  `'{"conn":$connection,"n":$connection_requests,"remote":"$remote_addr","port":$remote_port,"request":"$request",` +
  `"status":$status,"requestLength":$request_length,"bytesSent":$bytes_sent,"host":"$http_host","xTest":"$http_x_test",` +
  `"userAgent":"$http_user_agent","transferEncoding":"$http_transfer_encoding","expect":"$http_expect"}'`;

function conf(prefix: string, listen: string): string {
  const p = (rel: string) => path.join(prefix, rel);
  return `${nginxConfStart(prefix)}  log_format tcpe_json escape=json ${LOG_FORMAT};
  access_log ${p('logs/access.log')} tcpe_json;
  default_type application/octet-stream;
  keepalive_requests 100000;
  keepalive_timeout 60s;
  client_max_body_size 10m;
  map $http_x_resp_size $resp_size { default 16; "~^(?<n>[0-9]{1,8})$" $n; }
  server {
    listen ${listen};
    root ${p('html')};
    # Every request body is read whole (the mirror subrequest needs it), so uploads really arrive,
    # and a POST to a static file becomes a 200 GET of it instead of a 405.
    mirror /_sink;
    mirror_request_body on;
    location = /_sink { internal; return 204; }
    location / { error_page 405 =200 $uri; }
    location /c/ {
      try_files /size/$resp_size =404;
      error_page 405 =200 /size/$resp_size;
    }
    location /gz/ {
      gzip on;
      gzip_types *;
      gzip_min_length 0;
      gzip_http_version 1.0;
    }
  }
}
`;
}

/** A text that gzip shrinks but not to nothing: several deflate blocks, so several chunks. */
function gzText(n: number): string {
  const words = ['replay', 'tcpcopy', 'intercept', 'target', 'online', 'chunk', 'gzip', 'session'];
  let s = '';
  let x = 12345;
  while (s.length < n) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += `${words[x % words.length]}${(x >>> 8) % 1000} `;
  }
  return s.slice(0, n);
}

export async function startHttpNginx(topo: Topology, host: HostName, port = 80): Promise<HttpNginxHandle> {
  const addr = topo.hosts[host].addr;
  const prefix = topo.mkdir(`http-nginx-${host}-${port}`);
  for (const d of ['logs', 'tmp', 'html/size', 'html/gz']) fs.mkdirSync(path.join(prefix, d), { recursive: true });
  const write = (rel: string, data: Buffer | string) => fs.writeFileSync(path.join(prefix, 'html', rel), data, { mode: 0o644 });
  for (const n of SIZES) write(`size/${n}`, responseBody(n));
  write('gz/text', gzText(400_000));
  fs.writeFileSync(path.join(prefix, 'nginx.conf'), conf(prefix, `${addr}:${port}`));
  for (const d of ['', 'html', 'html/size', 'html/gz', 'logs', 'tmp']) fs.chmodSync(path.join(prefix, d), 0o755);

  const { proc, errorLog } = await runNginx(topo, host, prefix);
  return {
    proc,
    prefix,
    accessLog: () => {
      const file = path.join(prefix, 'logs/access.log');
      if (!fs.existsSync(file)) return [];
      return fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          const e = JSON.parse(line) as HttpLogEntry;
          const [method = '', uri = ''] = e.request.split(' ');
          return { ...e, method, uri };
        });
    },
    errorLog,
    async stop() {
      await proc.stop('SIGQUIT', 5000);
    },
  };
}
