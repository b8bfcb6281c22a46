// What a capture of tcpcopy's output says about sessions the target never answered: each session's
// SYN times and the RSTs that ended it, to check that tcpcopy retries no more than TCP would.

export interface SynRetries {
  /** Per session ("ADDR.PORT ISN": a later session on the same client port has another ISN), its SYNs' capture times, s. */
  syns: Map<string, number[]>;
  /** Per session with a SYN in the capture, the RSTs it sent (an RST in SYN_SENT carries ISN + 1). */
  rsts: Map<string, number>;
  /** SYNs per session → sessions that sent that many. */
  synCounts: Map<number, number>;
}

/** `readPackets(file, filter, ['-S', '-tt'])` lines: absolute sequence numbers, times in seconds. */
const LINE = /^(\d+\.\d+) IP (\S+) > \S+: Flags \[([^\]]+)\], seq (\d+)/;

export function synRetries(lines: readonly string[]): SynRetries {
  const syns = new Map<string, number[]>();
  const rsts = new Map<string, number>();
  for (const line of lines) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, t, src, flags, seq] = m;
    if (flags === 'S') {
      const k = `${src} ${seq}`;
      const times = syns.get(k);
      if (times) times.push(Number(t));
      else syns.set(k, [Number(t)]);
    } else if (flags.includes('R')) {
      // One on an open connection (another sequence number) is not an unanswered session's.
      const k = `${src} ${(Number(seq) - 1 + 2 ** 32) % 2 ** 32}`;
      if (syns.has(k)) rsts.set(k, (rsts.get(k) ?? 0) + 1);
    }
  }
  const synCounts = new Map<number, number>();
  for (const times of syns.values()) synCounts.set(times.length, (synCounts.get(times.length) ?? 0) + 1);
  return { syns, rsts, synCounts };
}

/** "1: 950, 3: 50": sessions by how many SYNs they sent. */
export function synCountsText(counts: ReadonlyMap<number, number>): string {
  return [...counts].sort((a, b) => a[0] - b[0]).map(([n, c]) => `${n}: ${c}`).join(', ');
}
