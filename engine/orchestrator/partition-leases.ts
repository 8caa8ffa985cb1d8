/**
 * Which engine consumes which partition's events: leases in the `baton_engine` bucket, taken
 * with compare-and-set, no consensus of our own.
 *
 * - `engines`: the live engines, each with a beat it increments on every tick (one key, changed
 *   with compare-and-set). An engine whose beat has not moved for `leaseMs`, as the observer's own
 *   clock measures it, is gone. No engine compares its clock with another's: a clock that runs
 *   ahead or behind, or steps, cannot make a live engine look dead.
 * - `lease.<partition>`: the engine holding the partition. A lease lapses with its holder: held
 *   by an engine that is gone, or by nobody (handed back), a partition is free.
 *
 * Every tick (`tickMs`) an engine beats, checks that its leases are still its own, and holds its
 * fair share, `ceil(partitions / live engines)`: it takes free partitions while it holds fewer,
 * and hands back its highest ones while it holds more (another engine joined). On stop it hands
 * back all of them, so another takes them within a tick. A lease that another engine took (this
 * one was paused, or cut off from NATS, for longer than `leaseMs`) is given up at once.
 *
 * Leases are a matter of efficiency, not of safety: the record's compare-and-set stays the fence.
 * Two engines that both believe they hold a partition for a moment cannot both advance an
 * execution; the loser of the compare-and-set reloads and finds its events applied.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { KV, KvEntry } from "nats";

export interface PartitionHooks {
  /** This engine now holds `partition`; `takenOver`: from an engine that is gone. */
  acquire(partition: number, takenOver: boolean): Promise<void>;
  /** This engine no longer holds `partition` (handed back, or `lost` to another). */
  release(partition: number, lost: boolean): Promise<void>;
}

export interface LeaseLogger {
  info(message: string, fields?: object): void;
  warn(message: string, fields?: object): void;
}

interface Lease {
  owner: string;
}

export const leaseKey = (partition: number) => `lease.${partition}`;

/** Who each partition's lease names, by engine id (`BATON_ENGINE_ID`); `undefined`: nobody. */
export async function leaseHolders(kv: KV, partitions: number): Promise<(string | undefined)[]> {
  const entries = await Promise.all(
    Array.from({ length: partitions }, (_, partition) => kv.get(leaseKey(partition))),
  );
  return entries.map((entry) => leaseOf(entry)?.owner.split("/")[0]);
}
export const enginesKey = "engines";

export interface LeaseTiming {
  /** How long an engine's beat may stand still before it is gone (by the observer's clock). */
  leaseMs: number;
  /** How often an engine beats and reconsiders its share. */
  tickMs: number;
}

export const defaultLeaseTiming: LeaseTiming = { leaseMs: 1_500, tickMs: 300 };

const isCasRefusal = (error: unknown) => /wrong last sequence|key exists/i.test(String(error));

const leaseOf = (entry: KvEntry | null): Lease | undefined =>
  entry && entry.operation === "PUT" && entry.value.length > 0 ? entry.json<Lease>() : undefined;

