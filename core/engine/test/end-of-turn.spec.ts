// The shared end-of-turn flush: one setImmediate however many writers asked, intercept channels before
// the raw socket sink (a batched channel frame goes out before the packets of the same turn).
import { expect } from 'chai';
import { flushAtEndOfTurn } from '../src/event-loop/end-of-turn';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('flushAtEndOfTurn', () => {
  it('runs every flush once, channels first, then sinks, in the order asked', async () => {
    const order: string[] = [];
    flushAtEndOfTurn(() => order.push('sink 1'), false);
    flushAtEndOfTurn(() => order.push('channel 1'), true);
    flushAtEndOfTurn(() => order.push('sink 2'), false);
    flushAtEndOfTurn(() => order.push('channel 2'), true);
    expect(order).to.deep.equal([]);
    await nextTurn();
    expect(order).to.deep.equal(['channel 1', 'channel 2', 'sink 1', 'sink 2']);
    await nextTurn();
    expect(order).to.have.length(4);
  });

  it('takes new flushes for the next turn after running', async () => {
    const ran: number[] = [];
    flushAtEndOfTurn(() => ran.push(1), false);
    await nextTurn();
    flushAtEndOfTurn(() => ran.push(2), true);
    expect(ran).to.deep.equal([1]);
    await nextTurn();
    expect(ran).to.deep.equal([1, 2]);
  });
});
