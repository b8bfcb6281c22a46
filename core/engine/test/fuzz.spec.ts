// The fuzz properties of every decoder in the engine that untrusted bytes reach (test/fuzz/*.fuzz.ts),
// each suite with its fixed seed; `npm run fuzz` runs the same properties with random seeds, for longer.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FrameDecoder } from '../src/capture/frame-decoder';
import { PcapReader } from '../src/capture/pcap-reader';
import { LinkType } from '../src/decode/link-type';
import { DecodeStatus, TcpPacket } from '../src/decode/tcp-packet';
import { fuzzSpec } from '../src/fuzz';
import { encodeHelloAck, FrameParser, HelloStatus } from '../src/intercept/channel-messages';
import { InterceptClient } from '../src/intercept/intercept-client';
import { suite as channelFrames } from './fuzz/channel-frames.fuzz';
import { suite as channelIntercept } from './fuzz/channel-intercept.fuzz';
import { suite as channelTcpcopy } from './fuzz/channel-tcpcopy.fuzz';
import { suite as link } from './fuzz/link.fuzz';
import { fakePeer, LOOPBACK, until } from './fuzz/loopback';
import { suite as pcapReader } from './fuzz/pcap-reader.fuzz';
import { suite as tcpOptions } from './fuzz/tcp-options.fuzz';
import { suite as tcpPacket } from './fuzz/tcp-packet.fuzz';

for (const suite of [link, tcpPacket, tcpOptions, pcapReader, channelFrames, channelIntercept, channelTcpcopy]) fuzzSpec(suite);

// Each bug the fuzzing found, with its minimal input (shrunk by fast-check).
describe('regressions found by fuzzing', () => {
  it('IPv4 + TCP: a length past the end of the buffer gives no view past it (offload packet, total length 0)', () => {
    // 40 bytes: an IPv4 header with total length 0, protocol 6, and a TCP header; the caller says 85.
    const buf = Buffer.alloc(40);
    buf[0] = 0x45;
    buf[9] = 6;
    buf[32] = 0x50;
    const p = new TcpPacket();
    expect(p.decode(buf, 0, 85)).to.equal(DecodeStatus.OK);
    expect(p.end, 'was 85').to.equal(40);
    expect(p.payloadLength).to.equal(0);
    // The same through the FrameDecoder, for a Linux cooked frame one byte longer than said.
    const sll = Buffer.concat([Buffer.from('0100000000000000000000000000' + '0800', 'hex'), buf]);
    const v = new FrameDecoder(() => 'test').decode(LinkType.LINUX_SLL, sll, sll.length + 1);
    expect(v!.end, 'was 57').to.equal(sll.length);
  });

  it('pcap reader: a record whose captured length runs past the end of the file allocates nothing for it', () => {
    // A 40-byte file: a µs header with snaplen 0x7fffffff, then a record header claiming 64 MiB - 1 bytes.
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-fuzz-')), 'cut.pcap');
    fs.writeFileSync(file, Buffer.from('d4c3b2a1020004000000000000000000ffffff7f01000000' + '0000000000000000ffffff0300000000', 'hex'));
    const r = PcapReader.open(file);
    try {
      expect(r.next()).to.equal(null);
      expect([r.truncatedTail, r.tailOffset, r.tailBytes]).to.deep.equal([true, 24, 16]);
      expect((r as unknown as { buf: Buffer }).buf.length, 'was 64 MiB').to.equal(4 * 1024 * 1024);
    } finally {
      r.close();
      fs.rmSync(path.dirname(file), { recursive: true });
    }
  });

  it('channel frame parser: no frame is handed out after stop(), even from a later chunk', () => {
    const types: number[] = [];
    const parser: FrameParser = new FrameParser((type) => {
      types.push(type);
      parser.stop();
    });
    parser.push(Buffer.from('04000000', 'hex')); // an empty ROUTE_DEL: the handler stops
    parser.push(Buffer.from('05000000', 'hex')); // was handed out
    parser.push(Buffer.from('0500', 'hex')); // was kept, in a 64 KiB buffer allocated for it
    expect(types).to.deep.equal([4]);
    expect(parser.bufferedBytes).to.equal(0);
  });

  it('channel, tcpcopy side: a REPLY whose IP total length is 0 has as many payload bytes as it carries', async () => {
    // HELLO_ACK (OK, version 1), then a REPLY of 41 bytes: IPv4 total length 0, TCP header, 1 payload byte.
    const reply = Buffer.alloc(41);
    reply[0] = 0x45;
    reply[9] = 6;
    reply[32] = 0x50;
    const stream = Buffer.concat([
      encodeHelloAck({ version: 1, minVersion: 1, status: HelloStatus.OK, maxPayload: 0xffff, name: '' }),
      Buffer.from('05000029', 'hex'),
      reply,
    ]);
    const peer = await fakePeer((s) => s.end(stream));
    const got: Array<[number, number]> = [];
    const client = new InterceptClient({
      servers: [{ host: LOOPBACK, port: peer.port }],
      channelsPerIntercept: 1,
      onReply: (_pkt, payloadLength, data) => got.push([payloadLength, data.length]),
      onError: () => undefined,
    });
    try {
      await client.connect();
      await until('the reply', () => got.length === 1);
      expect(got).to.deep.equal([[1, 1]]); // was [[0, 1]]: the engine would have ignored the byte
    } finally {
      await client.close();
      await peer.close();
    }
  });
});
