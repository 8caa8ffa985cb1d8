/** The command line of `npm run bench -- [scenario...] [--quick] [--flag value...]`. */

export interface BenchOptions {
  /** Scenario names as given; empty means all. */
  readonly scenarios: readonly string[];
  /** Small counts: a smoke run of a minute or two, not numbers to quote. */
  readonly quick: boolean;
  /** Executions parked by `waiting-100k`. */
  readonly waitingCount: number;
  /** Longest time `waiting-100k` spends starting executions before it stops and reports what fit. */
  readonly waitingBudgetMs: number;
  /** Executions in flight when `recovery` kills the engine. */
  readonly recoveryCount: number;
  /** Write a V8 CPU profile of every engine process (node --cpu-prof) to this directory. */
  readonly profileDir: string | undefined;
  /** Profile the worker processes too (their isolate threads each write a profile, and slow down a lot). */
  readonly profileWorkers: boolean;
  /** Where results go (default bench/results). */
  readonly resultsDir: string | undefined;
  /** Worker processes serving `noop` in the scenarios that run noop chains and maps. */
  readonly workers: number;
  /** Skip writing bench/results files (for trying things out). */
  readonly dryRun: boolean;
  readonly help: boolean;
}

export class UsageError extends Error {
  override name = "UsageError";
}

export const usage = `Usage: npm run bench -- [scenario...] [options]

Runs every scenario (or the ones named), prints a table and writes bench/results/<date>.json and .md.

Options:
  --quick                 small counts: a smoke run, not numbers to quote
  --waiting <n>           executions parked by waiting-100k (default 100000; --quick 2000)
  --waiting-budget <s>    stop starting waiting-100k executions after this many seconds (default 180)
  --recovery <n>          executions in flight when recovery kills the engine (default 2000)
  --workers <n>           worker processes serving noop (default 1)
  --profile <dir>         write CPU profiles of the engine processes to <dir>/<scenario>/<process>
  --profile-workers       with --profile: profile the workers too (much slower: every isolate thread is profiled)
  --results <dir>         where to write the results (default bench/results)
  --dry-run               print the table, write no results files
  --help                  this text and the list of scenarios
`;

export function parseOptions(argv: readonly string[]): BenchOptions {
  const scenarios: string[] = [];
  let quick = false;
  let waitingCount: number | undefined;
  let waitingBudgetMs = 180_000;
  let recoveryCount = 2_000;
  let profileDir: string | undefined;
  let profileWorkers = false;
  let resultsDir: string | undefined;
  let workers = 1;
  let dryRun = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined || next.startsWith("--")) throw new UsageError(`${arg} needs a value`);
      return next;
    };
    switch (arg) {
      case "--quick":
        quick = true;
        break;
      case "--waiting":
        waitingCount = positiveInteger(arg, value());
        break;
      case "--waiting-budget":
        waitingBudgetMs = positiveInteger(arg, value()) * 1_000;
        break;
      case "--recovery":
        recoveryCount = positiveInteger(arg, value());
        break;
      case "--workers":
        workers = positiveInteger(arg, value());
        break;
      case "--profile":
        profileDir = value();
        break;
      case "--profile-workers":
        profileWorkers = true;
        break;
      case "--results":
        resultsDir = value();
        break;
      case "--dry-run":
        dryRun = true;
        break;
      case "--help":
      case "-h":
        help = true;
        break;
      default:
        if (arg.startsWith("-")) throw new UsageError(`unknown option ${arg}`);
        scenarios.push(arg);
    }
  }
  return {
    scenarios,
    quick,
    waitingCount: waitingCount ?? (quick ? 2_000 : 100_000),
    waitingBudgetMs,
    recoveryCount: quick && !argv.includes("--recovery") ? 300 : recoveryCount,
    profileDir,
    profileWorkers,
    resultsDir,
    workers,
    dryRun,
    help,
  };
}

function positiveInteger(flag: string, text: string): number {
  const value = Number(text.replaceAll("_", ""));
  if (!Number.isSafeInteger(value) || value < 1)
    throw new UsageError(`${flag} takes a whole number of at least 1, not "${text}"`);
  return value;
}
