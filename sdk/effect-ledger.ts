/**
 * Reading and changing the effect ledger (see `EffectLedgerEntry` in protocol.ts). The engine
 * records dispatches and outcomes here; workers read it before running an effect and record a
 * completion before reporting it. Every change is a compare-and-set, retried on a race.
 */
import { retryNats } from "./nats-retry.ts";
import type { KV } from "nats";
import { effectLedgerKey, type EffectLedgerEntry } from "./protocol.ts";

export type ClaimVerdict = "run" | "duplicate" | "completed" | { held: string };

export class EffectLedger {
  constructor(private readonly kv: KV) {}

  async get(idempotencyKey: string): Promise<EffectLedgerEntry | undefined> {
    const entry = await retryNats(() => this.kv.get(effectLedgerKey(idempotencyKey)));
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
      const current = await retryNats(() => this.kv.get(key));
      const exists = current !== null && current.operation === "PUT";
      const entry: EffectLedgerEntry = exists
        ? current.json<EffectLedgerEntry>()
        : { idempotencyKey, ...seed, completed: false, attempts: [] };
      edit(entry);
      try {
        // A repeat of a write that landed fails the compare: read again, as after a race.
        if (exists) await retryNats(() => this.kv.update(key, JSON.stringify(entry), current.revision));
        else await retryNats(() => this.kv.create(key, JSON.stringify(entry)));
        return entry;
      } catch (error) {
        if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
      }
    }
  }

  /**
   * Claims `attempt` for the task message `taskSeq` (its sequence in the tasks stream) before the
   * effect runs. Another copy of the same attempt (an engine resent the task after JetStream's
   * duplicate window) is a `duplicate`: the claim's holder reports. The same message delivered
   * again while another worker holds the claim is `held` by that worker: the caller runs it only
   * when that worker is gone (`takeOver`: the holder found gone). A completed entry answers `completed`.
   */
  async claim(
    idempotencyKey: string,
    seed: Pick<EffectLedgerEntry, "execution" | "step">,
    attempt: { attempt: number; worker: string; taskSeq: number },
    options: { takeOver?: string } = {},
  ): Promise<ClaimVerdict> {
    let verdict: ClaimVerdict = "run";
    const now = new Date().toISOString();
    await this.change(idempotencyKey, seed, (entry) => {
      verdict = "run";
      if (entry.completed) {
        verdict = "completed";
        return;
      }
      let record = entry.attempts.find((candidate) => candidate.attempt === attempt.attempt);
      if (!record) {
        record = { attempt: attempt.attempt, dispatchedAt: now };
        entry.attempts.push(record);
      }
      if (record.taskSeq !== undefined && record.taskSeq !== attempt.taskSeq) {
        verdict = "duplicate";
        return;
      }
      const holder = record.taskSeq === undefined ? undefined : record.worker;
      // A take-over replaces only the holder that was found gone: another worker that took it
      // over meanwhile holds it now.
      if (holder !== undefined && holder !== attempt.worker && holder !== options.takeOver) {
        verdict = { held: holder };
        return;
      }
      record.taskSeq = attempt.taskSeq;
      record.worker = attempt.worker;
    });
    return verdict;
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
