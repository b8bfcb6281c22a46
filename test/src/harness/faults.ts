// Faults planted in the test namespaces (the kernel here has no netem):
//  - packet loss: an nftables table in a host's namespace whose output chain drops a share of the matching
//    packets at random, with counters that show what it saw and what it dropped (IP_HDRINCL raw packets pass
//    the output hook too, so this reaches tcpcopy's own sends);
//  - a TCP path that can be delayed, stalled or cut: a user-space relay (this file run as a script) inside a
//    namespace, e.g. between tcpcopy and intercept, driven over its stdin;
//  - a route removed and restored with `ip route`;
//  - loss by phase: which requests were lost before, during and after a fault.
import * as net from 'node:net';
import type { HostName, Topology } from './netns';
import type { ProcHandle } from './proc';

// ---- packet loss (nftables) ------------------------------------------------------------------------

export interface PacketLossOptions {
  /** nft match expression for the packets concerned, e.g. `ip daddr 198.51.100.30 tcp dport 80`. */
  match: string;
  /** Share dropped at random, in percent (0..100). */
  percent: number;
  /** nft table name (default "fault"); one table per fault in a namespace. */
  table?: string;
}

export interface PacketLossCounters {
  /** Packets that matched (dropped or not). */
  seen: number;
  /** Packets dropped. */
  dropped: number;
}

export interface PacketLoss {
  readonly host: HostName;
  readonly table: string;
  readonly percent: number;
  /** The rule set as given to `nft -f -`. */
  readonly ruleset: string;
  /** The counters now (read with `nft -j list table`). */
  counters(): Promise<PacketLossCounters>;
  /** Deletes the table; resolves with the final counters. Idempotent. */
  remove(): Promise<PacketLossCounters>;
}

/**
 * Drops `percent` % of the packets matching `match` that `host` sends (nft output hook, `numgen random`). Two
 * rules: the first counts every matching packet, the second drops its share and counts the drops.
 */
export async function plantPacketLoss(topo: Topology, host: HostName, opts: PacketLossOptions): Promise<PacketLoss> {
  const table = opts.table ?? 'fault';
  const { match, percent } = opts;
  if (!/^[a-z][a-z0-9_]{0,30}$/.test(table)) throw new Error(`bad nft table name '${table}'`);
  // A match of words, addresses, ports, prefixes and braces: nothing that could end the rule or add another.
  if (!/^[a-z0-9 ._/:{},-]+$/i.test(match)) throw new Error(`bad nft match '${match}'`);
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error(`percent must be 0..100, not ${percent}`);
  // One statement per line, as nft -f reads them.
  const ruleset = [
    `table ip ${table} {`,
    `  chain out {`,
    `    type filter hook output priority 0;`,
    `    ${match} counter comment "seen"`,
    `    ${match} numgen random mod 100 < ${percent} counter drop comment "dropped"`,
    `  }`,
    `}`,
    '',
  ].join('\n');
  await topo.exec(host, 'nft', ['-f', '-'], { input: ruleset });
  const counters = async (): Promise<PacketLossCounters> => {
    const r = await topo.exec(host, 'nft', ['-j', 'list', 'table', 'ip', table]);
    const out: PacketLossCounters = { seen: -1, dropped: -1 };
    for (const item of JSON.parse(r.stdout).nftables as any[]) {
      const rule = item.rule;
      if (!rule) continue;
      const counter = (rule.expr as any[]).find((e) => e.counter)?.counter;
      if (rule.comment === 'seen' || rule.comment === 'dropped') out[rule.comment as 'seen' | 'dropped'] = counter?.packets ?? -1;
    }
    if (out.seen < 0 || out.dropped < 0) throw new Error(`nft table ${table} in ${host} lacks its counters: ${r.stdout}`);
    return out;
  };
  // The table is in place (and its counters readable) before the caller goes on.
  await counters();
  let removed: PacketLossCounters | null = null;
  return {
    host,
    table,
    percent,
    ruleset,
    counters,
    async remove() {
      if (removed) return removed;
      const last = await counters();
      await topo.exec(host, 'nft', ['delete', 'table', 'ip', table]);
      removed = last;
      return last;
    },
  };
}

