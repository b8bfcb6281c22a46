// The bench's output: one line per figure ("name = value unit") as it is measured, and the same list for --json.

export type FigureValue = number | string | boolean;

export interface Figure {
  name: string;
  value: FigureValue;
  unit: string;
}

/** Rounds for reading: whole numbers from 100 up, three decimals below. */
function round(v: number): number {
  return Math.abs(v) >= 100 ? Math.round(v) : Number(v.toFixed(3));
}

export class Figures {
  readonly list: Figure[] = [];
  /** Scenarios that could not run here, with the reason. */
  readonly skipped: Array<{ scenario: string; reason: string }> = [];

  skip(scenario: string, reason: string): void {
    this.skipped.push({ scenario, reason });
    console.error(`\n!!!!! SKIPPING bench "${scenario}": ${reason} !!!!!\n`);
  }

  add(name: string, value: FigureValue, unit = ''): void {
    const v = typeof value === 'number' ? round(value) : value;
    this.list.push({ name, value: v, unit });
    console.log(`${name} = ${v}${unit ? ` ${unit}` : ''}`);
  }
}
