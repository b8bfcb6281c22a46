// A MySQL workload against a MariaDB handle, run from a namespace (normally `client`) with real clients:
// MariaDB's command-line client (native and ed25519 logins, a multi-statement batch), mariadb-slap
// (concurrent connections), mysql2 (prepared statements, change user) and MariaDB's Node connector
// (ed25519, binary prepared statements, change user), plus a pooled connection that logs in before a
// capture starts. Every write commutes (inserts with ids unique per client, `n = n + k` updates,
// INSERT ... ON DUPLICATE KEY UPDATE n = n + 1), so the final tables are the same whatever order the
// connections run in: two servers that received the same statements must dump the same rows.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MariadbHandle, NewUser } from './mariadb';
import type { ClientArgs, ClientReport } from './mysql-client-script';
import type { NsName, Topology } from './netns';
import type { ProcHandle } from './proc';
import { withTimeout } from './proc';

export const SHOP = 'shop';

/** Created identically on every server (as root); the seed rows are what updates add to. */
export const SHOP_SCHEMA = `
CREATE DATABASE shop;
CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, visits INT NOT NULL DEFAULT 0) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE shop.products (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, stock INT NOT NULL, sold INT NOT NULL DEFAULT 0) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE shop.orders (id INT PRIMARY KEY, customer_id INT NOT NULL, product_id INT NOT NULL, qty INT NOT NULL, note VARCHAR(255) NOT NULL, source VARCHAR(32) NOT NULL, KEY by_source (source)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE shop.hits (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO shop.customers (id, name) VALUES ${Array.from({ length: 10 }, (_, i) => `(${i + 1}, 'customer ${i + 1}')`).join(', ')};
INSERT INTO shop.products (id, name, stock) VALUES ${Array.from({ length: 10 }, (_, i) => `(${i + 1}, 'product ${i + 1}', 10000)`).join(', ')};
`;
export const SHOP_SEED_ROWS: Record<string, number> = { customers: 10, products: 10, orders: 0, hits: 0 };
export const SHOP_GRANTS = 'SELECT, INSERT, UPDATE, DELETE ON shop.*';

/** The workload's three users: app and app2 log in with mysql_native_password, edu with client_ed25519. */
export interface ShopPasswords {
  app: string;
  app2: string;
  edu: string;
}

/** The users' passwords online, and other ones at the target (so a login replayed unchanged must fail). */
export const ONLINE_PASSWORDS: ShopPasswords = { app: 'app-online-secret', app2: 'app2-online-secret', edu: 'edu-online-secret' };
export const TARGET_PASSWORDS: ShopPasswords = { app: 'app-TARGET-other', app2: 'app2-TARGET-other', edu: 'edu-TARGET-other' };

/** tcpcopy's --mysql-user options giving `pw` (default: the target passwords). */
export function mysqlUserArgs(pw: ShopPasswords = TARGET_PASSWORDS): string[] {
  return Object.entries(pw).flatMap(([u, p]) => ['--mysql-user', `${u}:${p}`]);
}

export function shopUsers(pw: ShopPasswords): NewUser[] {
  return [
    { name: 'app', password: pw.app, plugin: 'native' },
    { name: 'app2', password: pw.app2, plugin: 'native' },
    { name: 'edu', password: pw.edu, plugin: 'ed25519' },
  ];
}

/** Schema, seed rows and users on a fresh server. */
export async function prepareShop(server: MariadbHandle, pw: ShopPasswords): Promise<void> {
  await server.setup(SHOP_SCHEMA);
  await server.createUsers(shopUsers(pw), SHOP_GRANTS);
}

/** What one part of the workload sent (successful logins, statements), as the general log should show it. */
export interface PartResult extends ClientReport {
  part: string;
  ms: number;
}

const emptyReport = (): ClientReport => ({ logins: {}, queries: [], prepares: [], executes: 0, changeUsers: 0, inserted: {}, connectionIds: [] });
const add = (r: Record<string, number>, k: string, n = 1) => void (r[k] = (r[k] ?? 0) + n);

/** Sums parts into one report (part 'total'). */
export function sumParts(parts: PartResult[]): PartResult {
  const t: PartResult = { part: 'total', ms: 0, ...emptyReport() };
  for (const p of parts) {
    for (const [u, n] of Object.entries(p.logins)) add(t.logins, u, n);
    for (const [tb, n] of Object.entries(p.inserted)) add(t.inserted, tb, n);
    t.queries.push(...p.queries);
    t.prepares.push(...p.prepares);
    t.executes += p.executes;
    t.changeUsers += p.changeUsers;
    t.connectionIds.push(...p.connectionIds);
    t.ms = Math.max(t.ms, p.ms);
  }
  return t;
}

