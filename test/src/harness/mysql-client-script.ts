// Node MySQL clients for the MariaDB workload, run as a child process inside a namespace
// (`node mysql-client-script.js MODE JSON`): mysql2 and MariaDB's own connector are real drivers, so what
// they put on the wire (prepared statements, change user, ed25519 logins, pipelined prepare+execute) is
// what a production client sends. Each mode prints one line `RESULT <json>` (what it sent) and exits 0;
// any failure goes to stderr with exit code 1. Mode `mid` is driven over stdin/stdout: READY, then GO.
import * as mariadb from 'mariadb';
import * as mysql from 'mysql2/promise';

export interface ClientArgs {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  /** The user change user switches to. */
  user2?: string;
  password2?: string;
  /** First orders.id this client inserts; ids are unique per client so inserts commute. */
  idBase: number;
  /** Executions per prepared statement. */
  n: number;
}

/** What a client sent, as the server's general log will show it. */
export interface ClientReport {
  /** Successful logins per user (connects; change user is counted separately). */
  logins: Record<string, number>;
  /** COM_QUERY texts sent by this script (drivers may add their own, e.g. SET NAMES). */
  queries: string[];
  /** Prepare texts, one per COM_STMT_PREPARE. */
  prepares: string[];
  executes: number;
  changeUsers: number;
  /** Rows inserted per table. */
  inserted: Record<string, number>;
  /** Connection ids the server gave (for finding them in the general log). */
  connectionIds: number[];
}

export const INSERT_ORDER = 'INSERT INTO orders (id, customer_id, product_id, qty, note, source) VALUES (?, ?, ?, ?, ?, ?)';
export const SELL = 'UPDATE products SET stock = stock - ?, sold = sold + ? WHERE id = ?';
export const SELECT_ORDER = 'SELECT id, customer_id, qty, note FROM orders WHERE id = ?';

/** The values of order `id`: a function of the id only, so every server gets the same row. */
export function orderValues(id: number, source: string): [number, number, number, number, string, string] {
  return [id, 1 + (id % 10), 1 + ((id * 7) % 10), 1 + (id % 3), `order ${id} "quoted" 'x' \\ from ${source}`, source];
}

function report(): ClientReport {
  return { logins: {}, queries: [], prepares: [], executes: 0, changeUsers: 0, inserted: {}, connectionIds: [] };
}

const add = (r: Record<string, number>, k: string, n = 1) => void (r[k] = (r[k] ?? 0) + n);

/** mysql2, native password: execute() prepares once per text and executes many times; then change user. */
async function runMysql2(a: ClientArgs): Promise<ClientReport> {
  const r = report();
  const conn = await mysql.createConnection({ host: a.host, port: a.port, user: a.user, password: a.password, database: a.database, charset: 'utf8mb4' });
  add(r.logins, a.user);
  try {
    const [idRows] = await conn.query('SELECT CONNECTION_ID() AS id');
    r.queries.push('SELECT CONNECTION_ID() AS id');
    r.connectionIds.push(Number((idRows as Array<{ id: number }>)[0].id));
    for (let i = 0; i < a.n; i++) await conn.execute(INSERT_ORDER, orderValues(a.idBase + i, 'mysql2'));
    for (let i = 0; i < a.n; i++) await conn.execute(SELL, [1 + (i % 3), 1 + (i % 3), 1 + (i % 10)]);
    for (let i = 0; i < a.n; i++) {
      const [rows] = await conn.execute(SELECT_ORDER, [a.idBase + i]);
      if ((rows as unknown[]).length !== 1) throw new Error(`order ${a.idBase + i} not found`);
    }
    r.prepares.push(INSERT_ORDER, SELL, SELECT_ORDER);
    r.executes += 3 * a.n;
    add(r.inserted, 'orders', a.n);
    const visit = 'UPDATE customers SET visits = visits + 1 WHERE id = 3';
    await conn.query(visit);
    r.queries.push(visit);
    if (a.user2) {
      // COM_CHANGE_USER drops the server's statements; mysql2 forgets its cache, so the next execute() prepares again.
      await conn.changeUser({ user: a.user2, password: a.password2 ?? '', database: a.database });
      r.changeUsers++;
      const base = a.idBase + a.n;
      for (let i = 0; i < a.n; i++) await conn.execute(INSERT_ORDER, orderValues(base + i, 'mysql2-changed'));
      r.prepares.push(INSERT_ORDER);
      r.executes += a.n;
      add(r.inserted, 'orders', a.n);
      const who = 'SELECT CURRENT_USER()';
      const [rows] = await conn.query(who);
      r.queries.push(who);
      const cur = Object.values((rows as Array<Record<string, string>>)[0])[0];
      if (!cur.startsWith(`${a.user2}@`)) throw new Error(`after change user CURRENT_USER() is ${cur}`);
    }
  } finally {
    await conn.end();
  }
  return r;
}