// ---- routes ----------------------------------------------------------------------------------------

export interface RouteOutage {
  /** Date.now() when the route was gone. */
  readonly removedAt: number;
  /** Puts the route back (idempotent); resolves once `ip route` shows it again. */
  restore(): Promise<void>;
}

/** Routes to `prefix` in a host's namespace, as `ip -j route show` lists them. */
export async function routesTo(topo: Topology, host: HostName, prefix: string): Promise<Array<Record<string, unknown>>> {
  const r = await topo.exec(host, 'ip', ['-j', 'route', 'show', prefix]);
  return r.stdout.trim() ? JSON.parse(r.stdout) : [];
}

/** Deletes the route to `prefix` via `gateway` in a host's namespace, and checks that it is gone. */
export async function removeRoute(topo: Topology, host: HostName, prefix: string, gateway: string): Promise<RouteOutage> {
  await topo.exec(host, 'ip', ['route', 'del', prefix, 'via', gateway]);
  const left = await routesTo(topo, host, prefix);
  if (left.length) throw new Error(`route to ${prefix} still there in ${host}: ${JSON.stringify(left)}`);
  const removedAt = Date.now();
  let restored = false;
  return {
    removedAt,
    async restore() {
      if (restored) return;
      await topo.exec(host, 'ip', ['route', 'replace', prefix, 'via', gateway]);
      const back = await routesTo(topo, host, prefix);
      if (!back.some((r) => r.gateway === gateway)) throw new Error(`route to ${prefix} via ${gateway} not back in ${host}: ${JSON.stringify(back)}`);
      restored = true;
    },
  };
}

// ---- a TCP relay that can delay, stall or cut ------------------------------------------------------------

export interface RelayStats {
  /** Connections accepted and relayed. */
  accepted: number;
  /** Connections reset at once because the relay was cut. */
  refused: number;
  /** Relayed connections reset by a cut. */
  cut: number;
  /** Relayed connections open now. */
  open: number;
  /** Bytes relayed towards the relay's target / back. */
  bytesUp: number;
  bytesDown: number;
  /** Bytes waiting now (delayed or stalled). */
  queued: number;
  mode: 'relaying' | 'stalled' | 'cut';
  delayMs: number;
}

export interface TcpRelayOptions {
  /** Address to listen on (default: the host's own address). */
  listenAddr?: string;
  listenPort: number;
  connectAddr: string;
  connectPort: number;
  /** Delay added to every chunk, each way, from the start (default 0). */
  delayMs?: number;
}

export interface TcpRelay {
  readonly proc: ProcHandle;
  /** "addr:port" it listens on (for tcpcopy -s). */
  readonly address: string;
  /** Resets every relayed connection (both sides) and resets new ones at once, until restore(). */
  cut(): Promise<RelayStats>;
  /** Relays new connections again (after cut). */
  restore(): Promise<RelayStats>;
  /** Keeps the connections open but holds every byte, each way, until resume(). */
  stall(): Promise<RelayStats>;
  /** Delivers what was held, and relays again. */
  resume(): Promise<RelayStats>;
  /** Delay for chunks that arrive from now on. */
  setDelay(ms: number): Promise<RelayStats>;
  stats(): Promise<RelayStats>;
  /** SIGTERM (SIGKILL after 5 s). */
  stop(): Promise<void>;
}

let relayCommands = 0;

/**
 * A TCP relay in a host's namespace: connections to listenAddr:listenPort are relayed to connectAddr:connectPort.
 * Each command is answered (its stats) once it has taken effect, so a caller never guesses with a sleep.
 */