// ---- mariadb command-line client --------------------------------------------------------------------

/**
 * One `mariadb` CLI session (libmariadb: MariaDB capability bits in the login's filler) as `user`, from
 * `from`: inserts of orders idBase.., updates, selects, a statement spanning lines, and a multi-statement
 * batch (DELIMITER //: the three statements go in ONE COM_QUERY, which the general log shows as one entry).
 */
export async function runCliSession(
  topo: Topology,
  server: MariadbHandle,
  o: { from?: NsName; user: string; password: string; idBase: number; inserts?: number; source: string },
): Promise<PartResult> {
  const t0 = Date.now();
  const r = emptyReport();
  const stmts: string[] = [];
  const n = o.inserts ?? 5;
  for (let i = 0; i < n; i++) {
    const id = o.idBase + i;
    stmts.push(`INSERT INTO orders (id, customer_id, product_id, qty, note, source) VALUES (${id}, ${1 + (id % 10)}, ${1 + ((id * 3) % 10)}, ${1 + (id % 4)}, 'cli row ${id}', '${o.source}')`);
    stmts.push(`UPDATE products SET stock = stock - ${1 + (id % 4)}, sold = sold + ${1 + (id % 4)} WHERE id = ${1 + ((id * 3) % 10)}`);
  }
  stmts.push(`UPDATE customers SET visits = visits + 1 WHERE id = ${1 + (o.idBase % 10)}`);
  stmts.push(`SELECT COUNT(*) FROM orders WHERE source = '${o.source}'`);
  // Newlines inside a statement: the CLI sends them, the general log shows a multi-line entry.
  stmts.push(`SELECT id, qty\nFROM orders\nWHERE id = ${o.idBase}`);
  add(r.inserted, 'orders', n);
  r.queries.push(...stmts);
  const batch = [
    `INSERT INTO orders (id, customer_id, product_id, qty, note, source) VALUES (${o.idBase + n}, 1, 2, 3, 'batch row', '${o.source}');`,
    `UPDATE customers SET visits = visits + 10 WHERE id = ${1 + ((o.idBase + 1) % 10)};`,
    `SELECT COUNT(*) FROM orders WHERE id >= ${o.idBase}`,
  ].join(' ');
  add(r.inserted, 'orders', 1);
  r.queries.push(batch);
  const script = [...stmts.map((s) => `${s};`), 'DELIMITER //', `${batch} //`, 'DELIMITER ;'].join('\n');
  await server.sql(script, { user: o.user, password: o.password, database: SHOP, from: o.from ?? 'client', timeoutMs: 30_000 });
  add(r.logins, o.user);
  return { part: `cli ${o.user}`, ms: Date.now() - t0, ...r };
}

// ---- mariadb-slap -----------------------------------------------------------------------------------

/** mariadb-slap's fixed statements: upserts of two counters and an update, all commutative, and a read. */
export const SLAP_QUERIES = [
  'INSERT INTO hits (id, n) VALUES (1, 1) ON DUPLICATE KEY UPDATE n = n + 1',
  'INSERT INTO hits (id, n) VALUES (2, 1) ON DUPLICATE KEY UPDATE n = n + 1',
  'UPDATE products SET sold = sold + 1 WHERE id = 7',
  'SELECT n FROM hits WHERE id = 1',
];

/**
 * `mariadb-slap` with a fixed query file against the existing shop tables: --create-schema only names the
 * database, there is no --create, and --no-drop keeps slap from dropping `shop` at the end. Each of
 * `concurrency` clients opens a connection per iteration and runs the file once; slap also opens one
 * control connection first (no database, no statements).
 */
export async function runSlap(
  topo: Topology,
  server: MariadbHandle,
  o: { from?: NsName; user: string; password: string; concurrency?: number; iterations?: number },
): Promise<PartResult & { stdout: string }> {
  const t0 = Date.now();
  const concurrency = o.concurrency ?? 4;
  const iterations = o.iterations ?? 3;
  const file = path.join(topo.mkdir('mysql-workload'), 'slap-queries.sql');
  fs.writeFileSync(file, SLAP_QUERIES.map((q) => `${q};`).join('\n') + '\n', { mode: 0o644 });
  const args = [
    '--no-defaults',
    `--host=${server.addr}`,
    `--port=${server.port}`,
    '--protocol=tcp',
    '--skip-ssl',
    `--user=${o.user}`,
    `--password=${o.password}`,
    `--create-schema=${SHOP}`,
    '--no-drop',
    `--query=${file}`,
    '--delimiter=;',
    `--concurrency=${concurrency}`,
    `--iterations=${iterations}`,
  ];
  const res = await topo.exec(o.from ?? 'client', 'mariadb-slap', args, { timeoutMs: 60_000, check: false });
  if (res.code !== 0) throw new Error(`mariadb-slap failed (${res.code ?? res.signal}): ${res.stderr.trim()}\n${res.stdout.slice(-1000)}\n--- server error log ---\n${server.errorLogTail(2000)}`);
  const r = emptyReport();
  add(r.logins, o.user, concurrency * iterations + 1);
  for (let i = 0; i < concurrency * iterations; i++) r.queries.push(...SLAP_QUERIES);
  r.inserted.hits = 2;
  return { part: 'slap', ms: Date.now() - t0, ...r, stdout: res.stdout };
}

