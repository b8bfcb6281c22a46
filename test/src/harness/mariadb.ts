// MariaDB for end-to-end tests: a fresh data directory (mariadb-install-db) and mariadbd started inside a
// host namespace with the test's own options (--no-defaults: nothing from /etc/mysql), SQL through the
// `mariadb` command-line client (root over the unix socket, or a user over TCP from any namespace), an
// exact text dump of a schema's rows for comparing two servers, and the general query log parsed.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecResult, HostName, NsName, Topology } from './netns';
import type { ProcHandle } from './proc';
import { sleep } from './proc';

export interface MariadbOptions {
  /** Default 3306. */
  port?: number;
  /** Default: the host's address. */
  addr?: string;
  /** Directory name under the topology's workdir; default `mariadb-<host>-<n>` (n counts servers per host). */
  name?: string;
  /** More mariadbd options (appended). */
  extraArgs?: string[];
  /** Bound for install + start. Default 30 s. */
  timeoutMs?: number;
}

export interface SqlOptions {
  /** A user that logs in over TCP with `password`; default root over the unix socket. */
  user?: string;
  password?: string;
  /** Default database. */
  database?: string;
  /** Namespace the client runs in (TCP logins only); default the server's host. */
  from?: NsName;
  timeoutMs?: number;
}

export interface NewUser {
  name: string;
  password: string;
  plugin: 'native' | 'ed25519';
}

export interface TableDump {
  /** `mariadb-dump` INSERT lines, one row per line, tables in name order, rows in primary-key order. */
  text: string;
  /** Rows per table. */
  counts: Record<string, number>;
}

/** One entry of the general query log file. */
export interface GeneralLogEntry {
  /** "YYMMDD HH:MM:SS" when the server printed one (only when the second changed); otherwise undefined. */
  time?: string;
  connectionId: number;
  /** 'Connect' | 'Query' | 'Prepare' | 'Execute' | 'Close stmt' | 'Change user' | 'Quit' | 'Init DB' | ... */
  command: string;
  /** The rest; multi-line statements keep their newlines. */
  argument: string;
}

/** What the log says about one connection. */
export interface LogConnection {
  id: number;
  /** From the (first) Connect entry: user, client host, database, transport ('TCP/IP' | 'Socket'). */
  user: string;
  host: string;
  database: string;
  via: string;
  /** Its login was refused (a Connect entry "Access denied ..."). */
  denied: boolean;
  /** Users after each successful Change user, in order. */
  changedTo: string[];
  entries: GeneralLogEntry[];
}

export interface MariadbHandle {
  readonly pid: number;
  readonly host: HostName;
  readonly addr: string;
  readonly port: number;
  readonly dir: string;
  readonly socket: string;
  readonly errorLogFile: string;
  readonly generalLogFile: string;
  readonly proc: ProcHandle;
  /** Runs statements (joined with newlines, on stdin) with `mariadb --batch --skip-column-names`; returns
   *  stdout (tab-separated rows). Throws with the client's error and the server's log tail on failure. */
  sql(statements: string | string[], opts?: SqlOptions): Promise<string>;
  /** Like sql() but never throws for a failed client: the caller looks at code and stderr (e.g. a refused login). */
  trySql(statements: string | string[], opts?: SqlOptions): Promise<ExecResult>;
  /** Runs a schema script as root. */
  setup(schemaSql: string): Promise<void>;
  /** CREATE USER for each (host '%'), then `GRANT <grants> TO` each, e.g. grants 'SELECT, INSERT ON shop.*'. */
  createUsers(users: NewUser[], grants: string): Promise<void>;
  tableDump(schema: string): Promise<TableDump>;
  /** The general log file so far, parsed. */
  generalLog(): GeneralLogEntry[];
  /** The last `bytes` of the error log (for failure messages). */
  errorLogTail(bytes?: number): string;
  /** SIGTERM by PID (bounded, then SIGKILL). */
  stop(): Promise<void>;
}

const serversPerHost = new Map<string, number>();

