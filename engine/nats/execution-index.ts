/**
 * The index of top-level executions, the KV bucket `baton_execution_index`: one key per
 * top-level execution (its id; the value is its workflow's name), written before the record is
 * created and erased with it at retention. Listing reads these keys only, not the keys of
 * `baton_executions`, which also hold every `map` item and child execution and the chunks of
 * large records. Execution ids begin with a base36 timestamp (`x<ms36><random>`, see
 * orchestrator/ids.ts), so sorting the keys sorts by start time.
 *
 * An installation whose records predate the index gets it filled once, from the records' keys,
 * by the first process to open it (the key {@link filledKey} says it is done).
 */
import { listKeys } from "./kv-keys.ts";
import { openBucket } from "../../sdk/replication.ts";
import { StorageType, type JetStreamClient, type KV } from "nats";
import { eraseKeys } from "./kv-erase.ts";

export const executionIndexBucket = "baton_execution_index";

/** Item and child executions (ids with `_`) and chunks of large records (keys with `.`) are not top-level. */
export const isTopLevelKey = (key: string) => !key.includes(".") && !key.includes("_");

/** Set once the index holds every record that existed when it was created (not an execution id: it has `_`). */
const filledKey = "_filled";

export class ExecutionIndex {
  private constructor(readonly kv: KV) {}

  /** Opens (creating when missing) the index, and fills it from `executions` the first time. */
  static async open(js: JetStreamClient, executions: KV): Promise<ExecutionIndex> {
    const index = new ExecutionIndex(
      await openBucket(js, executionIndexBucket, { history: 1, storage: StorageType.File }),
    );
    if (!(await index.kv.get(filledKey))) {
      const ids = (await listKeys(executions)).filter(isTopLevelKey);
      for (const id of ids) await index.kv.put(id, "");
      await index.kv.put(filledKey, new Date().toISOString());
    }
    return index;
  }

  /** Lists a top-level execution (others are ignored). */
  async add(id: string, workflow = ""): Promise<void> {
    if (isTopLevelKey(id)) await this.kv.put(id, workflow);
  }

  async remove(id: string): Promise<void> {
    if (isTopLevelKey(id)) await eraseKeys(this.kv, id);
  }

  /** Top-level execution ids older than `before` (all of them without it), newest first. */
  async ids(before?: string): Promise<string[]> {
    const keys = await listKeys(this.kv);
    return keys.filter((key) => isTopLevelKey(key) && (before === undefined || key < before)).reverse();
  }
}
