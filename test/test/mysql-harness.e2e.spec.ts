// Proves the MariaDB harness itself against real servers (no tcpcopy here): two servers with the same schema
// and users; ed25519 and native logins work and a wrong password is refused; the whole workload runs
// against one server and its tables and general log show what the workload says it sent; and tableDump
// of two servers is equal after the same statements and differs after one more insert.
import { expect } from 'chai';
import {
  createTopology,
  diffDumps,
  ID_BASE,
  logConnections,
  parseGeneralLog,
  prepareShop,
  requireRoot,
  requireTools,
  runMysqlWorkload,
  SHOP_SEED_ROWS,
  startMariadb,
  startMysqlMidStreamClient,
  sumParts,
  type GeneralLogEntry,
  type MariadbHandle,
  type Topology,
} from '../src/harness';

const PW = { app: 'app-online-pw', app2: 'app2-online-pw', edu: 'edu-online-pw' };

/** Entries of TCP connections from `host` (the workload's), leaving out the harness's root socket sessions.
 *  `all` is the whole log: a connection's Connect entry may lie before `entries`. */
function fromHost(entries: GeneralLogEntry[], host: string, all: GeneralLogEntry[]): GeneralLogEntry[] {
  const conns = logConnections(all);
  return entries.filter((e) => {
    const c = conns.get(e.connectionId);
    return c?.via === 'TCP/IP' && c.host === host;
  });
}

