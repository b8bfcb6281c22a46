// Loopback plumbing for the fuzz properties of the two ends of the intercept channel: each input
// is sent over a real TCP connection, so the code under test reads it exactly as it would in use.
import * as net from 'node:net';

export const LOOPBACK = '127.0.0.1';
/** A side that neither answers nor closes within this long is hung. */
export const HANG_MS = 3000;

/** Waits until `cond` holds; throws (a hang) after `ms`. */
export async function until(what: string, cond: () => boolean, ms = HANG_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`hang: ${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Next turn of the event loop: chunks written apart arrive apart (TCP_NODELAY). */
export const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Writes `chunks` one per event-loop turn, then ends the connection (unless it is gone). */
export async function writeChunks(socket: net.Socket, chunks: readonly Buffer[]): Promise<void> {
  for (const c of chunks) {
    if (socket.destroyed || !socket.writable) return;
    socket.write(c);
    await turn();
  }
  if (!socket.destroyed) socket.end();
}

/**
 * Connects to `port`, sends `chunks` and the end of the stream, and returns everything the peer
 * sent back once the connection is closed.
 */
export function talk(port: number, chunks: readonly Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const socket = net.connect({ port, host: LOOPBACK });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`hang: the peer did not close within ${HANG_MS} ms`));
    }, HANG_MS);
    socket.on('data', (c: Buffer) => got.push(c));
    socket.on('error', () => undefined); // a reset by the peer is one of its answers
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got));
    });
    socket.once('connect', () => void writeChunks(socket, chunks));
  });
}

/** A TCP server on loopback that runs `onConn` for each connection (a fake peer). */
export async function fakePeer(onConn: (s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets: net.Socket[] = [];
  const s = net.createServer((c) => {
    sockets.push(c);
    c.setNoDelay(true);
    c.on('error', () => undefined);
    onConn(c);
  });
  await new Promise<void>((r) => s.listen(0, LOOPBACK, () => r()));
  return {
    port: (s.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => {
      for (const c of sockets) c.destroy();
      s.close(() => r());
    }),
  };
}

/**
 * Runs `fn`; an exception thrown by the code under test in a socket callback (uncaught, so it
 * would crash tcpcopy or intercept) fails it too.
 */
export async function noUncaught<T>(fn: () => Promise<T>): Promise<T> {
  const errors: unknown[] = [];
  const record = (e: unknown): void => {
    errors.push(e);
  };
  process.on('uncaughtException', record);
  try {
    const r = await fn();
    await turn();
    if (errors.length > 0) throw errors[0];
    return r;
  } finally {
    process.off('uncaughtException', record);
  }
}

/** A log line or an error message a person can read: no "undefined", "NaN" or "[object …]" in it. */
export function readable(text: string): boolean {
  return text.trim().length > 0 && !/\bundefined\b|\bNaN\b|\[object /.test(text);
}
