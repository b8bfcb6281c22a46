// The MySQL protocol live and over a broken connection, against real MariaDB servers in namespaces:
// - live: tcpcopy runs on the online host with the C tool's command line (no -i: the raw socket captures on
//   every device) while the workload runs, a pooled connection among the clients logged in before tcpcopy
//   started; the target must end with exactly the online rows;
// - reconnect: a client pauses longer than the target's wait_timeout, so the target drops the replayed
//   connection; the next statement must go on a new connection, logged in again, its statements prepared
//   again, with nothing lost.
import { expect } from 'chai';
import * as path from 'node:path';
import {
  ONLINE_PASSWORDS,
  TARGET_PASSWORDS,
  mysqlUserArgs,
  createTopology,
  diffDumps,
  ID_BASE,
  prepareShop,
  requireRoot,
  requireTools,
  runIdleClient,
  runMysqlWorkload,
  runTcpcopy,
  startIntercept,
  startMariadb,
  startMysqlMidStreamClient,
  startTcpdump,
  TCPCOPY_BIN,
  type MariadbHandle,
  type Topology,
} from '../src/harness';
import { sleep } from '../src/harness/proc';

const PORT = 3306;
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const ONLINE_PW = ONLINE_PASSWORDS;
const TARGET_PW = TARGET_PASSWORDS;
const MYSQL_USERS = mysqlUserArgs();

/** Polls until the target holds `want` (bounded); returns its dump then. */
async function targetReaches(target: MariadbHandle, want: string, maxMs = 20_000): Promise<string> {
  const deadline = Date.now() + maxMs;
  let text = '';
  while (Date.now() < deadline) {
    text = (await target.tableDump('shop')).text;
    if (text === want) break;
    await sleep(200);
  }
  return text;
}

describe('mysql protocol live, and across a connection the target dropped (real tcpcopy, intercept, mariadbd)', function () {
  this.timeout(120_000);
  let topo: Topology;

  before(async function () {
    requireRoot(this);
    requireTools(this, ['tcpdump', 'mariadbd', 'mariadb-install-db', 'mariadb', 'mariadb-dump', 'mariadb-slap']);
    topo = await createTopology();
  });

  after(async () => {
    await topo?.destroy();
  });

  it('live, without -i: the target ends with exactly the online rows, the pooled connection included', async () => {
    const [online, target] = await Promise.all([startMariadb(topo, 'online'), startMariadb(topo, 'target')]);
    const intercept = await startIntercept(topo, [PORT]);
    try {
      await Promise.all([prepareShop(online, ONLINE_PW), prepareShop(target, TARGET_PW)]);
      const mid = startMysqlMidStreamClient(topo, online, { user: 'app', password: ONLINE_PW.app });
      await mid.ready;
      // The C tool's command line, with the protocol's options: no -i.
      const tcpcopy = topo.spawn('online', process.execPath, [
        TCPCOPY_BIN, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', '203.0.113.x', '--protocol', 'mysql', ...MYSQL_USERS, '--summary', 'json',
      ]);
      let stopped: { code: number | null; summary: any; stderr: string };
      let want = '';
      let got = '';
      try {
        await tcpcopy.waitFor(/replaying /, { stream: 'stderr', timeoutMs: 10_000 });
        await runMysqlWorkload(topo, online, { passwords: ONLINE_PW });
        await mid.go();
        // The pooled connection's row from before tcpcopy started is not expected at the target.
        const midRow = `INSERT INTO \`orders\` VALUES (${ID_BASE.mid},`;
        want = (await online.tableDump('shop')).text.split('\n').filter((l) => !l.startsWith(midRow)).join('\n');
        // tcpcopy stops once the target has caught up (or the wait is over): a stop ends the sessions still replaying.
        got = await targetReaches(target, want);
      } finally {
        await tcpcopy.stop('SIGTERM', 10_000).catch(() => undefined);
      }
      const line = tcpcopy.stdout().split('\n').find((l) => l.startsWith('{'));
      stopped = { code: tcpcopy.exitStatus()?.code ?? null, summary: line ? JSON.parse(line) : null, stderr: tcpcopy.stderr() };
      process.stderr.write(`      [live: exit ${stopped.code}; engine ${JSON.stringify(stopped.summary?.engine)}; protocol ${JSON.stringify(stopped.summary?.protocol)}]\n`);
      expect(stopped.code, stopped.stderr.slice(-3000)).to.equal(0);
      expect(got, `rows, online vs target:\n${diffDumps(want, got)}\n${stopped.stderr.slice(-3000)}`).to.equal(want);
      const p = stopped.summary.protocol;
      expect(p.loginsResumed, 'the pooled connection, logged in again').to.equal(1);
      expect(p.loginsRefused + p.skippedNoPassword + p.streamsCorrupt + p.unknownStatements, 'connections or statements not replayed').to.equal(0);
      expect(stopped.summary.engine.protocolFaults).to.equal(0);
    } finally {
      await intercept.stop();
      await Promise.all([online.stop(), target.stop()]);
    }
  });

  it('a connection the target dropped while the client was idle goes on on a new one: logged in and prepared again', async () => {
    const online = await startMariadb(topo, 'online');
    let pcap: string;
    let want: string;
    try {
      await prepareShop(online, ONLINE_PW);
      pcap = path.join(topo.mkdir('pcap-idle'), 'idle.pcap');
      const cap = await startTcpdump(topo, 'online', topo.hosts.online.iface, pcap, `tcp port ${PORT}`);
      const sent = await runIdleClient(topo, online, { user: 'app', password: ONLINE_PW.app, idBase: 7000, n: 5, pauseMs: 2500 });
      const stats = await cap.stop();
      expect(stats.droppedByKernel).to.equal(0);
      expect(sent.executes).to.equal(20);
      want = (await online.tableDump('shop')).text;
    } finally {
      await online.stop();
    }
    // The target drops connections idle for a second; the replay keeps the capture's pace (-a 1).
    const target = await startMariadb(topo, 'target', { extraArgs: ['--wait-timeout=1'] });
    try {
      await prepareShop(target, TARGET_PW);
      const intercept = await startIntercept(topo, [PORT]);
      let run;
      try {
        run = await runTcpcopy(topo, ['-i', pcap, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', '203.0.113.x', '--protocol', 'mysql', ...MYSQL_USERS], 30_000);
      } finally {
        await intercept.stop();
      }
      const got = (await target.tableDump('shop')).text;
      process.stderr.write(`      [reconnect: exit ${run.code}; engine ${JSON.stringify(run.summary?.engine)}; protocol ${JSON.stringify(run.summary?.protocol)}]\n`);
      expect(run.code, run.stderr.slice(-3000)).to.equal(0);
      expect(got, `rows, online vs target:\n${diffDumps(want, got)}\n${run.stderr.slice(-3000)}`).to.equal(want);
      expect(run.summary.engine.sessionsReconstructed, 'connections opened again').to.be.at.least(1);
      expect(run.summary.protocol.statementsReprepared, 'statements prepared again on the new connection').to.equal(2);
      const log = target.generalLog().filter((e) => e.command === 'Connect' || e.command === 'Prepare' || e.command === 'Execute');
      const count = (cmd: string) => log.filter((e) => e.command === cmd).length;
      expect(count('Execute'), 'executions at the target').to.equal(20);
      expect(count('Prepare'), 'prepares at the target (twice each)').to.equal(4);
    } finally {
      await target.stop();
    }
  });
});
