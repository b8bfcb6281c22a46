/**
 * The prepared statements of one replayed client connection, and the mapping
 * of the online server's statement ids to the target's.
 *
 * The capture holds only what the client sent, so the online ids are never
 * seen in a reply. They are predicted as the server hands them out (MariaDB
 * and MySQL number a connection's statements 1, 2, 3, ... in the order they
 * are prepared, SQL-level PREPAREs included), and corrected on first use: an
 * id the prediction does not know, used right after a PREPARE that nothing has
 * used yet, belongs to that PREPARE (every driver prepares, then executes). A
 * connection captured mid-way starts with no prediction until such a first use.
 */
export interface Statement {
  /** The client's COM_STMT_PREPARE packet, as captured (sent again on a rebuilt connection). */
  readonly prepare: Buffer;
  /** The online server's id, predicted or learned; -1 while unknown. */
  onlineId: number;
  /** Some command referred to this statement (so its online id was confirmed or used). */
  used: boolean;
  /** The target's id on the connection `targetOn`; -1 until its reply, -2 when the target refused it. */
  targetId: number;
  targetOn: number;
  /** Its parameters (from the target's reply to PREPARE), -1 until known. */
  params: number;
  /**
   * The parameter types the client last bound (an EXECUTE with new-params-bound set), and the connection
   * that got them: later EXECUTEs leave types out, which a statement prepared again needs once more.
   */
  types: Buffer | null;
  typesOn: number;
}

/** Statements kept per connection; beyond it the oldest is forgotten (a leak in the client, or a huge cache). */
export const MAX_STATEMENTS = 4096;
/** Ids of this value mean "the statement prepared last" (MariaDB's direct execution), on both servers. */
export const LAST_PREPARED_ID = 0xffffffff;

export class StatementMap {
  private readonly list: Statement[] = [];
  /** The online id the next PREPARE gets; NaN while unknown. */
  private nextOnlineId: number;
  /** Statements forgotten because of MAX_STATEMENTS. */
  evicted = 0;

  constructor(fromStart: boolean) {
    this.nextOnlineId = fromStart ? 1 : NaN;
  }

  get size(): number {
    return this.list.length;
  }

  /** A COM_STMT_PREPARE the client sent; returns its record. */
  prepared(packet: Buffer): Statement {
    const s: Statement = {
      prepare: packet, onlineId: Number.isNaN(this.nextOnlineId) ? -1 : this.nextOnlineId++, used: false,
      targetId: -1, targetOn: 0, params: -1, types: null, typesOn: 0,
    };
    this.list.push(s);
    if (this.list.length > MAX_STATEMENTS) {
      this.list.shift();
      this.evicted++;
    }
    return s;
  }

  /** An SQL-level PREPARE (COM_QUERY): the server spends an id on it too. */
  sqlPrepared(): void {
    if (!Number.isNaN(this.nextOnlineId)) this.nextOnlineId++;
  }

  /**
   * The statement an online id names, learning the id on first use (unless `learn` is false: a
   * COM_STMT_CLOSE may name a statement the server already dropped); null when it is not known.
   */
  byOnlineId(id: number, learn = true): Statement | null {
    for (let i = this.list.length - 1; i >= 0; i--) {
      const s = this.list[i];
      if (s.onlineId === id) {
        s.used = true;
        return s;
      }
    }
    if (!learn) return null;
    // Not predicted: the newest statement nothing has used yet is the one (see the class comment).
    for (let i = this.list.length - 1; i >= 0; i--) {
      const s = this.list[i];
      if (s.used) break;
      if (i === 0 || this.list[i - 1].used) {
        // The oldest of the unused run: drivers use statements in the order they prepared them.
        const k = this.list.length - 1 - i;
        s.onlineId = id;
        s.used = true;
        for (let j = i + 1; j < this.list.length; j++) this.list[j].onlineId = id + (j - i);
        this.nextOnlineId = id + k + 1;
        return s;
      }
    }
    return null;
  }

  /** The online server's reply to a PREPARE named its id (the capture had it): no guessing needed. */
  learned(s: Statement, onlineId: number): void {
    s.onlineId = onlineId;
    const i = this.list.indexOf(s);
    for (let j = i + 1; j > 0 && j < this.list.length; j++) {
      if (!this.list[j].used) this.list[j].onlineId = onlineId + (j - i);
    }
    if (i >= 0) this.nextOnlineId = onlineId + (this.list.length - i);
  }

  /** COM_STMT_CLOSE: the statement is gone on both servers. */
  closed(s: Statement): void {
    const i = this.list.indexOf(s);
    if (i >= 0) this.list.splice(i, 1);
  }

  /** COM_RESET_CONNECTION or COM_CHANGE_USER: the server dropped every statement. */
  clear(): void {
    this.list.length = 0;
  }

  /** Statements to prepare again on a new connection, oldest first. */
  all(): readonly Statement[] {
    return this.list;
  }
}
