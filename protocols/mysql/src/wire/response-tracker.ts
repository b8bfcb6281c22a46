import { Capability, Command, hasCapability, MariaDbCapability, Marker, MAX_PACKET_PAYLOAD, PROGRESS_REPORT_CODE, ServerStatus } from './constants';
import { readLenencInt } from './lenenc';
import { parseEof, parseErr, parseOk } from './response';

export type ResponseKind = 'ok' | 'err' | 'resultset' | 'eof' | 'other';

export interface PreparedStatementInfo {
  statementId: number;
  params: number;
  columns: number;
}

/** How the server answered one command, once its response is complete. */
export interface ResponseSummary {
  /** The command byte, or -1 for an ERR the server sent with no command pending (a kill, a
   * timeout, a shutdown). */
  command: number;
  /** 'resultset' when the response held at least one result set and did not end in ERR. */
  kind: ResponseKind;
  /** Summed over the command's results (multi-statements, procedures). */
  affectedRows: number;
  /** Of the last OK packet. */
  lastInsertId: number;
  /** Of the last OK or EOF packet. */
  warnings: number;
  /** Status flags of the last OK or EOF packet (0 when there was none). */
  status: number;
  errorCode: number;
  sqlState: string;
  /** Bounded; cut further when only the head of the ERR packet was seen. */
  errorMessage: string;
  /** Rows counted over all result sets of the response. */
  rows: number;
  /** OK packets and result sets in the response (more than 1 with multi-results). */
  results: number;
  /** For a successful COM_STMT_PREPARE. */
  prepared?: PreparedStatementInfo;
}

export interface ResponseTrackerOptions {
  /** MariaDB extended capabilities in effect (CACHE_METADATA adds a byte to column counts). */
  mariadbCapabilities?: number;
  /** Commands that may wait at once before the tracker gives up (default 4096). */
  maxPending?: number;
  /** Bytes of an error message kept (default 256). */
  maxErrorMessage?: number;
  /** Called with each completed response, besides being returned by {@link ResponseTracker.packet}. */
  onResponse?: (summary: ResponseSummary) => void;
}

/** Commands the server does not answer. */
export function expectsResponse(command: number): boolean {
  return command !== Command.COM_STMT_CLOSE && command !== Command.COM_STMT_SEND_LONG_DATA && command !== Command.COM_QUIT;
}

/** Where in a response the next packet falls. */
const enum Phase {
  /** Start of a result: OK, ERR, LOCAL INFILE request, or a column count. */
  Result,
  /** COM_STMT_PREPARE: its OK or ERR. */
  PrepareOk,
  /** Counting column (or parameter) definitions. */
  Definitions,
  /** The EOF after definitions (without CLIENT_DEPRECATE_EOF). */
  DefinitionsEof,
  /** Rows until EOF / OK / ERR. */
  Rows,
  /** COM_FIELD_LIST: definitions until EOF. */
  FieldList,
  /** OK or ERR ends it. */
  Status,
  /** EOF (or OK) or ERR ends it: COM_SET_OPTION, COM_DEBUG. */
  EofStatus,
  /** Any one packet ends it: COM_STATISTICS. */
  Single,
  /** COM_CHANGE_USER: auth switch and more-data rounds until OK or ERR. */
  Auth,
  /** Unknown command: an OK-, ERR- or EOF-looking packet ends it. */
  Generic,
}

const DEFAULT_MAX_PENDING = 4096;
const DEFAULT_MAX_ERROR_MESSAGE = 256;
/** Seq accepted as is (after an auth round, client packets took sequence ids in between). */
const ANY_SEQ = -1;

/**
 * Knows, for one connection, when the server's response to each command is complete, from the
 * physical packets a {@link ReplyReader} reports (a packet's first bytes and its length). Commands
 * are queued with {@link expect} as they are sent (pipelining allowed) and answered in order.
 *
 * It checks what it sees: each response packet's sequence id must follow the previous one
 * (starting after the command's own packets), and each packet must fit where it falls. Anything
 * else sets {@link lost} with {@link lostReason}: from then on it reports nothing until
 * {@link reset}, and the caller falls back to another way of pacing. LOCAL INFILE is not supported
 * (the client would have to send a file): it is reported as kind 'other' and sets lost.
 *
 * Feed it only packets of the command phase (after the login completed).
 */
export class ResponseTracker {
  lost = false;
  lostReason = '';

