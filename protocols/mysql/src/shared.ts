import { RequestStats } from '@tcpcopy/core';
import type { LoginRecord } from './login';
import type { MysqlOptions } from './options';

/** Client addresses whose last login is remembered (for connections captured after their login). */
const MAX_REMEMBERED_CLIENTS = 65536;
/** User names remembered as "already reported" (a password missing, a login refused). */
const MAX_REPORTED = 1024;

/** Counters of one protocol instance, for the end-of-run summary. */
export class MysqlStats {
  /** Logins replayed with a recomputed authentication (captured or made up). */
  loginsReplayed = 0;
  /** Of those, made up for connections captured after their login. */
  loginsResumed = 0;
  /** Logins the target refused (a wrong password given, a missing user). */
  loginsRefused = 0;
  /** Connections not replayed: no password known for the user. */
  skippedNoPassword = 0;
  /** Connections not replayed: TLS (SSLRequest). */
  skippedTls = 0;
  /** Connections not replayed: compressed protocol. */
  skippedCompressed = 0;
  /** Connections not replayed: captured after their login, and no user known for their client address. */
  skippedNoLogin = 0;
  /** Connections given up: an authentication method tcpcopy cannot answer. */
  skippedUnsupportedAuth = 0;
  /** Connections given up: the client's bytes are not MySQL packets (a corrupt or truncated capture). */
  streamsCorrupt = 0;
  /** Connections given up: the target's greeting is not a MySQL greeting (is it a MySQL server?). */
  targetUnreadable = 0;
  /** Commands sent to the target, and how the target answered them. */
  commands = 0;
  answersOk = 0;
  answersError = 0;
  resultSets = 0;
  affectedRows = 0;
  /** Statements prepared again on a connection the target did not see start. */
  statementsPrepared = 0;
  statementsReprepared = 0;
  /** Commands naming a statement prepared before the capture started: not replayed. */
  unknownStatements = 0;
  /**
   * Answers compared with the online server's (when the capture has its replies): the same, and how
   * they differ. errorsOnlyOnTarget are the regressions a replay is run to find.
   */
  answersCompared = 0;
  answersSame = 0;
  errorsOnlyOnTarget = 0;
  errorsOnlyOnline = 0;
  errorsDiffer = 0;
  affectedRowsDiffer = 0;
  /** Connections whose online replies could not be followed (not compared from there). */
  onlineRepliesLost = 0;
  /** Connections on which the target's replies could not be followed (released by byte count from there). */
  repliesLost = 0;
  /** Bytes skipped to find the first command of a connection captured mid-way. */
  resyncSkippedBytes = 0;
}

/** What all sessions of one protocol instance share. */
export class MysqlShared {
  readonly stats = new MysqlStats();
  /** Commands answered online and by the target: OK/ERR and latency (the report's request figures). */
  readonly requests = new RequestStats();
  private readonly lastLogin = new Map<number, LoginRecord>();
  private readonly reported = new Set<string>();

  constructor(readonly options: MysqlOptions) {}

  /** The last login seen from `clientIp`. */
  lastLoginFrom(clientIp: number): LoginRecord | undefined {
    return this.lastLogin.get(clientIp);
  }

  rememberLogin(clientIp: number, record: LoginRecord): void {
    this.lastLogin.delete(clientIp);
    if (this.lastLogin.size >= MAX_REMEMBERED_CLIENTS) this.lastLogin.delete(this.lastLogin.keys().next().value!);
    this.lastLogin.set(clientIp, record);
  }

  /** True the first time `key` is reported (so a user is named once in the log, not per connection). */
  firstReport(key: string): boolean {
    if (this.reported.has(key)) return false;
    if (this.reported.size < MAX_REPORTED) this.reported.add(key);
    return true;
  }
}
