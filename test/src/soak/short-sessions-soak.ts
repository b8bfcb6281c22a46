// `npm run soak -- --sessions N [--rate R] [--limit MB] [--json FILE]`: N short sessions (one request per
// connection, every client 4-tuple new) replayed live by the real tcpcopy with -m MB (test/src/soak/short-sessions.ts).
// Prints tcpcopy's RSS every 10 s and each load run's figures, then a summary; exit 1 when a request is missing at
// the target (each one named), when tcpcopy's RSS reached -m or was not flat after the warm-up (the first quarter:
// the highest and the lowest sample of the last quarter within 10 % of the second quarter's), when a session was
// refused for memory or was still open after the load, or when tcpcopy died.
import * as fs from 'node:fs';
import { mib, MiB } from './proc-sample';
import { rssQuarters, runShortLoad, settleRig, startRig } from './short-sessions';

export interface ShortSessionsSoakOptions {
  sessions: number;
  rate: number;
  limitMb: number;
  json?: string;
}

const FLAT = 1.1;

export async function soakShortSessions(opts: ShortSessionsSoakOptions): Promise<number> {
  console.log(`# soak: ${opts.sessions} short sessions at ${opts.rate}/s, tcpcopy -m ${opts.limitMb}`);
  const rig = await startRig({ memoryLimitMb: opts.limitMb, tagPrefix: 'ss', maxRate: opts.rate });
  const failures: string[] = [];
  try {
    const t0 = rig.rss.elapsed();
    let printed = t0;
    const progress = setInterval(() => {
      const now = rig.rss.elapsed();
      const rss = rig.rss.between(printed, now).map((s) => mib(s.rss, 0));
      printed = now;
      const { online, target } = rig.ledger.update();
      console.log(`${(now - t0).toFixed(0).padStart(5)} s: tcpcopy RSS ${rss.join(' ')} MiB; requests online ${online}, at the target ${target}`);
    }, 10_000);
    let load;
    try {
      load = await runShortLoad(rig, {
        sessions: opts.sessions,
        rate: opts.rate,
        tag: 'ss',
        portOffset: 0,
        onRun: (run) => console.log(`# run ${run.tag}: ${run.load.sent} sessions, ${run.load.ok} answered, ${run.load.errors} errors in ${(run.load.elapsedMs / 1000).toFixed(1)} s`),
      });
    } finally {
      clearInterval(progress);
    }
    const t1 = rig.rss.elapsed();
    const settled = await settleRig(rig);
    const q = rssQuarters(rig, t0, t1);
    rig.ledger.update();
    const missing = rig.ledger.missing(50);
    const alive = !rig.tcpcopy.proc.exitStatus();
    // SYNs a listener dropped (its accept queue full): where a handshake that never came back may have gone.
    const listenDrops = async (host: 'online' | 'target') => {
      const r = await rig.topo.exec(host, 'nstat', ['-az', 'TcpExtListenOverflows', 'TcpExtListenDrops'], { check: false });
      return r.stdout.split('\n').filter((l) => l.startsWith('TcpExt')).map((l) => l.split(/\s+/).slice(0, 2).join(' ')).join(', ') || '?';
    };
    const drops = { online: await listenDrops('online'), target: await listenDrops('target') };
    const stopped = await rig.tcpcopy.stop();
    const e = stopped.summary?.engine ?? {};
    const seconds = load.runs.reduce((a, r) => a + r.load.elapsedMs, 0) / 1000;

    console.log('# ---- summary');
    console.log(`sessions.sent = ${load.sent} (${load.ok} answered online, ${load.errors} load errors${load.errorSamples.length ? `, e.g. ${load.errorSamples.slice(0, 3).join('; ')}` : ''})`);
    console.log(`sessions.rate = ${(load.ok / seconds).toFixed(0)} /s over ${seconds.toFixed(0)} s`);
    console.log(`requests.online = ${rig.ledger.online}`);
    console.log(`requests.target = ${rig.ledger.target}`);
    console.log(`requests.missing = ${missing.count}${missing.count ? `: ${missing.named.map((m) => `${m.tag}=${m.n} from ${m.client}`).join(', ')}` : ''}`);
    console.log(`tcpcopy.rss.second_quarter = ${mib(q.secondMin)}-${mib(q.secondMax)} MiB`);
    console.log(`tcpcopy.rss.last_quarter = ${mib(q.lastMin)}-${mib(q.lastMax)} MiB`);
    console.log(`tcpcopy.rss.peak = ${mib(q.peak)} MiB (-m ${opts.limitMb})`);
    console.log(`# listen queues: online ${drops.online}; target ${drops.target}`);
    console.log(`tcpcopy.sessions_open_after = ${settled.counters?.open ?? '?'} (${settled.waitedMs} ms after the load)`);
    console.log(`# tcpcopy exit ${stopped.code}; sessions ${e.sessionsCreated}, closed ${e.sessionsCompleted}, reset ${e.sessionsAborted}, ` +
      `handshake timeouts ${e.handshakeTimeouts}, refused for memory ${e.capturedRefusedMemory} packets, retransmissions ${e.retransmissions}, ` +
      `idle releases ${e.idleReleases}, capture gaps ${e.captureGaps}, kernel drops ${stopped.summary?.capture?.kernelDrops ?? '?'}`);

    if (!alive) failures.push('tcpcopy died');
    if (missing.count) failures.push(`${missing.count} requests missing at the target`);
    if (rig.ledger.online !== load.sent) failures.push(`the online server logged ${rig.ledger.online} of ${load.sent} requests`);
    if (q.peak >= opts.limitMb * MiB) failures.push(`RSS reached -m (${mib(q.peak)} MiB)`);
    if (!(q.lastMax <= q.secondMax * FLAT && q.lastMin <= q.secondMin * FLAT)) failures.push('RSS not flat after the warm-up');
    if (e.capturedRefusedMemory) failures.push(`${e.capturedRefusedMemory} packets refused for memory`);
    if (settled.counters?.open !== 0 || e.sessionsAborted) failures.push(`sessions left open after the load (${settled.counters?.open}; reset ${e.sessionsAborted})`);
    if (opts.json) {
      fs.writeFileSync(opts.json, JSON.stringify({
        options: opts, load: { ...load, runs: load.runs.map((r) => ({ ...r, load: { ...r.load, stderr: undefined } })) },
        rss: rig.rss.samples, quarters: q, missing, settled, listenDrops: drops, summary: stopped.summary, failures,
      }, null, 2) + '\n');
    }
  } finally {
    await rig.close();
  }
  console.log(failures.length ? `SOAK FAILED: ${failures.join('; ')}` : 'SOAK PASSED');
  return failures.length ? 1 : 0;
}