// ---- Node clients -----------------------------------------------------------------------------------

/** The compiled client script (test/dist/src/harness/mysql-client-script.js), run with `node`. */
export const MYSQL_CLIENT_SCRIPT = path.join(__dirname, 'mysql-client-script.js');

function clientArgs(server: MariadbHandle, a: Omit<ClientArgs, 'host' | 'port' | 'database'>): string {
  return JSON.stringify({ host: server.addr, port: server.port, database: SHOP, ...a } satisfies ClientArgs);
}

async function runClientScript(topo: Topology, from: NsName, mode: string, json: string, server: MariadbHandle, timeoutMs = 60_000): Promise<ClientReport> {
  if (!fs.existsSync(MYSQL_CLIENT_SCRIPT)) throw new Error(`${MYSQL_CLIENT_SCRIPT} missing: build with tsc -b test`);
  const proc = topo.spawn(from, process.execPath, [MYSQL_CLIENT_SCRIPT, mode, json]);
  proc.endInput();
  const st = await withTimeout(proc.exited, timeoutMs, `mysql-client-script ${mode}`).catch(async (e: Error) => {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw new Error(`${e.message}\nstdout: ${proc.stdout().slice(-1000)}\nstderr: ${proc.stderr().slice(-2000)}`);
  });
  const m = /^RESULT (.*)$/m.exec(proc.stdout());
  if (st.code !== 0 || !m) {
    throw new Error(`mysql-client-script ${mode} failed (${st.code ?? st.signal}): ${proc.stderr().trim().slice(-2000)}\n--- server error log ---\n${server.errorLogTail(2000)}`);
  }
  return JSON.parse(m[1]) as ClientReport;
}

/** mysql2 as a native-password user: three statements prepared once and executed n times each, a text
 *  query, change user to another native user, one statement prepared again and executed n times. */
export async function runMysql2Client(
  topo: Topology,
  server: MariadbHandle,
  o: { from?: NsName; user: string; password: string; user2: string; password2: string; idBase: number; n?: number },
): Promise<PartResult> {
  const t0 = Date.now();
  const r = await runClientScript(topo, o.from ?? 'client', 'mysql2', clientArgs(server, { ...o, n: o.n ?? 10 }), server);
  return { part: 'mysql2', ms: Date.now() - t0, ...r };
}

/** MariaDB's Node connector as an ed25519 user: prepare()/execute() n times for two statements, the
 *  pipelined execute() n times, change user to a native-password user, one more statement there; then a
 *  second short ed25519 connection. */
export async function runMariadbConnectorClient(
  topo: Topology,
  server: MariadbHandle,
  o: { from?: NsName; user: string; password: string; user2: string; password2: string; idBase: number; n?: number },
): Promise<PartResult> {
  const t0 = Date.now();
  const r = await runClientScript(topo, o.from ?? 'client', 'mariadb', clientArgs(server, { ...o, n: o.n ?? 10 }), server);
  return { part: 'mariadb-connector', ms: Date.now() - t0, ...r };
}

/** mysql2 executing prepared statements, idle for `pauseMs`, then executing them again (see mode idle). */
export async function runIdleClient(
  topo: Topology,
  server: MariadbHandle,
  o: { from?: NsName; user: string; password: string; idBase: number; n?: number; pauseMs: number },
): Promise<PartResult> {
  const t0 = Date.now();
  const args = JSON.stringify({ ...JSON.parse(clientArgs(server, { ...o, n: o.n ?? 5 })), pauseMs: o.pauseMs });
  const r = await runClientScript(topo, o.from ?? 'client', 'idle', args, server, o.pauseMs + 30_000);
  return { part: 'idle', ms: Date.now() - t0, ...r };
}

// ---- the whole workload -----------------------------------------------------------------------------

