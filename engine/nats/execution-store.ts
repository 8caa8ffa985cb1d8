/**
 * Execution records in the KV bucket `baton_executions`, written with a compare-and-set on the
 * entry's revision so two engine processes can never both advance one execution.
 *
 * Records larger than a NATS message may be are split: the chunks are written first under keys
 * unique to this write, then the head entry (which alone is compared-and-set) points at them. A
 * crash between the two leaves only orphan chunks, never a head pointing at missing data.
 *
 * Chunks do not outlive their use: once a head points at a new write, the chunks of the write it
 * replaced are erased, and so are those of a write whose compare-and-set lost. (Orphans a crash
 * leaves go with the record at retention, which erases every chunk of the execution.) Erasing is
 * a stream purge by subject, so no delete marker stays behind either (kv-erase.ts).
 */
import { retryNats } from "../../sdk/nats-retry.ts";
import { randomUUID } from "node:crypto";
import type { KV } from "nats";
import type { ExecutionIndex } from "./execution-index.ts";
import { eraseKeys } from "./kv-erase.ts";

/** Keep well under the server's default max payload of 1 MiB. */
const chunkBytes = 512 * 1024;

interface ChunkedHead {
  chunked: { write: string; count: number };
}

/** Anything stored per execution: the orchestrator's `ExecutionRecord`. */
export interface Keyed {
  id: string;
}

export interface StoredRecord<R extends Keyed> {
  record: R;
  revision: number;
}

export class RevisionConflict extends Error {
  override name = "RevisionConflict";
}

export class ExecutionStore<R extends Keyed> {
  /** The last record each execution had, as this process saw it. Bounded: oldest evicted first. */
  private readonly cache = new Map<string, StoredRecord<R>>();
  /** The chunk write a stored record's head points at (chunked records only). */
  private readonly writes = new WeakMap<StoredRecord<R>, string>();

  constructor(
    private readonly kv: KV,
    private readonly cacheSize: number,
    /** Where top-level executions are listed: entered before the record is created, erased with it. */
    private readonly index?: ExecutionIndex,
  ) {}

  /**
   * The record, from the cache unless `fresh`. `keep: false` reads without caching what it read
   * (a map's join reads every item's record once: they would push the executions being worked
   * on out of the cache).
   */
  async load(id: string, { fresh = false, keep = true } = {}): Promise<StoredRecord<R> | undefined> {
    if (!fresh) {
      const cached = this.cache.get(id);
      if (cached) return cached;
    }
    for (;;) {
      const entry = await retryNats(() => this.kv.get(id));
      if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
      const parsed = entry.json<R | ChunkedHead>();
      if (!("chunked" in parsed)) {
        const stored = { record: parsed, revision: entry.revision };
        return keep ? this.remember(id, stored, undefined) : stored;
      }
      const record = await this.readChunks(id, parsed.chunked);
      if (record && !keep) return { record, revision: entry.revision };
      if (record) return this.remember(id, { record, revision: entry.revision }, parsed.chunked.write);
      // A chunk is gone: a newer write replaced this head (and erased its chunks) while we read.
      // Read the new head; a head that has not moved means the chunk is lost for real.
      const now = await retryNats(() => this.kv.get(id));
      if (now?.revision === entry.revision)
        throw new Error(`execution ${id}: a chunk of write ${parsed.chunked.write} is missing`);
    }
  }

  /** Writes a new record; fails with {@link RevisionConflict} when the execution already exists. */
  async create(record: R): Promise<StoredRecord<R>> {
    // First: a record that exists is always listed (an entry whose create failed names the same id).
    await this.index?.add(record.id, (record as { workflow?: unknown }).workflow as string | undefined);
    const { payload, write } = await this.encode(record);
    try {
      // Not repeated after a timeout (idempotent: false): a create that landed but whose answer
      // was lost would come back as "wrong last sequence", and look like someone else's record.
      const revision = await retryNats(() => this.kv.create(record.id, payload), { idempotent: false });
      return this.remember(record.id, { record, revision }, write);
    } catch (error) {
      // Only a refused create leaves this write's chunks unnamed; after any other failure the
      // head may point at them (retention erases them if not).
      if (isWrongSequence(error)) await this.eraseWrite(record.id, write);
      if (isWrongSequence(error))
        throw new RevisionConflict(`execution ${record.id} already exists`, { cause: error });
      throw error;
    }
  }

