// `npm run soak [-- --minutes N] [--rate R] [--warmup W] [--json FILE]`: a live replay held for N minutes
// (default 30) in its own namespace topology, under a steady load, to see that tcpcopy's memory stays flat
// and nothing is lost over time. `npm run soak -- --sessions N [--rate R] [--limit MB]` instead replays N short
// sessions (a million: `--sessions 1000000`) at R/s with -m MB (short-sessions-soak.ts).
//
// Load: every minute, two runs of test/scripts/live-load.js from the client host against nginx on the
// online host, each for 60 s at R/2 requests/s (R = 200 by default): keep-alive over 10 connections (from
// 10 client addresses) and short connections (one request each, 20 at a time, from 40 other addresses);
// the requests of minute m carry the tags soak_m<m>_ka / soak_m<m>_sh, so each minute's requests are
// counted in both access logs. tcpcopy captures live on the online host with its defaults plus
// -c 203.0.113.x; nginx on the target; intercept on the assistant.
//
// Every minute (a few seconds into the next one, once the minute's replay has settled) a line: tcpcopy
// RSS now and its peak over the minute, tcpcopy CPU seconds so far, intercept RSS, the minute's requests
// online and at the target, and the loss so far. At the end a summary, then exit 1 if tcpcopy's RSS grew
// more than 10 % after the warm-up (the peak of the last minute against the peak of the first minute
// after the first W minutes; W = 5 by default, less for short runs), if any request was lost (counted
// again once everything settled), or if tcpcopy or intercept died; else 0.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTopology, netnsUnavailableReason, type Topology } from '../harness/netns';
import { sleep } from '../harness/proc';
import { startIntercept, type InterceptHandle } from '../harness/replay';
import { startLiveTcpcopy, type LiveTcpcopy } from '../harness/live';
import { startNginx, type NginxHandle } from '../harness/servers';
import { addHostAddresses, clientAddressRange, cpuSeconds, rssBreakdown, runLiveLoad, type LiveLoadResult } from '../harness/live-load';
import { mib, RssSampler, TagCounter } from './proc-sample';
import { soakShortSessions, type ShortSessionsSoakOptions } from './short-sessions-soak';

const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const PORT = 80;
const PATH = '/blob/1k';
const KA_ADDRS = clientAddressRange(100, 10);
const SHORT_ADDRS = clientAddressRange(110, 40);
const MINUTE_MS = 60_000;
/** Growth of tcpcopy's RSS after the warm-up that fails the soak. */
const MAX_GROWTH = 0.1;

interface Options {
  minutes: number;
  rate: number;
  warmup: number;
  json?: string;
}

function option(argv: string[], name: string): string | undefined {
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  if (!argv[i + 1] || argv[i + 1].startsWith('--')) throw new Error(`--${name} needs a value`);
  return argv[i + 1];
}

/** Throws `refusal(arg)` for the first --option not in `known`. */
function refuseUnknown(argv: string[], known: readonly string[], refusal: (arg: string) => string): void {
  for (const a of argv) {
    const m = /^--([a-z-]+)/.exec(a);
    if (a.startsWith('--') && (!m || !known.includes(m[1]))) throw new Error(refusal(a));
  }
}

