// A measurement printed under the running test's name, for whoever reads the run (never an assertion).

/** Writes `text` as a line indented under the current test's title. */
export function note(text: string): void {
  process.stdout.write(`        · ${text}\n`);
}
