// The MySQL protocol end to end: real clients (the mariadb CLI with native and ed25519 logins and a
// multi-statement batch, mariadb-slap, mysql2 prepared statements and change user, MariaDB's connector
// with ed25519, binary and pipelined prepared statements and change user, and a pooled connection logged
// in before the capture) work against the online MariaDB while tcpdump captures; the capture is replayed
// with the real tcpcopy (`--protocol mysql`) to a fresh target MariaDB whose users have OTHER passwords,
// given to tcpcopy with --mysql-user. Every write commutes, so the target's rows must equal the online
// ones exactly; its general log must show the same statements (text queries, prepares, executes with
// their parameters, change users) as the online log over the captured period. Without --mysql-user the
// captured logins cannot work on the target, so its tables must stay as they were (the control).
import { expect } from 'chai';
import * as path from 'node:path';
import {
  ONLINE_PASSWORDS,
  TARGET_PASSWORDS,
  mysqlUserArgs,
  createTopology,
  diffDumps,
  ID_BASE,
  logConnections,
  prepareShop,
  requireRoot,
  requireTools,
  runMysqlWorkload,
  runTcpcopy,
  startIntercept,
  startMariadb,
  startMysqlMidStreamClient,
  startTcpdump,
  sumParts,
  type GeneralLogEntry,
  type PartResult,
  type TableDump,
  type TcpcopyRun,
  type Topology,
} from '../src/harness';

const PORT = 3306;
const CLIENT = '198.51.100.10';
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const ONLINE_PW = ONLINE_PASSWORDS;
const TARGET_PW = TARGET_PASSWORDS;
const MYSQL_USERS = mysqlUserArgs();
/** Statements a replay may add on the target (e.g. restoring session state of a connection joined mid-stream). */
const ALLOWED_EXTRA_QUERY = /^(SET |USE |SELECT @@)/i;

/** What the general log says the workload's connections did, by kind, for comparing two servers. */
interface LogView {
  queries: string[];
  prepares: string[];
  executes: string[];
  /** Users switched to by Change user. */
  changeUsers: string[];
  /** Successful logins per user. */
  logins: Record<string, number>;
  deniedLogins: number;
  /** Per connection: its Query/Prepare/Execute/Change user entries in order, one string each. */
  sessions: string[];
}

/** Entries of `window` on TCP connections whose client address matches `client`; `all` (the whole log) says who they are. */
function logView(window: GeneralLogEntry[], all: GeneralLogEntry[], client: RegExp): LogView {
  const conns = logConnections(all);
  const v: LogView = { queries: [], prepares: [], executes: [], changeUsers: [], logins: {}, deniedLogins: 0, sessions: [] };
  const sessions = new Map<number, string[]>();
  for (const e of window) {
    const c = conns.get(e.connectionId);
    if (!c || c.via !== 'TCP/IP' || !client.test(c.host)) continue;
    const seq = sessions.get(c.id) ?? [];
    sessions.set(c.id, seq);
    if (e.command === 'Connect') {
      if (/^Access denied/.test(e.argument)) v.deniedLogins++;
      else if (!c.denied) v.logins[c.user] = (v.logins[c.user] ?? 0) + 1;
    } else if (e.command === 'Query') {
      v.queries.push(e.argument);
      seq.push(`Query ${e.argument}`);
    } else if (e.command === 'Prepare') {
      v.prepares.push(e.argument);
      seq.push(`Prepare ${e.argument}`);
    } else if (e.command === 'Execute') {
      v.executes.push(e.argument);
      seq.push(`Execute ${e.argument}`);
    } else if (e.command === 'Change user') {
      const user = /^(.*)@/.exec(e.argument)?.[1] ?? e.argument;
      v.changeUsers.push(user);
      seq.push(`Change user ${user}`);
    }
  }
  v.sessions = [...sessions.values()].filter((s) => s.length).map((s) => s.join('\n'));
  return v;
}

