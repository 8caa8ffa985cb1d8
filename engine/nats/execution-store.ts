/**
 * Execution records in the KV bucket `baton_executions`, written with a compare-and-set on the
 * entry's revision so two engine processes can never both advance one execution.
 *
 * Records larger than a NATS message may be are split: the chunks are written first under keys
 * unique to this write, then the head entry (which alone is compared-and-set) points at them. A
 * crash between the two leaves only orphan chunks, never a head pointing at missing data.
 */
import { randomUUID } from "node:crypto";
import type { KV } from "nats";

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

  constructor(
    private readonly kv: KV,
    private readonly cacheSize: number,
  ) {}

  async load(id: string, { fresh = false } = {}): Promise<StoredRecord<R> | undefined> {
    if (!fresh) {
      const cached = this.cache.get(id);
      if (cached) return cached;
    }
    const entry = await this.kv.get(id);
    if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
    const parsed = entry.json<R | ChunkedHead>();
    const record = "chunked" in parsed ? await this.readChunks(id, parsed.chunked) : parsed;
    const stored = { record, revision: entry.revision };
    this.remember(id, stored);
    return stored;
  }

  /** Writes a new record; fails with {@link RevisionConflict} when the execution already exists. */
  async create(record: R): Promise<StoredRecord<R>> {
    const payload = await this.encode(record);
    try {
      const revision = await this.kv.create(record.id, payload);
      return this.remember(record.id, { record, revision });
    } catch (error) {
      if (isWrongSequence(error))
        throw new RevisionConflict(`execution ${record.id} already exists`, { cause: error });
      throw error;
    }
  }

  /** Replaces the record at `revision`; fails with {@link RevisionConflict} when someone else wrote first. */
  async update(record: R, revision: number): Promise<StoredRecord<R>> {
    const payload = await this.encode(record);
    try {
      const next = await this.kv.update(record.id, payload, revision);
      return this.remember(record.id, { record, revision: next });
    } catch (error) {
      if (isWrongSequence(error)) {
        this.cache.delete(record.id);
        throw new RevisionConflict(`execution ${record.id} moved past revision ${revision}`, {
          cause: error,
        });
      }
      throw error;
    }
  }

  /** Removes the record and any chunks it left. */
  async remove(id: string): Promise<void> {
    this.cache.delete(id);
    const chunks = await this.kv.keys(`${id}.chunk.>`);
    for await (const key of chunks) await this.kv.purge(key);
    await this.kv.purge(id);
  }

  /** Whether this process holds the record in its cache. */
  has(id: string): boolean {
    return this.cache.has(id);
  }

  forget(id: string): void {
    this.cache.delete(id);
  }

  private remember(id: string, stored: StoredRecord<R>): StoredRecord<R> {
    this.cache.delete(id);
    this.cache.set(id, stored);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return stored;
  }

  private async encode(record: R): Promise<Uint8Array> {
    const bytes = Buffer.from(JSON.stringify(record));
    if (bytes.length <= chunkBytes) return bytes;
    const write = randomUUID().replaceAll("-", "");
    const count = Math.ceil(bytes.length / chunkBytes);
    for (let index = 0; index < count; index++) {
      await this.kv.put(
        chunkKey(record.id, write, index),
        bytes.subarray(index * chunkBytes, (index + 1) * chunkBytes),
      );
    }
    const head: ChunkedHead = { chunked: { write, count } };
    return Buffer.from(JSON.stringify(head));
  }

  private async readChunks(id: string, { write, count }: ChunkedHead["chunked"]): Promise<R> {
    const parts: Uint8Array[] = [];
    for (let index = 0; index < count; index++) {
      const entry = await this.kv.get(chunkKey(id, write, index));
      if (!entry) throw new Error(`execution ${id}: chunk ${index} of write ${write} is missing`);
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
