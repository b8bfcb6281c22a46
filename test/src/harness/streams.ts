// Comparing what the target received with what the online server received, connection by connection.
import { expect } from 'chai';
import type { RecordedStream } from './servers';
import type { WorkloadConnection } from './workload';

/** The bytes each connection must deliver to the target: all of it, or from the first captured request. */
export function expectedStreams(conns: WorkloadConnection[], before: number, withMidStream: boolean): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (const c of conns) {
    if (c.kind !== 'midStream') {
      m.set(c.conn, c.sent);
      continue;
    }
    if (!withMidStream) continue;
    const at = c.sent.indexOf(`/c/${c.conn}/r/${before} `);
    const start = c.sent.lastIndexOf('GET ', at);
    m.set(c.conn, c.sent.subarray(start));
  }
  return m;
}

/** Groups recorded streams by workload connection number (from the /c/<n>/ in their requests). */
export function byConnection(streams: RecordedStream[]): Map<number, Buffer[]> {
  const m = new Map<number, Buffer[]>();
  for (const s of streams) {
    const match = /\/c\/(\d+)\/r\//.exec(s.bytes.toString('latin1'));
    const conn = match ? Number(match[1]) : -1;
    if (conn < 0) console.error(`      [target stream from ${s.remote} with ${s.bytes.length} bytes: ${JSON.stringify(s.bytes.subarray(0, 60).toString('latin1'))}]`);
    m.set(conn, [...(m.get(conn) ?? []), s.bytes]);
  }
  return m;
}

export function assertSameStreams(expected: Map<number, Buffer>, got: Map<number, Buffer[]>, copies: number, runs: Array<{ summary: unknown }>): void {
  const problems: string[] = [];
  for (const [conn, bytes] of expected) {
    const list = got.get(conn) ?? [];
    if (list.length !== copies) problems.push(`conn ${conn}: ${list.length} connections at the target, want ${copies}`);
    for (const b of list) {
      if (!b.equals(bytes)) problems.push(`conn ${conn}: target got ${b.length} bytes, online ${bytes.length}; first difference at ${firstDiff(b, bytes)}`);
    }
  }
  for (const conn of got.keys()) if (!expected.has(conn)) problems.push(`unexpected connection at the target: ${conn}`);
  const context = runs.map((r) => JSON.stringify((r.summary as { engine?: unknown })?.engine)).join('\n');
  expect(problems, `${problems.slice(0, 10).join('\n')}\ntcpcopy counters:\n${context}`).to.deep.equal([]);
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

