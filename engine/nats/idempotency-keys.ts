/**
 * Idempotency keys of starts (`Idempotency-Key` on `POST /v1/workflows/{name}/executions`), in
 * the KV bucket `baton_idempotency`: `<workflow>.<sha256 of the key>` → the execution the first
 * request started. The entry is written with `create` (a compare-and-set on "no entry yet"), so
 * of any number of requests with one key for one workflow, exactly one claims it. Entries expire
 * with the bucket's TTL, set when the bucket is first created.
 */
import { openBucket } from "../../sdk/replication.ts";
import { createHash } from "node:crypto";
import { StorageType, type JetStreamClient, type KV } from "nats";

export const idempotencyBucket = "baton_idempotency";

export interface IdempotencyEntry {
  execution: string;
  workflow: string;
  revision: number;
  /** Epoch ms of the claim. */
  claimedAt: number;
}

export type Claim = { claimed: true } | { claimed: false; first: IdempotencyEntry };

export class IdempotencyKeys {
  private constructor(private readonly kv: KV) {}

  static async open(js: JetStreamClient, ttlMs: number): Promise<IdempotencyKeys> {
    return new IdempotencyKeys(
      await openBucket(js, idempotencyBucket, { history: 1, storage: StorageType.File, ttl: ttlMs }),
    );
  }

  /** Any text may be a key: it is hashed, so what lands in the KV key is always safe. */
  static entryKey(workflow: string, key: string): string {
    return `${workflow}.${createHash("sha256").update(key).digest("hex")}`;
  }

  /** Claims the key for `entry.execution`, or says which execution claimed it first. */
  async claim(key: string, entry: IdempotencyEntry): Promise<Claim> {
    const name = IdempotencyKeys.entryKey(entry.workflow, key);
    for (;;) {
      try {
        await this.kv.create(name, JSON.stringify(entry));
        return { claimed: true };
      } catch (error) {
        if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
      }
      const existing = await this.kv.get(name);
      // Gone between our create and our read (expired, or purged): claim it again.
      if (existing && existing.operation === "PUT") return { claimed: false, first: existing.json() };
    }
  }
}
