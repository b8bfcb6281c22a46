import {
  byteCountRelease,
  CLOSE_TAG,
  type ClientDataInfo,
  type ConnectInfo,
  type ProtocolContext,
  type ProtocolSession,
  type ReleaseQuery,
} from '@tcpcopy/core';
import { CommandRing } from './command-ring';
import {
  classify,
  classifyArg,
  encodeCommand,
  helloVersion,
  Kind,
  respArgs,
  rewriteAuth,
  rewriteHello,
  sameWord,
  selectedDb,
  splitInline,
  type Credentials,
} from './commands';
import type { RedisOptions } from './options';
import { ReplyParser, type ReplyListener } from './reply-parser';
import { NEED_MORE, NOT_RESP, RequestParser } from './request-parser';

/** Tag of what the session itself sends on a new connection (AUTH, HELLO, SELECT); commands are numbered from 1. */
export const PRELUDE_TAG = 0;

/**
 * Bytes held while looking for a command start in a connection captured
 * mid-way. A candidate still incomplete beyond this is taken for a false one
 * (a `*` inside a value), and the search moves on.
 */
export const RESYNC_HOLD_LIMIT = 4 * 1024 * 1024;

const STAR = 42;

const REPLY_ON = 0;
const REPLY_OFF = 1;
const REPLY_SKIP = 2;

/** What all sessions of one protocol instance share. */
export interface SessionShared {
  readonly options: RedisOptions;
  readonly credentials: Credentials | null;
  /** Logins for a new connection, built once: RESP2 (AUTH) and RESP3 (HELLO 3 AUTH). */
  readonly login2: Buffer | null;
  readonly login3: Buffer;
}

export function makeShared(options: RedisOptions): SessionShared {
  const credentials = options.password === undefined ? null : { user: options.user, password: options.password };
  return {
    options,
    credentials,
    login2: credentials && encodeCommand(credentials.user === undefined ? ['AUTH', credentials.password] : ['AUTH', credentials.user, credentials.password]),
    login3: encodeCommand(credentials ? ['HELLO', '3', 'AUTH', credentials.user ?? 'default', credentials.password] : ['HELLO', '3']),
  };
}

/**
 * One replayed client connection.
 *
 * Framing: every command (multibulk or inline) is emitted on its own, whole,
 * tagged with its number (1, 2, ...). A command split over packets is held
 * until its last byte arrives, so each chunk the engine asks about is exactly
 * one command.
 *
 * Release rule: the client's ACK tells how many bytes the online server had
 * sent when a command's first byte left the client. A command sent with the
 * same count as the command before it was pipelined (the client did not wait
 * for a reply in between) and may go as soon as that one may. A command sent
 * after the count grew waits until the target has answered every earlier
 * command; replies are counted by parsing the target's RESP stream. The
 * client's FIN follows the same rule.
 */
export class RedisSession implements ProtocolSession, ReplyListener {
  // ---- client side
  private readonly parser = new RequestParser(false);
  private strictParser: RequestParser | null = null;
  /** False until a command start is found in a connection captured mid-way. */
  private synced: boolean;
  /** Bytes of a resync candidate not yet complete. */
  private resyncHeld: Buffer | null = null;
  private skipped = 0;
  /** Earlier parts of the command being received. */
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** onlineServerBytes when the current command's first byte was sent. */
  private commandServerBytes = 0;
  /** After bytes that are not RESP: tags from here on go unparsed, released by byte count. */
  private passthroughFrom = Infinity;

  // ---- commands and replies
  private readonly ring = new CommandRing();
  private nextTag = 1;
  /** Replies expected for every command framed so far. */
  private expectedTotal = 0;
  private lastServerBytes = 0;
  private lastNeed = 0;
  /** Connection state as the commands framed so far leave it. */
  private db = 0;
  private proto = 2;
  private replyMode = REPLY_ON;

