/**
 * A `map`'s join, by reference: the parent's record counts its items' answers but keeps none of
 * their results, so the write of each batch of answers does not grow with the map. When a batch
 * completes a join, the engine reads every item's result from the items' own records (each is an
 * execution, ended before it answered) and hands them to the answers of that batch
 * (`ItemDone.results`), which the machine turns into the step's output. Pure: the orchestrator and
 * the conformance suite's simulator do the reading, each from its own store.
 *
 * The items' records do not change once ended, so applying the batch again (after a lost
 * compare-and-set, or a crash) reads the same results and gives the same output.
 */
import type { Json } from "../workflow/definition.ts";
import type { MachineContext } from "../workflow/compile/machine-types.ts";
import type { EngineEvent } from "./engine-events.ts";
import type { ExecutionRecord } from "./execution-record.ts";
import { itemExecutionId } from "./ids.ts";

export interface Join {
  step: string;
  run: number;
  /** How many items the map has: their ids are `itemExecutionId(parent, step, run, 0..items-1)`. */
  items: number;
}

const joinKey = (step: string, run: number) => `${step}#${run}`;

/**
 * The joins that `events`, applied to `record` in order, complete: the maps whose answers so far
 * plus this batch's new answers (an item still out, each once) make all their items. Maps begun
 * by an earlier version, which keep results as they come, need nothing.
 */
export function joinsCompleted(record: ExecutionRecord, events: readonly EngineEvent[]): Join[] {
  const maps = (record.snapshot.context as unknown as Partial<MachineContext>).maps ?? {};
  const answered = new Map<string, Set<number>>();
  for (const event of events) {
    if (event.type !== "item.done") continue;
    const { step, run, index } = event as unknown as { step: string; run: number; index: number };
    const progress = maps[step];
    if (!progress || progress.results || progress.run !== run || !progress.outstanding.includes(index))
      continue;
    const key = joinKey(step, run);
    const indices = answered.get(key) ?? new Set<number>();
    indices.add(index);
    answered.set(key, indices);
  }
  const joins: Join[] = [];
  for (const [step, progress] of Object.entries(maps)) {
    const count = answered.get(joinKey(step, progress.run))?.size ?? 0;
    if (count > 0 && progress.done + count === progress.items.length)
      joins.push({ step, run: progress.run, items: progress.items.length });
  }
  return joins;
}

/** The ids of a join's items, in item order. */
export const joinItems = (parent: string, join: Join): string[] =>
  Array.from({ length: join.items }, (_, index) => itemExecutionId(parent, join.step, join.run, index));

/** What an ended item contributes to its map's output: its output, or `null` when it failed. */
export function itemResult(item: ExecutionRecord): Json {
  return item.status === "succeeded" ? (item.output ?? null) : null;
}

/** `events` with the join's results on the answers that belong to it. */
export function withJoinResults(
  events: readonly EngineEvent[],
  results: ReadonlyMap<string, Json[]>,
): EngineEvent[] {
  if (results.size === 0) return [...events];
  return events.map((event) => {
    if (event.type !== "item.done") return event;
    const { step, run } = event as unknown as { step: string; run: number };
    const gathered = results.get(joinKey(step, run));
    return gathered ? { ...event, results: gathered } : event;
  });
}

/** The key `withJoinResults` finds a join's results under. */
export const resultsKey = (join: Join) => joinKey(join.step, join.run);
