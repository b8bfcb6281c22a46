// @tcpcopy/core's public entry exports what src/index.ts lists, and nothing by accident: a change to
// this list is a change to the package's API (see the groups in src/index.ts).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as core from '../src/index';

const PUBLIC_VALUES = [
  // (a) the protocol contract
  'byteCountRelease', 'CLOSE_TAG', 'MAX_REPLY_PAYLOAD_BYTES', 'loadProtocol', 'parseProtocolOptions', 'ProtocolLoadError',
  'LatencyHistogram', 'RequestStats', 'RequestTally',
  // (b) replaying in-process
  'createReplayContainer', 'Tokens', 'ReplayEngine', 'OptionError', 'parseClientAddresses', 'parseTransfers', 'TransferTable',
  'formatIpv4', 'parseIpv4', 'PacketBuilder', 'SegmentSpec', 'replay', 'ReplayError', 'replayOffline', 'replayLive', 'PcapLiveSource', 'RawSocketLiveSource', 'DEFAULT_CAPTURE_HOLD_MS', 'captureFilter',
  'RawSocketSink', 'PcapSink', 'InterceptChannelError', 'InterceptClient', 'InterceptConnectError', 'DEFAULT_INTERCEPT_PORT',
  'InterceptListenError', 'InterceptServer', 'LiveCapture', 'LiveCaptureError', 'PacketSocketCapture',
  // (c) pcap files and decoding
  'LinkType', 'linkTypeName', 'PcapFormatError', 'PcapReader', 'PcapWriter', 'ipv4Offset', 'linkHeaderLength',
  'DECODE_STATUS_TEXT', 'DecodeStatus', 'TCP_ACK', 'TCP_FIN', 'TCP_PSH', 'TCP_RST', 'TCP_SYN', 'TCP_URG', 'TcpPacket',
  'TcpOptions', 'finishSum', 'foldSum', 'ipv4ChecksumValid', 'pseudoHeaderSum', 'sumBytes', 'tcpChecksum',
  'tcpChecksumValid', 'writeIpv4Checksum',
];

describe('@tcpcopy/core public entry', () => {
  it('exports exactly the chosen values', () => {
    expect(Object.keys(core).sort()).to.deep.equal([...PUBLIC_VALUES].sort());
  });

  it('keeps the engine internals out', () => {
    for (const name of ['Session', 'ProtocolDriver', 'OutQueue', 'ClientStream', 'BUILT_IN_PROTOCOLS', 'FrameParser']) {
      expect(core, name).not.to.have.property(name);
    }
  });

  it("is an object of plain data properties in V8's fast mode, which optimized code reads without a lookup", function () {
    this.timeout(20_000);
    // A fresh process, as a program that requires the package sees it.
    const entry = path.resolve(__dirname, '..', 'src', 'index.js');
    const script = `
      const core = require(${JSON.stringify(entry)});
      const getters = Object.keys(core).filter((k) => Object.getOwnPropertyDescriptor(core, k).get !== undefined);
      process.stdout.write(JSON.stringify({ fast: %HasFastProperties(core), getters, esModule: core.__esModule }));
    `;
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '-e', script], { encoding: 'utf8', timeout: 15_000 });
    expect(r.status, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout)).to.deep.equal({ fast: true, getters: [], esModule: true });
  });
});
