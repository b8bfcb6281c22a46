// What earlier runs left on the target host: sockets in TIME_WAIT (and any other not-LISTEN state) and
// conntrack entries. Read before every live run so that a build's loss can be told apart from state
// another run left behind.
import type { Topology } from '../harness';

export interface TargetState {
  timeWait: number;
  /** Sockets in any state but LISTEN and TIME_WAIT (established, closing, ...). */
  otherOpen: number;
  /** Entries in the target namespace's conntrack table; NaN when the kernel has none there. */
  conntrack: number;
}

export async function readTargetState(topo: Topology): Promise<TargetState> {
  const ss = await topo.exec('target', 'ss', ['-Htan'], { check: false, timeoutMs: 10_000 });
  let timeWait = 0;
  let otherOpen = 0;
  for (const line of ss.stdout.split('\n')) {
    const state = line.trim().split(/\s+/)[0];
    if (!state || state === 'LISTEN') continue;
    if (state === 'TIME-WAIT') timeWait++;
    else otherOpen++;
  }
  const ct = await topo.exec('target', 'cat', ['/proc/sys/net/netfilter/nf_conntrack_count'], { check: false, timeoutMs: 10_000 });
  const conntrack = ct.code === 0 ? Number(ct.stdout.trim()) : NaN;
  return { timeWait, otherOpen, conntrack };
}

export function describeTargetState(s: TargetState): string {
  return `${s.timeWait} TIME_WAIT, ${s.otherOpen} other open, conntrack ${Number.isFinite(s.conntrack) ? s.conntrack : '-'}`;
}
