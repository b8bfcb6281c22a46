// A synthetic capture of many keep-alive HTTP-like connections, client→server packets only (as
// `tcpdump 'dst port 80'` would save them), interleaved so that hundreds of connections are open at once.
import { LinkType, PcapWriter, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '@tcpcopy/core';

export interface CaptureShape {
  connections: number;
  /** Requests per connection. */
  requests: number;
  /** Bytes of each request (one segment). */
  requestBytes: number;
  /** Bytes of each response: the client's ACKs advance by this. */
  responseBytes: number;
  /** Ticks (1 ms each) between two packets of one connection; a new connection starts every tick. */
  stepTicks: number;
}

export const SERVER_IP = 0xc6336414; // 198.51.100.20
export const SERVER_PORT = 80;
const TICK_US = 1000;
const START_US = Date.UTC(2024, 0, 1) * 1000;
const ETH = 14;
const IP = 20;
const MAC_SERVER = Buffer.from([0x02, 0, 0, 0, 0, 0x14]);
const MAC_CLIENT = Buffer.from([0x02, 0, 0, 0, 0, 0x0a]);

/** Packets of one connection: SYN, handshake ACK, per request the request and the ACK of its response, FIN, last ACK. */
export function stepsPerConnection(s: CaptureShape): number {
  return 2 + 2 * s.requests + 2;
}

export function packetCount(s: CaptureShape): number {
  return s.connections * stepsPerConnection(s);
}

// Distinct 4-tuples: 1024 client ports on each of as many client addresses as needed.
const clientIp = (i: number): number => (0x0a000001 + (i >>> 10)) >>> 0;
const clientPort = (i: number): number => 32768 + (i & 1023);
// Spread ISNs over the whole space, so some connections wrap past 2^32.
const clientIsn = (i: number): number => Math.imul(i + 1, 0x9e3779b1) >>> 0;
const serverIsn = (i: number): number => Math.imul(i + 7, 0x85ebca6b) >>> 0;

/**
 * Writes the capture (Ethernet link type). Connection i starts at tick i; its step s goes at tick
 * i + s * stepTicks, so every tick carries one step of up to `steps` different connections and the
 * file comes out in time order without sorting.
 */
export function writeSyntheticCapture(path: string, s: CaptureShape): number {
  const w = PcapWriter.create(path, { linkType: LinkType.ETHERNET });
  const frame = Buffer.alloc(ETH + IP + 40 + s.requestBytes);
  const steps = stepsPerConnection(s);
  const ticks = s.connections + (steps - 1) * s.stepTicks;
  try {
    for (let tick = 0; tick < ticks; tick++) {
      for (let step = steps - 1; step >= 0; step--) {
        const i = tick - step * s.stepTicks;
        if (i < 0 || i >= s.connections) continue;
        const len = buildStep(frame, s, i, step);
        w.write(frame.subarray(0, len), START_US + tick * TICK_US);
      }
    }
  } finally {
    w.close();
  }
  return w.records;
}

/** Fills `frame` with step `step` of connection `i`; returns the frame length. */
function buildStep(frame: Buffer, s: CaptureShape, i: number, step: number): number {
  if (step === 0) return writeHeaders(frame, i, clientIsn(i), 0, TCP_SYN, 0, true);
  const seq0 = (clientIsn(i) + 1) >>> 0;
  const ack0 = (serverIsn(i) + 1) >>> 0;
  const finStep = stepsPerConnection(s) - 2;
  if (step >= finStep) {
    // The FIN (after the last response), then the ACK of the server's FIN.
    const extra = step - finStep;
    const seq = seq0 + s.requests * s.requestBytes + extra;
    const ack = ack0 + s.requests * s.responseBytes + extra;
    return writeHeaders(frame, i, seq >>> 0, ack >>> 0, extra ? TCP_ACK : TCP_FIN | TCP_ACK, 0, false);
  }
  // Step 1 is the handshake's ACK; then request r at step 2 + 2r and the ACK of its response after it.
  const r = (step - 2) >> 1;
  const isRequest = step >= 2 && (step & 1) === 0;
  const done = step === 1 ? 0 : isRequest ? r : r + 1; // requests answered before this packet
  const seq = (seq0 + done * s.requestBytes) >>> 0;
  const ack = (ack0 + done * s.responseBytes) >>> 0;
  if (!isRequest) return writeHeaders(frame, i, seq, ack, TCP_ACK, 0, false);
  writeRequest(frame, ETH + IP + 32, s.requestBytes, i, r);
  return writeHeaders(frame, i, seq, ack, TCP_ACK | TCP_PSH, s.requestBytes, false);
}

/** An HTTP/1.1 request padded with a header to exactly `size` bytes. */
function writeRequest(frame: Buffer, at: number, size: number, conn: number, req: number): void {
  const head = `GET /c/${conn}/r/${req} HTTP/1.1\r\nHost: 198.51.100.20\r\nUser-Agent: tcpcopy-bench\r\nX-Pad: `;
  frame.write(head, at, 'latin1');
  frame.fill(0x78, at + head.length, at + size - 4);
  frame.write('\r\n\r\n', at + size - 4, 'latin1');
}

/**
 * Ethernet, IPv4 and TCP headers as a Linux client sends them: timestamps on every segment, MSS, SACK and
 * window scale on the SYN. Checksums stay 0, as with checksum offload on the capturing host: tcpcopy
 * recomputes them for what it sends.
 */
function writeHeaders(f: Buffer, i: number, seq: number, ack: number, flags: number, payload: number, syn: boolean): number {
  const optLen = syn ? 20 : 12;
  const tcpLen = 20 + optLen;
  const total = IP + tcpLen + payload;
  MAC_SERVER.copy(f, 0);
  MAC_CLIENT.copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  const ip = ETH;
  f[ip] = 0x45;
  f[ip + 1] = 0;
  f.writeUInt16BE(total, ip + 2);
  f.writeUInt16BE(seq & 0xffff, ip + 4);
  f.writeUInt16BE(0x4000, ip + 6); // DF
  f[ip + 8] = 64;
  f[ip + 9] = 6;
  f.writeUInt16BE(0, ip + 10);
  f.writeUInt32BE(clientIp(i), ip + 12);
  f.writeUInt32BE(SERVER_IP, ip + 16);
  const t = ip + IP;
  f.writeUInt16BE(clientPort(i), t);
  f.writeUInt16BE(SERVER_PORT, t + 2);
  f.writeUInt32BE(seq, t + 4);
  f.writeUInt32BE(ack, t + 8);
  f[t + 12] = (tcpLen / 4) << 4;
  f[t + 13] = flags;
  f.writeUInt16BE(syn ? 64240 : 502, t + 14);
  f.writeUInt32BE(0, t + 16); // checksum, urgent pointer
  const o = t + 20;
  const tsVal = (seq ^ ack) >>> 0;
  if (syn) {
    f.set([2, 4, 0x05, 0xb4, 4, 2, 8, 10], o); // MSS 1460, SACK permitted, timestamp kind/len
    f.writeUInt32BE(tsVal, o + 8);
    f.writeUInt32BE(0, o + 12);
    f.set([1, 3, 3, 7], o + 16); // NOP, window scale 7
  } else {
    f.set([1, 1, 8, 10], o);
    f.writeUInt32BE(tsVal, o + 4);
    f.writeUInt32BE(0, o + 8);
  }
  return ETH + total;
}
