// The live load shapes of issue 11, each run for every build compared: 10 s of HTTP load from 64 client
// addresses against nginx on the online host (1 KiB static file: one reply segment per request).

export interface PacedScenario {
  kind: 'paced';
  /** Figure names are live.<name>.<build>.* */
  name: string;
  what: string;
  mode: 'short' | 'keepalive';
  /** Concurrent clients (short) or connections (keep-alive). */
  conns: number;
  /** Requests/s over all connections; 0: as fast as the connections go. */
  rate: number;
}

/** Many keep-alive connections open at once (test/src/soak/hold-conns.ts), each with a few requests. */
export interface HeldScenario {
  kind: 'held';
  name: string;
  what: string;
  conns: number;
  /** New connections per second while opening. */
  openRate: number;
  /** Per connection; the later ones at random moments over spreadMs once all are open. */
  requests: number;
  spreadMs: number;
}

export type LiveScenario = PacedScenario | HeldScenario;

export const LOAD_MS = 10_000;

export const LIVE_SCENARIOS: LiveScenario[] = [
  { kind: 'paced', name: 'short_500', what: 'short connections, 500 requests/s', mode: 'short', conns: 50, rate: 500 },
  { kind: 'paced', name: 'short_2000', what: 'short connections, 2,000 requests/s', mode: 'short', conns: 50, rate: 2000 },
  { kind: 'paced', name: 'short_4000', what: 'short connections, 4,000 requests/s', mode: 'short', conns: 50, rate: 4000 },
  { kind: 'paced', name: 'keepalive50_4000', what: 'keep-alive, 50 connections, 4,000 requests/s', mode: 'keepalive', conns: 50, rate: 4000 },
  { kind: 'paced', name: 'keepalive50_20000', what: 'keep-alive, 50 connections, 20,000 requests/s', mode: 'keepalive', conns: 50, rate: 20_000 },
  { kind: 'paced', name: 'keepalive10_max', what: 'keep-alive, 10 connections, unthrottled', mode: 'keepalive', conns: 10, rate: 0 },
  // 10,000 connections opened over 4 s, then 3 more requests each over 5 s: the sessions all live at once.
  { kind: 'held', name: 'conc10000', what: '10,000 concurrent keep-alive connections, 4 requests each', conns: 10_000, openRate: 2500, requests: 4, spreadMs: 5000 },
];

/** The scenarios named (comma-separated), or all; throws one line on an unknown name. */
export function pickScenarios(names: string | undefined): LiveScenario[] {
  const list = names?.split(',').map((s) => s.trim()).filter(Boolean);
  if (!list?.length) return LIVE_SCENARIOS;
  const unknown = list.filter((n) => !LIVE_SCENARIOS.some((s) => s.name === n));
  if (unknown.length) throw new Error(`unknown live scenario ${unknown.join(', ')}: expected some of ${LIVE_SCENARIOS.map((s) => s.name).join(', ')}`);
  return LIVE_SCENARIOS.filter((s) => list.includes(s.name));
}
