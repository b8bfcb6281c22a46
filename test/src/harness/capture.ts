// Packet capture with tcpdump inside a host namespace, and reading captures back.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { NsName, Topology } from './netns';
import type { ProcHandle } from './proc';

export interface Capture {
  readonly pid: number;
  readonly file: string;
  readonly proc: ProcHandle;
  /** From tcpdump's "listening on" line, e.g. "EN10MB (Ethernet)". */
  readonly linkType: string;
  /** SIGINT (tcpdump then flushes and closes the file), wait for exit (bounded). Returns tcpdump's counts. */
  stop(): Promise<{ captured: number; droppedByKernel: number }>;
}

/**
 * `tcpdump -i IFACE -w FILE -U -Z root -s 0 FILTER` in a namespace. Resolves once tcpdump says
 * "listening on", which it prints after the capture socket is bound and the filter is attached.
 * `filter` is a pcap filter expression ('' for everything).
 */
export async function startTcpdump(topo: Topology, host: NsName, iface: string, file: string, filter = '', opts: { bufferKiB?: number } = {}): Promise<Capture> {
  // --immediate-mode: without it TPACKET_V3 hands packets over in blocks retired by a timeout, and the
  // packets of a block not yet retired when SIGINT arrives never reach the file.
  // -B: the default 2 MiB ring overflows ("dropped by kernel") with 64 KB GSO frames on a busy 2-core box.
  const args = ['-i', iface, '-w', file, '-U', '-Z', 'root', '-s', '0', '-n', '--immediate-mode', '-B', String(opts.bufferKiB ?? 32768)];
  if (filter) args.push(filter);
  const proc = topo.spawn(host, 'tcpdump', args);
  let m: RegExpMatchArray;
  try {
    m = await proc.waitFor(/listening on \S+, link-type ([^,]+),/, { stream: 'stderr', timeoutMs: 5000 });
  } catch (e) {
    await proc.stop('SIGKILL', 2000).catch(() => undefined);
    throw e;
  }
  return {
    pid: proc.pid,
    file,
    proc,
    linkType: m[1],
    async stop() {
      await proc.stop('SIGINT', 5000);
      const err = proc.stderr();
      const num = (re: RegExp) => Number(re.exec(err)?.[1] ?? NaN);
      if (!fs.existsSync(file)) throw new Error(`tcpdump wrote no ${file}: ${err}`);
      return { captured: num(/(\d+) packets? captured/), droppedByKernel: num(/(\d+) packets? dropped by kernel/) };
    },
  };
}

/** The packets of a capture file matching `filter`, one tcpdump summary line each (`tcpdump -r -nn`). */
export function readPackets(file: string, filter = '', extraArgs: string[] = []): string[] {
  const args = ['-r', file, '-nn', ...extraArgs];
  if (filter) args.push(filter);
  // Reading a file needs no namespace. Bounded in time and output.
  const r = spawnSync('tcpdump', args, { encoding: 'utf8', timeout: 30_000, maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`tcpdump -r ${file} failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

export function countPackets(file: string, filter = ''): number {
  return readPackets(file, filter).length;
}

export interface TcpPayload {
  /** Sum of payload lengths of every matching packet (retransmissions counted again). */
  total: number;
  /** Bytes of sequence space covered, per flow, summed: what a receiver got, retransmissions counted once. */
  unique: number;
  /** Matching packets that carried payload. */
  packets: number;
}

/**
 * TCP payload in a capture, from tcpdump's "seq A:B" (absolute, -S). `unique` merges the ranges of each
 * flow, so a TLP or spurious retransmission on a busy machine does not change it.
 */
export function tcpPayload(file: string, filter = ''): TcpPayload {
  const flows = new Map<string, { base: number; ranges: Array<[number, number]> }>();
  let total = 0;
  let packets = 0;
  const re = /IP (\S+) > (\S+): .*?\bseq (\d+):(\d+),/;
  for (const line of readPackets(file, filter ? `tcp and (${filter})` : 'tcp', ['-S'])) {
    const m = re.exec(line);
    if (!m) continue; // no payload
    const [, src, dst, a, b] = m;
    const key = `${src}>${dst}`;
    let f = flows.get(key);
    if (!f) flows.set(key, (f = { base: Number(a), ranges: [] }));
    // Offsets from the first sequence number seen, modulo 2^32: sequence numbers may wrap inside a flow.
    const start = (Number(a) - f.base + 2 ** 32) % 2 ** 32;
    const len = (Number(b) - Number(a) + 2 ** 32) % 2 ** 32;
    f.ranges.push([start, start + len]);
    total += len;
    packets++;
  }
  let unique = 0;
  for (const { ranges } of flows.values()) {
    ranges.sort((x, y) => x[0] - y[0]);
    let end = -1;
    for (const [s, e] of ranges) {
      if (e <= end) continue;
      unique += e - Math.max(s, end);
      end = e;
    }
  }
  return { total, unique, packets };
}
