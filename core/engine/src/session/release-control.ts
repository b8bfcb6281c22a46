import type { ProtocolDriver } from '../protocol/protocol-driver';
import type { EngineConfig } from './engine-context';

/** Reused for every question to the protocol (protocols must not keep it). */
const query = { onlineServerBytes: 0, targetServerBytes: 0 };

/**
 * When held client data may go to the target: when the protocol says so (its mayRelease, by default
 * the byte-count rule), or, if the target stays quiet that long (--idle-release), anyway: it answered
 * less than the online server did. The counts compared are re-based by protocols
 * (alignServerBytes) and by each idle release, so one short answer does not hold back the rest.
 */
export class ReleaseControl {
  /** Added to the target's byte count when compared with the online server's. */
  private adjust = 0;
  /** Data is held waiting for the protocol's yes; the idle release is due at `idleAt`. */
  waiting = false;
  idleAt = Infinity;
  /** The idle release let the client's FIN or RST go. */
  closeForced = false;

  constructor(
    private readonly driver: ProtocolDriver,
    private readonly config: EngineConfig,
  ) {}

  /** May the chunk tagged `tag`, sent by the client after `serverBytes` online bytes, go now? */
  allows(tag: number, serverBytes: number, targetBytes: number): boolean {
    if (this.config.noWait) return true;
    query.onlineServerBytes = serverBytes;
    query.targetServerBytes = targetBytes + this.adjust;
    return this.driver.mayRelease(tag, query);
  }

  /** Data is held from `now`: true when this starts the idle-release timer (the caller re-arms its timers). */
  hold(now: number): boolean {
    if (this.waiting) return false;
    this.waiting = true;
    this.idleAt = now + this.config.idleReleaseMs;
    return true;
  }

  /** Something went: nothing is held any more. */
  sent(): void {
    this.waiting = false;
    this.idleAt = Infinity;
  }

  /** The protocol says the target's `targetBytes` so far stand for `onlineServerBytes` online. */
  align(onlineServerBytes: number, targetBytes: number): void {
    this.adjust = onlineServerBytes - targetBytes;
  }

  /**
   * The idle release lets go what needed `need` online bytes: from now on the target's count is taken
   * to have reached it (the target answered shorter), so what follows waits only for what it adds.
   */
  released(need: number, targetBytes: number): void {
    const have = targetBytes + this.adjust;
    if (need > have) this.adjust += need - have;
    this.waiting = false;
  }
}
