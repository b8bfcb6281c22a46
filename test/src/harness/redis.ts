// Redis for end-to-end tests: redis-server started inside a host namespace with the test's own
// configuration (nothing from /etc/redis), redis-cli and redis-benchmark run from a namespace, a
// long-lived client that is connected before a capture starts, and an exact comparison of keyspaces.
import type { HostName, NsName, Topology } from './netns';
import type { ProcHandle } from './proc';
import { sleep, withTimeout } from './proc';

export interface RedisOptions {
  /** Default 6379. */
  port?: number;
  /** Default: the host's address. */
  addr?: string;
  /** requirepass; none by default. */
  password?: string;
}

export interface RedisHandle {
  readonly pid: number;
  readonly host: HostName;
  readonly addr: string;
  readonly port: number;
  readonly password?: string;
  readonly dir: string;
  readonly proc: ProcHandle;
  /** redis-cli against this server from `from` (default: its own host), authenticated; returns stdout. */
  cli(args: string[], opts?: { from?: NsName; input?: string; timeoutMs?: number }): Promise<string>;
  /** SIGTERM by PID (bounded, then SIGKILL). Nothing is saved: the server runs without persistence. */
  stop(): Promise<void>;
}

/** Arguments that make redis-cli (or, with cli false, redis-benchmark) talk to `r`. */
export function redisAuthArgs(r: { addr: string; port: number; password?: string }, cli = true): string[] {
  const args = ['-h', r.addr, '-p', String(r.port)];
  // redis-cli warns about a password on the command line unless told not to; redis-benchmark has no such flag.
  if (r.password !== undefined) args.push('-a', r.password, ...(cli ? ['--no-auth-warning'] : []));
  return args;
}

export async function startRedis(topo: Topology, host: HostName, opts: RedisOptions = {}): Promise<RedisHandle> {
  const addr = opts.addr ?? topo.hosts[host].addr;
  const port = opts.port ?? 6379;
  const dir = topo.mkdir(`redis-${host}-${port}`);
  // Everything on the command line: redis-server reads no config file then. No persistence, no
  // daemon, no unix socket, protected mode off (clients come from other addresses), DEBUG allowed for
  // DEBUG DIGEST; the log goes to stdout, which the handle keeps.
  const args = [
    '--port', String(port),
    '--bind', addr,
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    '--daemonize', 'no',
    '--protected-mode', 'no',
    '--logfile', '',
    '--enable-debug-command', 'yes',
  ];
  if (opts.password !== undefined) args.push('--requirepass', opts.password);
  const proc = topo.spawn(host, 'redis-server', args);
  const handle: RedisHandle = {
    pid: proc.pid,
    host,
    addr,
    port,
    password: opts.password,
    dir,
    proc,
    async cli(cliArgs, o = {}) {
      const r = await topo.exec(o.from ?? host, 'redis-cli', [...redisAuthArgs(handle), ...cliArgs], {
        input: o.input,
        timeoutMs: o.timeoutMs ?? 10_000,
      });
      return r.stdout;
    },
    async stop() {
      await proc.stop('SIGTERM', 5000);
    },
  };
  // Ready once it answers PING (bounded): the listening socket is bound before the log says so anyway.
  const deadline = Date.now() + 10_000;
  let last = '';
  while (Date.now() < deadline) {
    if (proc.exitStatus()) break;
    const r = await topo.exec(host, 'redis-cli', [...redisAuthArgs(handle), 'ping'], { check: false, timeoutMs: 2000 }).catch((e: Error) => ({ stdout: '', stderr: e.message }));
    if (r.stdout.trim() === 'PONG') return handle;
    last = `${r.stdout}${r.stderr}`.trim();
    await sleep(50);
  }
  await proc.stop('SIGKILL', 2000).catch(() => undefined);
  throw new Error(`redis-server did not start in ${host} (${last})\n${proc.stdout().slice(-2000)}${proc.stderr().slice(-2000)}`);
}

export interface BenchmarkResult {
  stdout: string;
  /** Requests per second per test, from `-q` output ("SET: 12345.67 requests per second"). */
  rates: Record<string, number>;
}