describe('mysql harness: MariaDB servers, workload, dumps and general log (real mariadbd)', function () {
  this.timeout(120_000);
  let topo: Topology;
  let online: MariadbHandle;
  let target: MariadbHandle;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['mariadbd', 'mariadb-install-db', 'mariadb', 'mariadb-admin', 'mariadb-dump', 'mariadb-slap']);
    topo = await createTopology();
    const t0 = Date.now();
    [online, target] = await Promise.all([startMariadb(topo, 'online'), startMariadb(topo, 'target')]);
    const started = Date.now() - t0;
    await Promise.all([prepareShop(online, PW), prepareShop(target, PW)]);
    process.stderr.write(`      [two servers started in ${started} ms, schema and users in ${Date.now() - t0 - started} ms]\n`);
  });

  after(async () => {
    await online?.stop().catch(() => undefined);
    await target?.stop().catch(() => undefined);
    await topo?.destroy();
  });

  it('parses multi-line entries and header blocks of the general log file', () => {
    const text = [
      '/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:',
      'Tcp port: 3306  Unix socket: /tmp/x/mysqld.sock',
      'Time\t\t    Id Command\tArgument',
      '261201  9:24:42\t     3 Connect\tapp@198.51.100.10 on shop using TCP/IP',
      '\t\t     3 Query\tSELECT a,',
      'b FROM t',
      '\t\t     3 Change user\tapp2@198.51.100.10 on shop using TCP/IP',
      '\t\t1234567 Execute\tINSERT INTO t VALUES (1)',
      '\t\t     3 Close stmt\t',
      '\t\t     3 Quit\t',
      '',
    ].join('\n');
    const e = parseGeneralLog(text);
    expect(e.map((x) => [x.connectionId, x.command, x.argument])).to.deep.equal([
      [3, 'Connect', 'app@198.51.100.10 on shop using TCP/IP'],
      [3, 'Query', 'SELECT a,\nb FROM t'],
      [3, 'Change user', 'app2@198.51.100.10 on shop using TCP/IP'],
      [1234567, 'Execute', 'INSERT INTO t VALUES (1)'],
      [3, 'Close stmt', ''],
      [3, 'Quit', ''],
    ]);
    expect(e[0].time).to.equal('261201  9:24:42');
    const c = logConnections(e).get(3)!;
    expect([c.user, c.host, c.database, c.via, c.changedTo]).to.deep.equal(['app', '198.51.100.10', 'shop', 'TCP/IP', ['app2']]);
  });

  it('logs in an ed25519 user and a native user over TCP from the client host, and refuses a wrong password', async () => {
    const who = await online.sql('SELECT CURRENT_USER(), USER();', { user: 'edu', password: PW.edu, from: 'client' });
    expect(who.trim()).to.equal('edu@%\tedu@198.51.100.10');
    const plugin = await online.sql("SELECT plugin FROM mysql.user WHERE user = 'edu';");
    expect(plugin.trim()).to.equal('ed25519');
    expect((await online.sql('SELECT 1;', { user: 'app', password: PW.app, from: 'client' })).trim()).to.equal('1');
    for (const user of ['edu', 'app']) {
      const bad = await online.trySql('SELECT 1;', { user, password: 'not-the-password', from: 'client' });
      expect(bad.code, `${user} with a wrong password: ${bad.stdout}`).to.not.equal(0);
      expect(bad.stderr).to.match(/ERROR 1045 .*Access denied for user/);
    }
    const denied = [...logConnections(online.generalLog()).values()].filter((c) => c.denied && c.via === 'TCP/IP').map((c) => c.user);
    expect(denied.sort()).to.deep.equal(['app', 'edu']);
  });

  it('runs the whole workload; the tables and the general log show what it says it sent', async () => {
    const mark = online.generalLog().length;
    const mid = startMysqlMidStreamClient(topo, online, { user: 'app', password: PW.app });
    const { connectionId: midId } = await mid.ready;
    const afterReady = online.generalLog().length;
    const t0 = Date.now();
    const work = await runMysqlWorkload(topo, online, { passwords: PW });
    const midPart = await mid.go();
    const total = sumParts([...work.parts, midPart]);
    process.stderr.write(`      [workload: ${Date.now() - t0} ms; ${work.parts.map((p) => `${p.part} ${p.ms} ms`).join(', ')}]\n`);
    process.stderr.write(`      [sent: logins ${JSON.stringify(total.logins)}, queries ${total.queries.length}, prepares ${total.prepares.length}, executes ${total.executes}, change user ${total.changeUsers}, inserted ${JSON.stringify(total.inserted)}]\n`);

    // Rows: the seed plus what the parts inserted (the mid-stream client's pre-capture row too).
    const dump = await online.tableDump('shop');
    expect(dump.counts).to.deep.equal({
      customers: SHOP_SEED_ROWS.customers,
      products: SHOP_SEED_ROWS.products,
      orders: (total.inserted.orders ?? 0) + 1,
      hits: 2,
    });
    // Every slap statement ran once per client and iteration: the upserted counters say how often.
    const hits = (await online.sql('SELECT id, n FROM shop.hits ORDER BY id;')).trim();
    expect(hits).to.equal('1\t12\n2\t12');
    expect(dump.text).to.contain(`INSERT INTO \`orders\` VALUES (${ID_BASE.mid},`);

    // The general log, for the workload's connections (from the client host) after the mid-stream login.
    const all = online.generalLog();
    const window = fromHost(all.slice(afterReady), '198.51.100.10', all);
    const conns = logConnections(all);
    const count = (cmd: string) => window.filter((e) => e.command === cmd).length;
    expect(count('Execute'), 'Execute entries').to.equal(total.executes);
    expect(count('Change user'), 'Change user entries').to.equal(total.changeUsers);
    expect(total.changeUsers).to.equal(2);
    expect(window.filter((e) => e.command === 'Prepare').map((e) => e.argument).sort()).to.deep.equal([...total.prepares].sort());
    const logins: Record<string, number> = {};
    for (const e of window) {
      const c = conns.get(e.connectionId)!;
      if (e.command === 'Connect' && !c.denied && !/^Access denied/.test(e.argument)) logins[c.user] = (logins[c.user] ?? 0) + 1;
    }
    expect(logins, 'successful logins per user').to.deep.equal(total.logins);
    expect(logins.edu, 'ed25519 logins: CLI once, the connector twice').to.equal(3);
    // Every text query the parts sent is there (drivers add their own, e.g. SET NAMES: not counted).
    const queries = window.filter((e) => e.command === 'Query').map((e) => e.argument);
    const missing = [...total.queries];
    for (const q of queries) {
      const i = missing.indexOf(q);
      if (i >= 0) missing.splice(i, 1);
    }
    expect(missing, 'queries the workload sent but the log lacks').to.deep.equal([]);
    const extra = queries.length - total.queries.length;
    expect(extra, `queries the drivers added: ${JSON.stringify(queries.filter((q) => !total.queries.includes(q)))}`).to.be.within(0, 4);
    // The multi-statement batch is one entry spanning the three statements; a multi-line statement keeps its lines.
    expect(queries.filter((q) => /^INSERT INTO orders .*'batch row'.*; UPDATE customers .*; SELECT COUNT/.test(q))).to.have.length(2);
    expect(queries.filter((q) => q.startsWith('SELECT id, qty\nFROM orders\nWHERE id = '))).to.have.length(2);
    // The mid-stream connection logged in before `afterReady`; its later statements are in the window.
    expect(all.slice(mark, afterReady).some((e) => e.connectionId === midId && e.command === 'Connect')).to.equal(true);
    expect(window.filter((e) => e.connectionId === midId && e.command === 'Execute')).to.have.length(midPart.executes);
  });

  it('tableDump: equal after the same statements on both servers, different after one more insert', async () => {
    const schema = [
      'CREATE DATABASE cmp;',
      'CREATE TABLE cmp.a (id INT PRIMARY KEY, v VARCHAR(32), n INT NOT NULL DEFAULT 0);',
      'CREATE TABLE cmp.b (k VARCHAR(16), j INT, w DOUBLE, PRIMARY KEY (k, j));',
    ];
    const same = [
      "INSERT INTO cmp.a (id, v) VALUES (3, 'three'), (1, 'one'), (2, 'tw''o\\n');",
      'UPDATE cmp.a SET n = n + 5 WHERE id >= 2;',
      "INSERT INTO cmp.b VALUES ('y', 2, 0.5), ('x', 9, -1), ('x', 1, NULL);",
    ];
    // Different insertion orders on the two servers: the dump orders rows by primary key.
    await online.sql([...schema, ...same]);
    await target.sql([...schema, same[2], same[0], same[1]]);
    const a = await online.tableDump('cmp');
    const b = await target.tableDump('cmp');
    expect(a.counts).to.deep.equal({ a: 3, b: 3 });
    expect(b.text, diffDumps(a.text, b.text)).to.equal(a.text);
    expect(a.text.split('\n').filter(Boolean)).to.deep.equal([
      "INSERT INTO `a` VALUES (1,'one',0);",
      "INSERT INTO `a` VALUES (2,'tw\\'o\\n',5);",
      "INSERT INTO `a` VALUES (3,'three',5);",
      "INSERT INTO `b` VALUES ('x',1,NULL);",
      "INSERT INTO `b` VALUES ('x',9,-1);",
      "INSERT INTO `b` VALUES ('y',2,0.5);",
    ]);
    await target.sql("INSERT INTO cmp.b VALUES ('z', 0, 0);");
    const c = await target.tableDump('cmp');
    expect(c.counts).to.deep.equal({ a: 3, b: 4 });
    expect(c.text).to.not.equal(a.text);
    expect(diffDumps(a.text, c.text)).to.contain("('z',0,0)");
    // Same row count, different value: still caught.
    await online.sql("INSERT INTO cmp.b VALUES ('z', 0, 1);");
    const d = await online.tableDump('cmp');
    expect(d.counts).to.deep.equal(c.counts);
    expect(d.text).to.not.equal(c.text);
  });
});
