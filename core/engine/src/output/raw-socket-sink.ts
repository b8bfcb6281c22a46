import { formatIpv4 } from '../decode/ip-address';
import type { PacketSink } from './packet-sink';

// raw-socket ships no typings; this is the part of its API we use.
interface RawSocketWrap {
  send(buf: Buffer, offset: number, length: number, address: string, cb: (bytes: number) => void): void;
}
type SendCallback = (err: Error | null, bytes: number) => void;
interface RawSocket {
  wrap?: RawSocketWrap;
  setOption(level: number, option: number, value: number): void;
  pauseRecv(): RawSocket;
  resumeSend(): RawSocket;
  pauseSend(): RawSocket;
  send(buf: Buffer, offset: number, length: number, address: string, cb: SendCallback): RawSocket;
  on(event: string, listener: (...args: unknown[]) => void): void;
  close(): void;
}
interface RawSocketModule {
  createSocket(opts: { protocol: number; bufferSize?: number }): RawSocket;
  SocketLevel: { IPPROTO_IP: number };
  SocketOption: { IP_HDRINCL: number };
}

const NO_OP = (): void => undefined;
/**
 * IPPROTO_RAW: a send-only raw socket. Opened as IPPROTO_TCP, the kernel would also queue every
 * inbound TCP segment of the host to it (and count them as drops once its buffer is full).
 */
const IPPROTO_RAW = 255;
/** Bound on packets waiting for the socket to become writable again (about 100 MB at full size). */
const MAX_QUEUED = 65536;

/**
 * Sends hand-built IPv4 packets through a raw socket with IP_HDRINCL (the
 * forged source address goes out unchanged). The common case calls the
 * addon's synchronous sendto directly, so the caller's buffer can be reused at
 * once; only when the kernel says EAGAIN/ENOBUFS is a copy queued until the
 * socket is writable again.
 */
export class RawSocketSink implements PacketSink {
  readonly stats = { sent: 0, failed: 0, queued: 0 };
  private readonly socket: RawSocket;
  /** Packets handed to the addon's own queue and not yet written. */
  private pending = 0;
  private readonly afterQueuedSend: SendCallback;
  private readonly addressText = new Map<number, string>();
  private lastError = '';

  constructor(private readonly onError: (message: string) => void = NO_OP) {
    let raw: RawSocketModule;
    try {
      raw = require('raw-socket') as RawSocketModule;
    } catch (err) {
      throw new Error(`cannot load the raw-socket addon (${(err as Error).message}); run \`npm rebuild raw-socket\``);
    }
    try {
      this.socket = raw.createSocket({ protocol: IPPROTO_RAW, bufferSize: 64 });
      this.socket.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
    } catch (err) {
      const text = (err as Error).message;
      if (/not permitted|EPERM|EACCES/i.test(text)) {
        throw new Error('cannot open a raw IP socket: operation not permitted; run as root or grant CAP_NET_RAW');
      }
      throw new Error(`cannot open a raw IP socket: ${text}`);
    }
    // Nothing is ever received on IPPROTO_RAW; do not even poll for it.
    this.socket.pauseRecv();
    this.afterQueuedSend = (err) => {
      this.pending--;
      if (err) this.countFailure(err.message, '');
      else this.stats.sent++;
    };
    this.socket.on('error', (err) => this.onError(`raw socket: ${(err as Error).message}`));
  }

  send(buf: Buffer, offset: number, length: number, dstIp: number): void {
    const dst = this.textOf(dstIp);
    if (this.pending === 0 && this.trySend(buf, offset, length, dst)) return;
    if (this.pending >= MAX_QUEUED) {
      this.stats.failed++;
      return;
    }
    // The kernel's buffer is full: let the addon queue a copy and write it when the socket is writable.
    this.pending++;
    this.stats.queued++;
    this.socket.send(Buffer.from(buf.subarray(offset, offset + length)), 0, length, dst, this.afterQueuedSend);
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      /* already closed */
    }
  }

  private trySend(buf: Buffer, offset: number, length: number, dst: string): boolean {
    const wrap = this.socket.wrap;
    if (!wrap) throw new Error('raw-socket addon without the expected wrap.send');
    try {
      wrap.send(buf, offset, length, dst, NO_OP);
      this.stats.sent++;
      return true;
    } catch (err) {
      const text = (err as Error).message;
      if (/temporarily unavailable|No buffer space/i.test(text)) return false;
      // Anything else (EMSGSIZE, EPERM from a firewall) affects this packet only: count, report once.
      this.countFailure(text, dst);
      return true;
    }
  }

  private countFailure(text: string, dst: string): void {
    this.stats.failed++;
    if (text !== this.lastError) {
      this.lastError = text;
      this.onError(`raw socket send${dst ? ` to ${dst}` : ''} failed: ${text}`);
    }
  }

  private textOf(ip: number): string {
    let text = this.addressText.get(ip);
    if (text === undefined) {
      text = formatIpv4(ip);
      if (this.addressText.size > 65536) this.addressText.clear();
      this.addressText.set(ip, text);
    }
    return text;
  }
}
