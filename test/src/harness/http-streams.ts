// Reading a capture back as TCP connections (both byte streams, with the packet that first carried each byte),
// and framing HTTP/1.x messages in them: enough to check, from a capture on the target host, in which order
// requests and responses really crossed the wire. Independent of the protocol module under test.
import { DecodeStatus, ipv4Offset, PcapReader, TcpPacket } from '@tcpcopy/core';

const TCP_SYN = 0x02;

export interface StreamPacket {
  /** Record number in the capture (its order on the wire, as seen where it was captured). */
  index: number;
  /** Stream offset of the packet's first payload byte (0 = first byte after the SYN). */
  offset: number;
  length: number;
}

export interface TcpDirection {
  bytes: Buffer;
  packets: StreamPacket[];
}

export interface TcpConnection {
  client: string;
  server: string;
  /** Client to server, and server to client. */
  up: TcpDirection;
  down: TcpDirection;
}

const ip = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

interface Building {
  conn: TcpConnection;
  isnUp: number;
  isnDown: number;
  up: Array<{ offset: number; data: Buffer }>;
  down: Array<{ offset: number; data: Buffer }>;
}

/** TCP connections to `serverPort` whose SYN is in the capture, each direction reassembled. */
export function readTcpConnections(file: string, serverPort: number): TcpConnection[] {
  const reader = PcapReader.open(file);
  const pkt = new TcpPacket();
  const open = new Map<string, Building>();
  const all: Building[] = [];
  try {
    for (let index = 0; ; index++) {
      const rec = reader.next();
      if (!rec) break;
      const off = ipv4Offset(reader.linkType, rec.data, rec.data.length);
      if (off < 0) continue;
      if (pkt.decode(rec.data, off, rec.data.length - off) !== DecodeStatus.OK) continue;
      const up = pkt.dstPort === serverPort;
      if (!up && pkt.srcPort !== serverPort) continue;
      const client = up ? `${ip(pkt.srcIp)}:${pkt.srcPort}` : `${ip(pkt.dstIp)}:${pkt.dstPort}`;
      const server = up ? `${ip(pkt.dstIp)}:${pkt.dstPort}` : `${ip(pkt.srcIp)}:${pkt.srcPort}`;
      const key = `${client}>${server}`;
      if (pkt.flags & TCP_SYN) {
        const known = open.get(key);
        if (up && known?.isnUp !== ((pkt.seq + 1) >>> 0)) {
          // A new connection on these ports (a reconnect, a later run) starts afresh; a repeated SYN does not.
          const c: Building = {
            conn: { client, server, up: { bytes: Buffer.alloc(0), packets: [] }, down: { bytes: Buffer.alloc(0), packets: [] } },
            isnUp: (pkt.seq + 1) >>> 0,
            isnDown: -1,
            up: [],
            down: [],
          };
          open.set(key, c);
          all.push(c);
        } else if (!up && known) known.isnDown = (pkt.seq + 1) >>> 0;
        continue;
      }
      const c = open.get(key);
      const len = pkt.payloadLength;
      if (!c || len === 0) continue;
      const isn = up ? c.isnUp : c.isnDown;
      if (isn < 0) continue;
      const offset = (pkt.seq - isn) >>> 0;
      (up ? c.conn.up : c.conn.down).packets.push({ index, offset, length: len });
      (up ? c.up : c.down).push({ offset, data: Buffer.from(pkt.buf.subarray(pkt.payload, pkt.payload + len)) });
    }
  } finally {
    reader.close();
  }
  for (const c of all) {
    c.conn.up.bytes = assemble(c.up);
    c.conn.down.bytes = assemble(c.down);
  }
  return all.map((c) => c.conn);
}

function assemble(chunks: Array<{ offset: number; data: Buffer }>): Buffer {
  let end = 0;
  for (const ch of chunks) end = Math.max(end, ch.offset + ch.data.length);
  const out = Buffer.alloc(end);
  for (const ch of chunks) ch.data.copy(out, ch.offset);
  return out;
}

/** Record number of the first packet that carried stream byte `offset`. */
export function firstCarrier(dir: TcpDirection, offset: number): number {
  let best = Infinity;
  for (const p of dir.packets) if (offset >= p.offset && offset < p.offset + p.length && p.index < best) best = p.index;
  return best;
}

export interface HttpMessage {
  start: number;
  /** End of the head (start of the body). */
  headEnd: number;
  end: number;
  /** Request method, or response status. */
  method: string;
  status: number;
  headers: Record<string, string>;
}

function parseHeadAt(buf: Buffer, start: number): { headEnd: number; line: string; headers: Record<string, string> } | null {
  const at = buf.indexOf('\r\n\r\n', start);
  if (at < 0) return null;
  const lines = buf.toString('latin1', start, at).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { headEnd: at + 4, line: lines[0], headers };
}

/** End of a body starting at p, or -1 when the stream stops inside it. */
function bodyEnd(buf: Buffer, p: number, headers: Record<string, string>, untilClose: boolean): number {
  if (/chunked\s*$/i.test(headers['transfer-encoding'] ?? '')) {
    for (;;) {
      const eol = buf.indexOf('\r\n', p);
      if (eol < 0) return -1;
      const size = parseInt(buf.toString('latin1', p, eol).split(';')[0], 16);
      p = eol + 2;
      if (size === 0) {
        for (;;) {
          const e = buf.indexOf('\r\n', p);
          if (e < 0) return -1;
          if (e === p) return p + 2;
          p = e + 2;
        }
      }
      p += size + 2;
      if (p > buf.length) return -1;
    }
  }
  if (headers['content-length'] !== undefined) {
    const end = p + Number(headers['content-length']);
    return end <= buf.length ? end : -1;
  }
  return untilClose ? buf.length : p;
}

/** The requests of a client stream, in order. */
export function splitRequests(buf: Buffer): HttpMessage[] {
  const out: HttpMessage[] = [];
  let p = 0;
  while (p < buf.length) {
    const h = parseHeadAt(buf, p);
    if (!h) break;
    const end = bodyEnd(buf, h.headEnd, h.headers, false);
    if (end < 0) break;
    out.push({ start: p, headEnd: h.headEnd, end, method: h.line.split(' ')[0], status: 0, headers: h.headers });
    p = end;
  }
  return out;
}

/** The responses of a server stream, interim ones included, given the methods of the requests they answer. */
export function splitResponses(buf: Buffer, methods: string[]): HttpMessage[] {
  const out: HttpMessage[] = [];
  let p = 0;
  let k = 0;
  while (p < buf.length && k < methods.length) {
    const h = parseHeadAt(buf, p);
    if (!h) break;
    const status = Number(h.line.split(' ')[1]);
    let end: number;
    if ((status >= 100 && status < 200) || status === 204 || status === 304 || methods[k] === 'HEAD') end = h.headEnd;
    else end = bodyEnd(buf, h.headEnd, h.headers, true);
    if (end < 0) break;
    out.push({ start: p, headEnd: h.headEnd, end, method: methods[k], status, headers: h.headers });
    if (status >= 200 || status === 101) k++;
    p = end;
  }
  return out;
}
