import { expect } from 'chai';
import { TimerWheel, type WheelEntry } from '../src/session/timer-wheel';

function entry(deadline: number, fired: number[]): WheelEntry {
  return {
    deadline,
    wheelSlot: -1,
    onDeadline(now: number) {
      fired.push(now);
      this.deadline = Infinity;
    },
  };
}

describe('timer wheel', () => {
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
      onDeadline(now) {
        fired.push(-now);
        this.deadline = now < 100 ? now + 50 : Infinity;
      },
    };
    w.arm(again);
    for (let t = 0; t <= 200; t++) w.advance(t);
    expect(fired).to.deep.equal([-30, 40, -80, -130]);
  });
});