export async function startTcpRelay(topo: Topology, host: HostName, opts: TcpRelayOptions): Promise<TcpRelay> {
  const config: RelayConfig = {
    listenAddr: opts.listenAddr ?? topo.hosts[host].addr,
    listenPort: opts.listenPort,
    connectAddr: opts.connectAddr,
    connectPort: opts.connectPort,
    delayMs: opts.delayMs ?? 0,
  };
  const proc = topo.spawn(host, process.execPath, [__filename, 'relay', JSON.stringify(config)]);
  await proc.waitFor(/^LISTENING /m, { timeoutMs: 5000 }).catch(async (e) => {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw new Error(`the relay did not start in ${host}: ${(e as Error).message}\n${proc.stderr()}`);
  });
  const command = async (cmd: string): Promise<RelayStats> => {
    const id = ++relayCommands;
    proc.write(`${id} ${cmd}\n`);
    const m = await proc.waitFor(new RegExp(`^(ACK|NAK) ${id} (.*)$`, 'm'), { timeoutMs: 5000 });
    if (m[1] === 'NAK') throw new Error(`the relay refused '${cmd}': ${m[2]}`);
    return JSON.parse(m[2]) as RelayStats;
  };
  return {
    proc,
    address: `${config.listenAddr}:${config.listenPort}`,
    cut: () => command('cut'),
    restore: () => command('restore'),
    stall: () => command('stall'),
    resume: () => command('resume'),
    setDelay: (ms) => command(`delay ${Math.max(0, Math.floor(ms))}`),
    stats: () => command('stats'),
    async stop() {
      await proc.stop('SIGTERM', 5000);
    },
  };
}

interface RelayConfig {
  listenAddr: string;
  listenPort: number;
  connectAddr: string;
  connectPort: number;
  delayMs: number;
}

/** One direction of a relayed connection: chunks wait here for their time (delay) or for resume (stall). */
interface Lane {
  from: net.Socket;
  to: net.Socket;
  /** null: the sender's end (FIN), passed on in order. */
  chunks: Array<{ at: number; data: Buffer | null }>;
  bytes: number;
  paused: boolean;
  timer: NodeJS.Timeout | null;
  up: boolean;
}

/** Per lane: beyond this many bytes waiting, the sending socket is paused (back-pressure instead of memory). */
const LANE_LIMIT = 4 << 20;