/** mysql's uid/gid, for chown (mariadbd refuses to run as root and drops to --user=mysql). */
function mysqlIds(): { uid: number; gid: number } {
  const r = spawnSync('id', ['-u', 'mysql'], { encoding: 'utf8', timeout: 5000 });
  const g = spawnSync('id', ['-g', 'mysql'], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0 || g.status !== 0) throw new Error(`no system user mysql (is mariadb-server installed?): ${r.stderr}${g.stderr}`);
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function chownR(p: string, uid: number, gid: number): void {
  fs.chownSync(p, uid, gid);
  if (fs.statSync(p).isDirectory()) for (const e of fs.readdirSync(p)) chownR(path.join(p, e), uid, gid);
}

/** The server's options besides paths: small and fast to start, every login and command in the general log. */
function serverArgs(dir: string, addr: string, port: number): string[] {
  return [
    '--no-defaults', // must come first
    '--user=mysql',
    `--datadir=${path.join(dir, 'data')}`,
    `--socket=${path.join(dir, 'mysqld.sock')}`,
    `--port=${port}`,
    `--bind-address=${addr}`,
    `--pid-file=${path.join(dir, 'mysqld.pid')}`,
    // Its own temporary directory: nothing shared in /tmp with other servers or whoever cleans /tmp.
    `--tmpdir=${path.join(dir, 'tmp')}`,
    `--log-error=${path.join(dir, 'error.log')}`,
    '--skip-log-bin',
    '--skip-name-resolve',
    // No TLS: a replay of an encrypted session cannot work, so a capture must stay plain text.
    '--skip-ssl',
    '--plugin-load-add=auth_ed25519',
    '--general-log=1',
    `--general-log-file=${path.join(dir, 'general.log')}`,
    '--max-connections=500',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
    // Small and quick: a 32 MB pool and an 8 MB redo log instead of 128 + 96 MB; no fsync per commit.
    '--innodb-buffer-pool-size=32M',
    '--innodb-log-file-size=8M',
    '--innodb-flush-log-at-trx-commit=2',
    '--skip-innodb-adaptive-hash-index',
    // Refused logins and aborted connections go to the error log, which failure messages show.
    '--log-warnings=3',
  ];
}

export async function startMariadb(topo: Topology, host: HostName, opts: MariadbOptions = {}): Promise<MariadbHandle> {
  const addr = opts.addr ?? topo.hosts[host].addr;
  const port = opts.port ?? 3306;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const n = (serversPerHost.get(`${topo.runId}/${host}`) ?? 0) + 1;
  serversPerHost.set(`${topo.runId}/${host}`, n);
  const dir = topo.mkdir(opts.name ?? `mariadb-${host}-${n}`);
  const socket = path.join(dir, 'mysqld.sock');
  const errorLogFile = path.join(dir, 'error.log');
  const generalLogFile = path.join(dir, 'general.log');
  fs.mkdirSync(path.join(dir, 'data'), { mode: 0o750 });
  fs.mkdirSync(path.join(dir, 'tmp'), { mode: 0o750 });
  // The server runs as mysql: it owns its directory; the workdir above is 0755, so it can get there.
  const { uid, gid } = mysqlIds();
  chownR(dir, uid, gid);
  const args = [...serverArgs(dir, addr, port), ...(opts.extraArgs ?? [])];
  const t0 = Date.now();
  // Same InnoDB sizes at install time, or the server would have to resize the redo log on first start.
  const install = await topo.exec(
    host,
    'mariadb-install-db',
    ['--no-defaults', '--user=mysql', `--datadir=${path.join(dir, 'data')}`, '--skip-test-db', '--auth-root-authentication-method=socket', `--tmpdir=${path.join(dir, 'tmp')}`, '--innodb-buffer-pool-size=32M', '--innodb-log-file-size=8M'],
    { timeoutMs, check: false },
  );
  if (install.code !== 0) throw new Error(`mariadb-install-db failed in ${host} (${install.code ?? install.signal}):\n${(install.stdout + install.stderr).slice(-3000)}`);

  const proc = topo.spawn(host, 'mariadbd', args);
  const readLog = (file: string, bytes: number) => {
    try {
      const s = fs.readFileSync(file, 'utf8');
      return s.slice(-bytes);
    } catch {
      return `(no ${file})`;
    }
  };
  // Without InnoDB's start-up and shutdown notes: what is left (warnings, refused logins, errors) is what helps.
  const errorLogTail = (bytes = 3000) =>
    readLog(errorLogFile, 1 << 20)
      .split('\n')
      .filter((l) => !/\[Note\] InnoDB:/.test(l))
      .join('\n')
      .slice(-bytes);

  const clientArgs = (o: SqlOptions): { ns: NsName; args: string[] } => {
    const common = ['--no-defaults', '--batch', '--skip-column-names', '--connect-timeout=5'];
    if (o.database) common.push(`--database=${o.database}`);
    if (o.user === undefined) {
      if (o.from !== undefined && o.from !== host) throw new Error('root logs in over the unix socket only: give a user and password with from');
      return { ns: host, args: [...common, `--socket=${socket}`, '--user=root'] };
    }
    const tcp = [`--host=${addr}`, `--port=${port}`, '--protocol=tcp', '--skip-ssl', `--user=${o.user}`];
    if (o.password !== undefined) tcp.push(`--password=${o.password}`);
    return { ns: o.from ?? host, args: [...common, ...tcp] };
  };

  const trySql = async (statements: string | string[], o: SqlOptions = {}): Promise<ExecResult> => {
    const { ns, args: a } = clientArgs(o);
    const input = (Array.isArray(statements) ? statements.join('\n') : statements) + '\n';
    return topo.exec(ns, 'mariadb', a, { input, timeoutMs: o.timeoutMs ?? 20_000, check: false });
  };

  const sql = async (statements: string | string[], o: SqlOptions = {}): Promise<string> => {
    const r = await trySql(statements, o);
    if (r.code !== 0) {
      const text = Array.isArray(statements) ? statements.join('\n') : statements;
      throw new Error(
        `mariadb (${o.user ?? 'root'}${o.from ? ` from ${o.from}` : ''}) on ${host} failed (${r.code ?? r.signal}): ${r.stderr.trim()}\n` +
          `statements: ${text.slice(0, 1500)}\n--- error log tail ---\n${errorLogTail(2000)}`,
      );
    }
    return r.stdout;
  };

  const handle: MariadbHandle = {
    pid: proc.pid,
    host,
    addr,
    port,
    dir,
    socket,
    errorLogFile,
    generalLogFile,
    proc,
    sql,
    trySql,
    async setup(schemaSql) {
      await sql(schemaSql, { timeoutMs: 30_000 });
    },
    async createUsers(users, grants) {
      const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
      const stmts: string[] = [];
      for (const u of users) {
        const how = u.plugin === 'ed25519' ? `IDENTIFIED VIA ed25519 USING PASSWORD(${q(u.password)})` : `IDENTIFIED BY ${q(u.password)}`;
        stmts.push(`CREATE USER ${q(u.name)}@'%' ${how};`);
        stmts.push(`GRANT ${grants} TO ${q(u.name)}@'%';`);
      }
      await sql(stmts);
    },
    async tableDump(schema) {
      // Rows only, one INSERT per row, in primary-key order, no dates or comments: equal text means equal
      // rows. --single-transaction instead of LOCK TABLES: a consistent read without extra statements.
      const dump = await topo.exec(
        host,
        'mariadb-dump',
        ['--no-defaults', `--socket=${socket}`, '--user=root', '--compact', '--no-create-info', '--skip-extended-insert', '--order-by-primary', '--skip-dump-date', '--skip-comments', '--skip-triggers', '--single-transaction', '--hex-blob', schema],
        { timeoutMs: 30_000, check: false },
      );
      if (dump.code !== 0) throw new Error(`mariadb-dump ${schema} on ${host} failed: ${dump.stderr.trim()}\n--- error log tail ---\n${errorLogTail(2000)}`);
      const tables = (await sql(`SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${schema}' ORDER BY TABLE_NAME;`)).split('\n').filter(Boolean);
      const counts: Record<string, number> = {};
      if (tables.length) {
        const rows = await sql(tables.map((t) => `SELECT '${t}', COUNT(*) FROM \`${schema}\`.\`${t}\``).join(' UNION ALL ') + ';');
        for (const line of rows.split('\n').filter(Boolean)) {
          const [t, c] = line.split('\t');
          counts[t] = Number(c);
        }
      }
      // Newer dumps start with a version-conditional comment ("/*M!999999\\- enable the sandbox mode */"): not rows.
      const text = dump.stdout.split('\n').filter((l) => !/^\/\*.*\*\/\s*;?\s*$/.test(l)).join('\n');
      return { text, counts };
    },
    generalLog() {
      return parseGeneralLog(fs.readFileSync(generalLogFile, 'utf8'));
    },
    errorLogTail,
    async stop() {
      // InnoDB shuts down in well under a second with these sizes; the bound is for a stuck server.
      await proc.stop('SIGTERM', 15_000);
    },
  };

  // Ready once mariadb-admin gets an answer over the socket (bounded): the TCP port is open by then too.
  const deadline = t0 + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc.exitStatus()) break;
    const r = await topo
      .exec(host, 'mariadb-admin', ['--no-defaults', `--socket=${socket}`, '--user=root', '--connect-timeout=2', 'ping'], { check: false, timeoutMs: 5000 })
      .catch((e: Error) => ({ stdout: '', stderr: e.message, code: null }));
    if (r.code === 0 && /is alive/.test(r.stdout)) return handle;
    last = `${r.stdout}${r.stderr}`.trim();
    await sleep(50);
  }
  const status = proc.exitStatus();
  await proc.stop('SIGKILL', 2000).catch(() => undefined);
  throw new Error(
    `mariadbd did not become ready in ${host} within ${timeoutMs} ms (${status ? `exited ${JSON.stringify(status)}` : 'still running'}; last ping: ${last})\n` +
      `--- error log tail ---\n${errorLogTail(3000)}\n--- stderr ---\n${proc.stderr().slice(-1000)}`,
  );
}