  private readonly deprecateEof: boolean;
  /** A byte after the column count says whether definitions follow. */
  private readonly metadataFlag: boolean;
  private readonly maxPending: number;
  private readonly maxErrorMessage: number;
  private readonly onResponse: ((summary: ResponseSummary) => void) | undefined;

  private queue: Array<{ command: number; firstSeq: number }> = [];
  private queueHead = 0;

  // The response being read (valid while `active`).
  private active = false;
  private command = 0;
  private phase = Phase.Result;
  private expectedSeq = 0;
  private definitionsLeft = 0;
  /** COM_STMT_PREPARE: column definitions still to come after the parameter definitions. */
  private prepareColumnsLeft = 0;
  private summary: ResponseSummary = emptySummary(0);
  /** The previous physical packet was 0xFFFFFF long: the next continues it. */
  private continuing = false;
  /** A response that ended on a packet still being continued: reported at its last part. */
  private deferred: ResponseSummary | null = null;

  constructor(
    private readonly capabilities: number,
    options: ResponseTrackerOptions = {},
  ) {
    this.deprecateEof = hasCapability(capabilities, Capability.DEPRECATE_EOF);
    this.metadataFlag =
      hasCapability(capabilities, Capability.OPTIONAL_RESULTSET_METADATA) ||
      (((options.mariadbCapabilities ?? 0) & MariaDbCapability.CACHE_METADATA) !== 0 && !hasCapability(capabilities, Capability.CLIENT_MYSQL));
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    this.maxErrorMessage = options.maxErrorMessage ?? DEFAULT_MAX_ERROR_MESSAGE;
    this.onResponse = options.onResponse;
  }

  /** Commands sent whose response is not complete yet. */
  get pending(): number {
    return this.queue.length - this.queueHead + (this.active ? 1 : 0);
  }

  /** False for commands the server does not answer (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT). */
  expectsResponse(command: number): boolean {
    return expectsResponse(command);
  }

  /**
   * A command was sent. `requestPackets` is how many physical packets it took (more than one from
   * 16 MiB on): the response's sequence ids start after them. Returns false when no response is
   * expected (nothing queued) or the queue is full (then the tracker is lost).
   */
  expect(command: number, requestPackets = 1): boolean {
    if (!expectsResponse(command)) return false;
    if (this.pending >= this.maxPending) {
      this.lose(`more than ${this.maxPending} commands waiting for a response`);
      return false;
    }
    this.queue.push({ command, firstSeq: requestPackets & 0xff });
    return true;
  }

  /**
   * Consumes one physical packet of the server's stream. `head` holds at least its first bytes
   * (64 are plenty); `continued` (optional) says it continues a 0xFFFFFF-byte packet, which the
   * tracker also works out itself. Returns the summary of the response this packet completes.
   */
  packet(seq: number, length: number, head: Buffer, continued?: boolean): ResponseSummary | null {
    if (this.lost) return null;
    if (continued !== undefined && continued !== this.continuing) {
      return this.lose(continued ? 'continuation packet without a 0xFFFFFF-byte packet before it' : 'missing continuation packet');
    }
    if (this.continuing) {
      if (!this.checkSeq(seq)) return null;
      this.continuing = length === MAX_PACKET_PAYLOAD;
      if (this.continuing || this.deferred === null) return null;
      const done = this.deferred;
      this.deferred = null;
      return this.finish(done);
    }
    if (!this.active && !this.startNext()) {
      // Nothing pending: only an ERR that announces the end of the connection is expected.
      if (head.length >= 1 && head[0] === Marker.ERR) {
        const err = parseErr(head, this.maxErrorMessage);
        const summary = emptySummary(-1);
        summary.kind = 'err';
        summary.errorCode = err?.code ?? 0;
        summary.sqlState = err?.sqlState ?? '';
        summary.errorMessage = err?.message ?? '';
        return this.finish(summary);
      }
      return this.lose('packet with no command waiting for a response');
    }
    if (!this.checkSeq(seq)) return null;
    this.continuing = length === MAX_PACKET_PAYLOAD;
    if (length > 0 && head.length === 0) return this.lose('first bytes of a packet unknown');

    // A summary may come with lost set (LOCAL INFILE): it is still reported.
    const done = this.step(length, head);
    if (done === null) return null;
    this.active = false;
    if (this.continuing) {
      this.deferred = done;
      return null;
    }
    return this.finish(done);
  }

