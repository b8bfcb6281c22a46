/**
 * Replays a pcap file to a target from inside a program, in one call: replay() from @tcpcopy/core
 * opens the file and the raw socket, connects to intercept, runs the same engine the tcpcopy
 * command uses (with the protocol module we give it) and resolves with the counters.
 *
 *   node dist/src/replay-pcap.js FILE ONLINE_PORT TARGET_IP:PORT INTERCEPT_IP FAKE_CLIENT_IP
 *
 * Needs root (raw socket) and an intercept on INTERCEPT_IP, like tcpcopy.
 *
 * A program that swaps a part replay() does not take as an option still has the parts: register
 * them in createReplayContainer() under Tokens, resolve Tokens.ReplayEngine and drive it with
 * replayOffline or replayLive (docs/architecture.md).
 */
import { replay, ReplayError, type ReplaySummary } from '@tcpcopy/core';
import { rawProtocol } from '@tcpcopy/protocol-raw';

export function replayPcap(file: string, onlinePort: number, target: string, intercept: string, fakeClient: string,
  signal?: AbortSignal): Promise<ReplaySummary> {
  return replay({
    file,
    transfers: `${onlinePort}-${target}`,
    intercepts: intercept,
    clientAddresses: fakeClient,
    protocol: rawProtocol,
    speed: 10,
    tailTimeoutMs: 10_000,
    warn: (m) => console.error(m),
    signal,
  });
}

if (require.main === module) {
  const [file, port, target, intercept, fake] = process.argv.slice(2);
  if (!fake) {
    console.error('usage: replay-pcap FILE ONLINE_PORT TARGET_IP:PORT INTERCEPT_IP FAKE_CLIENT_IP');
    process.exit(2);
  }
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  replayPcap(file, Number(port), target, intercept, fake, stop.signal).then(
    ({ engine, end }) => {
      console.log(`replayed ${engine.sessionsCreated} connections (${engine.sessionsCompleted} closed cleanly), ${engine.packetsSent} packets sent`);
      process.exit(end === 'finished' ? 0 : 1);
    },
    (err: Error) => {
      // ReplayError: bad input or no permission (err.code says which); anything else is a bug.
      console.error(`replay-pcap: ${err instanceof ReplayError ? err.message : err.stack}`);
      process.exit(err instanceof ReplayError ? 2 : 1);
    },
  );
}
