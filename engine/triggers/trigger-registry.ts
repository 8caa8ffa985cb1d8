/**
 * Which workflows have which triggers: a watch on the workflows KV (`baton_workflows`) keeps, in
 * memory, the triggers of the latest revision of every workflow. Submitting a workflow arms its
 * triggers, updating it re-arms them, deleting it (the `{deleted:true}` tombstone) disarms them.
 *
 * `upToDate()` waits until the watch has seen every write made to the bucket before the call, so
 * that a request served right after a workflow was submitted sees it.
 */
import type { KV, KvEntry } from "nats";
import type { StoredWorkflow } from "../nats/workflow-store.ts";
import type { Trigger } from "../workflow/definition.ts";

export interface ArmedWorkflow {
  workflow: string;
  revision: number;
  triggers: Trigger[];
}

export interface RegistryLogger {
  info(message: string, fields?: Record<string, unknown>): void;
}

/** How long `upToDate` waits for the watch before going on with what it has. */
const catchUpTimeoutMs = 2_000;

export class TriggerRegistry {
  private readonly armed = new Map<string, ArmedWorkflow>();
  /** Stream sequence of the last bucket entry the watch has seen. */
  private seen = 0;
  private readonly waiters = new Set<{ sequence: number; resolve: () => void }>();
  private stopWatching: (() => void) | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly log?: RegistryLogger,
  ) {}

  /** Opens the registry; resolves once the current workflows are known. */
  static async open(kv: KV, log?: RegistryLogger): Promise<TriggerRegistry> {
    const registry = new TriggerRegistry(kv, log);
    await registry.watch();
    return registry;
  }

  private async watch(): Promise<void> {
    let initialized!: () => void;
    const ready = new Promise<void>((resolve) => (initialized = resolve));
    // Every key (revisions too) so that `seen` follows the bucket's last sequence.
    const watch = await this.kv.watch({ key: ">", initializedFn: () => initialized() });
    this.stopWatching = () => watch.stop();
    void (async () => {
      for await (const entry of watch) this.apply(entry);
    })().catch(() => undefined);
    await ready;
  }

  private apply(entry: KvEntry): void {
    if (!entry.key.includes(".")) {
      const name = entry.key;
      let stored: (StoredWorkflow & { deleted?: undefined }) | { deleted: true } | undefined;
      try {
        stored = entry.operation === "PUT" ? entry.json() : undefined;
      } catch {
        stored = undefined;
      }
      const triggers = stored && !stored.deleted ? (stored.definition.triggers ?? []) : [];
      const before = this.armed.get(name);
      if (stored && !stored.deleted && triggers.length > 0) {
        this.armed.set(name, { workflow: name, revision: stored.revision, triggers });
        if (before?.revision !== stored.revision)
          this.log?.info("triggers armed", {
            workflow: name,
            revision: stored.revision,
            triggers: triggers.length,
          });
      } else if (before) {
        this.armed.delete(name);
        this.log?.info("triggers disarmed", { workflow: name });
      }
    }
    this.seen = Math.max(this.seen, entry.revision);
    for (const waiter of this.waiters)
      if (this.seen >= waiter.sequence) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
  }

  /** The workflows with at least one trigger, as the watch last saw them. */
  workflows(): ArmedWorkflow[] {
    return [...this.armed.values()];
  }

  /** Waits (up to 2 s) until the watch has caught up with every write made to the bucket so far. */
  async upToDate(): Promise<void> {
    const last = (await this.kv.status()).streamInfo.state.last_seq;
    if (this.seen >= last) return;
    await new Promise<void>((resolve) => {
      const waiter = { sequence: last, resolve };
      this.waiters.add(waiter);
      setTimeout(() => {
        this.waiters.delete(waiter);
        resolve();
      }, catchUpTimeoutMs).unref();
    });
  }

  stop(): void {
    this.stopWatching?.();
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters.clear();
  }
}
