/**
 * The effect ledger: one KV entry per effect step run (its idempotency key), recording every
 * attempt and, once the step has completed, its output. A completed effect is never dispatched
 * again: the engine answers from the ledger instead.
 */
import type { KV } from "nats";
import type { Json } from "../workflow/definition.ts";
import type { StepError } from "../errors.ts";

export interface LedgerAttempt {
  attempt: number;
  dispatchedAt: string;
  worker?: string;
  outcome?: "succeeded" | "failed";
  error?: StepError;
  endedAt?: string;
}

export interface LedgerEntry {
  idempotencyKey: string;
  execution: string;
  step: string;
  completed: boolean;
  output?: Json;
  attempts: LedgerAttempt[];
}

/** KV keys cannot hold `:`; idempotency keys are `<execution>/<step>/<run>`, which maps to a key as is. */
const keyOf = (idempotencyKey: string) => idempotencyKey.replaceAll("/", ".");

export class EffectLedger {
  constructor(private readonly kv: KV) {}

  async get(idempotencyKey: string): Promise<LedgerEntry | undefined> {
    const entry = await this.kv.get(keyOf(idempotencyKey));
    return entry && entry.operation === "PUT" ? entry.json<LedgerEntry>() : undefined;
  }

  /** Applies a change with compare-and-set, retrying when another writer got there first. */
  async change(
    idempotencyKey: string,
    seed: Omit<LedgerEntry, "attempts" | "completed">,
    edit: (entry: LedgerEntry) => void,
  ) {
    const key = keyOf(idempotencyKey);
    for (;;) {
      const current = await this.kv.get(key);
      const entry: LedgerEntry =
        current && current.operation === "PUT"
          ? current.json<LedgerEntry>()
          : { ...seed, completed: false, attempts: [] };
      edit(entry);
      try {
        if (current && current.operation === "PUT")
          await this.kv.update(key, JSON.stringify(entry), current.revision);
        else await this.kv.create(key, JSON.stringify(entry));
        return entry;
      } catch (error) {
        if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
      }
    }
  }
}