/** MariaDB's connector: an ed25519 login, binary prepared statements (prepare/execute and the pipelined
 *  execute()), change user to a native-password user, a connection reset, and a second short ed25519 connection. */
async function runMariadbConnector(a: ClientArgs): Promise<ClientReport> {
  const r = report();
  const conn = await mariadb.createConnection({ host: a.host, port: a.port, user: a.user, password: a.password, database: a.database, charset: 'utf8mb4' });
  add(r.logins, a.user);
  try {
    const idRows = await conn.query('SELECT CONNECTION_ID() AS id');
    r.queries.push('SELECT CONNECTION_ID() AS id');
    r.connectionIds.push(Number(idRows[0].id));
    const ins = await conn.prepare(INSERT_ORDER);
    r.prepares.push(INSERT_ORDER);
    for (let i = 0; i < a.n; i++) await ins.execute(orderValues(a.idBase + i, 'mariadb'));
    r.executes += a.n;
    add(r.inserted, 'orders', a.n);
    ins.close();
    const sell = await conn.prepare(SELL);
    r.prepares.push(SELL);
    for (let i = 0; i < a.n; i++) await sell.execute([2, 2, 1 + ((i + 5) % 10)]);
    r.executes += a.n;
    sell.close();
    // execute(): the first call sends PREPARE and EXECUTE (statement id -1, "the one just prepared")
    // back to back; later calls reuse the cached statement.
    for (let i = 0; i < a.n; i++) {
      const rows = await conn.execute(SELECT_ORDER, [a.idBase + i]);
      if (rows.length !== 1) throw new Error(`order ${a.idBase + i} not found`);
    }
    r.prepares.push(SELECT_ORDER);
    r.executes += a.n;
    const visit = 'UPDATE customers SET visits = visits + 1 WHERE id = 4';
    await conn.query(visit);
    r.queries.push(visit);
    if (a.user2) {
      await conn.changeUser({ user: a.user2, password: a.password2 ?? '', database: a.database });
      r.changeUsers++;
      // A text the connector has not cached: its prepare cache survives change user, the server's statements do not.
      const bump = 'UPDATE customers SET visits = visits + ? WHERE id = ?';
      for (let i = 0; i < a.n; i++) await conn.execute(bump, [1, 5]);
      r.prepares.push(bump);
      r.executes += a.n;
      const who = 'SELECT CURRENT_USER() AS u';
      const rows = await conn.query(who);
      r.queries.push(who);
      if (!String(rows[0].u).startsWith(`${a.user2}@`)) throw new Error(`after change user CURRENT_USER() is ${rows[0].u}`);
    }
    // COM_RESET_CONNECTION: the server forgets the connection's statements; a statement prepared after it.
    await conn.reset();
    const stock = 'UPDATE products SET stock = stock + ? WHERE id = ?';
    const restock = await conn.prepare(stock);
    for (let i = 0; i < a.n; i++) await restock.execute([1, 6]);
    restock.close();
    r.prepares.push(stock);
    r.executes += a.n;
  } finally {
    await conn.end();
  }
  // A second, short ed25519 login: a connection that only reads.
  const c2 = await mariadb.createConnection({ host: a.host, port: a.port, user: a.user, password: a.password, database: a.database, charset: 'utf8mb4' });
  add(r.logins, a.user);
  try {
    const count = 'SELECT COUNT(*) AS n FROM products';
    await c2.query(count);
    r.queries.push(count);
  } finally {
    await c2.end();
  }
  return r;
}

function line(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const i = buf.indexOf('\n');
      if (i >= 0) {
        stream.removeListener('data', onData);
        stream.removeListener('end', onEnd);
        resolve(buf.slice(0, i));
      }
    };
    const onEnd = () => reject(new Error('stdin closed before GO'));
    stream.on('data', onData);
    stream.on('end', onEnd);
  });
}

