// The intercept channel's batching writer: a turn's frames in one write, and lazy frames (route removals)
// waiting for the next write instead of costing one of their own, sent in time when none comes.
import { expect } from 'chai';
import type { Socket } from 'node:net';
import { FRAME_HEADER_LENGTH, FrameWriter, LAZY_FLUSH_MS, MessageType } from '../src/intercept/channel-messages';

/** What the writer needs of a socket; `written` holds each write's frame types, in order. */
function fakeSocket(): { socket: Socket; written: number[][] } {
  const written: number[][] = [];
  const socket = {
    destroyed: false,
    writableLength: 0,
    write(data: Buffer, cb?: () => void): boolean {
      const types: number[] = [];
      for (let at = 0; at < data.length; at += FRAME_HEADER_LENGTH + data.readUInt16BE(at + 2)) types.push(data[at]);
      written.push(types);
      cb?.();
      return true;
    },
  };
  return { socket: socket as unknown as Socket, written };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function until(what: string, cond: () => boolean, limitMs = 2000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function frame(w: FrameWriter, type: MessageType, lazy = false): void {
  const off = w.reserve(type, 12, lazy);
  expect(off).to.be.greaterThan(0);
  w.buf.fill(0, off, off + 12);
}

describe('FrameWriter', () => {
  it('writes the frames of one turn in one write at its end', async () => {
    const { socket, written } = fakeSocket();
    const w = new FrameWriter(socket);
    frame(w, MessageType.ROUTE_ADD);
    frame(w, MessageType.ROUTE_DEL);
    frame(w, MessageType.ROUTE_ADD);
    expect(written).to.deep.equal([]);
    await nextTurn();
    expect(written).to.deep.equal([[MessageType.ROUTE_ADD, MessageType.ROUTE_DEL, MessageType.ROUTE_ADD]]);
  });

  it('a lazy frame waits for the next write and goes with it, in order', async () => {
    const { socket, written } = fakeSocket();
    const w = new FrameWriter(socket);
    frame(w, MessageType.ROUTE_DEL, true);
    await nextTurn();
    expect(written, 'no write of its own at the end of the turn').to.deep.equal([]);
    frame(w, MessageType.ROUTE_ADD);
    w.flush();
    expect(written).to.deep.equal([[MessageType.ROUTE_DEL, MessageType.ROUTE_ADD]]);
  });

  it(`a lazy frame with nothing after it goes within ${LAZY_FLUSH_MS} ms, alone`, async () => {
    const { socket, written } = fakeSocket();
    const w = new FrameWriter(socket);
    const start = Date.now();
    frame(w, MessageType.ROUTE_DEL, true);
    frame(w, MessageType.ROUTE_DEL, true);
    await until('the lazy frames written', () => written.length > 0);
    expect(Date.now() - start).to.be.at.least(LAZY_FLUSH_MS - 5);
    expect(written).to.deep.equal([[MessageType.ROUTE_DEL, MessageType.ROUTE_DEL]]);
  });

  it('writes nothing after close, lazy frames included', async () => {
    const { socket, written } = fakeSocket();
    const w = new FrameWriter(socket);
    frame(w, MessageType.ROUTE_DEL, true);
    w.close();
    await new Promise((resolve) => setTimeout(resolve, LAZY_FLUSH_MS + 50));
    expect(written).to.deep.equal([]);
  });
});
