import {
  byteCountRelease,
  CLOSE_TAG,
  type ClientDataInfo,
  type OnlineDataInfo,
  type ProtocolContext,
  type ProtocolSession,
  type ReleaseQuery,
  type RequestStats,
  type TargetDataInfo,
} from '@tcpcopy/core';
import type { HttpRules } from './options';
import { RequestFramer } from './request-framer';
import { CONTINUE_TAG_BASE, RAW_TAG } from './request-tags';
import { MAX_ONLINE_PENDING, RequestTimes } from './request-times';
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

  // ---- request statistics (with `stats`): status and latency of each answer, online and at the target
  /** When each forwarded request went to the target (wall clock). */
  private readonly sentAt = new RequestTimes();
  /** The last request whose release was timed (mayRelease's first yes). */
  private timedUpTo = 0;
  /** The online server's responses as captured; null when not followed (no stats, or none in the capture). */
  private online: ResponseTracker | null = null;
  /** Requests the client sent (dropped ones too), and when each was captured. */
  private onlineRequested = 0;
  private readonly onlineAskedAt = new RequestTimes();
  /** Capture times of the client bytes and the online bytes being read. */
  private clientAt = NaN;
  private onlineAt = NaN;

  constructor(ctx: ProtocolContext, rules: HttpRules, private readonly stats?: RequestStats) {
    const responses = new ResponseTracker(ctx, 'target', stats ? (n, status) => this.targetAnswered(n, status) : undefined);
    this.responses = responses;
    const forwarded = (flags: number): void => {
      responses.requestSent(flags);
      // Emitted now; with -W it goes now too. Otherwise mayRelease's yes says when it goes.
      if (stats) this.sentAt.set(this.requests.forwarded, performance.now());
    };
    if (stats) this.online = new ResponseTracker(ctx, 'online', (n, status) => this.onlineAnswered(n, status));
    this.requests = new RequestFramer(ctx, rules, forwarded, stats ? (flags) => this.clientAsked(flags) : undefined);
  }

  onClientData(data: Buffer, info?: ClientDataInfo): void {
    this.clientAt = info?.captureTimeMs ?? NaN;
    this.requests.feed(data);
  }

  onOnlineData(data: Buffer, info: OnlineDataInfo): void {
    const online = this.online;
    if (!online) return;
    this.onlineAt = info.captureTimeMs ?? NaN;
    online.onTargetData(data, data.length, info);
    if (online.lost || online.tunnel) this.online = null;
  }

  /** A request in the client's stream (forwarded or not): the online server answers it. */
  private clientAsked(flags: number): void {
    const online = this.online;
    if (!online) return;
    if (this.onlineRequested - online.completed >= MAX_ONLINE_PENDING) {
      // So many unanswered: the capture has no online responses (live, or filtered to one side).
      this.online = null;
      return;
    }
    this.onlineRequested++;
    online.requestSent(flags);
    this.onlineAskedAt.set(this.onlineRequested, this.clientAt);
  }

  private onlineAnswered(n: number, status: number): void {
    this.stats!.online.record(status || 'incomplete', latency(this.onlineAskedAt.get(n), this.onlineAt));
  }

  private targetAnswered(n: number, status: number): void {
    this.stats!.target.record(status || 'incomplete', latency(this.sentAt.get(n), performance.now()));
  }

  /** Request `tag` goes to the target now (the first yes for it): its latency counts from here. */
  private released(tag: number): void {
    if (tag <= this.timedUpTo || tag >= CONTINUE_TAG_BASE || !this.stats) return;
    this.timedUpTo = tag;
    this.sentAt.set(tag, performance.now());
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
    const yes = this.mayReleaseNow(tag, q);
    if (yes && tag > 0) this.released(tag);
    return yes;
  }

  onIdleRelease(tag: number): void {
    if (tag > 0) this.released(tag);
  }

  private mayReleaseNow(tag: number, q: ReleaseQuery): boolean {
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

/** `to - from` when both are known. */
function latency(from: number | undefined, to: number): number | undefined {
  return from === undefined || Number.isNaN(from) || Number.isNaN(to) ? undefined : to - from;
}
