/**
 * HTTP load with autocannon, run as a process of its own (its CPU is measured like the others').
 * autocannon is not a dependency of Baton: bench/load/setup.sh installs it into
 * bench/load/node_modules from bench/load/package-lock.json (`npm run bench` runs it first).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { reapedChildrenCpuSeconds, startCpuMeter, type CpuShares } from "./cpu.ts";
import { spawnProcess } from "../../test/helpers/processes.ts";
import { repoRoot } from "./processes.ts";
import { now, type Summary } from "./stats.ts";

const autocannon = join(repoRoot, "bench/load/node_modules/autocannon/autocannon.js");

export const loadGeneratorInstalled = (): boolean => existsSync(autocannon);

export interface LoadOptions {
  readonly url: string;
  /** The request body, sent as `application/json`. */
  readonly body: string;
  readonly connections: number;
  readonly seconds: number;
  /** Processes whose CPU is measured over the run, by name (autocannon's is added as `autocannon`). */
  readonly pids: Readonly<Record<string, number>>;
}

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** autocannon's latency percentiles of the 2xx answers, in whole milliseconds (its histogram's resolution). */
  readonly latency: Summary;
  /** Answers by HTTP status. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Answers other than 202, plus requests that got none (errors, timeouts among them). */
  readonly not202: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly cpu: CpuShares;
}

interface AutocannonJson {
  duration: number;
  errors: number;
  timeouts: number;
  statusCodeStats?: Record<string, { count: number }>;
  latency: {
    p50: number;
    p90: number;
    p99: number;
    min: number;
    max: number;
    mean: number;
    totalCount: number;
  };
}

/** POSTs `body` to `url` for `seconds` and reports what autocannon saw. */
export async function postLoad(options: LoadOptions): Promise<LoadResult> {
  const args = [
    autocannon,
    "--json",
    "--method",
    "POST",
    "--headers",
    "content-type=application/json",
    "--body",
    options.body,
    "--connections",
    String(options.connections),
    "--duration",
    String(options.seconds),
    options.url,
  ];
  const cpu = startCpuMeter(options.pids);
  const reapedBefore = reapedChildrenCpuSeconds();
  const startedAt = now();
  const generator = spawnProcess(process.execPath, args, { name: "autocannon", maxLines: 100 });
  const exit = await generator.waitForExit((options.seconds + 60) * 1_000);
  const shares = cpu();
  // Its /proc entry is gone once it has exited: its CPU is what this process's reaped children used.
  shares.autocannon = (100 * (reapedChildrenCpuSeconds() - reapedBefore)) / ((now() - startedAt) / 1_000);
  if (exit.code !== 0) throw new Error(`autocannon exited with ${exit.code}: ${generator.stderr()}`);
  const result = JSON.parse(generator.stdout()) as AutocannonJson;
  const statuses = Object.fromEntries(
    Object.entries(result.statusCodeStats ?? {}).map(([status, { count }]) => [status, count]),
  );
  const answered = Object.values(statuses).reduce((sum, count) => sum + count, 0);
  const { latency } = result;
  return {
    requests: answered,
    seconds: result.duration,
    perSecond: (statuses["202"] ?? 0) / result.duration,
    latency: {
      n: Object.entries(statuses)
        .filter(([status]) => status.startsWith("2"))
        .reduce((sum, [, count]) => sum + count, 0),
      p50: latency.p50,
      p90: latency.p90,
      p99: latency.p99,
      min: latency.min,
      max: latency.max,
      mean: latency.mean,
    },
    statuses,
    // autocannon counts a timeout as an error too.
    not202: answered - (statuses["202"] ?? 0) + result.errors,
    errors: result.errors,
    timeouts: result.timeouts,
    cpu: shares,
  };
}