  /** Replaces the record at `revision`; fails with {@link RevisionConflict} when someone else wrote first. */
  async update(record: R, revision: number): Promise<StoredRecord<R>> {
    const replaced = await this.writeAt(record.id, revision);
    const { payload, write } = await this.encode(record);
    try {
      // Not repeated after a timeout, as for create: a landed update retried would fail its
      // compare-and-set against itself, and the chunks the new head names would be erased below.
      const next = await retryNats(() => this.kv.update(record.id, payload, revision), { idempotent: false });
      // The head no longer points at the chunks it replaced: nothing can read them again.
      if (replaced !== write) await this.eraseWrite(record.id, replaced);
      return this.remember(record.id, { record, revision: next }, write);
    } catch (error) {
      // A lost compare-and-set: no head points at this write's chunks (any other failure leaves
      // it unknown whether the head moved, so the chunks stay, for retention to erase).
      if (isWrongSequence(error)) await this.eraseWrite(record.id, write);
      if (isWrongSequence(error)) {
        this.cache.delete(record.id);
        throw new RevisionConflict(`execution ${record.id} moved past revision ${revision}`, {
          cause: error,
        });
      }
      throw error;
    }
  }

  /** Removes the record and any chunks it left, delete markers included. */
  async remove(id: string): Promise<void> {
    this.cache.delete(id);
    await this.index?.remove(id);
    await eraseKeys(this.kv, `${id}.chunk.>`);
    await eraseKeys(this.kv, id);
  }

  /** Whether this process holds the record in its cache. */
  has(id: string): boolean {
    return this.cache.has(id);
  }

  /** Drops every cached record whose execution `matches`. */
  forgetWhere(matches: (id: string) => boolean): void {
    for (const id of [...this.cache.keys()]) if (matches(id)) this.cache.delete(id);
  }

  forget(id: string): void {
    this.cache.delete(id);
  }

  private remember(id: string, stored: StoredRecord<R>, write: string | undefined): StoredRecord<R> {
    if (write !== undefined) this.writes.set(stored, write);
    this.cache.delete(id);
    this.cache.set(id, stored);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return stored;
  }

  /**
   * The chunk write the head at `revision` points at: known from the cache when this process wrote
   * or read that revision, else read from the head (rare: the cache evicted it meanwhile).
   */
  private async writeAt(id: string, revision: number): Promise<string | undefined> {
    const cached = this.cache.get(id);
    if (cached?.revision === revision) return this.writes.get(cached);
    const entry = await retryNats(() => this.kv.get(id));
    if (!entry || entry.revision !== revision || entry.operation !== "PUT" || entry.value.length === 0)
      return undefined;
    const head = entry.json<R | ChunkedHead>();
    return "chunked" in head ? head.chunked.write : undefined;
  }

  private async eraseWrite(id: string, write: string | undefined): Promise<void> {
    if (write !== undefined) await eraseKeys(this.kv, `${id}.chunk.${write}.>`);
  }

  private async encode(record: R): Promise<{ payload: Uint8Array; write?: string }> {
    const bytes = Buffer.from(JSON.stringify(record));
    if (bytes.length <= chunkBytes) return { payload: bytes };
    const write = randomUUID().replaceAll("-", "");
    const count = Math.ceil(bytes.length / chunkBytes);
    for (let index = 0; index < count; index++) {
      await retryNats(() =>
        this.kv.put(
          chunkKey(record.id, write, index),
          bytes.subarray(index * chunkBytes, (index + 1) * chunkBytes),
        ),
      );
    }
    const head: ChunkedHead = { chunked: { write, count } };
    return { payload: Buffer.from(JSON.stringify(head)), write };
  }

  /** The record the chunks of a write hold; `undefined` when one is missing (erased meanwhile). */
  private async readChunks(id: string, { write, count }: ChunkedHead["chunked"]): Promise<R | undefined> {
    const parts: Uint8Array[] = [];
    for (let index = 0; index < count; index++) {
      const entry = await retryNats(() => this.kv.get(chunkKey(id, write, index)));
      if (!entry || entry.operation !== "PUT") return undefined;
      parts.push(entry.value);
    }
    return JSON.parse(Buffer.concat(parts).toString("utf8")) as R;
  }
}

function chunkKey(id: string, write: string, index: number): string {
  return `${id}.chunk.${write}.${index}`;
}

function isWrongSequence(error: unknown): boolean {
  return /wrong last sequence|key exists/i.test(String((error as Error)?.message ?? error));
}
