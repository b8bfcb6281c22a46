/**
 * @tcpcopy/core: the replay engine as a library.
 *
 * This entry is the package's public API, in three parts: the protocol
 * contract (for protocol modules), what a program needs to replay in-process
 * (for the tcpcopy and intercept commands and programs like
 * examples/replay-pcap), and pcap files and packet decoding (for tools).
 * The rest of the package (sessions, the protocol driver, the packet builder,
 * the channel's wire format, ...) is internal and may change at any time.
 * `@tcpcopy/core/compliance` is the other public entry: the compliance suite
 * and its test doubles, for protocol packages' tests.
 *
 * The folders follow a packet: capture → decode → session → protocol →
 * rewrite → output, with intercept/ for the channel that brings the target's
 * replies back (see docs/architecture.md).
 *
 * @module @tcpcopy/core
 */
import 'reflect-metadata';

// ---- (a) The protocol contract: what a protocol module implements, and how one is loaded.

export type {
  ClientDataInfo,
  ConnectInfo,
  OnlineDataInfo,
  ProtocolContext,
  ProtocolOptions,
  ProtocolSession,
  ReleaseQuery,
  SendVerdict,
  SessionProtocol,
  SessionProtocolFactory,
  TargetDataInfo,
} from './protocol/session-protocol';
export { byteCountRelease, CLOSE_TAG, MAX_REPLY_PAYLOAD_BYTES } from './protocol/session-protocol';
// What a protocol that frames requests reports (SessionProtocol.requestStats): counts, statuses, latencies.
export {
  LatencyHistogram,
  RequestStats,
  RequestTally,
  type LatencySummary,
  type RequestStatsSnapshot,
} from './protocol/request-stats';
export {
  loadProtocol,
  parseProtocolOptions,
  ProtocolLoadError,
  type LoadProtocolOptions,
  type ProtocolNames,
} from './protocol/protocol-loader';

// ---- (b) Replaying in-process.

// The engine, assembled in a tsyringe container (register the parts, resolve Tokens.ReplayEngine)
// or constructed directly.
export { createReplayContainer, Tokens } from './container';
export { ReplayEngine, type ReplayEngineInit } from './session/replay-engine';
export type { EngineConfig, EngineStats } from './session/engine-context';

// What is replayed where (-x), and the fake client addresses (-c).
export {
  OptionError,
  parseClientAddresses,
  parseTransfers,
  TransferTable,
  type Transfer,
} from './rewrite/address-map';
export { formatIpv4, parseIpv4 } from './decode/ip-address';
// The segments a replay sends, written whole (headers, options, checksums): what tcpcopy doctor's probe sends too.
export { PacketBuilder, SegmentSpec } from './rewrite/packet-builder';

// A whole replay in one call: the options as tcpcopy's command line has them, the counters back.
export { replay } from './replay/replay';
export { ReplayError, type ReplayErrorCode } from './replay/replay-error';
export type { ReplayEnd, ReplayOptions, ReplayReadyInfo, ReplaySummary } from './replay/replay-options';

// Driving the engine: from a pcap file, or from a live capture.
export { replayOffline, type OfflineReplayOptions, type OfflineReplayResult } from './replay/offline-replay';
export { replayLive, type LiveReplay, type LiveReplayEnd, type LiveReplayOptions } from './replay/live-replay';
export {
  PcapLiveSource,
  RawSocketLiveSource,
  type LiveSource,
  type PcapLiveSourceOptions,
  type RawSocketLiveSourceOptions,
} from './capture/live-source';
export { DEFAULT_CAPTURE_HOLD_MS } from './capture/raw-capture';
export type { CapturedPacketHandler } from './capture/offline-source';
export type { CaptureStats } from './capture/frame-decoder';
export { captureFilter } from './capture/capture-filter';

// Where the rewritten packets go.
export type { PacketSink } from './output/packet-sink';
export { RawSocketSink } from './output/raw-socket-sink';
export { PcapSink } from './output/pcap-sink';

// The intercept channel, tcpcopy's end: registers routes, receives the target's replies.
export type { Route, RouteRegistry } from './intercept/route-registry';
export {
  InterceptChannelError,
  InterceptClient,
  InterceptConnectError,
  type InterceptAddress,
  type InterceptClientOptions,
  type InterceptClientStats,
  type InterceptErrorCode,
  type ReplyHandler,
} from './intercept/intercept-client';
export { DEFAULT_INTERCEPT_PORT } from './intercept/channel-messages';

// The intercept channel, intercept's end, and the libpcap capture it (and PcapLiveSource) uses.
export {
  InterceptListenError,
  InterceptServer,
  type InterceptCounters,
  type InterceptServerOptions,
  type InterceptStats,
} from './intercept/intercept-server';
export {
  LiveCapture,
  type DeviceCaptureStats,
  type LiveCaptureOptions,
  type LiveCaptureStats,
  type PacketHandler,
} from './capture/live-capture';
export { LiveCaptureError, type LiveCaptureErrorCode } from './capture/cap-addon';
export {
  PacketSocketCapture,
  type PacketSocketCaptureOptions,
  type PacketSocketCaptureStats,
  type PacketSocketDeviceStats,
} from './capture/packet-socket-capture';

// ---- (c) Pcap files and packet decoding, for tools.

export { LinkType, linkTypeName } from './decode/link-type';
export { PcapFormatError, type PcapRecord, type PcapRecordInPlace } from './capture/pcap-format';
export { PcapReader, type PcapReaderOptions } from './capture/pcap-reader';
export { PcapWriter, type PcapWriterOptions } from './capture/pcap-writer';
export { ipv4Offset, linkHeaderLength } from './decode/link';
export {
  DECODE_STATUS_TEXT,
  DecodeStatus,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  TcpPacket,
} from './decode/tcp-packet';
export { TcpOptions } from './decode/tcp-options';
export {
  finishSum,
  foldSum,
  ipv4ChecksumValid,
  pseudoHeaderSum,
  sumBytes,
  tcpChecksum,
  tcpChecksumValid,
  writeIpv4Checksum,
} from './decode/checksum';

// Protocol packages and programs read these names on every use (`core_1.CLOSE_TAG`: CommonJS keeps imports
// live). TypeScript re-exports each name as a getter, which puts this object in V8's dictionary mode: each
// such read in optimized code was a generic lookup and a getter call (LoadIC, 4-6 % of the engine bench's
// time, spent in the bench's own reads of TCP_SYN, ipv4Offset, ...). Nothing here is ever reassigned, so a
// snapshot of plain data properties serves the same values, and V8 inlines its reads.
module.exports = Object.defineProperty({ ...module.exports }, '__esModule', { value: true });
