/**
 * The timer index's arithmetic (engine/orchestrator/timer-index.ts): a wake-up never waits in a
 * slot that is already promoted without being armed near as well.
 */
import { expect, it } from "vitest";
import { goesToIndex, promotableThrough, slotStart } from "../../engine/orchestrator/timer-index.ts";

const slotMs = 60_000;

it("sends a wake-up to the index only when its slot begins two slots after the one promotable now", () => {
  const now = Date.UTC(2026, 11, 7, 12, 0, 30);
  expect(promotableThrough(now, slotMs)).toBe(Date.UTC(2026, 11, 7, 12, 1));
  expect(goesToIndex(now + 10_000, now, slotMs)).toBe(false);
  expect(goesToIndex(Date.UTC(2026, 11, 7, 12, 2, 59), now, slotMs)).toBe(false);
  expect(goesToIndex(Date.UTC(2026, 11, 7, 12, 3), now, slotMs)).toBe(true);
  expect(goesToIndex(now + 86_400_000, now, slotMs)).toBe(true);
});

it("arms near whatever an arm completing after its slot's promotion holds", () => {
  // An arm decided at `armedAt` (index) whose publish completes at `doneAt`: if its slot was
  // promotable at any moment up to `doneAt`, the check after the publish must send it near too.
  const base = Date.UTC(2026, 11, 7, 12);
  for (let armedAt = base; armedAt < base + 3 * slotMs; armedAt += 7_919)
    for (let due = armedAt; due < armedAt + 6 * slotMs; due += 4_999) {
      if (!goesToIndex(due, armedAt, slotMs)) continue;
      for (let doneAt = armedAt; doneAt < armedAt + 6 * slotMs; doneAt += 3_001) {
        const promoted = slotStart(due, slotMs) <= promotableThrough(doneAt, slotMs);
        if (promoted) expect(goesToIndex(due, doneAt, slotMs)).toBe(false);
      }
    }
});
