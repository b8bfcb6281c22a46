import {
  byteCountRelease,
  CLOSE_TAG,
  type ProtocolContext,
  type ProtocolSession,
  type ReleaseQuery,
  type TargetDataInfo,
} from '@tcpcopy/core';
import type { HttpRules } from './options';
import { RequestFramer } from './request-framer';
import { CONTINUE_TAG_BASE, RAW_TAG } from './request-tags';
import { ResponseTracker } from './response-tracker';

/** Reused for the shifted byte-count question after a protocol switch (the engine's query must not be kept or changed). */
const tunnelQuery = { onlineServerBytes: 0, targetServerBytes: 0 };

/**
 * One replayed HTTP/1.x connection: a RequestFramer emits the client's
 * requests with their numbers, a ResponseTracker counts the target's complete
 * responses, and mayRelease lets request k go once k-1 responses are
 * complete, so the target never holds more than one request, even from a
 * pipelining client.
 */
export class HttpSession implements ProtocolSession {
  private readonly requests: RequestFramer;
  private readonly responses: ResponseTracker;
  /** Where the byte counts of both sides start after a protocol switch (-1: not yet known). */
  private tunnelBase = -1;
  private onlineAtRaw = -1;

  constructor(ctx: ProtocolContext, rules: HttpRules) {
    const responses = new ResponseTracker(ctx);
    this.responses = responses;
    this.requests = new RequestFramer(ctx, rules, (flags) => responses.requestSent(flags));
  }

  onClientData(data: Buffer): void {
    this.requests.feed(data);
  }

  onTargetData(data: Buffer, length: number, info: TargetDataInfo): void {
    this.responses.onTargetData(data, length, info);
  }

  onTargetClose(): void {
    this.responses.onTargetClose();
  }

  onConnect(): boolean {
    this.responses.onConnect();
    return true;
  }

  mayRelease(tag: number, q: ReleaseQuery): boolean {
    const res = this.responses;
    if (res.lost) return byteCountRelease(q);
    if (tag === CLOSE_TAG) {
      if (res.tunnel && this.onlineAtRaw >= 0) return this.tunnelRelease(q);
      return res.completed >= this.requests.forwarded;
    }
    if (tag === RAW_TAG) {
      if (res.completed < this.requests.upgradeRequest) return false; // the answer to the switch is not in yet
      // Declined by the target: the client's bytes go anyway, as the client did send them.
      return res.tunnel ? this.tunnelRelease(q) : true;
    }
    if (tag > CONTINUE_TAG_BASE) {
      const k = tag - CONTINUE_TAG_BASE;
      return res.continued >= k || res.finalHeadFor >= k || res.completed >= k;
    }
    return res.completed >= tag - 1;
  }

  /** The byte-count rule, counted from the protocol switch on both sides (their HTTP parts may differ in size). */
  private tunnelRelease(q: ReleaseQuery): boolean {
    if (this.onlineAtRaw < 0) {
      this.onlineAtRaw = q.onlineServerBytes;
      this.tunnelBase = q.targetServerBytes - this.responses.tunnelBytes;
    }
    tunnelQuery.onlineServerBytes = q.onlineServerBytes - this.onlineAtRaw;
    tunnelQuery.targetServerBytes = q.targetServerBytes - this.tunnelBase;
    return byteCountRelease(tunnelQuery);
  }

  onClose(): void {
    this.requests.finish();
  }
}