/** Items of a missing from b and of b missing from a, as multisets. */
function multisetDiff(a: string[], b: string[]): { missing: string[]; extra: string[] } {
  const left = new Map<string, number>();
  for (const x of a) left.set(x, (left.get(x) ?? 0) + 1);
  const extra: string[] = [];
  for (const x of b) {
    const n = left.get(x) ?? 0;
    if (n > 0) left.set(x, n - 1);
    else extra.push(x);
  }
  const missing = [...left].flatMap(([x, n]) => Array<string>(n).fill(x));
  return { missing, extra };
}

const short = (xs: string[], n = 8) => JSON.stringify(xs.slice(0, n).map((x) => x.slice(0, 160))) + (xs.length > n ? ` (+${xs.length - n} more)` : '');

describe('mysql protocol: replaying a captured MariaDB workload (real tcpcopy, intercept, mariadbd)', function () {
  this.timeout(120_000);
  let topo: Topology;
  let pcap: string;
  let onlineDump: TableDump;
  let onlineView: LogView;
  let sent: PartResult;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['tcpdump', 'mariadbd', 'mariadb-install-db', 'mariadb', 'mariadb-admin', 'mariadb-dump', 'mariadb-slap']);
    const t0 = Date.now();
    topo = await createTopology();
    const online = await startMariadb(topo, 'online');
    try {
      await prepareShop(online, ONLINE_PW);
      // Logged in (and one row written) before the capture: replayed from the middle, its login never captured.
      const mid = startMysqlMidStreamClient(topo, online, { user: 'app', password: ONLINE_PW.app });
      await mid.ready;
      // The captured period of the general log starts here: the mid-stream client is idle until go().
      const mark = online.generalLog().length;
      pcap = path.join(topo.mkdir('pcap'), 'mysql.pcap');
      const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, `tcp port ${PORT}`, { bufferKiB: 65536 });
      const work = await runMysqlWorkload(topo, online, { passwords: ONLINE_PW });
      const midPart = await mid.go();
      const stats = await cap.stop();
      const all = online.generalLog();
      sent = sumParts([...work.parts, midPart]);
      process.stderr.write(`      [capture: ${JSON.stringify(stats)}; parts: ${work.parts.map((p) => `${p.part} ${p.ms} ms`).join(', ')}]\n`);
      process.stderr.write(`      [sent: logins ${JSON.stringify(sent.logins)}, queries ${sent.queries.length}, prepares ${sent.prepares.length}, executes ${sent.executes}, change user ${sent.changeUsers}, inserted ${JSON.stringify(sent.inserted)}]\n`);
      expect(stats.droppedByKernel, 'packets tcpdump lost').to.equal(0);
      expect(stats.captured, 'packets captured').to.be.greaterThan(300);
      onlineView = logView(all.slice(mark), all, new RegExp(`^${CLIENT.replace(/\./g, '\\.')}$`));
      // The harness's own check that the log window holds the workload (not a replay check).
      expect(onlineView.executes.length, 'online Execute entries in the captured period').to.equal(sent.executes);
      expect([...onlineView.prepares].sort(), 'online Prepare entries in the captured period').to.deep.equal([...sent.prepares].sort());
      expect(onlineView.changeUsers.length, 'online Change user entries in the captured period').to.equal(sent.changeUsers);
      expect(onlineView.logins, 'online logins in the captured period').to.deep.equal(sent.logins);
      expect(multisetDiff(onlineView.queries, sent.queries).extra, 'workload queries missing from the online log').to.deep.equal([]);
      // Written before the capture started: not in it, so not expected at the target.
      await online.sql(`DELETE FROM shop.orders WHERE id = ${ID_BASE.mid};`);
      onlineDump = await online.tableDump('shop');
    } finally {
      await online.stop();
    }
    process.stderr.write(`      [workload and capture: ${Date.now() - t0} ms; online rows ${JSON.stringify(onlineDump.counts)}]\n`);
  });

  after(async () => {
    await topo?.destroy();
  });

  /** Replays the capture to a fresh target MariaDB whose users have TARGET_PW; returns what it holds afterwards. */
  async function replay(extra: string[], alterTarget?: string): Promise<{ run: TcpcopyRun; before: TableDump; after: TableDump; view: LogView; errorLog: string; ms: number }> {
    const t0 = Date.now();
    const target = await startMariadb(topo, 'target');
    try {
      await prepareShop(target, TARGET_PW);
      if (alterTarget) await target.sql(alterTarget);
      const before = await target.tableDump('shop');
      const intercept = await startIntercept(topo, [PORT]);
      let run: TcpcopyRun;
      try {
        run = await runTcpcopy(topo, ['-i', pcap, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', '203.0.113.x', '--protocol', 'mysql', ...extra], 30_000);
      } finally {
        await intercept.stop();
      }
      process.stderr.write(`      [tcpcopy exit ${run.code}; summary: ${JSON.stringify(run.summary)}]\n`);
      const after = await target.tableDump('shop');
      const all = target.generalLog();
      return { run, before, after, view: logView(all, all, /^203\.0\.113\.\d+$/), errorLog: target.errorLogTail(2500), ms: Date.now() - t0 };
    } finally {
      await target.stop();
    }
  }

  it('leaves the target with exactly the online rows and the same statements, logging in with the target passwords', async () => {
    expect(onlineDump.counts.orders, 'orders written online').to.equal(sent.inserted.orders);
    const { run, after, view, errorLog, ms } = await replay(MYSQL_USERS);
    const context = `\n--- tcpcopy stderr ---\n${run.stderr.slice(-3000)}\n--- target error log ---\n${errorLog}`;
    expect(run.code, `tcpcopy exit code${context}`).to.equal(0);
    process.stderr.write(`      [replay: ${ms} ms; target rows ${JSON.stringify(after.counts)}]\n`);
    process.stderr.write(`      [tcpcopy stderr: ${JSON.stringify(run.stderr.trim().split('\n').slice(0, 12))}]\n`);

    expect(view.deniedLogins, `logins the target refused${context}`).to.equal(0);
    expect(after.counts, `row counts, target vs online${context}`).to.deep.equal(onlineDump.counts);
    expect(after.text, `rows, online vs target:\n${diffDumps(onlineDump.text, after.text)}`).to.equal(onlineDump.text);

    // The answers, command by command, against the online server's in the capture. Concurrent upserts of the same
    // row may run in another order on the target (1 row affected for the insert, 2 for the update): at most 4 of them.
    const answers = run.summary?.protocol ?? {};
    expect(answers.answersCompared, 'answers compared with the online ones').to.be.greaterThan(150);
    expect(answers.errorsOnlyOnTarget, 'statements that failed only on the target').to.equal(0);
    expect(answers.affectedRowsDiffer, 'answers with other affected-row counts').to.be.at.most(4);
    expect(answers.answersSame + answers.affectedRowsDiffer, 'answers the same but for affected rows').to.equal(answers.answersCompared);

    // Per kind, what the target executed against what the online server executed while captured.
    // Connection ids differ; the mid-stream connection's statements before the capture are in neither.
    const q = multisetDiff(onlineView.queries, view.queries);
    expect(q.missing, `text queries the target never got (it got extra: ${short(q.extra)})`).to.deep.equal([]);
    expect(q.extra.filter((x) => !ALLOWED_EXTRA_QUERY.test(x)), 'text queries only the target got').to.deep.equal([]);
    const p = multisetDiff(onlineView.prepares, view.prepares);
    expect(p, 'prepared statements: missing at the target / only at the target').to.deep.equal({ missing: [], extra: [] });
    // Execute entries show the bound parameters: equal multisets mean every execution with the same values.
    const x = multisetDiff(onlineView.executes, view.executes);
    expect({ missing: x.missing.length, extra: x.extra.length }, `executes: missing ${short(x.missing)}, extra ${short(x.extra)}`).to.deep.equal({ missing: 0, extra: 0 });
    expect([...view.changeUsers].sort(), 'change user (to whom)').to.deep.equal([...onlineView.changeUsers].sort());
    // Logins: every captured login again; the connection joined mid-stream may need one more (its own was never captured).
    const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
    for (const [user, n] of Object.entries(onlineView.logins)) expect(view.logins[user] ?? 0, `logins of ${user} at the target`).to.be.at.least(n);
    expect(sum(view.logins) - sum(onlineView.logins), `extra logins at the target: ${JSON.stringify(view.logins)} vs ${JSON.stringify(onlineView.logins)}`).to.be.within(0, 1);
    // Every ed25519 login again (the mid-stream connection logs in as the last user seen from its address, which may be edu).
    expect(view.logins.edu, 'ed25519 logins at the target').to.be.within(onlineView.logins.edu, onlineView.logins.edu + 1);

    // And per connection, in order: the same sessions (extra session-state statements aside).
    const targetSessions = view.sessions.map((s) => s.split('\n').filter((l) => !(l.startsWith('Query ') && ALLOWED_EXTRA_QUERY.test(l.slice(6)))).join('\n'));
    const s = multisetDiff(onlineView.sessions, targetSessions);
    expect(s, 'connections whose statements differ (in order)').to.deep.equal({ missing: [], extra: [] });
  });

  it('reports the statements that fail only on the target (the regressions a replay is run to find)', async () => {
    const { run } = await replay(MYSQL_USERS, 'RENAME TABLE shop.hits TO shop.hits_elsewhere;');
    expect(run.code, `tcpcopy exit code\n${run.stderr.slice(-3000)}`).to.equal(0);
    const p = run.summary?.protocol ?? {};
    expect(p.errorsOnlyOnTarget, `statements that failed only on the target\n${run.stderr.slice(-3000)}`).to.be.greaterThan(0);
    expect(run.stderr, 'the failing statement named with the target\'s error').to.match(/failed only on the target: INSERT INTO hits .*ERR 1146 Table 'shop\.hits' doesn't exist/);
    expect(p.answersCompared - p.errorsOnlyOnTarget - p.affectedRowsDiffer, 'the other answers').to.equal(p.answersSame);
  });

  it('with wrong target passwords the target refuses the recomputed logins and its tables stay as they were (the control)', async () => {
    const wrong = Object.keys(TARGET_PW).flatMap((u) => ['--mysql-user', `${u}:not-the-password`]);
    const { run, before, after, view } = await replay(wrong);
    process.stderr.write(`      [control: exit ${run.code}; target logins ${JSON.stringify(view.logins)}, refused ${view.deniedLogins}]\n`);
    // The replay must have run and reached the target, or an unchanged table would prove nothing.
    expect(run.code, `tcpcopy exit code\n${run.stderr.slice(-3000)}`).to.equal(0);
    expect(view.deniedLogins, 'logins the target refused').to.be.greaterThan(0);
    expect(run.summary?.protocol?.loginsRefused, 'refused logins counted').to.be.greaterThan(0);
    expect(run.stderr, 'the refusal is reported, naming the user').to.match(/the target refused the login of "(app|edu|app2)"/);
    expect(view.queries.length + view.prepares.length + view.executes.length, `statements the target ran: ${short([...view.queries, ...view.executes])}`).to.equal(0);
    expect(after.text, diffDumps(before.text, after.text)).to.equal(before.text);
  });

  it('without a password for a user its connections are not replayed, counted, and the user named once', async () => {
    const { run, before, after, view } = await replay(['--mysql-user', `edu:${TARGET_PW.edu}`]);
    expect(run.code, `tcpcopy exit code\n${run.stderr.slice(-3000)}`).to.equal(0);
    // Only edu's connections logged in; app's were skipped (app2 only appears through a change of user).
    expect(Object.keys(view.logins), `logins at the target: ${JSON.stringify(view.logins)}`).to.deep.equal(['edu']);
    expect(view.deniedLogins, 'logins the target refused').to.equal(0);
    expect(run.summary?.protocol?.skippedNoPassword, 'connections skipped for want of a password').to.be.greaterThan(10);
    expect(run.stderr.match(/no target password for MySQL user "app"/g) ?? [], 'app named once in the log').to.have.length(1);
    expect(after.counts.orders, 'orders written by edu\'s sessions only').to.be.greaterThan(before.counts.orders);
  });
});