  /** Forgets everything: a new connection. */
  reset(): void {
    this.lost = false;
    this.lostReason = '';
    this.queue = [];
    this.queueHead = 0;
    this.active = false;
    this.continuing = false;
    this.deferred = null;
  }

  /** Makes the next queued command the active one; false when none is queued. */
  private startNext(): boolean {
    if (this.queueHead >= this.queue.length) return false;
    const next = this.queue[this.queueHead++];
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    this.active = true;
    this.command = next.command;
    this.expectedSeq = next.firstSeq;
    this.summary = emptySummary(next.command);
    this.phase = firstPhase(next.command);
    return true;
  }

  private checkSeq(seq: number): boolean {
    if (this.expectedSeq !== ANY_SEQ && seq !== this.expectedSeq) {
      this.lose(`sequence id ${seq} where ${this.expectedSeq} was expected`);
      return false;
    }
    this.expectedSeq = (seq + 1) & 0xff;
    return true;
  }

  /** Applies one (non-continuation) packet; returns the summary when it ends the response. */
  private step(length: number, head: Buffer): ResponseSummary | null {
    const first = length > 0 ? head[0] : -1;
    const s = this.summary;

    // An ERR ends any response (a row or definition never starts with 0xFF), except MariaDB's
    // progress reports, which go on.
    if (first === Marker.ERR && this.phase !== Phase.Single) {
      if (head.length >= 3 && head.readUInt16LE(1) === PROGRESS_REPORT_CODE) return null;
      const err = parseErr(head, this.maxErrorMessage);
      s.kind = 'err';
      s.errorCode = err?.code ?? 0;
      s.sqlState = err?.sqlState ?? '';
      s.errorMessage = err?.message ?? '';
      return s;
    }

    switch (this.phase) {
      case Phase.Result:
        return this.resultStart(first, length, head);

      case Phase.PrepareOk:
        return this.prepareOk(first, length, head);

      case Phase.Definitions:
        if (first === Marker.EOF && length < 9) return this.lose('EOF before all column definitions');
        if (--this.definitionsLeft > 0) return null;
        return this.definitionsDone();

      case Phase.DefinitionsEof: {
        const eof = first === Marker.EOF && length < 9 ? parseEof(head) : null;
        if (eof === null) return this.lose('no EOF after the column definitions');
        s.status = eof.status;
        s.warnings = eof.warnings;
        return this.afterDefinitionsEof(eof.status);
      }

      case Phase.Rows:
        return this.row(first, length, head);

      case Phase.FieldList:
        if (first !== Marker.EOF || !this.isTerminatorLength(length)) return null;
        if (!this.readTerminator(head)) return null;
        s.kind = 'eof';
        return s;

      case Phase.Status:
        if (first !== Marker.OK) return this.lose(`unexpected packet 0x${hex(first)} where OK or ERR was expected`);
        return this.okPacket(head, false);

      case Phase.EofStatus:
        if (first === Marker.OK) return this.okPacket(head, false);
        if (first !== Marker.EOF || !this.isTerminatorLength(length)) return this.lose(`unexpected packet 0x${hex(first)} where EOF or ERR was expected`);
        if (!this.readTerminator(head)) return null;
        s.kind = 'eof';
        return s;

      case Phase.Single:
        s.kind = first === Marker.ERR ? 'err' : 'other';
        if (first === Marker.ERR) {
          const err = parseErr(head, this.maxErrorMessage);
          s.errorCode = err?.code ?? 0;
          s.sqlState = err?.sqlState ?? '';
          s.errorMessage = err?.message ?? '';
        }
        return s;

      case Phase.Auth:
        if (first === Marker.OK) return this.okPacket(head, false);
        if (first === Marker.EOF || first === Marker.AUTH_MORE_DATA) {
          // The client answers before the server's next packet: its packets take sequence ids.
          this.expectedSeq = ANY_SEQ;
          return null;
        }
        return this.lose(`unexpected packet 0x${hex(first)} in COM_CHANGE_USER authentication`);

      case Phase.Generic:
        if (first === Marker.OK) {
          if (parseOk(head, this.capabilities) === null) return null;
          return this.okPacket(head, false);
        }
        if (first === Marker.EOF && length < 9) {
          // EOF, or an 0xFE-headed OK under CLIENT_DEPRECATE_EOF: take the status of whichever fits.
          const ok = this.deprecateEof ? parseOk(head, this.capabilities) : null;
          const eof = ok === null ? parseEof(head) : null;
          s.status = ok?.status ?? eof?.status ?? 0;
          s.warnings = ok?.warnings ?? eof?.warnings ?? 0;
          s.kind = 'eof';
          return s;
        }
        return null;
    }
  }