// ---- the general query log -------------------------------------------------------------------------

// MariaDB 10.11 (sql/log.cc, MYSQL_QUERY_LOG::write) writes each entry as
//   "YYMMDD HH:MM:SS\t" (only when the second changed since the previous entry, otherwise "\t\t"),
//   the thread id as "%6llu " (right-aligned, at least 6 wide), the command name, "\t", the argument, "\n".
// The argument is the raw statement text, so it may span lines: a line that does not start an entry
// continues the previous one. At start (and on every reopen) the file gets a three-line header.
const ENTRY = /^(?:(\d{6} [ \d]\d:\d\d:\d\d)\t|\t\t)\s*(\d+) ([A-Za-z][A-Za-z _]*?)\t(.*)$/;
const HEADER = [/^\S+, Version: .* started with:$/, /^Tcp port: \d+ {2}Unix socket: /, /^Time\t\t +Id Command\tArgument$/];

export function parseGeneralLog(text: string): GeneralLogEntry[] {
  const entries: GeneralLogEntry[] = [];
  const lines = text.split('\n');
  // The file ends with "\n": the last element is empty (or a line being written right now, kept as is).
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const m = ENTRY.exec(line);
    if (m) {
      entries.push({ time: m[1], connectionId: Number(m[2]), command: m[3], argument: m[4] });
      continue;
    }
    // The header block is three consecutive lines; only then is it a header and not statement text.
    if (HEADER[0].test(line) && HEADER[1].test(lines[i + 1] ?? '') && HEADER[2].test(lines[i + 2] ?? '')) {
      i += 2;
      continue;
    }
    const prev = entries[entries.length - 1];
    if (prev) prev.argument += '\n' + line;
  }
  return entries;
}

