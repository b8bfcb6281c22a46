import { expect } from 'chai';
import { TimerWheel, type WheelEntry } from '../src/session/timer-wheel';

function entry(deadline: number, fired: number[]): WheelEntry {
  return {
    deadline,
    wheelSlot: -1,
    wheelPrev: null,
    wheelNext: null,
    onDeadline(now: number) {
      fired.push(now);
      this.deadline = Infinity;
    },
  };
}

describe('timer wheel', () => {
  it('tells a sleeping driver where the next filed slot is, and when a deadline comes before its wake-up', () => {
    const w = new TimerWheel(5, 64, 0);
    expect(w.nextFiledTime(), 'empty').to.equal(Infinity);
    const earlier: number[] = [];
    w.onEarlier = (d) => earlier.push(d);
    w.wakeAt = 100;
    const fired: number[] = [];
    const late = entry(203, fired);
    w.arm(late);
    expect(earlier, 'after the wake-up: nothing to say').to.deep.equal([]);
    expect(w.nextFiledTime(), 'the slot of 203').to.equal(200);
    const soon = entry(42, fired);
    w.arm(soon);
    expect(earlier, 'before the wake-up: told').to.deep.equal([42]);
    expect(w.nextFiledTime(), 'the slot of 42').to.equal(40);
    w.advance(45);
    expect(fired).to.deep.equal([45]);
    expect(w.nextFiledTime(), 'the slot of 203 again').to.equal(200);
    // Beyond a turn (320 ms here) an entry sits in a slot of an earlier turn: the wake-up may come early, never late.
    const far = entry(45 + 700, fired);
    w.remove(late);
    w.arm(far);
    expect(w.nextFiledTime()).to.be.at.most(745);
  });

  it('fires a deadline inside a slot on the first advance at or after it, whatever the tick step', () => {
    for (const step of [1, 2, 3, 7]) {
      const w = new TimerWheel(5, 64, 0);
      const fired: number[] = [];
      w.arm(entry(3504, fired));
      for (let t = 0; t <= 4000 && fired.length === 0; t += step) w.advance(t);
      expect(fired, `tick step ${step}`).to.have.length(1);
      expect(fired[0]).to.be.within(3504, 3504 + step);
    }
  });

  it('fires deadlines beyond one turn of the wheel at their time, not a turn early', () => {
    const w = new TimerWheel(5, 16, 0); // one turn = 80 ms
    const fired: number[] = [];
    w.arm(entry(1000, fired));
    for (let t = 0; t <= 1100; t += 2) w.advance(t);
    expect(fired).to.deep.equal([1000]);
  });

  it('fires everything due after a stall longer than a turn', () => {
    const w = new TimerWheel(5, 16, 0);
    const fired: number[] = [];
    for (const d of [10, 50, 70, 300]) w.arm(entry(d, fired));
    w.advance(500);
    expect(fired).to.deep.equal([500, 500, 500, 500]);
  });

  it('re-files an entry whose deadline moved later, and one re-armed while firing', () => {
    const w = new TimerWheel(5, 64, 0);
    const fired: number[] = [];
    const e = entry(20, fired);
    w.arm(e);
    e.deadline = 40;
    const again: WheelEntry = {
      deadline: 30,
      wheelSlot: -1,
      wheelPrev: null,
      wheelNext: null,
      onDeadline(now) {
        fired.push(-now);
        this.deadline = now < 100 ? now + 50 : Infinity;
      },
    };
    w.arm(again);
    for (let t = 0; t <= 200; t++) w.advance(t);
    expect(fired).to.deep.equal([-30, 40, -80, -130]);
  });

  it('fires an entry that a callback files into the slot being walked, and skips one a callback removes', () => {
    const w = new TimerWheel(5, 64, 0);
    const fired: number[] = [];
    const late = entry(12, fired);
    const removed = entry(11, fired);
    const first: WheelEntry = {
      deadline: 10,
      wheelSlot: -1,
      wheelPrev: null,
      wheelNext: null,
      onDeadline(now) {
        fired.push(-now);
        this.deadline = Infinity;
        w.remove(removed);
        w.arm(late);
      },
    };
    w.arm(first);
    w.arm(removed);
    // One advance well past the slot: the slot is walked once, then the cursor moves on.
    w.advance(40);
    expect(fired).to.deep.equal([-40, 40]);
    expect(removed.wheelSlot).to.equal(-1);
    for (let t = 41; t <= 6000; t += 5) w.advance(t);
    expect(fired).to.deep.equal([-40, 40]);
  });

  it('keeps every slot list consistent through many arms, moves and removals', () => {
    const w = new TimerWheel(5, 32, 0);
    const fired: number[] = [];
    const all = Array.from({ length: 200 }, (_, i) => entry(1000 + i * 7, fired));
    for (const e of all) w.arm(e);
    // Earlier deadlines re-file entries; every third one is removed.
    all.forEach((e, i) => {
      e.deadline = 500 + ((i * 13) % 400);
      w.arm(e);
      if (i % 3 === 0) w.remove(e);
    });
    for (let t = 0; t <= 3000; t += 3) w.advance(t);
    const expected = all.filter((_, i) => i % 3 !== 0).length;
    expect(fired).to.have.length(expected);
    for (const e of all) expect(e.wheelSlot).to.equal(-1);
  });
});