/**
 * A pooled (mysql2 pool of one), long-lived connection: it logs in and writes one row (orders idBase)
 * before the capture, prints READY <json>, waits for GO on stdin, then runs text queries and statements
 * prepared only now, each executed n times. Table names are qualified (shop.orders): a replay that joins
 * this connection mid-stream cannot know which database its login chose.
 */
async function runMidStream(a: ClientArgs): Promise<ClientReport> {
  const r = report();
  const pool = mysql.createPool({ host: a.host, port: a.port, user: a.user, password: a.password, database: a.database, charset: 'utf8mb4', connectionLimit: 1 });
  const conn = await pool.getConnection();
  const [idRows] = await conn.query('SELECT CONNECTION_ID() AS id');
  const connectionId = Number((idRows as Array<{ id: number }>)[0].id);
  const db = a.database;
  const [id0, ...rest0] = orderValues(a.idBase, 'mid-before');
  await conn.query(`INSERT INTO ${db}.orders (id, customer_id, product_id, qty, note, source) VALUES (?, ?, ?, ?, ?, ?)`, [id0, ...rest0]);
  process.stdout.write(`READY ${JSON.stringify({ connectionId })}\n`);
  await line(process.stdin);
  // Only what happens after GO counts: the login and the statements above are not in the capture.
  r.connectionIds.push(connectionId);
  const visit = `UPDATE ${db}.customers SET visits = visits + 2 WHERE id = 6`;
  await conn.query(visit);
  r.queries.push(visit);
  const ins = `INSERT INTO ${db}.orders (id, customer_id, product_id, qty, note, source) VALUES (?, ?, ?, ?, ?, ?)`;
  for (let i = 1; i <= a.n; i++) await conn.execute(ins, orderValues(a.idBase + i, 'mid'));
  add(r.inserted, 'orders', a.n);
  const sell = `UPDATE ${db}.products SET stock = stock - ?, sold = sold + ? WHERE id = ?`;
  for (let i = 0; i < a.n; i++) await conn.execute(sell, [3, 3, 1 + ((i + 2) % 10)]);
  r.prepares.push(ins, sell);
  r.executes += 2 * a.n;
  const total = `SELECT COUNT(*) AS n, SUM(qty) AS q FROM ${db}.orders WHERE source = 'mid'`;
  const [rows] = await conn.query(total);
  r.queries.push(total);
  if (Number((rows as Array<{ n: number }>)[0].n) !== a.n) throw new Error(`mid-stream rows: ${JSON.stringify(rows)}`);
  conn.release();
  await pool.end();
  return r;
}

/**
 * mysql2 with a pause: statements prepared and executed n times, then idle for `pauseMs` (longer than a
 * target's wait_timeout, so the target drops the replayed connection), then the same statements again.
 */
async function runIdle(a: ClientArgs & { pauseMs: number }): Promise<ClientReport> {
  const r = report();
  const conn = await mysql.createConnection({ host: a.host, port: a.port, user: a.user, password: a.password, database: a.database, charset: 'utf8mb4' });
  add(r.logins, a.user);
  try {
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < a.n; i++) await conn.execute(INSERT_ORDER, orderValues(a.idBase + round * a.n + i, 'idle'));
      for (let i = 0; i < a.n; i++) await conn.execute(SELL, [1, 1, 1 + (i % 10)]);
      if (round === 0) await new Promise((resolve) => setTimeout(resolve, a.pauseMs));
    }
    r.prepares.push(INSERT_ORDER, SELL);
    r.executes += 4 * a.n;
    add(r.inserted, 'orders', 2 * a.n);
  } finally {
    await conn.end();
  }
  return r;
}

async function main(): Promise<void> {
  const [mode, json] = process.argv.slice(2);
  const a = JSON.parse(json ?? '{}') as ClientArgs;
  let r: ClientReport;
  if (mode === 'mysql2') r = await runMysql2(a);
  else if (mode === 'mariadb') r = await runMariadbConnector(a);
  else if (mode === 'mid') r = await runMidStream(a);
  else if (mode === 'idle') r = await runIdle(a as ClientArgs & { pauseMs: number });
  else throw new Error(`unknown mode ${mode}`);
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (e: Error & { code?: string; sqlMessage?: string }) => {
      process.stderr.write(`mysql-client-script ${process.argv[2]} failed: ${e.code ?? ''} ${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}
