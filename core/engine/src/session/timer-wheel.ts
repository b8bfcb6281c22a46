/**
 * A hashed timer wheel for per-session deadlines: re-arming a deadline is an
 * assignment (no clearTimeout/setTimeout churn per packet); one interval drives
 * all sessions. Entries are checked lazily: a session whose deadline moved is
 * re-filed when its old slot comes up.
 *
 * Each slot is a doubly linked list threaded through the entries themselves, so
 * filing, moving and removing an entry allocate nothing and cost a few pointer
 * writes (a Set per slot hashed on every re-arm).
 */
export interface WheelEntry {
  /** Absolute deadline in ms (same clock as `now`), or Infinity when unarmed. */
  deadline: number;
  /** Slot the entry is filed under, or -1. Owned by the wheel. */
  wheelSlot: number;
  /** Neighbours in the slot's list. Owned by the wheel (start them at null). */
  wheelPrev: WheelEntry | null;
  wheelNext: WheelEntry | null;
  onDeadline(now: number): void;
}

export class TimerWheel {
  private readonly heads: Array<WheelEntry | null>;
  private readonly tails: Array<WheelEntry | null>;
  private cursorTime: number;
  /** The slot `advance` walks (-1: none), and the entry it visits next (kept valid when a callback removes it). */
  private walking = -1;
  private visitNext: WheelEntry | null = null;

  constructor(
    private readonly slotMs = 5,
    slotCount = 512,
    now = 0,
  ) {
    this.heads = new Array<WheelEntry | null>(slotCount).fill(null);
    this.tails = new Array<WheelEntry | null>(slotCount).fill(null);
    this.cursorTime = Math.floor(now / slotMs) * slotMs;
  }

  /**
   * When the driver will next advance the wheel (engine clock); arming a deadline before it calls onEarlier,
   * so that a driver sleeping until the next filed slot (nextFiledTime) wakes in time. -Infinity: no such driver.
   */
  wakeAt = -Infinity;
  onEarlier: ((deadline: number) => void) | null = null;

  /**
   * Files (or re-files) an entry after its deadline changed. Call whenever `deadline` decreases or is first set;
   * after it moved later, calling is optional (the entry's old slot re-files it when it comes).
   */
  arm(entry: WheelEntry): void {
    if (entry.deadline === Infinity) return;
    if (entry.deadline < this.wakeAt) this.onEarlier!(entry.deadline);
    const slot = this.slotOf(Math.max(entry.deadline, this.cursorTime));
    if (entry.wheelSlot === slot) return;
    if (entry.wheelSlot >= 0) this.unlink(entry);
    this.append(entry, slot);
  }

  remove(entry: WheelEntry): void {
    if (entry.wheelSlot >= 0) this.unlink(entry);
  }

  /** Fires every entry whose deadline is at or before `now`. */
  advance(now: number): void {
    const n = this.heads.length;
    for (let steps = 0; steps <= n && this.cursorTime <= now; steps++) {
      const slot = this.slotOf(this.cursorTime);
      // In filing order; entries filed here while the slot is walked are visited too.
      this.walking = slot;
      for (let entry = this.heads[slot]; entry; entry = this.visitNext) {
        this.visitNext = entry.wheelNext;
        if (entry.deadline <= now) {
          this.unlink(entry);
          entry.onDeadline(now);
          if (entry.deadline !== Infinity && entry.wheelSlot === -1) this.arm(entry);
        } else if (this.slotOf(entry.deadline) !== slot) {
          // Its deadline moved later: re-file it under its own slot.
          this.unlink(entry);
          this.arm(entry);
        }
      }
      this.walking = -1;
      // A slot whose time span is not over yet is visited again on the next advance.
      if (this.cursorTime + this.slotMs > now) return;
      this.cursorTime += this.slotMs;
    }
    // After a stall longer than a turn every slot was visited once: continue from now.
    if (this.cursorTime <= now) this.cursorTime = Math.floor(now / this.slotMs) * this.slotMs;
  }

  /**
   * The start of the first slot from the cursor on that holds an entry (none of the wheel's deadlines is
   * earlier), or Infinity when it holds none: a driver may sleep until then.
   */
  nextFiledTime(): number {
    const n = this.heads.length;
    const first = this.slotOf(this.cursorTime);
    for (let k = 0; k < n; k++) {
      if (this.heads[(first + k) % n] !== null) return this.cursorTime + k * this.slotMs;
    }
    return Infinity;
  }

  private append(entry: WheelEntry, slot: number): void {
    const tail = this.tails[slot];
    entry.wheelSlot = slot;
    entry.wheelPrev = tail;
    entry.wheelNext = null;
    if (tail) tail.wheelNext = entry;
    else this.heads[slot] = entry;
    this.tails[slot] = entry;
    if (slot === this.walking && this.visitNext === null) this.visitNext = entry;
  }

  private unlink(entry: WheelEntry): void {
    const slot = entry.wheelSlot;
    const prev = entry.wheelPrev;
    const next = entry.wheelNext;
    if (entry === this.visitNext) this.visitNext = next;
    if (prev) prev.wheelNext = next;
    else this.heads[slot] = next;
    if (next) next.wheelPrev = prev;
    else this.tails[slot] = prev;
    entry.wheelSlot = -1;
    entry.wheelPrev = null;
    entry.wheelNext = null;
  }

  private slotOf(time: number): number {
    return Math.floor(time / this.slotMs) % this.heads.length;
  }
}
