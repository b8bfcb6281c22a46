import {
  byteCountRelease,
  CLOSE_TAG,
  type ClientDataInfo,
  type ConnectInfo,
  type OnlineDataInfo,
  type ProtocolContext,
  type ProtocolSession,
  type ReleaseQuery,
  type SendVerdict,
  type TargetDataInfo,
} from '@tcpcopy/core';
import { computeAuthResponse } from './auth/auth-plugins';
import { NATIVE_PASSWORD_PLUGIN } from './auth/native-password';
import { AnswerComparison, type Answer } from './answer-comparison';
import { AuthExchange, agreedCapabilities, madeUpRecord, recordOf, targetLogin, type AuthStep, type LoginRecord } from './login';
import { passwordOf } from './options';
import { OnlineAnswers } from './online-answers';
import type { MysqlShared } from './shared';
import { LAST_PREPARED_ID, StatementMap, type Statement } from './statements';
import { Capability, Command, MAX_PACKET_PAYLOAD } from './wire/constants';
import { buildChangeUser, frame, isSslRequest, parseChangeUser, parseGreeting, parseHandshakeResponse, type Greeting } from './wire/handshake';
import { PacketFramer, type FramedPacket } from './wire/packet-framer';
import { ReplyReader, type ReplyListener } from './wire/reply-reader';
import { expectsResponse, ResponseTracker, type ResponseSummary } from './wire/response-tracker';

/** Where the target connection stands. */
const enum Link {
  /** Waiting for the target's greeting. */
  GREETING,
  /** Greeting read; the client's login not captured yet. */
  LOGIN,
  /** Our login sent; answering the target's authentication. */
  AUTH,
  /** Logged in: commands may go. */
  READY,
}

/** Where the captured client stream stands. */
const enum Client {
  /** The HandshakeResponse (or an SSLRequest) comes next. */
  LOGIN,
  /** After the login: more authentication packets (sequence id > 0) until the first command. */
  AUTH,
  COMMANDS,
}

/** Bytes of target packets kept whole while logging in (greetings, auth switches, RSA keys). */
const AUTH_PACKET_LIMIT = 16 * 1024;
/** Commands remembered until answered; beyond it the oldest are forgotten. */
const MAX_COMMANDS = 16_384;
const EMPTY = Buffer.alloc(0);
const ONE = Buffer.from([1]);

/** A command the client sent, as emitted to the target. */
interface Cmd {
  tag: number;
  command: number;
  expects: boolean;
  /** Responses (to earlier commands) that must be in before it may go. */
  need: number;
  /** Responses expected from the commands before it. */
  before: number;
  /** What the online server had sent when the client sent it. */
  serverBytes: number;
  stmt: Statement | null;
  /** COM_CHANGE_USER: the user's password and plugin, and where the auth bytes sit in the packet. */
  changeUser: { password: string; plugin: string; authAt: number; authLength: number; record: LoginRecord } | null;
  /** A packet of ours (login, auth answer, re-prepare), for one connection only. */
  own: boolean;
  /** The packet as captured (a view, not a copy), to name the command in a report. */
  packet: Buffer;
  /** When it went to the target (wall clock ms; NaN: not yet), for its latency. */
  sentAt: number;
}

/** SQL kept per command to name it in a report. */
const TEXT_KEPT = 120;

/**
 * One replayed MySQL client connection.
 *
 * The target: every client byte is held (beforeSend says no) until the target's greeting is read;
 * then our login, computed for the target's salt with the user's target password, goes ahead of
 * them (emitNext), and the authentication is answered to the end (switches, RSA key exchange).
 * Once logged in, statements prepared before (on a rebuilt or resumed connection) are prepared
 * again, and the client's commands go one by one: each may go once the target completed the
 * responses to those before it (followed packet by packet), or together with the previous one
 * when the client itself pipelined them (the online server's byte count did not move).
 *
 * The client: its login is parsed (and remembered per client address, for connections captured
 * after their login); its own authentication packets are dropped (we answer the target
 * ourselves); each command is emitted whole, statement ids rewritten just before sending.
 */
