import { Capability, Marker } from './wire/constants';
import { parseGreeting } from './wire/handshake';
import { ReplyReader, type ReplyListener } from './wire/reply-reader';
import { ResponseTracker, type ResponseSummary } from './wire/response-tracker';

/** Bytes of the online greeting and authentication packets kept whole. */
const AUTH_PACKET_LIMIT = 16 * 1024;
/** Commands waiting for their online answer; beyond it the follower gives up (a capture without replies). */
const MAX_WAITING = 4096;

const enum Phase {
  GREETING,
  AUTH,
  COMMANDS,
  /** Not followed (lost, or never started): answers are not known. */
  OFF,
}

/**
 * Follows the online server's replies as the capture has them, to learn how each client command was
 * answered online: the answers the target's are compared with, and the statement ids the online
 * server gave to PREPAREs. Only for connections captured from their start (the greeting tells where
 * packets begin). Nothing here decides what is sent.
 */
export class OnlineAnswers implements ReplyListener {
  private readonly reader = new ReplyReader(this);
  private phase = Phase.GREETING;
  private serverCaps = 0;
  private serverMariadb = 0;
  private clientCaps = -1;
  private clientMariadb = 0;
  private tracker: ResponseTracker | null = null;
  /** Commands expected before the tracker exists (still authenticating), and the tags of all waiting ones. */
  private early: number[] = [];
  private readonly waiting: number[] = [];
  /** When each waiting command was captured (ms, the capture's clock), beside `waiting`. */
  private readonly waitingAt: number[] = [];
  private waitingHead = 0;
  /** When the online bytes being read were captured. */
  private capturedAt = NaN;
  lostReason = '';

  /** `answered` gets each command's answer and, when both capture times are known, its online latency (ms). */
  constructor(private readonly answered: (tag: number, summary: ResponseSummary, latencyMs: number | undefined) => void) {
    this.reader.wantWhole(AUTH_PACKET_LIMIT);
  }

  get following(): boolean {
    return this.phase !== Phase.OFF;
  }

  /** The client's login: the capabilities the online connection agreed on follow from it. */
  login(capabilities: number, mariadbCapabilities: number): void {
    this.clientCaps = capabilities;
    this.clientMariadb = mariadbCapabilities;
  }

  /** The client sent a command that the online server answers; `tag` names it; `capturedAt` says when (NaN: unknown). */
  expect(tag: number, command: number, capturedAt = NaN): void {
    if (this.phase === Phase.OFF) return;
    if (this.waiting.length - this.waitingHead >= MAX_WAITING) {
      this.stop('no online answers in the capture');
      return;
    }
    this.waiting.push(tag);
    this.waitingAt.push(capturedAt);
    if (this.tracker) this.tracker.expect(command);
    else this.early.push(command);
  }

  /** The online server's next bytes, `gap` bytes missed before them, captured at `capturedAt` (ms). */
  feed(data: Buffer, gap: number, capturedAt = NaN): void {
    if (this.phase === Phase.OFF) return;
    this.capturedAt = capturedAt;
    if (gap > 0) this.reader.feed(EMPTY, gap);
    this.reader.feed(data, data.length);
    if (this.reader.lost) this.stop(this.reader.lostReason);
  }

  /** One packet of the online server's (ReplyListener). */
  packet(seq: number, length: number, head: Buffer, continued: boolean): void {
    switch (this.phase) {
      case Phase.GREETING: {
        const g = parseGreeting(head);
        if (!g) return this.stop('the online greeting cannot be read');
        this.serverCaps = g.capabilities;
        this.serverMariadb = g.mariadbCapabilities;
        this.phase = Phase.AUTH;
        return;
      }
      case Phase.AUTH:
        if (head[0] === Marker.ERR) return this.stop('the online server refused the login');
        if (head[0] !== Marker.OK) return; // an auth switch or more data: the client answers it
        if (this.clientCaps < 0) return this.stop('the online login was not captured');
        this.startCommands();
        return;
      case Phase.COMMANDS: {
        const done = this.tracker!.packet(seq, length, head, continued);
        if (this.tracker!.lost) return this.stop(this.tracker!.lostReason);
        if (!done || done.command < 0) return;
        const asked = this.waitingAt[this.waitingHead];
        const tag = this.waiting[this.waitingHead++];
        if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
          this.waiting.splice(0, this.waitingHead);
          this.waitingAt.splice(0, this.waitingHead);
          this.waitingHead = 0;
        }
        const latency = this.capturedAt - asked;
        if (tag !== undefined) this.answered(tag, done, Number.isNaN(latency) ? undefined : latency);
      }
    }
  }

  private startCommands(): void {
    const caps = (this.clientCaps & this.serverCaps) >>> 0;
    const mariadb = this.serverCaps & Capability.CLIENT_MYSQL ? 0 : this.clientMariadb & this.serverMariadb;
    this.tracker = new ResponseTracker(caps, { mariadbCapabilities: mariadb });
    for (const command of this.early) this.tracker.expect(command);
    this.early = [];
    this.reader.wantHeads();
    this.phase = Phase.COMMANDS;
  }

  private stop(reason: string): void {
    if (this.phase === Phase.OFF) return;
    this.phase = Phase.OFF;
    this.lostReason = reason;
    this.tracker = null;
    this.early = [];
    this.waiting.length = 0;
    this.waitingAt.length = 0;
    this.waitingHead = 0;
  }
}

const EMPTY = Buffer.alloc(0);