  // ---- target side
  private readonly replies = new ReplyParser(this);
  private repliesSeen = 0;
  /** Highest command whose replies are all in. */
  private answered = 0;
  /** Highest command the engine has let go (by our yes or its idle release). */
  private released = 0;
  /** Replies still due to the prelude on this connection: not answers to the client's commands. */
  private preludeLeft = 0;
  private lostLogged = false;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly shared: SessionShared,
  ) {
    this.synced = ctx.sawHandshake;
  }

  // ---- client bytes --------------------------------------------------------------

  onClientData(data: Buffer, info: ClientDataInfo): void {
    if (data.length === 0) return;
    if (this.passthroughFrom !== Infinity) {
      this.ctx.emit(Buffer.from(data), this.nextTag++);
      return;
    }
    if (!this.synced) {
      this.resync(data, info.onlineServerBytes);
      return;
    }
    // One copy per packet (the engine's buffer is only lent); commands are views into it.
    this.frame(Buffer.from(data), info.onlineServerBytes);
  }

  /** Cuts `buf` (our own copy) into commands; keeps an incomplete tail for the next packet. */
  private frame(buf: Buffer, serverBytes: number): void {
    let pos = 0;
    while (pos < buf.length) {
      const start = pos;
      if (!this.parser.inCommand) this.commandServerBytes = serverBytes;
      const end = this.parser.advance(buf, pos, buf.length);
      if (end === NEED_MORE) {
        this.pending.push(buf.subarray(start));
        this.pendingLength += buf.length - start;
        return;
      }
      if (end === NOT_RESP) {
        this.giveUp(buf.subarray(start));
        return;
      }
      this.command(this.whole(buf.subarray(start, end)));
      pos = end;
    }
  }

  /** The current command's bytes: `last` alone, or joined to the parts held from earlier packets. */
  private whole(last: Buffer): Buffer {
    if (this.pendingLength === 0) return last;
    this.pending.push(last);
    const cmd = Buffer.concat(this.pending, this.pendingLength + last.length);
    this.pending.length = 0;
    this.pendingLength = 0;
    return cmd;
  }

  /**
   * Not RESP (Redis itself would answer "Protocol error" and close): the
   * bytes go as they are, so the target sees what the online server saw, and
   * the rest of the connection is passed through under the raw byte-count rule.
   */
  private giveUp(rest: Buffer): void {
    this.ctx.log(`client bytes are not RESP (${this.parser.error}) after command ${this.nextTag - 1}: the rest of the connection goes unparsed`);
    this.passthroughFrom = this.nextTag;
    this.ctx.emit(this.whole(rest), this.nextTag++);
  }

  /**
   * A connection captured mid-way starts inside some command: skip to the
   * first `*` where a whole command parses strictly, and frame from there.
   */
  private resync(data: Buffer, serverBytes: number): void {
    const buf = this.resyncHeld ? Buffer.concat([this.resyncHeld, data]) : Buffer.from(data);
    this.resyncHeld = null;
    const strict = (this.strictParser ??= new RequestParser(true));
    let from = 0;
    for (;;) {
      const p = buf.indexOf(STAR, from);
      if (p < 0) {
        this.skipped += buf.length - from;
        return;
      }
      this.skipped += p - from;
      strict.reset();
      const end = strict.advance(buf, p, buf.length);
      if (end === NOT_RESP || (end === NEED_MORE && buf.length - p > RESYNC_HOLD_LIMIT)) {
        this.skipped++;
        from = p + 1;
        continue;
      }
      if (end === NEED_MORE) {
        this.resyncHeld = buf.subarray(p);
        return;
      }
      this.synced = true;
      this.strictParser = null;
      if (this.skipped > 0) this.ctx.log(`captured mid-stream: skipped ${this.skipped} bytes to the first whole command`);
      this.frame(buf.subarray(p), serverBytes);
      return;
    }
  }

  /** One whole command: classify, rewrite credentials, count its replies, emit. */
  private command(cmd: Buffer): void {
    const p = this.parser;
    let args: Buffer[] | null = null;
    let argc = p.argc;
    let kind: Kind;
    if (p.inline) {
      args = splitInline(cmd);
      // Unbalanced quotes: Redis answers with an error.
      argc = args ? args.length : 1;
      kind = args && args.length > 0 ? classifyArg(args[0]) : Kind.OTHER;
    } else {
      kind = classify(p.name, p.nameLength);
    }
    const dbBefore = this.db;
    const protoBefore = this.proto;
    let out = cmd;
    let expected = argc === 0 ? 0 : 1;
    let mode = -1; // a CLIENT REPLY mode this command sets
    if (kind !== Kind.OTHER && argc > 0) {
      args ??= respArgs(cmd);
      const cred = this.shared.credentials;
      switch (kind) {
        case Kind.AUTH:
          if (cred) out = rewriteAuth(args, cred) ?? cmd;
          break;
        case Kind.HELLO: {
          const v = helloVersion(args);
          if (v) this.proto = v;
          if (cred) out = rewriteHello(args, cred) ?? cmd;
          break;
        }
        case Kind.SELECT: {
          const db = selectedDb(args);
          if (db >= 0) this.db = db;
          break;
        }
        case Kind.CLIENT:
          if (args.length === 3 && sameWord(args[1], 'REPLY')) {
            mode = sameWord(args[2], 'ON') ? REPLY_ON : sameWord(args[2], 'OFF') ? REPLY_OFF : sameWord(args[2], 'SKIP') ? REPLY_SKIP : -1;
          }
          break;
        case Kind.SUBSCRIPTION:
          // RESP2: one confirmation per channel. RESP3: confirmations are pushes, which are not counted.
          expected = this.proto === 3 ? 0 : Math.max(1, args.length - 1);
          break;
        case Kind.RESET:
          this.db = 0;
          this.proto = 2;
          mode = REPLY_ON;
          break;
      }
    }
    if (mode >= 0) {
      // CLIENT REPLY OFF and SKIP are not answered; ON is (and RESET, which also turns replies on).
      if (mode !== REPLY_ON) expected = 0;
      this.replyMode = mode;
    } else if (this.replyMode === REPLY_OFF) {
      expected = 0;
    } else if (this.replyMode === REPLY_SKIP) {
      expected = 0;
      this.replyMode = REPLY_ON;
    }

    // Pipelined with the previous command, or sent after reading replies (see the class comment).
    const need = this.commandServerBytes > this.lastServerBytes ? this.expectedTotal : this.lastNeed;
    this.lastServerBytes = this.commandServerBytes;
    this.lastNeed = need;
    const tag = this.nextTag++;
    this.expectedTotal += expected;
    this.ring.push(tag, need, this.expectedTotal, dbBefore, protoBefore);
    this.ctx.emit(out, tag);
  }

  // ---- the target ----------------------------------------------------------------

  onConnect(info: ConnectInfo): boolean {
    if (this.replies.lost && this.released > this.answered) {
      // The count was lost on the old connection: take what was let go as answered and count afresh.
      this.repliesSeen = Math.max(this.repliesSeen, this.ring.cum(this.released));
      this.advanceAnswered();
    }
    this.replies.reset();
    this.lostLogged = false;
    this.preludeLeft = 0;
    if (!info.resumed) return true;
    // A connection the target never saw open: log in, and restore the RESP version and database that the
    // first command still to be answered ran with (unknown for a mid-stream capture: the defaults).
    this.advanceAnswered();
    const first = this.answered + 1;
    const known = this.ring.has(first);
    const proto = known ? this.ring.proto(first) : this.proto;
    const db = known ? this.ring.db(first) : this.db;
    const parts: Buffer[] = [];
    if (proto === 3) parts.push(this.shared.login3);
    else if (this.shared.login2) parts.push(this.shared.login2);
    if (db !== 0) parts.push(encodeCommand(['SELECT', String(db)]));
    if (parts.length > 0) {
      this.preludeLeft = parts.length;
      this.ctx.emit(parts.length === 1 ? parts[0] : Buffer.concat(parts), PRELUDE_TAG);
    }
    return true;
  }

  onTargetData(data: Buffer, length: number): void {
    this.replies.feed(data, length);
    if (this.replies.lost && !this.lostLogged) {
      this.lostLogged = true;
      this.ctx.log(`lost the thread of the target's replies (${this.replies.lostReason}): releasing by byte count on this connection`);
    }
  }

  /** A complete reply from the target (ReplyListener). */
  reply(isError: boolean): void {
    if (this.preludeLeft > 0) {
      this.preludeLeft--;
      if (isError) this.ctx.log(`the target refused the login or SELECT sent on a new connection: ${this.replies.errorText()}`);
      return;
    }
    // More replies than commands (pub/sub messages, MONITOR output) answer nothing.
    if (this.repliesSeen < this.expectedTotal) {
      this.repliesSeen++;
      this.advanceAnswered();
    }
  }

  mayRelease(tag: number, query: ReleaseQuery): boolean {
    if (tag === PRELUDE_TAG) return true;
    if (tag >= this.passthroughFrom) return byteCountRelease(query);
    if (tag === CLOSE_TAG) return this.mayClose(query);
    if (tag <= this.released) return true;
    if (tag > this.released + 1) {
      // Asked about a later command: the engine's idle release let the earlier ones go (the target fell
      // silent short of the count). Take what they waited for as answered, so the count does not lag forever.
      this.repliesSeen = Math.min(this.expectedTotal, Math.max(this.repliesSeen, this.ring.need(this.released + 1)));
      this.released = tag - 1;
      this.advanceAnswered();
    }
    const ok = this.replies.lost ? byteCountRelease(query) : this.repliesSeen >= this.ring.need(tag);
    if (ok) {
      this.released = tag;
      this.trim();
    }
    return ok;
  }

  /** The client's FIN or RST: pipelined with the last command, or sent after reading its replies. */
  private mayClose(query: ReleaseQuery): boolean {
    if (this.replies.lost || this.passthroughFrom !== Infinity) return byteCountRelease(query);
    const need = query.onlineServerBytes > this.lastServerBytes ? this.expectedTotal : this.lastNeed;
    return this.repliesSeen >= need;
  }

  onClose(): void {
    this.pending.length = 0;
    this.pendingLength = 0;
    this.resyncHeld = null;
  }

  private advanceAnswered(): void {
    while (this.answered + 1 < this.nextTag && this.ring.cum(this.answered + 1) <= this.repliesSeen) this.answered++;
    this.trim();
  }

  /** Forgets commands both released and answered. */
  private trim(): void {
    this.ring.dropBefore(Math.min(this.answered, this.released) + 1);
  }
}
