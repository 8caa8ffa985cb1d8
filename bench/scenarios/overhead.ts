/**
 * overhead: the engine's cost per step, (chain-10 − floor.core) / 10, computed percentile by
 * percentile from the two rows measured earlier in the same run.
 */
import { verdict, type Scenario } from "../lib/scenario.ts";
import { combinePercentiles } from "../lib/stats.ts";

export const overhead: Scenario = {
  name: "overhead",
  summary: "(chain-10 − floor.core) / 10: the engine's cost per step",
  requires: ["floor.core", "chain-10"],
  run({ rows }) {
    const chain = rows.get("chain-10")?.latency;
    const floor = rows.get("floor.core")?.latency;
    if (chain === undefined || floor === undefined)
      return Promise.reject(new Error("overhead needs the chain-10 and floor.core rows, and one is missing"));
    const latency = combinePercentiles(chain, floor, (c, f) => (c - f) / 10);
    return Promise.resolve([
      {
        scenario: "overhead",
        latency,
        target: "p50 ≤ 1 ms, p99 ≤ 4 ms",
        met: verdict(latency.p50 <= 1, latency.p99 <= 4),
        notes: [
          "per step: (chain-10 − floor.core) / 10 at each percentile (differences of percentiles, not " +
            "percentiles of differences: the two were measured apart)",
        ],
      },
    ]);
  },
};
