// `npm run bench -- [scenario...] [--quick] [options]`: runs the benchmarks of
// design/benchmarks.md, prints the table and records the results under bench/results/.
import { join } from "node:path";
import { collectEnvironment, durabilityNote } from "./lib/environment.ts";
import { parseOptions, usage, UsageError, type BenchOptions } from "./lib/options.ts";
import { assertBuilt, repoRoot } from "./lib/processes.ts";
import { formatTable, writeResults } from "./lib/report.ts";
import type { BenchContext, Row, Scenario } from "./lib/scenario.ts";
import { scenarios } from "./scenarios/index.ts";

/** The scenarios named (all when none is), with what they require, in the registry's order. */
function select(names: readonly string[]): Scenario[] {
  const byName = new Map(scenarios.map((scenario) => [scenario.name, scenario]));
  const chosen = new Set<string>();
  const add = (name: string): void => {
    const scenario = byName.get(name);
    if (scenario === undefined)
      throw new UsageError(
        `no scenario named "${name}"; the scenarios are: ${[...byName.keys()].join(", ")}`,
      );
    if (chosen.has(name)) return;
    chosen.add(name);
    for (const required of scenario.requires ?? []) add(required);
  };
  for (const name of names.length === 0 ? byName.keys() : names) add(name);
  return scenarios.filter((scenario) => chosen.has(scenario.name));
}

async function runAll(options: BenchOptions): Promise<number> {
  const selected = select(options.scenarios);
  assertBuilt();
  const environment = collectEnvironment();
  const log = (message: string): void => void process.stderr.write(`[bench] ${message}\n`);
  const rows = new Map<string, Row>();
  const context: BenchContext = { options, rows, log };
  const started = Date.now();
  log(
    `${environment.machine.cpuModel}, ${environment.machine.cores} cores; node ${environment.node}; ` +
      `nats-server ${environment.natsServer} (cluster: ${environment.natsClusterServer}); commit ${environment.commit}; load ${environment.machine.loadAverage.join(" / ")}`,
  );
  for (const scenario of selected) {
    const scenarioStarted = Date.now();
    log(`${scenario.name}: ${scenario.summary}`);
    let produced: Row[];
    try {
      produced = await scenario.run(context);
    } catch (error) {
      log(
        `${scenario.name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
      produced = [
        {
          scenario: scenario.name,
          target: "",
          met: "error",
          notes: [`failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`],
        },
      ];
    }
    for (const row of produced) rows.set(row.scenario, row);
    log(`${scenario.name}: done in ${((Date.now() - scenarioStarted) / 1_000).toFixed(1)} s`);
  }
  const all = [...rows.values()];
  process.stdout.write(`\n${formatTable(all)}\n\n`);
  for (const row of all)
    if (row.notes.length > 0) process.stdout.write(`- ${row.scenario}: ${row.notes.join("; ")}\n`);
  process.stdout.write(`\n${durabilityNote}\n`);
  if (!options.dryRun) {
    const paths = writeResults(options.resultsDir ?? join(repoRoot, "bench/results"), {
      environment,
      command: ["npm run bench", ...(process.argv.length > 2 ? ["--", ...process.argv.slice(2)] : [])].join(
        " ",
      ),
      quick: options.quick,
      durationS: (Date.now() - started) / 1_000,
      rows: all,
    });
    process.stdout.write(`\nresults: ${paths.json}, ${paths.markdown}\n`);
  }
  // A scenario that broke is an error; a target missed is a result, not a failure.
  return all.some((row) => row.met === "error") ? 1 : 0;
}

async function main(argv: readonly string[]): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseOptions(argv);
    if (options.help) {
      process.stdout.write(
        `${usage}\nScenarios:\n${scenarios.map((s) => `  ${s.name.padEnd(14)} ${s.summary}`).join("\n")}\n`,
      );
      return 0;
    }
    select(options.scenarios);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${usage}`);
    return 2;
  }
  return runAll(options);
}

// Exit explicitly: a helper left behind must not keep the run alive.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