/** redis-benchmark from `from` against `r` (quiet output); extra arguments choose tests, counts, pipelining. */
export async function runRedisBenchmark(topo: Topology, from: NsName, r: RedisHandle, args: string[], timeoutMs = 60_000): Promise<BenchmarkResult> {
  const res = await topo.exec(from, 'redis-benchmark', [...redisAuthArgs(r, false), '-q', ...args], { timeoutMs });
  const rates: Record<string, number> = {};
  // -q writes progress lines ending in \r before each result; the last "NAME: N requests per second" counts.
  for (const m of res.stdout.matchAll(/([A-Z_]+)(?: \([^)]*\))?: ([0-9.]+) requests per second/g)) rates[m[1]] = Number(m[2]);
  return { stdout: res.stdout, rates };
}

/** What a keyspace holds, exactly (DEBUG DIGEST) and in figures a failure message can show. */
export interface KeyspaceSummary {
  /** DEBUG DIGEST: 40 hex digits, the same for two servers exactly when their data is. */
  digest: string;
  keys: number;
  strings: number;
  /** Sum of every string value that is an integer (INCR counters). */
  integerSum: number;
  lists: number;
  listElements: number;
  sets: number;
  setMembers: number;
  hashes: number;
  hashFields: number;
}

const SUMMARY_LUA = `
local s = {0, 0, 0, 0, 0, 0, 0, 0}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k).ok
  if t == 'string' then
    s[1] = s[1] + 1
    local n = tonumber(redis.call('GET', k))
    if n then s[2] = s[2] + n end
  elseif t == 'list' then s[3] = s[3] + 1; s[4] = s[4] + redis.call('LLEN', k)
  elseif t == 'set' then s[5] = s[5] + 1; s[6] = s[6] + redis.call('SCARD', k)
  elseif t == 'hash' then s[7] = s[7] + 1; s[8] = s[8] + redis.call('HLEN', k)
  end
end
return s`;

export async function keyspaceSummary(r: RedisHandle): Promise<KeyspaceSummary> {
  const digest = (await r.cli(['DEBUG', 'DIGEST'])).trim();
  const keys = Number((await r.cli(['DBSIZE'])).trim());
  const n = (await r.cli(['EVAL', SUMMARY_LUA, '0'])).trim().split(/\s+/).map(Number);
  return {
    digest,
    keys,
    strings: n[0],
    integerSum: n[1],
    lists: n[2],
    listElements: n[3],
    sets: n[4],
    setMembers: n[5],
    hashes: n[6],
    hashFields: n[7],
  };
}

// ---- a client connected before the capture starts --------------------------------------------------

/**
 * A RESP client in node, run in a namespace: it connects and authenticates, prints READY and waits
 * for GO on stdin (the test starts its capture in between, so the connection is captured mid-stream),
 * then runs a fixed script of sequential, pipelined, MULTI/EXEC, inline and large-value commands,
 * checking each reply, and prints DONE <replies>. Argv: host port password prefix.
 */
