/**
 * Which functions some live worker serves, from the workers' heartbeats (core NATS,
 * `baton.workers.heartbeat.<worker>`, every `heartbeatIntervalMs`; docs/protocol.md). The engine
 * asks it when an attempt times out: with nobody serving the function, the attempt fails
 * `FunctionUnavailable` instead of `Timeout`. Until it has listened for a worker's whole time to
 * live it knows nothing, and says no function is unserved.
 *
 * A deployed function whose latest package version a pool marked unhealthy (its workers keep
 * crashing; KV `baton_functions`, `health.<name>`, docs/functions.md) counts as unserved at once;
 * a mark of an older version (left by a pool that died before taking it back) does not.
 */
import { openBucket } from "../../sdk/replication.ts";
import { StorageType, type NatsConnection, type QueuedIterator, type KvEntry, type Subscription } from "nats";
import { subjects, workerTtlMs, type HeartbeatEnvelope } from "../../sdk/protocol.ts";
import { functionsBucket } from "../functions/package-store.ts";

export class ServedFunctions {
  /** Function name → when a heartbeat last named it (epoch ms). */
  private readonly lastSeen = new Map<string, number>();
  private subscription: Subscription | undefined;
  private listeningSince = Infinity;
  /** Function → the package version a pool marked unhealthy (KV `health.<name>`). */
  private readonly marks = new Map<string, number>();
  /** Function → its latest package version (KV `fn.<name>`; none once deleted). */
  private readonly heads = new Map<string, number>();
  private healthWatch: QueuedIterator<KvEntry> | undefined;
  private isStopped = false;

  constructor(private readonly nc: NatsConnection) {}

  start(): void {
    void this.watchHealth();
    this.listeningSince = Date.now();
    this.subscription = this.nc.subscribe(subjects.allHeartbeats, {
      callback: (error, message) => {
        if (error) return;
        let beat: Partial<HeartbeatEnvelope>;
        try {
          beat = message.json<Partial<HeartbeatEnvelope>>();
        } catch {
          return;
        }
        if (!Array.isArray(beat.functions) || beat.leaving === true) return;
        const now = Date.now();
        for (const served of beat.functions)
          if (typeof served?.name === "string") this.lastSeen.set(served.name, now);
      },
    });
  }

  stop(): void {
    this.isStopped = true;
    this.subscription?.unsubscribe();
    this.healthWatch?.stop();
  }

  /** Follows the health marks of function packages; best effort (without them, heartbeats decide). */
  async watchHealth(): Promise<void> {
    // Watched again whenever the watch ends or fails (NATS away, a leader change), until stopped;
    // meanwhile the heartbeats still tell who serves what.
    for (let failures = 0; !this.isStopped && !this.nc.isClosed();) {
      try {
        const kv = await openBucket(this.nc.jetstream(), functionsBucket, {
          history: 1,
          storage: StorageType.File,
        });
        if (this.isStopped) return;
        // The whole bucket: the marks, and the heads they are compared with (a mark of a version
        // that is no longer the latest counts for nothing, whatever left it behind).
        this.healthWatch = await kv.watch();
        // The watch begins with every entry there is now: forget what an earlier watch saw.
        this.marks.clear();
        this.heads.clear();
        for await (const entry of this.healthWatch) {
          failures = 0;
          const [kind, ...rest] = entry.key.split(".");
          const map = kind === "health" ? this.marks : kind === "fn" ? this.heads : undefined;
          if (map === undefined) continue; // `ver.<name>.<n>`: every version, not needed here
          const fn = rest.join(".");
          const version = entry.operation === "PUT" ? versionIn(entry) : undefined;
          if (version === undefined) map.delete(fn);
          else map.set(fn, version);
        }
      } catch {
        failures += 1;
      }
      if (this.isStopped) return;
      await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 500 * 2 ** Math.min(failures, 6))));
    }
  }

  /**
   * True when the engine has listened long enough to know that no live worker serves `fn`, or
   * when `fn`'s deployed package is marked unhealthy.
   */
  isUnserved(fn: string, now = Date.now()): boolean {
    const marked = this.marks.get(fn);
    if (marked !== undefined && marked === this.heads.get(fn)) return true;
    if (now - this.listeningSince < workerTtlMs) return false;
    return now - (this.lastSeen.get(fn) ?? 0) > workerTtlMs;
  }
}

/** The `version` of a head (not a tombstone) or of a health mark; `undefined` otherwise. */
function versionIn(entry: KvEntry): number | undefined {
  try {
    const value = entry.json<{ version?: unknown; deleted?: unknown }>();
    return typeof value.version === "number" && value.deleted !== true ? value.version : undefined;
  } catch {
    return undefined;
  }
}
