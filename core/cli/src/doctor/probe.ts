// The active probe: a SYN from a fake client address to the target, sent through a raw IP socket as
// a replay's packets are, with its route registered at every intercept; then wait (bounded) for what
// the target answers to come back over the channel. A SYN-ACK back means the whole path works; a RST
// means nothing listens on the target port; nothing means the answer was lost between target and
// intercept (route, forwarding, rp_filter, intercept's device or filter). A RST frees the target's
// half-open connection at the end.
import { randomInt } from 'node:crypto';
import {
  formatIpv4, PacketBuilder, RawSocketSink, SegmentSpec, TCP_RST, TCP_SYN, type InterceptClient, type ReplyHandler, type Route,
} from '@tcpcopy/core';
import { fail, ok, warn, type Finding } from './findings';

export type ProbeAnswer = 'syn-ack' | 'rst' | 'other' | 'none';

interface Pending {
  targetIp: number;
  targetPort: number;
  isn: number;
  answer: ProbeAnswer;
  flags: number;
  settle: () => void;
}

/** Matches replies coming back over the channels to the probes waiting for them (by client port). */
export class ProbeReplies {
  private readonly pending = new Map<number, Pending>();

  readonly onReply: ReplyHandler = (pkt) => {
    const p = this.pending.get(pkt.dstPort);
    if (!p || p.answer !== 'none' || pkt.srcIp !== p.targetIp || pkt.srcPort !== p.targetPort) return;
    p.flags = pkt.flags;
    if (pkt.rst) p.answer = 'rst';
    else if (pkt.syn && pkt.hasAck && pkt.ack === ((p.isn + 1) >>> 0)) p.answer = 'syn-ack';
    else p.answer = 'other';
    p.settle();
  };

  /** Resolves with what came back for `port`, or 'none' after `timeoutMs`. */
  wait(port: number, p: Omit<Pending, 'answer' | 'flags' | 'settle'>, timeoutMs: number, onHalfway: () => void): Promise<Pending> {
    return new Promise((resolve) => {
      const entry: Pending = { ...p, answer: 'none', flags: 0, settle: () => undefined };
      const halfway = setTimeout(onHalfway, timeoutMs / 2);
      const timer = setTimeout(() => entry.settle(), timeoutMs);
      entry.settle = () => {
        clearTimeout(timer);
        clearTimeout(halfway);
        this.pending.delete(port);
        resolve(entry);
      };
      this.pending.set(port, entry);
    });
  }
}

export interface ProbeSetup {
  targets: ReadonlyArray<{ targetIp: number; targetPort: number }>;
  /** The fake client address the SYNs come from (the first of -c). */
  clientIp: number;
  /** -c as a network, for the route the target needs: "203.0.113.0/24". */
  clientNetwork: string;
  /** The assistant as -s names it (the route's gateway on the target). */
  assistant: string;
  clients: readonly InterceptClient[];
  replies: ProbeReplies;
  timeoutMs: number;
}

/** Probes every target at once; one finding each. */
export async function runProbes(s: ProbeSetup): Promise<Finding[]> {
  let sink: RawSocketSink;
  const sendErrors: string[] = [];
  try {
    sink = new RawSocketSink((m) => sendErrors.push(m));
  } catch (err) {
    return [fail('probe', (err as Error).message)];
  }
  try {
    const ports = new Set<number>();
    return await Promise.all(s.targets.map((t) => {
      let port: number;
      do port = randomInt(20_000, 60_000); while (ports.has(port));
      ports.add(port);
      return probeOne(s, sink, sendErrors, t.targetIp, t.targetPort, port);
    }));
  } finally {
    // The sink sends what was queued at the end of the turn: let the last RSTs go before closing it.
    await new Promise((resolve) => setImmediate(resolve));
    sink.close();
  }
}

async function probeOne(s: ProbeSetup, sink: RawSocketSink, sendErrors: string[], targetIp: number, targetPort: number,
  clientPort: number): Promise<Finding> {
  const isn = randomInt(0, 2 ** 32 - 1);
  const route: Route = { clientIp: s.clientIp, clientPort, targetIp, targetPort, payloadBytes: 0 };
  // The SYN a replay sends (MSS and window scale offered), and the RST that frees the half-open connection.
  const builder = new PacketBuilder();
  const spec = Object.assign(new SegmentSpec(), { srcIp: s.clientIp, dstIp: targetIp, srcPort: clientPort, dstPort: targetPort });
  const send = (flags: number, seq: number): void => {
    spec.flags = flags;
    spec.seq = seq;
    sink.send(builder.scratch, 0, builder.build(spec), targetIp);
  };
  for (const c of s.clients) c.add(route);
  const started = Date.now();
  const waiting = s.replies.wait(clientPort, { targetIp, targetPort, isn }, s.timeoutMs, () => send(TCP_SYN, isn));
  send(TCP_SYN, isn);
  const result = await waiting;
  const ms = Date.now() - started;
  // The target holds a half-open connection for a SYN-ACK (or a silent answer): free it.
  if (result.answer !== 'rst') send(TCP_RST, isn + 1);
  for (const c of s.clients) c.remove(route);

  const from = `${formatIpv4(s.clientIp)}:${clientPort}`;
  const to = `${formatIpv4(targetIp)}:${targetPort}`;
  const subject = `probe ${to}`;
  switch (result.answer) {
    case 'syn-ack':
      return ok(subject, `a SYN from ${from} was answered with a SYN-ACK that intercept returned in ${ms} ms`);
    case 'rst':
      return fail(subject, `target port closed: the target answered a SYN from ${from} with a RST (nothing listens on ${to})`,
        `start the service on ${to}, or fix the target port in -x`);
    case 'other':
      return warn(subject, `the target answered a SYN from ${from} with flags 0x${result.flags.toString(16)}, not a SYN-ACK`);
    default:
      break;
  }
  if (sendErrors.length > 0) {
    return fail(subject, `the SYN from ${from} could not be sent: ${sendErrors[0]}`,
      'check the firewall (iptables/nft OUTPUT) and conntrack of this host', 'send at the data link layer: tcpcopy -o <device> (MACs in -x)');
  }
  return fail(subject, `no reply came back in ${(s.timeoutMs / 1000).toFixed(1)} s to a SYN from ${from}: the target's answer did not ` +
    `reach intercept (no route for the fake client network ${s.clientNetwork} via the assistant on the target, ` +
    'or intercept captures on the wrong device or with a filter that misses it, or it was dropped on the way)',
  `on the target: ip route add ${s.clientNetwork} via ${s.assistant} (check with: ip route get ${formatIpv4(s.clientIp)})`,
  'on the assistant: intercept must capture the target\'s replies: -i the device they arrive on, -F matching ' +
    `"tcp and src port ${targetPort}" (run intercept doctor there; net.ipv4.ip_forward must be 0)`,
  `on the target: strict rp_filter or a firewall drops ${s.clientNetwork} (sysctl -w net.ipv4.conf.all.rp_filter=0; ` +
    `tcpdump -ni any host ${formatIpv4(s.clientIp)} shows whether the SYN arrives; clouds drop forged sources)`);
}
