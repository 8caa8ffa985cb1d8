/**
 * Which engine consumes which partition's events: leases in the `baton_engine` bucket, taken and
 * kept with compare-and-set, no consensus of our own.
 *
 * - `engines`: the live engines, each with the time its presence lapses; every engine renews its
 *   own entry on every tick (compare-and-set on the one key), and drops entries that lapsed.
 * - `lease.<partition>`: the engine that holds the partition and when its lease lapses.
 *
 * Every tick (`tickMs`) an engine renews its leases and its presence. It holds its fair share,
 * `ceil(partitions / live engines)`: it takes partitions that nobody holds or whose lease lapsed
 * (the holder died) while it holds fewer, and hands back its highest ones while it holds more
 * (another engine joined). On stop it hands back all of them, so another takes them within a tick.
 * A lease that could not be renewed (another engine took it after it lapsed, during a pause of
 * this process or of NATS) is given up at once.
 *
 * Leases are a matter of efficiency, not of safety: the record's compare-and-set stays the fence.
 * Two engines that both believe they hold a partition for a moment (one paused past its lease)
 * cannot both advance an execution; the loser of the compare-and-set reloads and finds its events
 * applied.
 */
import { randomUUID } from "node:crypto";
import type { KV } from "nats";

export interface PartitionHooks {
  /** This engine now holds `partition`; `takenOver`: from an engine whose lease lapsed. */
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
  until: number;
}

export const leaseKey = (partition: number) => `lease.${partition}`;
export const enginesKey = "engines";

export interface LeaseTiming {
  /** How long a lease (and an engine's presence) lasts without renewal. */
  leaseMs: number;
  /** How often leases are renewed and the share reconsidered. */
  tickMs: number;
}

export const defaultLeaseTiming: LeaseTiming = { leaseMs: 1_500, tickMs: 300 };

export class PartitionLeases {
  /** This process's identity in leases: the engine's name and a token of its own (two engines of one pid differ). */
  readonly owner: string;
  /** Partition → the revision of its lease entry. */
  private readonly held = new Map<number, number>();
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
    await this.tick();
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
    for (const [partition, revision] of [...this.held]) await this.handBack(partition, revision);
    await this.changeEngines((engines) => {
      delete engines[this.owner];
    }).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const until = now + this.timing.leaseMs;
    const engines = await this.changeEngines((live) => {
      for (const [owner, lapses] of Object.entries(live)) if (lapses < now) delete live[owner];
      live[this.owner] = until;
    });
    const fair = Math.ceil(this.partitions / Math.max(1, Object.keys(engines).length));
    // Renew what is held (a compare-and-set on the revision this engine wrote); give up what
    // another engine took meanwhile.
    await Promise.all(
      [...this.held].map(async ([partition, revision]) => {
        try {
          this.held.set(partition, await this.kv.update(leaseKey(partition), this.encode(until), revision));
        } catch (error) {
          if (!/wrong last sequence/i.test(String(error))) throw error;
          this.held.delete(partition);
          this.log.warn("lost the lease of a partition to another engine", { partition });
          await this.hooks.release(partition, true);
        }
      }),
    );
    if (this.stopped || this.held.size >= fair) {
      await this.handBackBeyond(fair);
      return;
    }
    // Take free or lapsed partitions up to the fair share (read only when short of it).
    const free = Array.from({ length: this.partitions }, (_, partition) => partition).filter(
      (partition) => !this.held.has(partition),
    );
    const entries = await Promise.all(free.map((partition) => this.kv.get(leaseKey(partition))));
    const takeable = free.flatMap((partition, i) => {
      const entry = entries[i];
      const lease =
        entry && entry.operation === "PUT" && entry.value.length > 0 ? entry.json<Lease>() : undefined;
      return lease && lease.until >= now ? [] : [{ partition, entry, lease }];
    });
    // Claimed together, then opened together: a loaded engine taking over many partitions one
    // after another would take seconds, and its own leases could lapse meanwhile.
    const claimed = await Promise.all(
      takeable.slice(0, fair - this.held.size).map(async ({ partition, entry, lease }) => {
        try {
          const revision = entry
            ? await this.kv.update(leaseKey(partition), this.encode(until), entry.revision)
            : await this.kv.create(leaseKey(partition), this.encode(until));
          this.held.set(partition, revision);
          const takenOver = lease !== undefined && lease.owner !== this.owner;
          if (takenOver)
            this.log.info("took over a partition whose engine is gone", { partition, from: lease.owner });
          return [{ partition, takenOver }];
        } catch (error) {
          // Another engine claimed it first.
          if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
          return [];
        }
      }),
    );
    await Promise.all(
      claimed.flat().map(({ partition, takenOver }) => this.hooks.acquire(partition, takenOver)),
    );
  }

  /** Hands back beyond the fair share (another engine joined), highest first. */
  private async handBackBeyond(fair: number): Promise<void> {
    for (const partition of this.holding.reverse()) {
      if (this.held.size <= fair) break;
      await this.handBack(partition, this.held.get(partition)!);
    }
  }

  private async handBack(partition: number, revision: number): Promise<void> {
    this.held.delete(partition);
    await this.hooks.release(partition, false);
    // Deleted only if still ours: another engine takes it at its next tick.
    await this.kv.delete(leaseKey(partition), { previousSeq: revision }).catch(() => undefined);
  }

  private encode(until: number): string {
    return JSON.stringify({ owner: this.owner, until } satisfies Lease);
  }

  /** Changes the live engines' entry with compare-and-set; resolves to it as written. */
  private async changeEngines(
    change: (engines: Record<string, number>) => void,
  ): Promise<Record<string, number>> {
    for (;;) {
      const entry = await this.kv.get(enginesKey);
      const engines: Record<string, number> =
        entry && entry.operation === "PUT" && entry.value.length > 0
          ? entry.json<Record<string, number>>()
          : {};
      change(engines);
      try {
        if (entry) await this.kv.update(enginesKey, JSON.stringify(engines), entry.revision);
        else await this.kv.create(enginesKey, JSON.stringify(engines));
        return engines;
      } catch (error) {
        if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
      }
    }
  }
}
