/**
 * Workflow definitions in the KV bucket `baton_workflows`: `<name>` holds the latest revision,
 * `<name>.r<revision>` every revision, so an execution always runs the revision it started with.
 * Submitting an identical document keeps its revision.
 */
import { createHash } from "node:crypto";
import type { KV } from "nats";
import type { WorkflowDefinition } from "../workflow/definition.ts";
import { readPatienceMs, retryNats } from "../../sdk/nats-retry.ts";
import { eraseKeys } from "./kv-erase.ts";

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

  /**
   * Stores a checked definition. Both writes are compare-and-sets: the revision key is created
   * only if no other writer holds that number (else the next number is tried), and the head moves
   * only from the entry this writer read (else it starts again from the new head). So a caller's
   * revision always holds its own document, even with many engines submitting under one name.
   */
  async put(
    definition: WorkflowDefinition,
    source: string,
  ): Promise<{ workflow: StoredWorkflow; outcome: PutOutcome }> {
    const hash = createHash("sha256").update(JSON.stringify(definition)).digest("hex");
    for (;;) {
      const entry = await retryNats(() => this.kv.get(definition.name));
      const head = entry && entry.operation === "PUT" ? entry.json<StoredWorkflow | Tombstone>() : undefined;
      const latest = head && !isTombstone(head) ? head : undefined;
      if (latest?.hash === hash) return { workflow: latest, outcome: "unchanged" };
      const base = { name: definition.name, source, definition, hash, updatedAt: new Date().toISOString() };
      // After a delete, numbering goes on: revision N of a name always means the same document.
      let revision = (head?.revision ?? 0) + 1;
      // Revision entries first: once the head names a revision, that revision exists.
      while (!(await this.createKey(revisionKey(base.name, revision), JSON.stringify({ ...base, revision }))))
        revision += 1;
      const workflow: StoredWorkflow = { ...base, revision };
      const bytes = JSON.stringify(workflow);
      if (await this.moveHead(definition.name, bytes, entry?.revision)) {
        return { workflow, outcome: latest ? "updated" : "created" };
      }
      // Another writer moved the head first. This number was never named by a head, so no
      // execution can run it: erase it (best effort, no marker left) and try again from the new head.
      await eraseKeys(this.kv, revisionKey(base.name, revision)).catch(() => undefined);
    }
  }

  async get(name: string, revision?: number): Promise<StoredWorkflow | undefined> {
    // Reads ride out a leader election (nats-retry.ts), as long as a client's read does.
    const entry = await retryNats(
      () => this.kv.get(revision === undefined ? name : revisionKey(name, revision)),
      { patienceMs: readPatienceMs },
    );
    if (!entry || entry.operation !== "PUT") return undefined;
    const value = entry.json<StoredWorkflow | Tombstone>();
    return isTombstone(value) ? undefined : value;
  }

  /**
   * Deletes a workflow: it can no longer be started; its revisions stay for the executions on
   * them. The tombstone replaces exactly the head it was read from, so it always carries the
   * highest number given out and numbering after it never reuses one.
   */
  async remove(name: string): Promise<void> {
    for (;;) {
      const entry = await retryNats(() => this.kv.get(name));
      if (!entry || entry.operation !== "PUT") return;
      const head = entry.json<StoredWorkflow | Tombstone>();
      if (isTombstone(head)) return;
      const tombstone: Tombstone = { name, deleted: true, revision: head.revision };
      if (await this.moveHead(name, JSON.stringify(tombstone), entry.revision)) return;
    }
  }

  /** Creates a key that must not exist yet; `false` when another writer has it. */
  private async createKey(key: string, bytes: string): Promise<boolean> {
    try {
      await this.kv.create(key, bytes);
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }

  /** Replaces the head read at `previous` (or creates it when there was none); `false` when it moved. */
  private async moveHead(name: string, bytes: string, previous: number | undefined): Promise<boolean> {
    if (previous === undefined) return this.createKey(name, bytes);
    try {
      await this.kv.update(name, bytes, previous);
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }
}

const isConflict = (error: unknown) => /wrong last sequence|key exists/i.test(String(error));
