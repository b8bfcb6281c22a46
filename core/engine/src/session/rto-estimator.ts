/**
 * The retransmission timeout of one emulated connection, as RFC 6298 computes it: a smoothed RTT and
 * its variance from samples, one segment timed at a time, never a retransmitted one (Karn's rule),
 * doubled on each timeout until a new sample comes.
 *
 * Bounds: Linux's 200 ms floor (RFC 6298 asks for 1 s, which Linux and every stack near a target
 * ignore), the RFC's 60 s ceiling, and its 1 s before any sample: a target that does not answer a SYN
 * gets no more SYNs than TCP would send it (a refused SYN is another matter: see the session).
 */
export const RTO_MIN_MS = 200;
export const RTO_MAX_MS = 60_000;
export const RTO_INITIAL_MS = 1_000;
/** Clock granularity G: our timers run on a millisecond clock. */
const GRANULARITY_MS = 1;

export class RtoEstimator {
  /** The timeout to arm now (backed off after timeouts). */
  rto = RTO_INITIAL_MS;
  /** Smoothed RTT and its variance (ms); srtt < 0 before the first sample. */
  srtt = -1;
  rttvar = 0;
  /** The stream position whose acknowledgment completes the timed segment; -1 when none is timed. */
  private timedEnd = -1;
  private timedAt = 0;

  /** An RTT measurement (ms): RFC 6298 (2.2) and (2.3). */
  sample(rtt: number): void {
    if (rtt < 0) return;
    if (this.srtt < 0) {
      this.srtt = rtt;
      this.rttvar = rtt / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - rtt);
      this.srtt = 0.875 * this.srtt + 0.125 * rtt;
    }
    this.rto = this.computed();
  }

  /** New data goes out, ending at stream position `end`: timed if no other segment is. */
  sent(end: number, now: number): void {
    if (this.timedEnd >= 0) return;
    this.timedEnd = end;
    this.timedAt = now;
  }

  /**
   * The target acknowledged up to `pos`: a sample when that covers the timed segment. A backed-off
   * timeout stays until such a sample (Karn): the path may have grown longer than the estimate says.
   */
  acked(pos: number, now: number): void {
    if (this.timedEnd >= 0 && pos >= this.timedEnd) {
      this.timedEnd = -1;
      this.sample(now - this.timedAt);
    }
  }

  /** Something was sent again: the timed segment's acknowledgment would be ambiguous (Karn's rule). */
  retransmitted(): void {
    this.timedEnd = -1;
  }

  /** The timer went off: RFC 6298 (5.5). */
  backoff(): void {
    this.rto = Math.min(RTO_MAX_MS, this.rto * 2);
  }

  /** A new connection (same path): nothing is timed; the estimate stays. */
  restart(): void {
    this.timedEnd = -1;
    this.rto = this.srtt < 0 ? RTO_INITIAL_MS : this.computed();
  }

  private computed(): number {
    return Math.min(RTO_MAX_MS, Math.max(RTO_MIN_MS, this.srtt + Math.max(GRANULARITY_MS, 4 * this.rttvar)));
  }
}
