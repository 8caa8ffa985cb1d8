/**
 * Workflow definitions in the KV bucket `baton_workflows`: `<name>` holds the latest revision,
 * `<name>.r<revision>` every revision, so an execution always runs the revision it started with.
 * Submitting an identical document keeps its revision.
 */
import { createHash } from "node:crypto";
import type { KV } from "nats";
import type { WorkflowDefinition } from "../workflow/definition.ts";

export interface StoredWorkflow {
  name: string;
  revision: number;
  /** The document as submitted (YAML or JSON text). */
  source: string;
  definition: WorkflowDefinition;
  /** sha256 of the canonical definition: equal documents are one revision. */
  hash: string;
  updatedAt: string;
}

export type PutOutcome = "created" | "updated" | "unchanged";

const revisionKey = (name: string, revision: number) => `${name}.r${revision}`;

export class WorkflowStore {
  constructor(private readonly kv: KV) {}

  /** Stores a checked definition; retries its compare-and-set when another writer raced it. */
  async put(
    definition: WorkflowDefinition,
    source: string,
  ): Promise<{ workflow: StoredWorkflow; outcome: PutOutcome }> {
    const hash = createHash("sha256").update(JSON.stringify(definition)).digest("hex");
    for (;;) {
      const entry = await this.kv.get(definition.name);
      const latest = entry && entry.operation === "PUT" ? entry.json<StoredWorkflow>() : undefined;
      if (latest?.hash === hash) return { workflow: latest, outcome: "unchanged" };
      const workflow: StoredWorkflow = {
        name: definition.name,
        revision: (latest?.revision ?? 0) + 1,
        source,
        definition,
        hash,
        updatedAt: new Date().toISOString(),
      };
      const bytes = JSON.stringify(workflow);
      // Revision entries first: once the head names a revision, that revision exists.
      await this.kv.put(revisionKey(workflow.name, workflow.revision), bytes);
      try {
        if (entry) await this.kv.update(definition.name, bytes, entry.revision);
        else await this.kv.create(definition.name, bytes);
        return { workflow, outcome: latest ? "updated" : "created" };
      } catch (error) {
        if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
      }
    }
  }

  async get(name: string, revision?: number): Promise<StoredWorkflow | undefined> {
    const entry = await this.kv.get(revision === undefined ? name : revisionKey(name, revision));
    return entry && entry.operation === "PUT" ? entry.json<StoredWorkflow>() : undefined;
  }

  async remove(name: string): Promise<void> {
    await this.kv.delete(name);
  }
}
