/**
 * Reading and changing the effect ledger (see `EffectLedgerEntry` in protocol.ts). The engine
 * records dispatches and outcomes here; workers read it before running an effect and record a
 * completion before reporting it. Every change is a compare-and-set, retried on a race.
 */
import type { KV } from "nats";
import { effectLedgerKey, type EffectLedgerEntry } from "./protocol.ts";

export class EffectLedger {
  constructor(private readonly kv: KV) {}

  async get(idempotencyKey: string): Promise<EffectLedgerEntry | undefined> {
    const entry = await this.kv.get(effectLedgerKey(idempotencyKey));
    return entry && entry.operation === "PUT" ? entry.json<EffectLedgerEntry>() : undefined;
  }

  /** Applies `edit` to the entry (a fresh one, from `seed`, when there is none yet) and stores it. */
  async change(
    idempotencyKey: string,
    seed: Pick<EffectLedgerEntry, "execution" | "step">,
    edit: (entry: EffectLedgerEntry) => void,
  ): Promise<EffectLedgerEntry> {
    const key = effectLedgerKey(idempotencyKey);
    for (;;) {
      const current = await this.kv.get(key);
      const exists = current !== null && current.operation === "PUT";
      const entry: EffectLedgerEntry = exists
        ? current.json<EffectLedgerEntry>()
        : { idempotencyKey, ...seed, completed: false, attempts: [] };
      edit(entry);
      try {
        if (exists) await this.kv.update(key, JSON.stringify(entry), current.revision);
        else await this.kv.create(key, JSON.stringify(entry));
        return entry;
      } catch (error) {
        if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
      }
    }
  }

  /** Records that `attempt` of the step run completed with `output` (the first completion wins). */
  async complete(
    idempotencyKey: string,
    seed: Pick<EffectLedgerEntry, "execution" | "step">,
    attempt: { attempt: number; worker?: string; output: EffectLedgerEntry["output"] },
  ): Promise<EffectLedgerEntry> {
    const now = new Date().toISOString();
    return this.change(idempotencyKey, seed, (entry) => {
      let record = entry.attempts.find((candidate) => candidate.attempt === attempt.attempt);
      if (!record) {
        record = { attempt: attempt.attempt, dispatchedAt: now };
        entry.attempts.push(record);
      }
      if (attempt.worker) record.worker = attempt.worker;
      record.outcome = "succeeded";
      record.endedAt = now;
      if (!entry.completed) {
        entry.completed = true;
        entry.output = attempt.output ?? null;
      }
    });
  }
}
