/**
 * Replays a pcap file to a target from inside a program, with the library's
 * parts assembled in a tsyringe container: the same engine the tcpcopy
 * command uses, with a protocol of our choice and our own way of reporting.
 *
 *   node dist/src/replay-pcap.js FILE ONLINE_PORT TARGET_IP:PORT INTERCEPT_IP FAKE_CLIENT_IP
 *
 * Needs root (raw socket) and an intercept on INTERCEPT_IP, like tcpcopy.
 */
import {
  InterceptClient,
  RawSocketSink,
  Tokens,
  TransferTable,
  createReplayContainer,
  parseIpv4,
  parseTransfers,
  replayOffline,
  type ReplayEngine,
} from '@tcpcopy/core';
import { rawProtocol } from '@tcpcopy/protocol-raw';

export async function replayPcap(file: string, onlinePort: number, target: string, intercept: string, fakeClient: string) {
  const sink = new RawSocketSink((m) => console.error(m));
  let engine: ReplayEngine | undefined;
  const channel = new InterceptClient({
    servers: intercept,
    onReply: (pkt, length, data) => engine?.handleReply(pkt, length, data),
    onBatch: () => engine?.flush(),
  });
  await channel.connect();
  const parts = createReplayContainer();
  parts.registerInstance(Tokens.PacketSink, sink);
  parts.registerInstance(Tokens.RouteRegistry, channel);
  parts.registerInstance(Tokens.TransferTable, new TransferTable(parseTransfers(`${onlinePort}-${target}`)));
  parts.registerInstance(Tokens.SessionProtocol, rawProtocol);
  parts.registerInstance(Tokens.ClientAddresses, [parseIpv4(fakeClient)]);
  engine = parts.resolve(Tokens.ReplayEngine);
  try {
    const result = await replayOffline(engine, { file, speed: 10, tailTimeoutMs: 10_000 });
    return { packets: result.capture.tcpPackets, ...engine.stats };
  } finally {
    await channel.close();
    sink.close();
  }
}

if (require.main === module) {
  const [file, port, target, intercept, fake] = process.argv.slice(2);
  if (!fake) {
    console.error('usage: replay-pcap FILE ONLINE_PORT TARGET_IP:PORT INTERCEPT_IP FAKE_CLIENT_IP');
    process.exit(2);
  }
  replayPcap(file, Number(port), target, intercept, fake).then(
    (stats) => {
      console.log(`replayed ${stats.sessionsCreated} connections (${stats.sessionsCompleted} closed cleanly), ${stats.packetsSent} packets sent`);
      process.exit(0);
    },
    (err: Error) => {
      console.error(`replay-pcap: ${err.message}`);
      process.exit(1);
    },
  );
}