export class MysqlSession implements ProtocolSession, ReplyListener {
  // ---- the client side
  private readonly framer = new PacketFramer();
  private client: Client;
  /** A connection captured mid-way: false until a plausible command start is found. */
  private synced: boolean;
  /** The login this connection uses (captured, remembered or made up). */
  private login: LoginRecord | null = null;
  private password: string | null = null;
  private readonly statements: StatementMap;
  private readonly cmds = new Map<number, Cmd>();
  private nextTag = 1;
  private nextOwnTag = -2;
  private lastServerBytes = 0;
  private lastNeed = 0;
  private expectedTotal = 0;
  /** The last command's tag: packets with a sequence id > 0 after it belong to its exchange. */
  private lastCmd: Cmd | null = null;
  /** onlineServerBytes when the packet being framed started. */
  private packetServerBytes = 0;
  /** When the client bytes being framed were captured (ms, the capture's clock). */
  private clientAt = NaN;
  /** The session is not replayed any more (skipped or failed): everything left is dropped. */
  private failed = false;
  /**
   * The client's bytes stopped being MySQL packets: nothing after that point is read, but what came before it
   * (the login, commands already framed) still goes, whenever the target's greeting lets it.
   */
  private clientCorrupt = false;
  /** The online server's answers, when the capture has them (connections captured from their start). */
  private readonly online: OnlineAnswers | null;
  private readonly comparison: AnswerComparison;
  private onlineLostCounted = false;

