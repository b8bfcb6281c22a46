/** Requests remembered at once (older ones are forgotten, their latency unknown): 64 numbers, fixed memory. */
const SLOTS = 64;

/** When each of the last 64 requests started, by request number, in fixed memory. */
export class RequestTimes {
  private readonly at = new Float64Array(SLOTS);
  private readonly ids = new Int32Array(SLOTS).fill(-1);

  set(n: number, ms: number): void {
    const i = n & (SLOTS - 1);
    this.ids[i] = n;
    this.at[i] = ms;
  }

  /** The time of request `n`, or undefined when it was never set or has been forgotten. */
  get(n: number): number | undefined {
    const i = n & (SLOTS - 1);
    return this.ids[i] === n ? this.at[i] : undefined;
  }
}

/** Requests an online response may still be awaited for; beyond it the capture is taken to have none. */
export const MAX_ONLINE_PENDING = SLOTS;
