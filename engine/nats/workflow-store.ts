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

/** What `<name>` holds once the workflow is deleted: its revisions stay, and so does their numbering. */
interface Tombstone {
  name: string;
  deleted: true;
  revision: number;
}

const isTombstone = (value: StoredWorkflow | Tombstone): value is Tombstone => "deleted" in value;

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
      const head = entry && entry.operation === "PUT" ? entry.json<StoredWorkflow | Tombstone>() : undefined;
      const latest = head && !isTombstone(head) ? head : undefined;
      if (latest?.hash === hash) return { workflow: latest, outcome: "unchanged" };
      const workflow: StoredWorkflow = {
        name: definition.name,
        // After a delete, numbering goes on: revision N of a name always means the same document.
        revision: (head?.revision ?? 0) + 1,
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
    if (!entry || entry.operation !== "PUT") return undefined;
    const value = entry.json<StoredWorkflow | Tombstone>();
    return isTombstone(value) ? undefined : value;
  }

  /** Deletes a workflow: it can no longer be started; its revisions stay for the executions on them. */
  async remove(name: string): Promise<void> {
    const latest = await this.get(name);
    if (!latest) return;
    const tombstone: Tombstone = { name, deleted: true, revision: latest.revision };
    await this.kv.put(name, JSON.stringify(tombstone));
  }
}