const MID_STREAM_CLIENT = String.raw`
const net = require('node:net');
const [host, port, password, prefix] = process.argv.slice(1);
const enc = (...args) => {
  const parts = ['*' + args.length + '\r\n'];
  for (const a of args) parts.push('$' + Buffer.byteLength(a) + '\r\n' + a + '\r\n');
  return parts.join('');
};
let buf = Buffer.alloc(0);
const waiting = [];
// Reads one reply of any RESP2 shape; returns [value, end] or null when incomplete.
function parse(b, i) {
  if (i >= b.length) return null;
  const nl = b.indexOf('\r\n', i);
  if (nl < 0) return null;
  const t = String.fromCharCode(b[i]);
  const line = b.toString('latin1', i + 1, nl);
  if (t === '+' || t === ':') return [line, nl + 2];
  if (t === '-') return [new Error(line), nl + 2];
  if (t === '$') {
    const n = Number(line);
    if (n < 0) return [null, nl + 2];
    if (b.length < nl + 2 + n + 2) return null;
    return [b.toString('latin1', nl + 2, nl + 2 + n), nl + 4 + n];
  }
  if (t === '*') {
    const n = Number(line);
    const out = [];
    let j = nl + 2;
    for (let k = 0; k < n; k++) {
      const r = parse(b, j);
      if (!r) return null;
      out.push(r[0]);
      j = r[1];
    }
    return [out, j];
  }
  throw new Error('unexpected reply byte ' + t);
}
const sock = net.connect(Number(port), host);
sock.setNoDelay(true);
sock.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  for (;;) {
    const r = parse(buf, 0);
    if (!r) break;
    buf = buf.subarray(r[1]);
    const w = waiting.shift();
    if (!w) throw new Error('a reply nobody asked for');
    w(r[0]);
  }
});
sock.on('error', (e) => { console.error(e.message); process.exit(2); });
let replies = 0;
function send(...cmds) {
  sock.write(cmds.join(''));
  return Promise.all(cmds.map(() => new Promise((res) => waiting.push((v) => { replies++; res(v); }))));
}
function check(cond, what) { if (!cond) { console.error('unexpected: ' + what); process.exit(3); } }
(async () => {
  await new Promise((res) => sock.once('connect', res));
  if (password) {
    const [auth] = await send(enc('AUTH', password));
    check(auth === 'OK', 'AUTH ' + auth);
  }
  await send(enc('SET', prefix + ':before', 'captured-not'));
  console.log('READY');
  await new Promise((res) => process.stdin.once('data', res));
  // One at a time: each INCR waits for the previous reply.
  for (let i = 0; i < 20; i++) await send(enc('INCR', prefix + ':seq'));
  // A pipeline in one write.
  const cmds = [];
  for (let i = 0; i < 100; i++) cmds.push(enc('RPUSH', prefix + ':list', 'item-' + i));
  const pushed = await send(...cmds);
  check(pushed[99] === '100', 'RPUSH count ' + pushed[99]);
  // MULTI/EXEC in one write, and inline commands.
  const tx = await send(enc('MULTI'), enc('INCRBY', prefix + ':tx', '5'), enc('LPUSH', prefix + ':txlist', 'a', 'b'), enc('EXEC'));
  check(Array.isArray(tx[3]) && tx[3].length === 2, 'EXEC ' + JSON.stringify(tx[3]));
  await send('INCR ' + prefix + ':inline\r\n', 'HSET ' + prefix + ':h "field one" "value one"\r\n');
  // A value larger than any packet, then read back (a long bulk reply), and a long multi-bulk reply.
  const big = 'v'.repeat(200000);
  await send(enc('SET', prefix + ':big', big));
  const [got] = await send(enc('GET', prefix + ':big'));
  check(got === big, 'GET big');
  const [list] = await send(enc('LRANGE', prefix + ':list', '0', '-1'));
  check(list.length === 100, 'LRANGE');
  await send(enc('APPEND', prefix + ':seq-list', String(list.length)));
  const [bye] = await send(enc('QUIT'));
  check(bye === 'OK', 'QUIT');
  console.log('DONE ' + replies);
  sock.end();
})().catch((e) => { console.error(e.stack); process.exit(1); });
`;

export interface MidStreamClient {
  readonly proc: ProcHandle;
  /** Resolves once connected and authenticated (and one command answered). */
  readonly ready: Promise<void>;
  /** Lets it run its script; resolves with the number of replies it checked. */
  go(): Promise<number>;
}

export function startMidStreamClient(topo: Topology, from: NsName, r: RedisHandle, prefix: string): MidStreamClient {
  const proc = topo.spawn(from, process.execPath, ['-e', MID_STREAM_CLIENT, r.addr, String(r.port), r.password ?? '', prefix]);
  const ready = proc.waitFor(/READY/, { timeoutMs: 10_000 }).then(() => undefined);
  return {
    proc,
    ready,
    async go() {
      proc.write('GO\n');
      proc.endInput();
      const m = await proc.waitFor(/DONE (\d+)/, { timeoutMs: 20_000 });
      await withTimeout(proc.exited, 5000, 'mid-stream redis client to exit');
      return Number(m[1]);
    },
  };
}