function relayMain(config: RelayConfig): void {
  let mode: RelayStats['mode'] = 'relaying';
  let delayMs = config.delayMs;
  const counts = { accepted: 0, refused: 0, cut: 0, bytesUp: 0, bytesDown: 0 };
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; lanes: Lane[] }>();

  const stats = (): RelayStats => {
    let queued = 0;
    for (const p of pairs) for (const l of p.lanes) queued += l.bytes;
    return { ...counts, open: pairs.size, queued, mode, delayMs };
  };

  const pump = (lane: Lane): void => {
    if (lane.timer) {
      clearTimeout(lane.timer);
      lane.timer = null;
    }
    if (mode !== 'relaying' || lane.to.destroyed) return;
    const now = Date.now();
    while (lane.chunks.length && lane.chunks[0].at <= now) {
      const { data } = lane.chunks.shift()!;
      if (data === null) {
        lane.to.end();
        continue;
      }
      lane.bytes -= data.length;
      lane.to.write(data);
      if (lane.up) counts.bytesUp += data.length;
      else counts.bytesDown += data.length;
    }
    if (lane.paused && lane.bytes < LANE_LIMIT / 2) {
      lane.paused = false;
      lane.from.resume();
    }
    if (lane.chunks.length) lane.timer = setTimeout(() => pump(lane), Math.max(1, lane.chunks[0].at - now));
  };

  const lane = (from: net.Socket, to: net.Socket, up: boolean): Lane => {
    const l: Lane = { from, to, chunks: [], bytes: 0, paused: false, timer: null, up };
    const push = (data: Buffer | null) => {
      const last = l.chunks.length ? l.chunks[l.chunks.length - 1].at : 0;
      l.chunks.push({ at: Math.max(Date.now() + delayMs, last), data });
      if (data) l.bytes += data.length;
      if (l.bytes >= LANE_LIMIT && !l.paused) {
        l.paused = true;
        from.pause();
      }
      pump(l);
    };
    from.on('data', (d: Buffer) => push(d));
    from.on('end', () => push(null));
    return l;
  };

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    if (mode === 'cut') {
      counts.refused++;
      client.resetAndDestroy();
      return;
    }
    counts.accepted++;
    client.setNoDelay(true);
    const upstream = net.connect({ host: config.connectAddr, port: config.connectPort, allowHalfOpen: true, noDelay: true });
    const pair = { client, upstream, lanes: [lane(client, upstream, true), lane(upstream, client, false)] };
    pairs.add(pair);
    const drop = () => {
      if (!pairs.delete(pair)) return;
      for (const l of pair.lanes) if (l.timer) clearTimeout(l.timer);
      if (!client.destroyed) client.resetAndDestroy();
      if (!upstream.destroyed) upstream.resetAndDestroy();
    };
    // A reset or error on one side resets the other; a clean close of both ends the pair.
    client.on('error', drop);
    upstream.on('error', drop);
    let closed = 0;
    const onClose = (hadError: boolean) => {
      if (hadError) drop();
      else if (++closed === 2) pairs.delete(pair);
    };
    client.on('close', onClose);
    upstream.on('close', onClose);
  });

  const act = (cmd: string, arg: string | undefined): void => {
    switch (cmd) {
      case 'cut':
        mode = 'cut';
        for (const p of [...pairs]) {
          counts.cut++;
          pairs.delete(p);
          for (const l of p.lanes) if (l.timer) clearTimeout(l.timer);
          p.client.resetAndDestroy();
          p.upstream.resetAndDestroy();
        }
        break;
      case 'restore':
      case 'resume':
        mode = 'relaying';
        for (const p of pairs) for (const l of p.lanes) pump(l);
        break;
      case 'stall':
        if (mode === 'relaying') mode = 'stalled';
        break;
      case 'delay':
        delayMs = Math.max(0, Number(arg) || 0);
        break;
      case 'stats':
        break;
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  };

  let input = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    input += chunk;
    let nl: number;
    while ((nl = input.indexOf('\n')) >= 0) {
      const [id, cmd, arg] = input.slice(0, nl).trim().split(/\s+/);
      input = input.slice(nl + 1);
      try {
        act(cmd, arg);
        process.stdout.write(`ACK ${id} ${JSON.stringify(stats())}\n`);
      } catch (e) {
        process.stdout.write(`NAK ${id} ${(e as Error).message}\n`);
      }
    }
  });
  // The test that drives the relay is gone: so is the relay.
  process.stdin.on('end', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  server.on('error', (e) => {
    process.stderr.write(`relay: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(config.listenPort, config.listenAddr, () => {
    process.stdout.write(`LISTENING ${config.listenAddr}:${config.listenPort} -> ${config.connectAddr}:${config.connectPort}\n`);
  });
}

// ---- loss by phase -------------------------------------------------------------------------------------

export interface PhaseLoss {
  sent: number;
  lost: number;
  /** The lost items themselves (e.g. request URIs). */
  missing: string[];
}

/**
 * Splits what was sent (e.g. the request URIs the online server logged, in any order) into phases by marks taken
 * while it ran (`marks[i]`: what had been sent by the end of phase i), and tells for each phase what is missing from
 * `arrived`. With marks [atFaultStart, atFaultEnd] the phases are before, during and after the fault.
 */
export function lossByPhase(sent: readonly string[], marks: ReadonlyArray<ReadonlySet<string>>, arrived: ReadonlySet<string>): PhaseLoss[] {
  const phases: PhaseLoss[] = Array.from({ length: marks.length + 1 }, () => ({ sent: 0, lost: 0, missing: [] }));
  for (const s of sent) {
    let i = marks.findIndex((m) => m.has(s));
    if (i < 0) i = marks.length;
    phases[i].sent++;
    if (!arrived.has(s)) {
      phases[i].lost++;
      phases[i].missing.push(s);
    }
  }
  return phases;
}

/** "3 of 120 (2.5 %)" */
export function formatLoss(p: PhaseLoss): string {
  return `${p.lost} of ${p.sent}${p.sent ? ` (${((100 * p.lost) / p.sent).toFixed(1)} %)` : ''}`;
}

if (require.main === module && process.argv[2] === 'relay') relayMain(JSON.parse(process.argv[3]) as RelayConfig);