/** --name as a whole number within [min, max]; `def` when not given. */
function wholeNumber(argv: string[], name: string, def: number, min: number, max: number): number {
  const text = option(argv, name);
  if (text === undefined) return def;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} ${text}: expected a whole number from ${min} to ${max}`);
  return n;
}

export function parseSoakArgs(argv: string[]): Options {
  refuseUnknown(argv, ['minutes', 'rate', 'warmup', 'json'],
    (a) => `unknown option ${a}; options: --minutes N, --rate R, --warmup W, --json FILE (or --sessions N, --rate R, --limit MB, --json FILE)`);
  const num = (name: string, def: number, min: number, max: number): number => wholeNumber(argv, name, def, min, max);
  const minutes = num('minutes', 30, 1, 24 * 60);
  const rate = num('rate', 200, 2, 5000);
  const warmup = num('warmup', Math.min(5, Math.max(1, Math.floor(minutes / 5))), 0, minutes - 1 >= 0 ? minutes - 1 : 0);
  return { minutes, rate, warmup, json: option(argv, 'json') };
}

interface MinuteRow {
  minute: number;
  rssNowMiB: number;
  rssPeakMiB: number;
  tcpcopyCpu: number;
  interceptRssMiB: number;
  /** Its anonymous part (the rest is mostly the node binary; libpcap's capture ring, before intercept captured on packet sockets). */
  interceptAnonMiB: number;
  interceptCpu: number;
  online: number;
  target: number;
  loadErrors: number;
  lossSoFar: number;
}

/** Ports per address used by a load, so the next one starts clear of them. */
function portsUsed(load: LiveLoadResult, addrs: number): number {
  return Math.ceil(load.connections / addrs) + 1;
}

/** `--sessions N [--rate R] [--limit MB] [--json FILE]`: the short-sessions soak's options (null without --sessions). */
export function parseSessionsArgs(argv: string[]): ShortSessionsSoakOptions | null {
  if (option(argv, 'sessions') === undefined) return null;
  refuseUnknown(argv, ['sessions', 'rate', 'limit', 'json'], (a) => `${a} does not go with --sessions; with it: --rate R, --limit MB, --json FILE`);
  const num = (name: string, def: number, min: number, max: number): number => wholeNumber(argv, name, def, min, max);
  return { sessions: num('sessions', 1_000_000, 1, 2_000_000), rate: num('rate', 2500, 10, 10_000), limitMb: num('limit', 200, 64, 65_536), json: option(argv, 'json') };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const sessions = parseSessionsArgs(argv);
  const opts = sessions ? null : parseSoakArgs(argv);
  const reason = netnsUnavailableReason();
  if (reason) {
    console.error(`soak: cannot run: ${reason}; it needs root and 'ip netns'`);
    return 2;
  }
  if (sessions) return soakShortSessions(sessions);
  return soakMinutes(opts!);
}

async function soakMinutes(opts: Options): Promise<number> {
  const cpus = os.cpus();
  console.log(`# soak: ${opts.minutes} min at ${opts.rate} requests/s (half keep-alive over 10 connections, half short connections), warm-up ${opts.warmup} min`);
  console.log(`# machine: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} CPUs, node ${process.version}, ${os.platform()} ${os.release()}; started ${new Date().toISOString()}`);

  const topo: Topology = await createTopology();
  let tcpcopy: LiveTcpcopy | undefined;
  let intercept: InterceptHandle | undefined;
  let online: NginxHandle | undefined;
  let target: NginxHandle | undefined;
  const failures: string[] = [];
  try {
    await addHostAddresses(topo, 'client', [...KA_ADDRS, ...SHORT_ADDRS]);
    online = await startNginx(topo, 'online', { port: PORT });
    target = await startNginx(topo, 'target', { port: PORT });
    intercept = await startIntercept(topo, [PORT]);
    const tcpcopyArgs = ['-x', `${PORT}-${TARGET}:${PORT}`, '-c', '203.0.113.x'];
    tcpcopy = await startLiveTcpcopy(topo, tcpcopyArgs);
    console.log(`# topology ${topo.runId}; tcpcopy ${tcpcopyArgs.join(' ')} (pid ${tcpcopy.proc.pid}), intercept pid ${intercept.proc.pid}`);
    const tcpcopyPid = tcpcopy.proc.pid;
    const interceptPid = intercept.proc.pid;
    const rss = new RssSampler(tcpcopyPid, 1000);
    const irss = new RssSampler(interceptPid, 5000);
    const tagRe = /[?&](soak_m\d+_(?:ka|sh))=/;
    const logOf = (n: NginxHandle) => path.join(n.prefix, 'logs', 'access.log');
    const onlineTags = new TagCounter(logOf(online), tagRe);
    const targetTags = new TagCounter(logOf(target), tagRe);
    const minuteOf = (m: number) => (tag: string) => tag.startsWith(`soak_m${m}_`);
    const rows: MinuteRow[] = [];
    const minuteStart: number[] = [];
    const loadErrors: number[] = [];
    const errorSamples: string[] = [];
    let kaOffset = 0;
    let shortOffset = 0;

    const cpuOr = (pid: number) => {
      try {
        return cpuSeconds(pid);
      } catch {
        return NaN;
      }
    };

    const runMinute = async (m: number): Promise<void> => {
      const common = { host: ONLINE, port: PORT, path: PATH, durationMs: MINUTE_MS, portFirst: 10_000, portCount: 50_000, timeoutMs: 10_000 };
      const half = opts.rate / 2;
      const [ka, sh] = await Promise.all([
        runLiveLoad(topo, { ...common, tag: `soak_m${m}_ka`, mode: 'keepalive', conns: 10, rate: half, maxRequests: half * 60, localAddrs: KA_ADDRS, portOffset: kaOffset }),
        runLiveLoad(topo, { ...common, tag: `soak_m${m}_sh`, mode: 'short', conns: 20, rate: half, maxRequests: half * 60, localAddrs: SHORT_ADDRS, portOffset: shortOffset }),
      ]);
      kaOffset += portsUsed(ka, KA_ADDRS.length);
      shortOffset += portsUsed(sh, SHORT_ADDRS.length);
      loadErrors[m] = ka.errors + sh.errors;
      for (const s of [...ka.errorSamples, ...sh.errorSamples]) if (errorSamples.length < 10) errorSamples.push(`minute ${m}: ${s}`);
    };

    /** Waits until the target has as many of minute m's requests as the online server (or stops moving). */
    const settleMinute = async (m: number, maxMs: number): Promise<void> => {
      const start = Date.now();
      let last = -1;
      let since = start;
      while (Date.now() - start < maxMs) {
        onlineTags.update();
        targetTags.update();
        const t = targetTags.sum(minuteOf(m));
        if (t >= onlineTags.sum(minuteOf(m))) return;
        if (t !== last) {
          last = t;
          since = Date.now();
        } else if (Date.now() - since > 2000) return;
        await sleep(200);
      }
    };

    const report = (m: number): void => {
      onlineTags.update();
      targetTags.update();
      const from = minuteStart[m];
      const to = minuteStart[m + 1] ?? rss.elapsed();
      const now = rss.samples[rss.samples.length - 1];
      // Up to this minute only: the next one is still running, its replay a few milliseconds behind.
      const upTo = (tag: string) => Number(/^soak_m(\d+)_/.exec(tag)?.[1]) <= m;
      const onlineAll = onlineTags.sum(upTo);
      const targetAll = targetTags.sum(upTo);
      const row: MinuteRow = {
        minute: m,
        rssNowMiB: Number(mib(now?.rss ?? NaN)),
        rssPeakMiB: Number(mib(rss.max(from, to))),
        tcpcopyCpu: Number(cpuOr(tcpcopyPid).toFixed(2)),
        interceptRssMiB: Number(mib(irss.samples[irss.samples.length - 1]?.rss ?? NaN)),
        interceptAnonMiB: (() => {
          try {
            return Number(mib(rssBreakdown(interceptPid).anon));
          } catch {
            return NaN;
          }
        })(),
        interceptCpu: Number(cpuOr(interceptPid).toFixed(2)),
        online: onlineTags.sum(minuteOf(m)),
        target: targetTags.sum(minuteOf(m)),
        loadErrors: loadErrors[m] ?? 0,
        lossSoFar: onlineAll > 0 ? Number((1 - targetAll / onlineAll).toFixed(5)) : NaN,
      };
      rows[m] = row;
      console.log(
        `minute ${String(m).padStart(3)}/${opts.minutes}: tcpcopy RSS ${row.rssNowMiB.toFixed(1)} MiB (peak in the minute ${row.rssPeakMiB.toFixed(1)}), ` +
          `CPU ${row.tcpcopyCpu.toFixed(1)} s; intercept RSS ${row.interceptRssMiB.toFixed(1)} MiB (anon ${row.interceptAnonMiB.toFixed(1)}), CPU ${row.interceptCpu.toFixed(1)} s; ` +
          `requests online ${row.online}, target ${row.target}${row.loadErrors ? `, load errors ${row.loadErrors}` : ''}; ` +
          `loss so far ${onlineAll - targetAll} of ${onlineAll}`,
      );
    };

    let pendingReport: Promise<void> = Promise.resolve();
    for (let m = 1; m <= opts.minutes; m++) {
      if (tcpcopy.proc.exitStatus() || intercept.proc.exitStatus()) {
        failures.push(`${tcpcopy.proc.exitStatus() ? 'tcpcopy' : 'intercept'} died during minute ${m - 1}`);
        break;
      }
      minuteStart[m] = rss.elapsed();
      const run = runMinute(m);
      if (m > 1) {
        const prev = m - 1;
        pendingReport = pendingReport.then(() => settleMinute(prev, 15_000)).then(() => report(prev));
      }
      await run;
    }
    const last = minuteStart.length - 1;
    minuteStart[last + 1] = rss.elapsed();
    await pendingReport;
    await settleMinute(last, 20_000);
    report(last);

    // ---- the end --------------------------------------------------------------------------------------
    const alive = { tcpcopy: !tcpcopy.proc.exitStatus(), intercept: !intercept.proc.exitStatus() };
    const peakAll = rss.max();
    const hwm = (() => {
      try {
        return Number(/^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${tcpcopyPid}/status`, 'utf8'))?.[1]) * 1024;
      } catch {
        return NaN;
      }
    })();
    const cpuTotal = cpuOr(tcpcopyPid);
    const icpuTotal = cpuOr(interceptPid);
    rss.stop();
    irss.stop();
    const stopped = await tcpcopy.stop();
    tcpcopy = undefined;
    await intercept.stop();
    // Count again after everything settled: a late reply counts.
    await sleep(500);
    onlineTags.update();
    targetTags.update();
    const onlineAll = onlineTags.sum();
    const targetAll = targetTags.sum();
    const lost = onlineAll - targetAll;
    const perMinuteLost = rows.filter(Boolean).map((r) => ({ minute: r.minute, lost: onlineTags.sum(minuteOf(r.minute)) - targetTags.sum(minuteOf(r.minute)) }));
    const baseMinute = Math.min(opts.warmup + 1, last);
    const base = rows[baseMinute]?.rssPeakMiB ?? NaN;
    const end = rows[last]?.rssPeakMiB ?? NaN;
    const growth = end / base - 1;
    // Trend of the per-minute peaks after the warm-up (least squares), MiB per minute.
    const after = rows.filter((r) => r && r.minute > opts.warmup);
    const slope = (() => {
      if (after.length < 2) return 0;
      const xs = after.map((r) => r.minute);
      const ys = after.map((r) => r.rssPeakMiB);
      const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
      const my = ys.reduce((a, b) => a + b, 0) / ys.length;
      const num = xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0);
      const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
      return den ? num / den : 0;
    })();
    const engine = stopped.summary?.engine ?? {};
    const capture = stopped.summary?.capture ?? {};
    const minutesRun = last;
    const totalLoadErrors = loadErrors.reduce((a, b) => a + (b ?? 0), 0);

    console.log('# ---- summary');
    console.log(`duration = ${minutesRun} min (${(rss.elapsed() / 60).toFixed(1)} min wall)`);
    console.log(`requests.online = ${onlineAll}`);
    console.log(`requests.target = ${targetAll}`);
    console.log(`requests.lost = ${lost} (${onlineAll ? ((lost / onlineAll) * 100).toFixed(4) : 'NaN'} %)`);
    if (lost !== 0) console.log(`# minutes with losses: ${perMinuteLost.filter((x) => x.lost !== 0).map((x) => `${x.minute}: ${x.lost}`).join(', ')}`);
    console.log(`load.errors = ${totalLoadErrors}${errorSamples.length ? ` (e.g. ${errorSamples.slice(0, 3).join('; ')})` : ''}`);
    console.log(`tcpcopy.rss.first_minute_peak = ${rows[1]?.rssPeakMiB ?? NaN} MiB`);
    console.log(`tcpcopy.rss.baseline = ${base} MiB (peak of minute ${baseMinute}, after ${opts.warmup} min of warm-up)`);
    console.log(`tcpcopy.rss.last_minute_peak = ${end} MiB`);
    console.log(`tcpcopy.rss.growth = ${(growth * 100).toFixed(1)} % (limit ${MAX_GROWTH * 100} %)`);
    console.log(`tcpcopy.rss.trend_after_warmup = ${slope.toFixed(3)} MiB/min`);
    console.log(`tcpcopy.rss.peak = ${mib(peakAll)} MiB (sampled every second), VmHWM ${mib(hwm)} MiB`);
    console.log(`tcpcopy.cpu = ${cpuTotal.toFixed(1)} s (${((cpuTotal / Math.max(1, onlineAll)) * 10_000).toFixed(2)} s per 10k requests)`);
    console.log(`intercept.cpu = ${icpuTotal.toFixed(1)} s; intercept.rss.last = ${rows[last]?.interceptRssMiB ?? NaN} MiB`);
    console.log(
      `# tcpcopy exit ${stopped.code}; sessions ${engine.sessionsCreated ?? '?'}, completed ${engine.sessionsCompleted ?? '?'}, aborted ${engine.sessionsAborted ?? '?'}, ` +
        `retransmissions ${engine.retransmissions ?? '?'}, capture gaps ${engine.captureGaps ?? '?'}, idle releases ${engine.idleReleases ?? '?'}, ` +
        `session timeouts ${engine.sessionTimeouts ?? '?'}, refused for memory ${engine.capturedRefusedMemory ?? '?'}; kernel drops ${capture.kernelDrops ?? '?'}`,
    );

    if (!alive.tcpcopy) failures.push('tcpcopy died');
    if (!alive.intercept) failures.push('intercept died');
    if (lost !== 0) failures.push(`${lost} requests lost (online ${onlineAll}, target ${targetAll})`);
    if (onlineAll === 0) failures.push('no request reached the online server');
    if (!(growth <= MAX_GROWTH)) failures.push(`tcpcopy RSS grew ${(growth * 100).toFixed(1)} % after the warm-up (${base} -> ${end} MiB)`);

    if (opts.json) {
      fs.writeFileSync(
        opts.json,
        JSON.stringify({ options: opts, rows: rows.filter(Boolean), onlineAll, targetAll, lost, growth, slope, peakMiB: peakAll / 2 ** 20, cpuTotal, icpuTotal, summary: stopped.summary, failures }, null, 2) + '\n',
      );
    }
    console.log(failures.length ? `SOAK FAILED: ${failures.join('; ')}` : 'SOAK PASSED');
    await Promise.all([online.stop(), target.stop()]);
    return failures.length ? 1 : 0;
  } finally {
    await tcpcopy?.stop().catch(() => undefined);
    await intercept?.stop().catch(() => undefined);
    await topo.destroy().catch((e) => console.error(`soak: cleanup: ${(e as Error).message}`));
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      // A bad command line is one line; anything else keeps its stack for whoever looks into it.
      const bad = /^(unknown option|--)/.test((err as Error)?.message ?? '');
      console.error(`soak: ${bad ? (err as Error).message : (err as Error)?.stack ?? err}`);
      process.exit(bad ? 2 : 1);
    },
  );
}
