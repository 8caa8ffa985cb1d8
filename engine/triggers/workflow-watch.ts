/**
 * Following the submitted workflows, for the trigger sources that arm themselves from them
 * (schedules, queues): every head of the workflows KV (`<name>`, not the revisions
 * `<name>.r<n>`) as it is now, then every change, with a deleted or tombstoned workflow given as
 * `undefined`.
 */
import type { KV, KvEntry, QueuedIterator } from "nats";
import type { StoredWorkflow } from "../nats/workflow-store.ts";
import type { Logger } from "../orchestrator/orchestrator.ts";

export interface WorkflowWatch {
  stop(): Promise<void>;
}

/** Resolves once `onChange` has seen every workflow submitted so far. */
export async function watchWorkflows(
  workflows: KV,
  onChange: (name: string, workflow: StoredWorkflow | undefined) => void,
  log: Logger,
): Promise<WorkflowWatch> {
  let initialized!: () => void;
  const ready = new Promise<void>((resolve) => (initialized = resolve));
  // `*`: one token, the heads; workflow names hold no dots.
  const watch: QueuedIterator<KvEntry> = await workflows.watch({
    key: "*",
    initializedFn: () => initialized(),
  });
  const following = (async () => {
    for await (const entry of watch) {
      try {
        const value =
          entry.operation === "PUT" ? entry.json<StoredWorkflow | { deleted: true }>() : undefined;
        onChange(entry.key, value === undefined || "deleted" in value ? undefined : value);
      } catch (error) {
        log.error("could not follow a workflow change", { workflow: entry.key, error: String(error) });
      }
    }
  })();
  await ready;
  return {
    stop: async () => {
      watch.stop();
      await following;
    },
  };
}
