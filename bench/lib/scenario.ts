/** What a scenario is and what it reports: one or more rows of the results table. */
import type { BenchOptions } from "./options.ts";
import type { Summary } from "./stats.ts";

/** Whether a row meets its target; `n/a` for rows without one (diagnostics, the floors). */
export const verdicts = ["yes", "no", "n/a", "not measured", "error"] as const;
export type Verdict = (typeof verdicts)[number];

export interface Row {
  readonly scenario: string;
  /** Latency percentiles in milliseconds, when the row measures a latency. */
  readonly latency?: Summary;
  /** A rate, already formatted with its unit ("5,120 steps/s"). */
  readonly throughput?: string;
  /** Other measured values, formatted with their units ("RSS 212 MB"). */
  readonly result?: string;
  readonly target: string;
  readonly met: Verdict;
  /** What a reader needs to interpret the row: how it was measured, what was cut short and why. */
  readonly notes: readonly string[];
  /** Raw numbers for the JSON file (ms, counts, bytes), beyond the latency summary. */
  readonly data?: Readonly<Record<string, number | string | boolean>>;
}

export interface BenchContext {
  readonly options: BenchOptions;
  /** Rows of the scenarios run so far, by row name: `overhead` reads `chain-10` and `floor.core`. */
  readonly rows: ReadonlyMap<string, Row>;
  /** Progress on stderr; the table goes to stdout. */
  readonly log: (message: string) => void;
}

export interface Scenario {
  readonly name: string;
  /** One line for `--help` and the README. */
  readonly summary: string;
  /** Scenarios whose rows this one reads; they run first, even when not named on the command line. */
  readonly requires?: readonly string[];
  run(context: BenchContext): Promise<Row[]>;
}

/** Picks the count for a quick smoke run or a full run. */
export function sized(options: BenchOptions, full: number, quick: number): number {
  return options.quick ? quick : full;
}

/** `yes` when every check holds, else `no`. */
export function verdict(...checks: boolean[]): Verdict {
  return checks.every(Boolean) ? "yes" : "no";
}