const CONNECT_ARG = /^(.*)@(\S*) on (\S*) using (.+)$/;

/** Groups entries by connection and reads who logged in how (Connect) and as whom later (Change user). */
export function logConnections(entries: GeneralLogEntry[]): Map<number, LogConnection> {
  const conns = new Map<number, LogConnection>();
  for (const e of entries) {
    let c = conns.get(e.connectionId);
    if (!c) {
      c = { id: e.connectionId, user: '', host: '', database: '', via: '', denied: false, changedTo: [], entries: [] };
      conns.set(e.connectionId, c);
    }
    c.entries.push(e);
    if (e.command === 'Connect') {
      const m = CONNECT_ARG.exec(e.argument);
      if (m && !c.user) [c.user, c.host, c.database, c.via] = [m[1], m[2], m[3], m[4]];
      // A refused login logs a second Connect entry with the error text.
      if (/^Access denied for user/.test(e.argument)) c.denied = true;
    } else if (e.command === 'Change user') {
      const m = CONNECT_ARG.exec(e.argument);
      if (m) c.changedTo.push(m[1]);
      else if (/^Access denied/.test(e.argument)) c.changedTo.push('(denied)');
    }
  }
  return conns;
}

// ---- comparing dumps ---------------------------------------------------------------------------------

/** Lines only in a and only in b (first `max` of each), for a failure message. Empty when equal. */
export function diffDumps(a: string, b: string, max = 15): string {
  const count = (s: string) => {
    const m = new Map<string, number>();
    for (const l of s.split('\n').filter(Boolean)) m.set(l, (m.get(l) ?? 0) + 1);
    return m;
  };
  const ca = count(a);
  const cb = count(b);
  const only = (x: Map<string, number>, y: Map<string, number>) => {
    const out: string[] = [];
    for (const [l, n] of x) for (let i = 0; i < n - (y.get(l) ?? 0); i++) out.push(l);
    return out;
  };
  const oa = only(ca, cb);
  const ob = only(cb, ca);
  if (!oa.length && !ob.length) return a === b ? '' : '(same lines, different order)';
  const show = (ls: string[]) => ls.slice(0, max).map((l) => `    ${l.slice(0, 300)}`).join('\n') + (ls.length > max ? `\n    ... ${ls.length - max} more` : '');
  return `only in the first (${oa.length}):\n${show(oa)}\nonly in the second (${ob.length}):\n${show(ob)}`;
}