export interface MysqlWorkloadOptions {
  from?: NsName;
  passwords: ShopPasswords;
  /** Run the parts at the same time (default) or one after another. */
  parallel?: boolean;
  /** Executions per prepared statement in the Node clients (default 10). */
  n?: number;
  slap?: { concurrency?: number; iterations?: number };
}

export interface MysqlWorkloadResult {
  parts: PartResult[];
  total: PartResult;
}

/** Id ranges of orders per part; 5000.. belongs to the mid-stream client. */
export const ID_BASE = { cliApp: 1000, cliEdu: 2000, mysql2: 3000, mariadb: 4000, mid: 5000 } as const;

/** Every part except the mid-stream client (which the test drives around its capture). */
export async function runMysqlWorkload(topo: Topology, server: MariadbHandle, o: MysqlWorkloadOptions): Promise<MysqlWorkloadResult> {
  const from = o.from ?? 'client';
  const pw = o.passwords;
  const jobs: Array<() => Promise<PartResult>> = [
    () => runCliSession(topo, server, { from, user: 'app', password: pw.app, idBase: ID_BASE.cliApp, source: 'cli-app' }),
    () => runCliSession(topo, server, { from, user: 'edu', password: pw.edu, idBase: ID_BASE.cliEdu, source: 'cli-edu' }),
    () => runSlap(topo, server, { from, user: 'app', password: pw.app, ...o.slap }),
    () => runMysql2Client(topo, server, { from, user: 'app', password: pw.app, user2: 'app2', password2: pw.app2, idBase: ID_BASE.mysql2, n: o.n }),
    () => runMariadbConnectorClient(topo, server, { from, user: 'edu', password: pw.edu, user2: 'app', password2: pw.app, idBase: ID_BASE.mariadb, n: o.n }),
  ];
  const parts: PartResult[] = [];
  if (o.parallel ?? true) parts.push(...(await Promise.all(jobs.map((j) => j()))));
  else for (const j of jobs) parts.push(await j());
  return { parts, total: sumParts(parts) };
}

// ---- a pooled connection logged in before the capture -----------------------------------------------

export interface MysqlMidStreamClient {
  readonly proc: ProcHandle;
  /** Resolves with the server's connection id once it has logged in and written its pre-capture row. */
  readonly ready: Promise<{ connectionId: number }>;
  /** Lets it run the rest; resolves with what it sent after GO. */
  go(): Promise<PartResult>;
}

/**
 * mysql2 pool of one connection, as `user`, from `from`: logs in and inserts orders id `idBase` (a row the
 * capture does not contain: delete it from the online server before comparing), then on go() runs a text
 * update, two statements prepared only then and executed n times each, and a select, and quits.
 */
export function startMysqlMidStreamClient(
  topo: Topology,
  server: MariadbHandle,
  o: { from?: NsName; user: string; password: string; idBase?: number; n?: number },
): MysqlMidStreamClient {
  if (!fs.existsSync(MYSQL_CLIENT_SCRIPT)) throw new Error(`${MYSQL_CLIENT_SCRIPT} missing: build with tsc -b test`);
  const json = clientArgs(server, { user: o.user, password: o.password, idBase: o.idBase ?? ID_BASE.mid, n: o.n ?? 8 });
  const proc = topo.spawn(o.from ?? 'client', process.execPath, [MYSQL_CLIENT_SCRIPT, 'mid', json]);
  const fail = (what: string) => (e: Error) => {
    throw new Error(`mid-stream mysql client ${what}: ${e.message}\nstderr: ${proc.stderr().slice(-2000)}\n--- server error log ---\n${server.errorLogTail(1500)}`);
  };
  const ready = proc
    .waitFor(/^READY (.*)$/m, { timeoutMs: 15_000 })
    .then((m) => JSON.parse(m[1]) as { connectionId: number })
    .catch(fail('did not get ready'));
  // Nobody may be waiting on ready when it fails (e.g. the test failed earlier): no unhandled rejection.
  ready.catch(() => undefined);
  return {
    proc,
    ready,
    async go() {
      const t0 = Date.now();
      proc.write('GO\n');
      proc.endInput();
      const m = await proc.waitFor(/^RESULT (.*)$/m, { timeoutMs: 30_000 }).catch(fail('did not finish'));
      const st = await withTimeout(proc.exited, 5000, 'mid-stream mysql client to exit');
      if (st.code !== 0) throw new Error(`mid-stream mysql client exited ${st.code ?? st.signal}: ${proc.stderr().slice(-2000)}`);
      return { part: 'mid-stream', ms: Date.now() - t0, ...(JSON.parse(m[1]) as ClientReport) };
    },
  };
}
