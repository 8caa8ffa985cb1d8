/** Scenarios of design/benchmarks.md that cannot be measured yet: listed in the table, never faked. */
import type { Scenario } from "../lib/scenario.ts";

function notMeasured(name: string, summary: string, target: string, reason: string): Scenario {
  return {
    name,
    summary,
    run: () => Promise.resolve([{ scenario: name, target, met: "not measured", notes: [reason] }]),
  };
}

export const starts = notMeasured(
  "starts",
  "sustained executions started per second over HTTP (202 returned), with p99 start latency",
  "≥ 2,000/s with p99 ≤ 10 ms",
  "needs the HTTP API, which does not exist yet",
);
