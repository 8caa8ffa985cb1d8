/**
 * Infra triggers from worker heartbeats (core NATS `baton.workers.heartbeat.>`): `node.joined`
 * (the first heartbeat of a node), `node.left` (all its workers silent for `silenceMs`, or gone
 * with a `leaving` heartbeat), `function.available` (a function first served by a live worker)
 * and `function.unavailable` (no live worker serves it any more).
 *
 * Every replica hears every heartbeat and works out which nodes and functions are live; the
 * state each was last announced in lives in the KV bucket `baton_infra`, and only the replica
 * whose compare-and-set moves it publishes the event, whose id holds the KV revision of the
 * move: each transition is announced once, however many replicas run.
 *
 * Two guards against announcing what a replica merely failed to hear: a replica declares nothing
 * gone before it has listened for `silenceMs` itself, and brings nothing back up without a
 * heartbeat newer than the recorded down transition.
 */
import { openBucket } from "../../sdk/replication.ts";
import {
  StorageType,
  type JetStreamClient,
  type KV,
  type KvEntry,
  type NatsConnection,
  type QueuedIterator,
  type Subscription,
} from "nats";
import { heartbeatIntervalMs, subjects, type HeartbeatEnvelope } from "../../sdk/protocol.ts";
import type { Logger } from "../orchestrator/orchestrator.ts";
import type { Json } from "../workflow/definition.ts";
import { publishClaimedEvent } from "./publish-retry.ts";

export const infraStateBucket = "baton_infra";

type Kind = "node" | "function";

interface State {
  kind: Kind;
  name: string;
  live: boolean;
  /** When it went into this state (ms, the announcing replica's clock). */
  since: number;
}

interface SeenWorker {
  node: string;
  functions: string[];
  lastSeen: number;
}

export interface InfraServiceOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  log: Logger;
  /**
   * How long a node may be silent before it has left (BATON_NODE_SILENCE); taken as at least one
   * and a half heartbeat intervals, or every live worker would seem to leave between heartbeats.
   */
  silenceMs: number;
}

const stateKey = (kind: Kind, name: string) => `${kind}.${Buffer.from(name).toString("base64url")}`;
const isConflict = (error: unknown) => /wrong last sequence|key exists/i.test(String(error));

export class InfraService {
  private readonly workers = new Map<string, SeenWorker>();
  private readonly states = new Map<string, { state: State; revision: number }>();
  private readonly startedAt = Date.now();
  private subscription?: Subscription;
  private watch?: QueuedIterator<KvEntry>;
  private watching?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  private readonly silenceMs: number;

  private constructor(
    private readonly options: InfraServiceOptions,
    private readonly kv: KV,
  ) {
    this.silenceMs = Math.max(options.silenceMs, 1.5 * heartbeatIntervalMs);
  }

  static async start(options: InfraServiceOptions): Promise<InfraService> {
    const kv = await openBucket(options.js, infraStateBucket, { history: 1, storage: StorageType.File });
    const service = new InfraService(options, kv);
    let initialized!: () => void;
    const ready = new Promise<void>((resolve) => (initialized = resolve));
    service.watch = await kv.watch({ initializedFn: () => initialized() });
    service.watching = service.follow(service.watch);
    await ready;
    service.subscription = options.nc.subscribe(subjects.allHeartbeats, {
      callback: (error, message) => {
        if (error) return;
        try {
          service.hear(message.json<HeartbeatEnvelope>());
        } catch {
          // Not a heartbeat: ignore it.
        }
      },
    });
    const interval = Math.max(100, Math.min(1_000, Math.floor(service.silenceMs / 4)));
    service.timer = setInterval(() => service.reconcile(), interval);
    return service;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.subscription?.unsubscribe();
    this.watch?.stop();
    await this.watching;
    await this.running;
  }

  private async follow(watch: QueuedIterator<KvEntry>): Promise<void> {
    for await (const entry of watch) {
      if (entry.operation === "PUT")
        this.states.set(entry.key, { state: entry.json<State>(), revision: entry.revision });
      else this.states.delete(entry.key);
    }
  }

  private hear(beat: HeartbeatEnvelope): void {
    if (typeof beat.worker !== "string" || typeof beat.node !== "string") return;
    if (beat.leaving) this.workers.delete(beat.worker);
    else
      this.workers.set(beat.worker, {
        node: beat.node,
        functions: (beat.functions ?? []).map((fn) => fn.name),
        lastSeen: Date.now(),
      });
    this.reconcile();
  }

  /** Queues one pass over every node and function (passes never overlap). */
  private reconcile(): void {
    if (this.stopped) return;
    this.running = this.running
      .then(() => this.pass())
      .catch((error: unknown) =>
        this.options.log.error("could not announce an infra event", { error: String(error) }),
      );
  }

  private async pass(): Promise<void> {
    const now = Date.now();
    // The newest heartbeat heard of each live node and function.
    const live = new Map<string, { kind: Kind; name: string; lastSeen: number }>();
    for (const [id, worker] of this.workers) {
      if (now - worker.lastSeen > this.silenceMs) {
        this.workers.delete(id);
        continue;
      }
      const note = (kind: Kind, name: string) => {
        const key = stateKey(kind, name);
        const seen = live.get(key);
        if (!seen || seen.lastSeen < worker.lastSeen)
          live.set(key, { kind, name, lastSeen: worker.lastSeen });
      };
      note("node", worker.node);
      for (const fn of worker.functions) note("function", fn);
    }
    for (const [key, seen] of live) {
      const recorded = this.states.get(key);
      if (recorded?.state.live) continue;
      if (recorded && seen.lastSeen <= recorded.state.since) continue;
      await this.move(key, { kind: seen.kind, name: seen.name, live: true, since: now }, recorded?.revision);
    }
    if (now - this.startedAt < this.silenceMs) return;
    for (const [key, recorded] of [...this.states]) {
      if (!recorded.state.live || live.has(key)) continue;
      await this.move(key, { ...recorded.state, live: false, since: now }, recorded.revision);
    }
  }

  /** Moves a state by compare-and-set and announces the move; another replica's win is theirs to announce. */
  private async move(key: string, state: State, revision: number | undefined): Promise<void> {
    let moved: number;
    try {
      const body = JSON.stringify(state);
      moved =
        revision === undefined ? await this.kv.create(key, body) : await this.kv.update(key, body, revision);
    } catch (error) {
      if (!isConflict(error)) throw error;
      const entry = await this.kv.get(key);
      if (entry?.operation === "PUT")
        this.states.set(key, { state: entry.json<State>(), revision: entry.revision });
      return;
    }
    this.states.set(key, { state, revision: moved });
    const type =
      state.kind === "node"
        ? state.live
          ? "node.joined"
          : "node.left"
        : state.live
          ? "function.available"
          : "function.unavailable";
    const data: Json =
      state.kind === "node"
        ? { node: state.name, ...(state.live ? { workers: this.workersOf(state.name) } : {}) }
        : { function: state.name };
    await publishClaimedEvent(this.options.js, {
      source: "infra",
      type,
      id: `${type}:${state.name}:${moved}`,
      time: new Date(state.since).toISOString(),
      subject: state.name,
      data,
    });
  }

  private workersOf(node: string): string[] {
    return [...this.workers]
      .filter(([, worker]) => worker.node === node)
      .map(([id]) => id)
      .sort();
  }
}
