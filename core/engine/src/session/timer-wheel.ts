/**
 * A hashed timer wheel for per-session deadlines: re-arming a deadline is an
 * assignment (no clearTimeout/setTimeout churn per packet); one interval drives
 * all sessions. Entries are checked lazily: a session whose deadline moved is
 * re-filed when its old slot comes up.
 */
export interface WheelEntry {
  /** Absolute deadline in ms (same clock as `now`), or Infinity when unarmed. */
  deadline: number;
  /** Slot the entry is filed under, or -1. Owned by the wheel. */
  wheelSlot: number;
  onDeadline(now: number): void;
}

export class TimerWheel {
  private readonly slots: Set<WheelEntry>[];
  private cursorTime: number;

  constructor(
    private readonly slotMs = 5,
    slotCount = 512,
    now = 0,
  ) {
    this.slots = Array.from({ length: slotCount }, () => new Set<WheelEntry>());
    this.cursorTime = Math.floor(now / slotMs) * slotMs;
  }

  /** Files (or re-files) an entry after its deadline changed. Call whenever `deadline` decreases or is first set. */
  arm(entry: WheelEntry): void {
    if (entry.deadline === Infinity) return;
    const slot = this.slotOf(Math.max(entry.deadline, this.cursorTime));
    if (entry.wheelSlot === slot) return;
    if (entry.wheelSlot >= 0) this.slots[entry.wheelSlot].delete(entry);
    entry.wheelSlot = slot;
    this.slots[slot].add(entry);
  }

  remove(entry: WheelEntry): void {
    if (entry.wheelSlot >= 0) this.slots[entry.wheelSlot].delete(entry);
    entry.wheelSlot = -1;
  }

  /** Fires every entry whose deadline is at or before `now`. */
  advance(now: number): void {
    const n = this.slots.length;
    for (let steps = 0; steps <= n && this.cursorTime <= now; steps++) {
      const slot = this.slotOf(this.cursorTime);
      const set = this.slots[slot];
      for (const entry of set) {
        if (entry.deadline <= now) {
          set.delete(entry);
          entry.wheelSlot = -1;
          entry.onDeadline(now);
          if (entry.deadline !== Infinity && entry.wheelSlot === -1) this.arm(entry);
        } else if (this.slotOf(entry.deadline) !== slot) {
          // Its deadline moved later: re-file it under its own slot.
          set.delete(entry);
          entry.wheelSlot = -1;
          this.arm(entry);
        }
      }
      // A slot whose time span is not over yet is visited again on the next advance.
      if (this.cursorTime + this.slotMs > now) return;
      this.cursorTime += this.slotMs;
    }
    // After a stall longer than a turn every slot was visited once: continue from now.
    if (this.cursorTime <= now) this.cursorTime = Math.floor(now / this.slotMs) * this.slotMs;
  }

  private slotOf(time: number): number {
    return Math.floor(time / this.slotMs) % this.slots.length;
  }
}
