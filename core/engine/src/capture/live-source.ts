import * as fs from 'node:fs';
import { LinkType } from '../decode/link-type';
import type { CapturedPacketHandler } from './offline-source';
import { CaptureStats, FrameDecoder } from './frame-decoder';
import { LiveCaptureError } from './cap-addon';
import { LiveCapture } from './live-capture';

/** A live source of captured client→server packets. */
export interface LiveSource {
  /** Starts delivering packets; throws a clear error when the capture cannot start. */
  start(handler: CapturedPacketHandler): void;
  close(): void;
  readonly stats: CaptureStats;
  /** One line for the start-up message: what is captured where. */
  describe(): string;
}

/** Calls handler.flush once after each burst of packets (one event-loop turn). */
function burstFlusher(handler: CapturedPacketHandler, now: () => number): () => void {
  let queued = false;
  const flush = (): void => {
    queued = false;
    handler.flush?.(now());
  };
  return () => {
    if (queued) return;
    queued = true;
    setImmediate(flush);
  };
}

export interface PcapLiveSourceOptions {
  /** -i: device(s), comma-separated, or any. */
  device: string;
  /** -F: BPF filter. */
  filter: string;
  /** -B: kernel ring buffer per device, bytes. */
  bufferSize?: number;
  /** -S: bytes of each packet copied. */
  snaplen?: number;
  now?: () => number;
  warn?: (message: string) => void;
}

/**
 * Live capture through libpcap: the kernel's BPF filter passes only the
 * transfers' packets, so the rest of the host's traffic costs nothing here.
 */
export class PcapLiveSource implements LiveSource {
  private readonly capture: LiveCapture;
  private readonly decoder: FrameDecoder;
  private readonly now: () => number;

  constructor(private readonly opts: PcapLiveSourceOptions) {
    this.capture = new LiveCapture({ device: opts.device, filter: opts.filter, bufferSize: opts.bufferSize, snaplen: opts.snaplen });
    this.now = opts.now ?? (() => performance.now());
    this.decoder = new FrameDecoder(() => `capture on ${opts.device}`, opts.warn);
  }

  get stats(): CaptureStats {
    return this.decoder.stats;
  }

  start(handler: CapturedPacketHandler): void {
    const flushSoon = burstFlusher(handler, this.now);
    const decoder = this.decoder;
    const now = this.now;
    this.capture.start((frame, length, linkType) => {
      const pkt = decoder.decode(linkType, frame, length);
      if (pkt) handler.handleCaptured(pkt, now());
      flushSoon();
    });
    for (const w of this.capture.warnings) this.opts.warn?.(w);
  }

  describe(): string {
    const links = [...this.capture.linkTypes].map(([dev, lt]) => `${dev} (${LinkType[lt]})`).join(', ');
    return `libpcap on ${links} with filter "${this.opts.filter}"`;
  }

  close(): void {
    this.capture.close();
  }
}

// raw-socket ships no typings: the part used for receiving.
interface RawRecvWrap {
  recv(buffer: Buffer, cb: (buffer: Buffer, bytes: number, source: string) => void): void;
  on(event: 'recvReady', listener: () => void): void;
  removeAllListeners(event: string): void;
}
interface RawRecvSocket {
  wrap?: RawRecvWrap;
  on(event: 'message', listener: (buffer: Buffer, source: string) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  setOption(level: number, option: number, value: number): void;
  close(): void;
}
interface RawRecvModule {
  createSocket(opts: { protocol: number; bufferSize?: number }): RawRecvSocket;
  Protocol: { TCP: number };
  SocketLevel: { SOL_SOCKET: number };
  SocketOption: { SO_RCVBUF: number };
}

/** Packets read per readiness callback before other events get their turn. */
const MAX_BATCH = 512;
/** SO_RCVBUFFORCE: root may set a receive buffer above net.core.rmem_max. */
const SO_RCVBUFFORCE = 33;

/**
 * Live capture through an IP-layer raw socket: every inbound TCP segment of
 * the host reaches us and the transfers are picked in user space. No libpcap
 * needed, but more packets to look at on a busy host.
 */
export class RawSocketLiveSource implements LiveSource {
  private socket: RawRecvSocket | null = null;
  /** The capture socket's inode, to find its drop counter in /proc/net/raw. */
  private inode = '';
  private readonly decoder: FrameDecoder;
  private readonly now: () => number;