  // ---- the target side
  private readonly reader = new ReplyReader(this);
  private link = Link.GREETING;
  private generation = 0;
  private greeting: Greeting | null = null;
  private auth: AuthExchange | null = null;
  private tracker: ResponseTracker | null = null;
  /** Commands and packets of ours sent on this connection and not answered, in order. */
  private inflight: Cmd[] = [];
  private readonly ownGeneration = new Map<number, number>();
  /** Responses counted so far (to the client's commands only). */
  private repliesSeen = 0;
  private sentOnLink = false;
  private lostReported = false;
  /** Logged in before any command was captured: the byte counts are aligned at the first one. */
  private alignPending = false;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly shared: MysqlShared,
  ) {
    this.client = ctx.sawHandshake ? Client.LOGIN : Client.COMMANDS;
    this.synced = ctx.sawHandshake;
    this.statements = new StatementMap(ctx.sawHandshake);
    this.online = ctx.sawHandshake ? new OnlineAnswers((tag, r, latency) => this.onlineAnswered(tag, r, latency)) : null;
    this.comparison = new AnswerComparison(shared.stats, (tag, how, o, t) => this.answersDiffer(tag, how, o, t));
  }

  private get stats() {
    return this.shared.stats;
  }

  // ---- captured client bytes -------------------------------------------------------

  onClientData(data: Buffer, info: ClientDataInfo): void {
    if (this.failed || this.clientCorrupt || data.length === 0) return;
    if (!this.synced) {
      if (!plausibleCommand(data)) {
        // Captured mid-way inside a packet: wait for a segment that starts a command.
        this.stats.resyncSkippedBytes += data.length;
        return;
      }
      this.synced = true;
    }
    if (this.framer.buffered === 0) this.packetServerBytes = info.onlineServerBytes;
    this.clientAt = info.captureTimeMs ?? NaN;
    // The engine's buffer stays valid and unchanged: the framer may keep views of it.
    this.framer.feed(data);
    for (let p = this.framer.next(); p && !this.failed; p = this.framer.next()) {
      this.clientPacket(p, this.packetServerBytes);
      this.packetServerBytes = info.onlineServerBytes;
    }
    if (this.framer.error && !this.failed) {
      // Not a failure of the connection: giving it up here would also drop the login and commands framed before
      // the bad bytes while they wait for the target's greeting (all of them when the greeting comes late).
      this.stats.streamsCorrupt++;
      this.ctx.log(`the client's bytes are not MySQL packets (${this.framer.error}): the rest of the connection is dropped`);
      this.clientCorrupt = true;
      this.framer.reset();
    }
  }

  private clientPacket(p: FramedPacket, serverBytes: number): void {
    if (this.client === Client.LOGIN) {
      this.capturedLogin(p);
      return;
    }
    if (this.client === Client.AUTH) {
      if (p.seq !== 0) return; // the client's part of an authentication we answer ourselves
      this.client = Client.COMMANDS;
    }
    if (p.seq !== 0) {
      // More of the last command's exchange (LOCAL INFILE data); a COM_CHANGE_USER's we answer ourselves.
      const last = this.lastCmd;
      if (last && !last.changeUser) this.ctx.emit(p.raw, last.tag);
      return;
    }
    this.command(p, serverBytes);
  }

  private capturedLogin(p: FramedPacket): void {
    if (p.seq === 1 && isSslRequest(p.payload)) {
      this.stats.skippedTls++;
      this.fail('the client asked for TLS, which cannot be replayed: connection not replayed');
      return;
    }
    const login = parseHandshakeResponse(p.payload);
    if (!login) {
      this.stats.streamsCorrupt++;
      this.fail(`the client's login packet is malformed: connection not replayed`);
      return;
    }
    if (login.capabilities & (Capability.COMPRESS | Capability.ZSTD_COMPRESSION_ALGORITHM)) {
      this.stats.skippedCompressed++;
      this.fail('the client asked for the compressed protocol, which tcpcopy does not replay: connection not replayed');
      return;
    }
    const record = recordOf(login);
    this.online?.login(login.capabilities, login.mariadbCapabilities);
    this.shared.rememberLogin(this.ctx.clientIp, record);
    this.client = Client.AUTH;
    if (!this.useLogin(record)) return;
    this.sendLogin();
  }

  /** Takes `record` for this connection; false (and the session given up) when its user has no password. */
  private useLogin(record: LoginRecord): boolean {
    const user = record.user.toString();
    const password = passwordOf(this.shared.options, user);
    if (password === null) {
      this.stats.skippedNoPassword++;
      const msg = `no target password for MySQL user "${user}" (give --mysql-user ${user}:PASSWORD): its connections are not replayed`;
      if (this.shared.firstReport(`nopw:${user}`)) this.ctx.log(msg);
      this.failed = true;
      this.ctx.setReplyPayloadBytes(0);
      return false;
    }
    this.login = { ...record };
    this.password = password;
    return true;
  }

  private command(p: FramedPacket, serverBytes: number): void {
    const payload = p.payload;
    const command = payload[0];
    let out: Buffer = p.raw;
    let stmt: Statement | null = null;
    let changeUser: Cmd['changeUser'] = null;
    switch (command) {
      case Command.COM_STMT_PREPARE:
        stmt = this.statements.prepared(Buffer.from(p.raw));
        out = stmt.prepare;
        this.stats.statementsPrepared++;
        break;
      case Command.COM_STMT_EXECUTE:
      case Command.COM_STMT_SEND_LONG_DATA:
      case Command.COM_STMT_CLOSE:
      case Command.COM_STMT_RESET:
      case Command.COM_STMT_FETCH:
      case Command.COM_STMT_BULK_EXECUTE: {
        if (payload.length < 5 || p.raw.length !== payload.length + 4) break; // malformed or huge: goes as it is
        const id = payload.readUInt32LE(1);
        if (id === LAST_PREPARED_ID) break;
        stmt = this.statements.byOnlineId(id, command !== Command.COM_STMT_CLOSE);
        // Closing a statement the server no longer has (a driver closing its cache after change-user) does nothing.
        if (!stmt && command === Command.COM_STMT_CLOSE) return;
        if (!stmt) {
          this.stats.unknownStatements++;
          this.online?.expect(0, command, this.clientAt); // answered online all the same: keeps the online answers in step
          if (this.shared.firstReport(`stmt:${this.ctx.clientIp}:${this.ctx.clientPort}`)) {
            this.ctx.log(`statement ${id} was prepared before the capture started: commands using it are not replayed`);
          }
          return;
        }
        out = Buffer.from(p.raw); // ours: its statement id is rewritten just before it goes
        break;
      }
      case Command.COM_CHANGE_USER:
        changeUser = this.changeUserCommand(payload);
        if (!changeUser) return;
        this.statements.clear(); // as for COM_RESET_CONNECTION
        try {
          // The answer is written into this packet just before it goes: a 1-byte length prefix leaves room for it.
          out = frame(0, buildChangeUser(
            { ...parseChangeUser(payload, this.login?.capabilities ?? 0)!, authResponse: Buffer.alloc(changeUser.authLength), authPluginName: changeUser.plugin },
            (this.agreedCaps() | Capability.SECURE_CONNECTION) >>> 0,
          ));
        } catch (err) {
          this.stats.streamsCorrupt++;
          this.fail(`a COM_CHANGE_USER that cannot be rebuilt (${(err as Error).message}): the rest of the connection is dropped`);
          return;
        }
        break;
      case Command.COM_RESET_CONNECTION:
        // The server drops the connection's statements; the client's later ids name new ones. Forgotten now,
        // as captured (the capture runs ahead of the replay: later PREPAREs may already be queued).
        this.statements.clear();
        break;
      case Command.COM_INIT_DB:
        if (this.login && !payload.includes(0, 1)) {
          this.login.database = Buffer.from(payload.subarray(1));
          this.shared.rememberLogin(this.ctx.clientIp, this.login);
        }
        break;
      case Command.COM_QUERY:
        this.query(payload);
        break;
    }
    const expects = command === Command.COM_CHANGE_USER || expectsResponse(command);
    // Sent after the online server answered more (its byte count moved): wait for every answer before it.
    // Sent with the same count as the command before: the client pipelined it, so it goes with that one.
    const need = serverBytes > this.lastServerBytes ? this.expectedTotal : this.lastNeed;
    this.lastServerBytes = serverBytes;
    this.lastNeed = need;
    const cmd: Cmd = {
      tag: this.nextTag++, command, expects, need, before: this.expectedTotal, serverBytes, stmt, changeUser, own: false, packet: p.raw, sentAt: NaN,
    };
    if (expects) this.online?.expect(cmd.tag, command, this.clientAt);
    if (this.alignPending) {
      // Logged in before this first command was captured: the target has sent nothing since.
      this.alignPending = false;
      this.ctx.alignServerBytes(serverBytes);
    }
    if (expects) this.expectedTotal++;
    this.cmds.set(cmd.tag, cmd);
    if (this.cmds.size > MAX_COMMANDS) this.cmds.delete(this.cmds.keys().next().value!);
    this.lastCmd = cmd;
    this.ctx.emit(out, cmd.tag);
  }

  /** COM_CHANGE_USER: the new user's password and the size of the answer we will write into the packet. */
  private changeUserCommand(payload: Buffer): Cmd['changeUser'] {
    const cu = parseChangeUser(payload, this.login?.capabilities ?? 0);
    if (!cu || !this.login) {
      this.stats.streamsCorrupt++;
      this.fail('a COM_CHANGE_USER that cannot be parsed: the rest of the connection is dropped');
      return null;
    }
    const user = cu.user.toString();
    const password = passwordOf(this.shared.options, user);
    if (password === null) {
      this.stats.skippedNoPassword++;
      if (this.shared.firstReport(`nopw:${user}`)) {
        this.ctx.log(`no target password for MySQL user "${user}" (give --mysql-user ${user}:PASSWORD): the connection stops at its change to that user`);
      }
      this.fail('');
      return null;
    }
    // The scramble is the connection's own (its greeting's), so the answer's size depends only on the plugin.
    const plugin = cu.authPluginName || NATIVE_PASSWORD_PLUGIN;
    const authLength = computeAuthResponse(plugin, password, Buffer.alloc(32))?.length ?? 0;
    const record: LoginRecord = { ...this.login, user: cu.user, database: cu.database.length > 0 ? cu.database : null };
    if (cu.charset !== null) record.charset = cu.charset;
    return { password, plugin, authAt: 4 + 1 + cu.user.length + 1 + 1, authLength, record };
  }

  /** A COM_QUERY's effect on what the replay must know: the schema (USE) and the server's statement ids (PREPARE). */
  private query(payload: Buffer): void {
    let i = 1;
    while (i < payload.length && (payload[i] === 0x20 || payload[i] === 0x0a || payload[i] === 0x0d || payload[i] === 0x09)) i++;
    const head = payload.toString('latin1', i, Math.min(payload.length, i + 8)).toUpperCase();
    if (head.startsWith('PREPARE ') || head.startsWith('EXECUTE ') && payload.toString('latin1', i, i + 18).toUpperCase().startsWith('EXECUTE IMMEDIATE')) {
      this.statements.sqlPrepared();
    } else if (head.startsWith('USE ') && this.login) {
      const db = payload.toString('utf8', i + 4).trim().replace(/;$/, '').replace(/^`(.*)`$/, '$1');
      if (db.length > 0 && db.length <= 256 && !db.includes('\0')) {
        this.login.database = Buffer.from(db);
        this.shared.rememberLogin(this.ctx.clientIp, this.login);
      }
    }
  }

  // ---- the target connection -------------------------------------------------------

  onConnect(info: ConnectInfo): boolean {
    this.generation++;
    this.ownGeneration.clear();
    this.reader.reset();
    this.reader.wantWhole(AUTH_PACKET_LIMIT);
    this.link = Link.GREETING;
    this.greeting = null;
    this.auth = null;
    this.tracker = null;
    this.inflight = [];
    this.sentOnLink = false;
    this.lostReported = false;
    this.alignPending = false;
    if (this.failed) return false;
    if (info.resumed && !this.login) {
      // The connection's login was not captured: log in as the last user seen from its address, or the default.
      const o = this.shared.options;
      const record = this.shared.lastLoginFrom(this.ctx.clientIp) ?? (o.defaultUser ? madeUpRecord(o.defaultUser, o.defaultSchema) : null);
      if (!record) {
        this.stats.skippedNoLogin++;
        if (this.shared.firstReport('nologin')) {
          this.ctx.log('captured after its login, and no login seen from its client address: not replayed (give --protocol-opt default-user=NAME)');
        }
        this.failed = true;
        return false;
      }
      if (!this.useLogin(record)) return false;
      this.stats.loginsResumed++;
    }
    return true;
  }

  onOnlineData(data: Buffer, info: OnlineDataInfo): void {
    if (!this.online || this.failed) return;
    this.online.feed(data, info.gap, info.captureTimeMs);
    if (!this.online.following && !this.onlineLostCounted) {
      this.onlineLostCounted = true;
      this.stats.onlineRepliesLost++;
      this.ctx.log(`lost the thread of the online server's replies in the capture (${this.online.lostReason}): answers not compared from here`);
    }
  }

  /** How the online server answered command `tag` (from the capture). */
  private onlineAnswered(tag: number, r: ResponseSummary, latencyMs: number | undefined): void {
    this.shared.requests.online.record(r.kind === 'err' ? 'ERR' : 'OK', latencyMs);
    if (tag <= 0) return;
    const c = this.cmds.get(tag);
    if (c?.stmt && c.command === Command.COM_STMT_PREPARE && r.prepared) this.statements.learned(c.stmt, r.prepared.statementId);
    this.comparison.onlineAnswer(tag, answerOf(r));
  }

  /** Reports an answer that differs from the online one (each kind of difference per statement once). */
  private answersDiffer(tag: number, how: string, o: Answer, t: Answer): void {
    const c = this.cmds.get(tag);
    const what = c ? describeCommand(c) : `command ${tag}`;
    if (!this.shared.firstReport(`differs:${how}:${t.errorCode}:${what}`)) return;
    const answer = (a: Answer) => (a.error ? `ERR ${a.errorCode} ${a.errorMessage}` : `OK, ${a.affectedRows} rows affected`);
    this.ctx.log(`${how}: ${what.replace(/\s+/g, ' ').trim()} (online: ${answer(o)}; target: ${answer(t)})`);
  }

  onTargetData(data: Buffer, length: number, info: TargetDataInfo): void {
    if (this.failed) return;
    if (info.gap > 0) this.reader.feed(EMPTY, info.gap);
    this.reader.feed(data, length);
    if ((this.reader.lost || this.tracker?.lost) && !this.lostReported) {
      this.lostReported = true;
      this.stats.repliesLost++;
      this.ctx.log(`lost the thread of the target's replies (${this.reader.lost ? this.reader.lostReason : this.tracker!.lostReason}): releasing by byte count on this connection`);
    }
  }

  /** One packet of the target's (ReplyListener). */
  packet(seq: number, length: number, head: Buffer, continued: boolean): void {
    switch (this.link) {
      case Link.GREETING:
        this.greeted(head);
        return;
      case Link.LOGIN:
        return; // nothing comes before our login
      case Link.AUTH:
        this.authStep(this.auth!.step(head, seq), null);
        return;
      case Link.READY: {
        const first = this.inflight[0];
        if (first?.changeUser) {
          this.authStep(this.auth!.step(head, seq), first);
          return;
        }
        const done = this.tracker!.packet(seq, length, head, continued);
        if (done) this.answered(done);
      }
    }
  }

  private greeted(payload: Buffer): void {
    const g = parseGreeting(payload);
    if (!g) {
      this.stats.targetUnreadable++;
      this.fail(`the target's greeting cannot be read: connection given up`);
      return;
    }
    this.greeting = g;
    this.link = Link.LOGIN;
    this.sendLogin();
  }

  /** Our login, once both the target's greeting and the login to use are known. */
  private sendLogin(): void {
    if (this.link !== Link.LOGIN || !this.greeting || !this.login || this.password === null || this.failed) return;
    if (!(this.greeting.capabilities & Capability.SECURE_CONNECTION)) {
      this.unsupported('the target speaks only the pre-4.1 authentication');
      return;
    }
    let login: { payload: Buffer; plugin: string };
    try {
      login = targetLogin(this.login, this.greeting, this.password);
    } catch (err) {
      this.unsupported(`the login cannot be rebuilt for the target (${(err as Error).message})`);
      return;
    }
    const { payload, plugin } = login;
    this.auth = new AuthExchange(this.password, plugin, this.greeting.scramble);
    this.link = Link.AUTH;
    this.stats.loginsReplayed++;
    this.sendOwn(frame(1, payload));
  }

  private authStep(step: AuthStep, changeUser: Cmd | null): void {
    switch (step.kind) {
      case 'send':
        this.sendOwn(frame(step.seq, step.payload));
        return;
      case 'wait':
        return;
      case 'ok':
        if (changeUser) {
          this.inflight.shift();
          this.login = changeUser.changeUser!.record;
          this.password = changeUser.changeUser!.password;
          this.shared.rememberLogin(this.ctx.clientIp, this.login);
          this.counted(changeUser, OK_ANSWER, 'ok');
          this.reader.wantHeads();
        } else {
          this.loggedIn();
        }
        return;
      case 'refused': {
        const user = (changeUser ? changeUser.changeUser!.record : this.login)!.user.toString();
        this.stats.loginsRefused++;
        if (this.shared.firstReport(`refused:${user}`)) this.ctx.log(`the target refused the login of "${user}": ${step.message}`);
        this.fail('');
        return;
      }
      case 'unsupported':
        this.unsupported(step.message);
    }
  }

  /** An authentication we cannot replay: the connection is given up, counted, the reason logged once. */
  private unsupported(message: string): void {
    this.stats.skippedUnsupportedAuth++;
    if (this.shared.firstReport(`auth:${message}`)) this.ctx.log(`${message}: connection given up`);
    this.fail('');
  }

  private loggedIn(): void {
    const { capabilities, mariadb } = agreedCapabilities(this.login!, this.greeting!);
    this.tracker = new ResponseTracker(capabilities, { mariadbCapabilities: mariadb });
    this.reader.wantHeads();
    this.link = Link.READY;
    // The target's bytes so far (greeting, authentication) stand for what the online server had sent
    // when the first command still to go was captured.
    const next = this.firstUnanswered();
    if (next) this.ctx.alignServerBytes(next.serverBytes);
    else this.alignPending = true;
    // A new connection after an old one: what the old one had prepared is prepared again first.
    if (this.generation > 1) {
      for (const s of this.statements.all()) {
        if (s.targetOn === 0 || s.targetOn >= this.generation) continue; // its own PREPARE is still to go
        s.targetId = -1;
        const own: Cmd = {
          tag: 0, command: Command.COM_STMT_PREPARE, expects: true, need: 0, before: 0, serverBytes: 0, stmt: s, changeUser: null, own: true, packet: s.prepare, sentAt: NaN,
        };
        this.stats.statementsReprepared++;
        this.sendOwn(s.prepare, own);
      }
    }
  }

  private firstUnanswered(): Cmd | null {
    for (const c of this.cmds.values()) if (c.expects && c.before >= this.repliesSeen) return c;
    return null;
  }

  /** A packet of ours for this connection only; with `cmd`, its response is awaited (a re-prepare). */
  private sendOwn(packet: Buffer, cmd?: Cmd): void {
    const tag = this.nextOwnTag--;
    if (this.nextOwnTag < -1_000_000_000) this.nextOwnTag = -2;
    this.ownGeneration.set(tag, this.generation);
    if (cmd) {
      cmd.tag = tag;
      this.inflight.push(cmd);
      this.tracker!.expect(cmd.command);
    }
    this.ctx.emitNext(packet, tag);
  }

  private answered(r: ResponseSummary): void {
    const c = this.inflight.shift();
    if (!c) return; // an ERR with nothing pending (the server killed the connection): its close follows
    if (c.stmt && c.command === Command.COM_STMT_PREPARE) {
      c.stmt.targetId = r.prepared ? r.prepared.statementId : -2;
      c.stmt.targetOn = this.generation;
      if (r.prepared) c.stmt.params = r.prepared.params;
    }
    if (c.own) return;
    this.counted(c, answerOf(r), r.kind);
  }

  private counted(c: Cmd, a: Answer, kind: string): void {
    this.repliesSeen = Math.max(this.repliesSeen, c.before + 1);
    const latency = performance.now() - c.sentAt;
    this.shared.requests.target.record(a.error ? 'ERR' : 'OK', Number.isNaN(latency) ? undefined : latency);
    if (a.error) this.stats.answersError++;
    else this.stats.answersOk++;
    if (kind === 'resultset') this.stats.resultSets++;
    this.stats.affectedRows += a.affectedRows;
    this.comparison.targetAnswer(c.tag, a);
    for (const tag of this.cmds.keys()) {
      if (tag > c.tag) break;
      this.cmds.delete(tag);
    }
  }

  // ---- what may go -------------------------------------------------------------------

  mayRelease(tag: number, query: ReleaseQuery): boolean {
    if (tag < CLOSE_TAG || this.failed) return true;
    if (this.reader.lost || this.tracker?.lost) return byteCountRelease(query);
    if (tag === CLOSE_TAG) {
      // A login still to be replayed goes before the FIN, even when the client ended before the target greeted.
      if (this.login && this.link !== Link.READY) return false;
      const need = query.onlineServerBytes > this.lastServerBytes ? this.expectedTotal : this.lastNeed;
      return this.repliesSeen >= need;
    }
    const c = this.cmds.get(tag);
    return !c || this.repliesSeen >= c.need;
  }

  onIdleRelease(tag: number): void {
    // The target answered less than expected (or not at all): count the answers waited for as given.
    const c = this.cmds.get(tag);
    if (c) this.repliesSeen = Math.max(this.repliesSeen, c.need);
  }

  beforeSend(tag: number, data: Buffer): SendVerdict {
    if (tag < CLOSE_TAG) return this.ownGeneration.get(tag) === this.generation ? true : 'drop';
    if (this.failed) return 'drop';
    if (this.link !== Link.READY) return false;
    if (this.inflight[0]?.changeUser) return false; // a change of user in progress: its authentication first
    const c = this.cmds.get(tag);
    if (!c) return true;
    if (c.stmt && c.command !== Command.COM_STMT_PREPARE) {
      const s = c.stmt;
      if (s.targetOn !== this.generation || s.targetId === -1) return false; // its PREPARE is not answered yet
      // A statement the target refused to prepare: an id it does not know, so it answers with an error as it should.
      data.writeUInt32LE(s.targetId >= 0 ? s.targetId : 0xfffffffe, 5);
      if (c.command === Command.COM_STMT_CLOSE) this.statements.closed(s);
      if (c.command === Command.COM_STMT_EXECUTE) {
        const typed = this.withTypes(s, data);
        if (typed) {
          this.sent(c);
          return typed;
        }
      }
    }
    if (c.changeUser) {
      const cu = c.changeUser;
      const token = computeAuthResponse(cu.plugin, cu.password, this.greeting!.scramble) ?? EMPTY;
      if (token.length !== cu.authLength) return 'drop';
      token.copy(data, cu.authAt);
      this.auth = new AuthExchange(cu.password, cu.plugin, this.greeting!.scramble);
      this.reader.wantWhole(AUTH_PACKET_LIMIT);
    }
    this.sent(c);
    return true;
  }

  /** `c` goes now on this connection. */
  private sent(c: Cmd): void {
    if (!this.sentOnLink) {
      // The first command on this connection: those before it went on an older one (answered or lost with it).
      this.sentOnLink = true;
      this.repliesSeen = Math.max(this.repliesSeen, c.before);
    }
    this.stats.commands++;
    c.sentAt = performance.now();
    if (c.expects) {
      this.inflight.push(c);
      if (!c.changeUser) this.tracker!.expect(c.command);
    }
  }

  /**
   * An EXECUTE (`packet`, header included) names parameter types only when they change; the server
   * remembers them per statement. Remembers the types it carries, or, on a connection whose statement
   * never got them (prepared again there), returns the EXECUTE with them put back.
   */
  private withTypes(s: Statement, packet: Buffer): Buffer | null {
    const n = s.params;
    if (n <= 0 || packet.length > MAX_PACKET_PAYLOAD) return null;
    // header(4) command(1) id(4) flags(1) iterations(4) null bitmap, then the new-params-bound flag
    const flagAt = 14 + ((n + 7) >> 3);
    if (packet.length <= flagAt) return null;
    if (packet[flagAt] === 1) {
      if (packet.length >= flagAt + 1 + 2 * n) s.types = Buffer.from(packet.subarray(flagAt + 1, flagAt + 1 + 2 * n));
      s.typesOn = this.generation;
      return null;
    }
    if (s.typesOn === this.generation || !s.types) return null;
    s.typesOn = this.generation;
    const payload = Buffer.concat([packet.subarray(4, flagAt), ONE, s.types, packet.subarray(flagAt + 1)]);
    return frame(0, payload);
  }

  onTargetClose(): void {
    this.link = Link.GREETING;
  }

  onClose(): void {
    if (!this.failed && this.framer.buffered > 0) this.stats.streamsCorrupt++; // ends inside a packet: a cut or corrupt capture
    this.cmds.clear();
    this.inflight = [];
    this.framer.reset();
  }

  private agreedCaps(): number {
    return this.greeting && this.login ? agreedCapabilities(this.login, this.greeting).capabilities : this.login?.capabilities ?? 0;
  }

  /** Gives the connection up: what is left is dropped, the target's replies no longer needed. */
  private fail(message: string): void {
    if (message) this.ctx.log(message);
    this.failed = true;
    this.framer.reset();
    this.ctx.setReplyPayloadBytes(0);
  }
}