export class PartitionLeases {
  /** This process's identity in leases: the engine's name and a token of its own (two engines of one pid differ). */
  readonly owner: string;
  /** Partition → the revision of its lease entry. */
  private readonly held = new Map<number, number>();
  /** Hand-backs and give-ups under way (each waits for its partition's batches). */
  private readonly releasing = new Set<Promise<void>>();
  /** The partitions being let go: their leases still name this engine until the batches finish. */
  private readonly leaving = new Set<number>();
  /** Leases handed back whose removal failed (NATS away): removed at a later tick. Partition → revision. */
  private readonly orphans = new Map<number, number>();
  /** When this process last read the `engines` entry (its monotonic clock). */
  private lastRead: number | undefined;
  /** Each engine's last beat seen, and when (this process's monotonic clock) it last moved. */
  private readonly beats = new Map<string, { beat: number; movedAt: number }>();
  private beat = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly kv: KV,
    engineId: string,
    private readonly partitions: number,
    private readonly hooks: PartitionHooks,
    private readonly log: LeaseLogger,
    private readonly timing: LeaseTiming = defaultLeaseTiming,
  ) {
    this.owner = `${engineId}/${randomUUID().slice(0, 8)}`;
  }

  /** The partitions this engine holds now. */
  get holding(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /** Runs the first tick (resolves once it is done), then ticks until stopped. */
  async start(): Promise<void> {
    if (this.stopped) return;
    this.running = this.tick();
    await this.running;
    const loop = () => {
      if (this.stopped) return;
      this.running = this.tick()
        .catch((error: unknown) =>
          this.log.warn("could not renew partition leases; trying again", { error: String(error) }),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, this.timing.tickMs);
        });
    };
    this.timer = setTimeout(loop, this.timing.tickMs);
  }

  /** Hands every partition back (after `release` let go of each), and leaves. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
    for (const partition of this.holding) this.handBack(partition);
    await Promise.allSettled([...this.releasing]);
    await this.changeEngines((engines) => {
      delete engines[this.owner];
    }).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const live = await this.changeEngines((engines) => {
      engines[this.owner] = ++this.beat;
    });
    // Hand-backs whose lease could not be removed: removed now (unless it changed hands).
    for (const [partition, revision] of [...this.orphans]) {
      try {
        await this.kv.delete(leaseKey(partition), { previousSeq: revision });
        this.orphans.delete(partition);
      } catch (error) {
        if (isCasRefusal(error)) this.orphans.delete(partition);
      }
    }
    // Still ours? A lease another engine took (this one looked gone to it) is given up.
    const held = [...this.held];
    const current = await Promise.all(held.map(([partition]) => this.kv.get(leaseKey(partition))));
    for (const [i, [partition, revision]] of held.entries()) {
      if (current[i]?.revision === revision) continue;
      this.log.warn("lost the lease of a partition to another engine", { partition });
      this.let(partition, () => this.hooks.release(partition, true));
    }
    const fair = Math.ceil(this.partitions / Math.max(1, live.size));
    if (this.stopped) return;
    if (this.held.size > fair) {
      for (const partition of this.holding.reverse().slice(0, this.held.size - fair))
        this.handBack(partition);
      return;
    }
    if (this.held.size === fair) return;
    // Short of the share: read the others, take what is free (read only then).
    const others = Array.from({ length: this.partitions }, (_, partition) => partition).filter(
      (partition) => !this.held.has(partition),
    );
    const entries = await Promise.all(others.map((partition) => this.kv.get(leaseKey(partition))));
    const free = others.flatMap((partition, i) => {
      const lease = leaseOf(entries[i]!);
      // Taken: held by a live engine. (One naming this engine that it is not letting go of is a
      // lease it failed to give up, e.g. NATS was away: this engine takes it up again.)
      const taken =
        lease !== undefined &&
        live.has(lease.owner) &&
        (lease.owner !== this.owner || this.leaving.has(partition));
      return taken ? [] : [{ partition, entry: entries[i]!, lease }];
    });
    // Claimed together, then opened together: a loaded engine taking over many partitions one
    // after another would take seconds.
    const claimed = await Promise.all(
      free.slice(0, fair - this.held.size).map(async ({ partition, entry, lease }) => {
        const value = JSON.stringify({ owner: this.owner } satisfies Lease);
        // Each claim on its own: one that fails must not keep the others from being opened.
        try {
          const revision = entry
            ? await this.kv.update(leaseKey(partition), value, entry.revision)
            : await this.kv.create(leaseKey(partition), value);
          this.held.set(partition, revision);
          const takenOver = lease !== undefined && lease.owner !== this.owner;
          if (takenOver)
            this.log.info("took over a partition whose engine is gone", { partition, from: lease.owner });
          return [{ partition, revision, takenOver }];
        } catch (error) {
          // Another engine claimed it first; or NATS failed the write, and a next tick tries again.
          if (!isCasRefusal(error))
            this.log.warn("could not claim a partition", { partition, error: String(error) });
          return [];
        }
      }),
    );
    await Promise.all(
      claimed.flat().map(async ({ partition, revision, takenOver }) => {
        try {
          await this.hooks.acquire(partition, takenOver);
        } catch (error) {
          // Held but not read would stall the partition's executions: let it go, to be taken
          // again (by this engine or another) at a next tick.
          this.log.warn("could not start reading a partition; letting it go", {
            partition,
            error: String(error),
          });
          this.held.delete(partition);
          await this.hooks.release(partition, false).catch(() => undefined);
          await this.kv.delete(leaseKey(partition), { previousSeq: revision }).catch(() => undefined);
        }
      }),
    );
  }

  /**
   * Hands a partition back: it stops being read at once, its batches under way finish, then its
   * lease goes (if still this engine's) and another engine takes it at its next tick. The tick
   * does not wait for it: a slow batch must not hold back the beats that keep the other leases.
   */
  private handBack(partition: number): void {
    const revision = this.held.get(partition);
    if (revision === undefined) return;
    this.let(partition, async () => {
      await this.hooks.release(partition, false);
      try {
        await this.kv.delete(leaseKey(partition), { previousSeq: revision });
      } catch (error) {
        // Still naming this engine, the lease would keep the partition from everyone: removed at
        // a later tick (unless it changed hands meanwhile).
        if (!isCasRefusal(error)) this.orphans.set(partition, revision);
      }
    });
  }

  private let(partition: number, release: () => Promise<void>): void {
    this.held.delete(partition);
    this.leaving.add(partition);
    const done: Promise<void> = release()
      .catch((error: unknown) =>
        this.log.warn("could not let a partition go cleanly", { partition, error: String(error) }),
      )
      .finally(() => {
        this.releasing.delete(done);
        this.leaving.delete(partition);
      });
    this.releasing.add(done);
  }

  /**
   * Changes the live engines' entry with compare-and-set, dropping the engines whose beat has not
   * moved for `leaseMs` of this process's clock; resolves to the engines live now.
   */
  private async changeEngines(change: (engines: Record<string, number>) => void): Promise<Set<string>> {
    for (;;) {
      const entry = await this.kv.get(enginesKey);
      const engines: Record<string, number> =
        entry && entry.operation === "PUT" && entry.value.length > 0
          ? entry.json<Record<string, number>>()
          : {};
      const now = performance.now();
      // This process's own gap (paused, or NATS away) is not the others' silence: after one,
      // every beat is timed afresh.
      const gap = this.lastRead !== undefined && now - this.lastRead > this.timing.leaseMs / 2;
      this.lastRead = now;
      if (gap) for (const seen of this.beats.values()) seen.movedAt = now;
      for (const [owner, beat] of Object.entries(engines)) {
        const seen = this.beats.get(owner);
        if (seen?.beat !== beat) this.beats.set(owner, { beat, movedAt: now });
      }
      for (const owner of [...this.beats.keys()]) if (!(owner in engines)) this.beats.delete(owner);
      for (const owner of Object.keys(engines))
        if (owner !== this.owner && now - this.beats.get(owner)!.movedAt >= this.timing.leaseMs)
          delete engines[owner];
      change(engines);
      try {
        if (entry) await this.kv.update(enginesKey, JSON.stringify(engines), entry.revision);
        else await this.kv.create(enginesKey, JSON.stringify(engines));
        return new Set(Object.keys(engines));
      } catch (error) {
        if (!isCasRefusal(error)) throw error;
      }
    }
  }
}
