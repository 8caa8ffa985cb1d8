/**
 * Listing executions, newest first, from the keys of the `baton_executions` bucket. Execution
 * ids begin with a base36 timestamp (`x<ms36><random>`, see orchestrator/ids.ts), so sorting the
 * keys sorts by start time. Item and child executions (ids with `_`) and the chunks of large
 * records (keys with `.`) are not listed.
 *
 * Every page reads every key of the bucket: simple and correct, and cheap for the tens of
 * thousands of executions a retention window holds at the scale Baton runs today. A larger
 * installation wants an index kept by the engine (a KV of `<workflow>.<id>` entries, say).
 */
import type { KV } from "nats";

export const isTopLevelKey = (key: string) => !key.includes(".") && !key.includes("_");

/** Top-level execution ids older than `before` (all of them without it), newest first. */
export async function listExecutionIds(kv: KV, before?: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const key of await kv.keys()) {
    if (isTopLevelKey(key) && (before === undefined || key < before)) ids.push(key);
  }
  return ids.sort().reverse();
}