/** A command as a report names it: the start of its SQL, or of its statement's. */
function describeCommand(c: Cmd): string {
  const sql = (packet: Buffer) => packet.toString('utf8', 5, Math.min(packet.length, 5 + TEXT_KEPT));
  if (c.command === Command.COM_QUERY || c.command === Command.COM_STMT_PREPARE) return sql(c.packet);
  if (c.stmt) return `EXECUTE of ${sql(c.stmt.prepare)}`;
  return `command 0x${c.command.toString(16)}`;
}

const OK_ANSWER: Answer = { error: false, errorCode: 0, errorMessage: '', affectedRows: 0 };

function answerOf(r: ResponseSummary): Answer {
  return { error: r.kind === 'err', errorCode: r.errorCode, errorMessage: r.errorMessage, affectedRows: r.affectedRows };
}

/** Does `data` look like the start of a command packet (sequence id 0, a known command, a sane length)? */
function plausibleCommand(data: Buffer): boolean {
  if (data.length < 5) return false;
  const length = data[0] | (data[1] << 8) | (data[2] << 16);
  const cmd = data[4];
  return data[3] === 0 && length >= 1 && (cmd <= Command.COM_RESET_CONNECTION || cmd === Command.COM_STMT_BULK_EXECUTE) && cmd !== Command.COM_SLEEP;
}
