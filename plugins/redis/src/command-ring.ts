/**
 * What the session remembers per command until it is both released and
 * answered, indexed by command number (tags are consecutive). A growable ring
 * of doubles, so a pipeline of thousands of commands costs no allocation per
 * command.
 */
const FIELDS = 4;
const NEED = 0;
const CUM = 1;
const DB = 2;
const PROTO = 3;

export class CommandRing {
  private slots = new Float64Array(64 * FIELDS);
  private mask = 63;
  /** Number of the oldest command held. */
  first = 1;
  /** Number after the newest command held. */
  end = 1;

  /**
   * `need`: replies the target must have given before this command may go;
   * `cum`: replies expected up to and including it; `db`/`proto`: the
   * SELECTed database and RESP version the command runs with.
   */
  push(tag: number, need: number, cum: number, db: number, proto: number): void {
    if (tag !== this.end) throw new Error(`command ${tag} out of order (expected ${this.end})`);
    if (this.end - this.first > this.mask) this.grow();
    const i = (tag & this.mask) * FIELDS;
    this.slots[i + NEED] = need;
    this.slots[i + CUM] = cum;
    this.slots[i + DB] = db;
    this.slots[i + PROTO] = proto;
    this.end++;
  }

  has(tag: number): boolean {
    return tag >= this.first && tag < this.end;
  }

  need(tag: number): number {
    return this.slots[(tag & this.mask) * FIELDS + NEED];
  }

  cum(tag: number): number {
    return this.slots[(tag & this.mask) * FIELDS + CUM];
  }

  db(tag: number): number {
    return this.slots[(tag & this.mask) * FIELDS + DB];
  }

  proto(tag: number): number {
    return this.slots[(tag & this.mask) * FIELDS + PROTO];
  }

  /** Forgets the commands numbered below `tag`. */
  dropBefore(tag: number): void {
    if (tag > this.end) tag = this.end;
    if (tag > this.first) this.first = tag;
  }

  private grow(): void {
    const size = (this.mask + 1) * 2;
    const slots = new Float64Array(size * FIELDS);
    const mask = size - 1;
    for (let t = this.first; t < this.end; t++) {
      const from = (t & this.mask) * FIELDS;
      slots.set(this.slots.subarray(from, from + FIELDS), (t & mask) * FIELDS);
    }
    this.slots = slots;
    this.mask = mask;
  }
}