  /** First packet of a result of COM_QUERY, COM_STMT_EXECUTE and the like. */
  private resultStart(first: number, length: number, head: Buffer): ResponseSummary | null {
    const s = this.summary;
    if (first === Marker.OK) return this.okPacket(head, true);
    if (first === Marker.LOCAL_INFILE && this.command === Command.COM_QUERY) {
      s.kind = 'other';
      this.lose('LOCAL INFILE request: not supported');
      return s;
    }
    const count = first < 0 || first === Marker.EOF ? null : readLenencInt(head, 0);
    if (count === null || count.next < 0 || count.value === 0) return this.lose(`unexpected packet 0x${hex(first)} where a result was expected`);
    // With optional metadata a flag byte follows the count; 0 means no definitions are sent.
    const metadataFollows = !(this.metadataFlag && count.next < length && count.next < head.length && head[count.next] === 0);
    s.results++;
    this.definitionsLeft = metadataFollows ? count.value : 0;
    this.prepareColumnsLeft = 0;
    return this.startDefinitions();
  }

  /** COM_STMT_PREPARE_OK: statement id (4), columns (2), params (2), filler (1), warnings (2),
   * metadata flag (1, with OPTIONAL_RESULTSET_METADATA); then parameter and column definitions. */
  private prepareOk(first: number, length: number, head: Buffer): ResponseSummary | null {
    if (first !== Marker.OK || head.length < 9) return this.lose('malformed COM_STMT_PREPARE response');
    const s = this.summary;
    const columns = head.readUInt16LE(5);
    const params = head.readUInt16LE(7);
    s.prepared = { statementId: head.readUInt32LE(1), params, columns };
    s.kind = 'ok';
    s.results = 1;
    if (head.length >= 12) s.warnings = head.readUInt16LE(10);
    const metadataFollows = !(
      hasCapability(this.capabilities, Capability.OPTIONAL_RESULTSET_METADATA) &&
      length > 12 &&
      head.length > 12 &&
      head[12] === 0
    );
    const paramDefinitions = metadataFollows ? params : 0;
    const columnDefinitions = metadataFollows ? columns : 0;
    if (params > 0) {
      this.definitionsLeft = paramDefinitions;
      this.prepareColumnsLeft = columns > 0 ? Math.max(columnDefinitions, 0) : -1;
      return this.startDefinitions();
    }
    if (columns > 0) {
      this.definitionsLeft = columnDefinitions;
      this.prepareColumnsLeft = -1;
      return this.startDefinitions();
    }
    return s;
  }

  /** Enters the definitions, or what follows them when there are none. */
  private startDefinitions(): ResponseSummary | null {
    if (this.definitionsLeft > 0) {
      this.phase = Phase.Definitions;
      return null;
    }
    return this.definitionsDone();
  }

  private definitionsDone(): ResponseSummary | null {
    if (!this.deprecateEof) {
      this.phase = Phase.DefinitionsEof;
      return null;
    }
    return this.afterDefinitionsEof(-1);
  }

  /** After the definitions and their EOF (`status` -1 when there is no EOF). */
  private afterDefinitionsEof(status: number): ResponseSummary | null {
    const s = this.summary;
    if (this.command === Command.COM_STMT_PREPARE) {
      if (this.prepareColumnsLeft >= 0) {
        this.definitionsLeft = this.prepareColumnsLeft;
        this.prepareColumnsLeft = -1;
        return this.startDefinitions();
      }
      return s;
    }
    s.kind = 'resultset';
    // A cursor was opened: the rows will come with COM_STMT_FETCH.
    if (status >= 0 && (status & ServerStatus.CURSOR_EXISTS) !== 0 && isBinaryCommand(this.command)) return s;
    this.phase = Phase.Rows;
    return null;
  }

