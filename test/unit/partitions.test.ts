/**
 * Partitions (sdk/protocol.ts `partitionOf`): stable, as docs/protocol.md gives them, and spread
 * evenly enough that engines get an even share of the work.
 */
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { partitionOf, subjects } from "../../sdk/protocol.ts";

it("puts an execution in the partition the protocol page names, on the subjects it names", () => {
  const page = readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8");
  expect(page).toContain(`"reply": "${subjects.result("ex-01J9Z6", 16)}"`);
  expect(page).toContain("`ex-01J9Z6` falls in\npartition 13 of 16");
  expect(partitionOf("ex-01J9Z6", 16)).toBe(13);
  expect(subjects.events("ex-01J9Z6", 16)).toBe("baton.events.p.13.ex-01J9Z6");
});

it("spreads generated execution ids evenly over the partitions", () => {
  const partitions = 16;
  const counts = new Array<number>(partitions).fill(0);
  for (let i = 0; i < 16_000; i++) counts[partitionOf(newExecutionId(), partitions)]! += 1;
  // 1,000 each on average; a partition with under 800 or over 1,200 would be a skewed hash.
  expect(Math.min(...counts)).toBeGreaterThan(800);
  expect(Math.max(...counts)).toBeLessThan(1_200);
});
