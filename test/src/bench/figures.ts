// The bench's output: one line per figure ("name = value unit") as it is measured, and the same list for --json.

export type FigureValue = number | string | boolean;

export interface Figure {
  name: string;
  value: FigureValue;
  unit: string;
}

/** Rounds for reading: whole numbers from 100 up, three decimals below (or `significant` digits, for small ratios). */
function round(v: number, significant?: number): number {
  if (Math.abs(v) >= 100) return Math.round(v);
  return significant ? Number(v.toPrecision(significant)) : Number(v.toFixed(3));
}

export class Figures {
  readonly list: Figure[] = [];
  /** Scenarios that could not run here, with the reason. */
  readonly skipped: Array<{ scenario: string; reason: string }> = [];
  /** What a scenario observed beside its figures (counters of the tools measured), for --json. */
  readonly details: Array<{ name: string; data: Record<string, unknown> }> = [];

  skip(scenario: string, reason: string): void {
    this.skipped.push({ scenario, reason });
    console.error(`\n!!!!! SKIPPING bench "${scenario}": ${reason} !!!!!\n`);
  }

  add(name: string, value: FigureValue, unit = '', significant?: number): void {
    const v = typeof value === 'number' ? round(value, significant) : value;
    this.list.push({ name, value: v, unit });
    console.log(`${name} = ${v}${unit ? ` ${unit}` : ''}`);
  }

  /** A comment line ("# text") for the reader; with `data` also kept in the --json output's details. */
  note(text: string, name?: string, data?: Record<string, unknown>): void {
    console.log(`# ${text}`);
    if (name && data) this.details.push({ name, data });
  }
}