  private row(first: number, length: number, head: Buffer): ResponseSummary | null {
    const s = this.summary;
    if (first === Marker.EOF && (isBinaryCommand(this.command) || this.isTerminatorLength(length))) {
      if (!this.readTerminator(head)) return null;
      s.kind = 'resultset';
      if ((s.status & ServerStatus.MORE_RESULTS_EXISTS) !== 0 && this.command !== Command.COM_STMT_FETCH) {
        this.phase = Phase.Result;
        return null;
      }
      return s;
    }
    if (isBinaryCommand(this.command) && first !== 0x00) return this.lose(`binary row starting with 0x${hex(first)}`);
    if (first < 0) return this.lose('empty row packet');
    s.rows++;
    return null;
  }

  /** An OK packet; `canContinue` when SERVER_MORE_RESULTS_EXISTS may announce another result. */
  private okPacket(head: Buffer, canContinue: boolean): ResponseSummary | null {
    const ok = parseOk(head, this.capabilities);
    if (ok === null) return this.lose('truncated OK packet');
    const s = this.summary;
    s.affectedRows += ok.affectedRows;
    s.lastInsertId = ok.lastInsertId;
    s.status = ok.status;
    s.warnings = ok.warnings;
    s.results++;
    if (canContinue && (ok.status & ServerStatus.MORE_RESULTS_EXISTS) !== 0) {
      this.phase = Phase.Result;
      return null;
    }
    if (s.kind !== 'resultset') s.kind = 'ok';
    return s;
  }

  /** A 0xFE packet here ends the set: an EOF, or (CLIENT_DEPRECATE_EOF) an OK with 0xFE header. */
  private isTerminatorLength(length: number): boolean {
    return this.deprecateEof ? length < MAX_PACKET_PAYLOAD : length < 9;
  }

  /** Takes status and warnings from an EOF, or an 0xFE-headed OK under CLIENT_DEPRECATE_EOF. */
  private readTerminator(head: Buffer): boolean {
    const s = this.summary;
    if (this.deprecateEof) {
      const ok = parseOk(head, this.capabilities);
      if (ok === null) {
        this.lose('truncated OK packet ending a result set');
        return false;
      }
      s.affectedRows += ok.affectedRows;
      s.status = ok.status;
      s.warnings = ok.warnings;
      return true;
    }
    const eof = parseEof(head);
    if (eof === null) {
      this.lose('truncated EOF packet');
      return false;
    }
    s.status = eof.status;
    s.warnings = eof.warnings;
    return true;
  }

  private finish(summary: ResponseSummary): ResponseSummary {
    this.onResponse?.(summary);
    return summary;
  }

  private lose(reason: string): null {
    if (!this.lost) {
      this.lost = true;
      this.lostReason = reason;
    }
    return null;
  }
}

function firstPhase(command: number): Phase {
  switch (command) {
    case Command.COM_QUERY:
    case Command.COM_STMT_EXECUTE:
    case Command.COM_STMT_BULK_EXECUTE:
    case Command.COM_PROCESS_INFO:
      return Phase.Result;
    case Command.COM_STMT_PREPARE:
      return Phase.PrepareOk;
    case Command.COM_STMT_FETCH:
      return Phase.Rows;
    case Command.COM_FIELD_LIST:
      return Phase.FieldList;
    case Command.COM_PING:
    case Command.COM_INIT_DB:
    case Command.COM_RESET_CONNECTION:
    case Command.COM_REFRESH:
    case Command.COM_PROCESS_KILL:
    case Command.COM_STMT_RESET:
    case Command.COM_CREATE_DB:
    case Command.COM_DROP_DB:
      return Phase.Status;
    case Command.COM_SET_OPTION:
    case Command.COM_DEBUG:
      return Phase.EofStatus;
    case Command.COM_STATISTICS:
      return Phase.Single;
    case Command.COM_CHANGE_USER:
      return Phase.Auth;
    default:
      return Phase.Generic;
  }
}

/** Commands whose rows use the binary protocol (each row starts with 0x00). */
function isBinaryCommand(command: number): boolean {
  return command === Command.COM_STMT_EXECUTE || command === Command.COM_STMT_FETCH || command === Command.COM_STMT_BULK_EXECUTE;
}

function emptySummary(command: number): ResponseSummary {
  return {
    command,
    kind: 'other',
    affectedRows: 0,
    lastInsertId: 0,
    warnings: 0,
    status: 0,
    errorCode: 0,
    sqlState: '',
    errorMessage: '',
    rows: 0,
    results: 0,
  };
}

function hex(byte: number): string {
  return byte < 0 ? '(empty)' : byte.toString(16).padStart(2, '0');
}