  constructor(private readonly opts: { receiveBuffer?: number; now?: () => number; warn?: (message: string) => void } = {}) {
    this.now = opts.now ?? (() => performance.now());
    this.decoder = new FrameDecoder(() => 'raw socket capture', opts.warn);
  }

  get stats(): CaptureStats {
    // Read while the socket is open; after close() the last reading stays.
    if (this.inode && this.socket) this.decoder.stats.kernelDrops = readRawSocketDrops(this.inode);
    return this.decoder.stats;
  }

  start(handler: CapturedPacketHandler): void {
    const raw = require('raw-socket') as RawRecvModule;
    const before = socketInodes();
    let socket: RawRecvSocket;
    try {
      // Large enough for a GRO-merged segment; the addon hands out views of this one buffer.
      socket = raw.createSocket({ protocol: raw.Protocol.TCP, bufferSize: 65536 + 256 });
    } catch (err) {
      const text = (err as Error).message;
      throw new LiveCaptureError(
        /not permitted/i.test(text) ? 'PERMISSION' : 'OPEN',
        `cannot open a raw socket to capture: ${text} (run as root or grant CAP_NET_RAW)`,
      );
    }
    const size = this.opts.receiveBuffer ?? 64 * 1024 * 1024;
    try {
      socket.setOption(raw.SocketLevel.SOL_SOCKET, SO_RCVBUFFORCE, size);
    } catch {
      socket.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_RCVBUF, size);
    }
    // The addon creates its socket lazily (setOption did): the new inode is ours.
    this.inode = [...socketInodes()].find((i) => !before.has(i)) ?? '';
    const decoder = this.decoder;
    const wrap = socket.wrap;
    if (wrap) {
      // The addon reads one packet per readiness callback and slices a new Buffer for each.
      // Read every queued packet in one go instead (recvfrom until EAGAIN), into one buffer,
      // and flush the engine once per batch.
      const buffer = Buffer.alloc(65536 + 256);
      let bytes = 0;
      const got = (_b: Buffer, n: number): void => {
        bytes = n;
      };
      wrap.removeAllListeners('recvReady');
      wrap.on('recvReady', () => {
        for (let i = 0; i < MAX_BATCH; i++) {
          try {
            wrap.recv(buffer, got);
          } catch (err) {
            const text = (err as Error).message;
            if (!/temporarily unavailable/i.test(text)) this.opts.warn?.(`raw socket capture: ${text}`);
            break;
          }
          const pkt = decoder.decode(LinkType.RAW, buffer, bytes);
          if (pkt) handler.handleCaptured(pkt, this.now());
        }
        handler.flush?.(this.now());
      });
    } else {
      const flushSoon = burstFlusher(handler, this.now);
      socket.on('message', (buffer) => {
        const pkt = decoder.decode(LinkType.RAW, buffer, buffer.length);
        if (pkt) handler.handleCaptured(pkt, this.now());
        flushSoon();
      });
    }
    socket.on('error', (err) => this.opts.warn?.(`raw socket capture: ${err.message}`));
    this.socket = socket;
  }

  describe(): string {
    return 'an IP raw socket (all inbound TCP, picked by -x)';
  }

  close(): void {
    if (this.socket && this.inode) this.decoder.stats.kernelDrops = readRawSocketDrops(this.inode);
    this.socket?.close();
    this.socket = null;
  }
}


/** Inodes of this process's sockets. */
function socketInodes(): Set<string> {
  const out = new Set<string>();
  try {
    for (const fd of fs.readdirSync('/proc/self/fd')) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
        if (m) out.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // no /proc: drops stay unknown
  }
  return out;
}

/** The kernel's drop counter of one raw socket (the last column of /proc/net/raw), or -1. */
function readRawSocketDrops(inode: string): number {
  try {
    for (const line of fs.readFileSync('/proc/net/raw', 'utf8').split('\n')) {
      const cols = line.trim().split(/\s+/);
      if (cols[9] === inode) return Number(cols[cols.length - 1]);
    }
  } catch {
    // no /proc
  }
  return -1;
}
