/**
 * Function packages (docs/functions.md): a function's code as one ES module bundle, stored in
 * JetStream.
 *
 * | name                 | kind         | holds                                                          |
 * |----------------------|--------------|----------------------------------------------------------------|
 * | baton_functions      | KV           | `fn.<name>`: the latest version and the scale settings (or a   |
 * |                      |              | tombstone); `ver.<name>.<version>`: every version; and         |
 * |                      |              | `health.<name>`: set by a pool when a version keeps crashing   |
 * | baton_packages       | object store | `<name>/<digest>`: each bundle, named by its content; versions |
 * |                      |              | stored before this naming: `<name>/v<version>`                 |
 *
 * An upload writes in this order, so that a crash anywhere leaves nothing that names what is not
 * there: the bundle (named by its digest, so writing it again is harmless), then the version
 * (`ver.<name>.<version>`, reserved with a compare-and-set, naming the digest), then the head
 * (moved with a compare-and-set from the entry it was read from, as workflow revisions do,
 * engine/nats/workflow-store.ts). A crash after the bundle leaves an object nothing names (the
 * next upload of the same code writes it again); after the version, a version the head does not
 * name (listed, loadable; the next upload takes the number after it). A version only grows. An
 * upload whose digest equals the latest version's keeps that version (its scale settings may
 * change).
 */
import { listKeys } from "../nats/kv-keys.ts";
import { retryNats } from "../../sdk/nats-retry.ts";
import { natsReplicas, openBucket, reconcileStream } from "../../sdk/replication.ts";
import { createHash } from "node:crypto";
import { StorageType, type JetStreamClient, type KV, type ObjectStore } from "nats";
import { eraseKeys } from "../nats/kv-erase.ts";
import { crashPoint } from "../orchestrator/crash-points.ts";

export const functionsBucket = "baton_functions";
export const packagesBucket = "baton_packages";

/** The runtimes a package can run in. Only Node 20 (ES modules, the Baton SDK) for now. */
export const environments = ["node20"] as const;
export type Environment = (typeof environments)[number];

/** How the pool runs a function's workers. */
export interface ScaleSettings {
  /** Workers kept running even with nothing to do (0: scale to zero). */
  minScale: number;
  /** Most workers the pools start for the function. */
  maxScale: number;
  /** Attempts one worker runs at once (each lane). */
  concurrency: number;
  /** How long without tasks before the pool stops the workers beyond `minScale`, in ms. */
  idleMs: number;
}

export const defaultScale: ScaleSettings = { minScale: 0, maxScale: 4, concurrency: 16, idleMs: 5 * 60_000 };

/** One stored version of a package. */
export interface PackageVersion {
  name: string;
  version: number;
  /** `sha256:<hex>` of the bundle's bytes. */
  digest: string;
  size: number;
  environment: Environment;
  createdAt: string;
  /** The bundle's object in `baton_packages`; absent on versions stored before it was named. */
  object?: string;
}

/** The head of a function: its latest version and how it is scaled. */
export interface FunctionPackage extends PackageVersion {
  scale: ScaleSettings;
  updatedAt: string;
}

interface Tombstone {
  name: string;
  deleted: true;
  version: number;
}

/** Set by a pool when the workers of a version keep crashing. A new version clears it. */
export interface FunctionHealth {
  name: string;
  version: number;
  healthy: false;
  reason: string;
  since: string;
}

export type PackagePutOutcome = "created" | "updated" | "unchanged" | "rescaled";

const headKey = (name: string) => `fn.${name}`;
const versionKey = (name: string, version: number) => `ver.${name}.${version}`;
const healthKey = (name: string) => `health.${name}`;
/** The object of a bundle: named by its content, so an upload that is repeated writes the same one. */
export const objectName = (name: string, digest: string) => `${name}/${digest.replace(":", "-")}`;
/** The object of a version stored before bundles were named by their digest. */
const legacyObjectName = (name: string, version: number) => `${name}/v${version}`;

const isTombstone = (value: FunctionPackage | Tombstone): value is Tombstone => "deleted" in value;

export function digestOf(bundle: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bundle).digest("hex")}`;
}

export class PackageStore {
  private constructor(
    readonly kv: KV,
    private readonly objects: ObjectStore,
  ) {}

  static async open(js: JetStreamClient): Promise<PackageStore> {
    const replicas = natsReplicas();
    const jsm = await js.jetstreamManager();
    // The object store's stream is brought to the configured replica count like the buckets.
    await reconcileStream(
      jsm,
      `OBJ_${packagesBucket}`,
      { num_replicas: replicas },
      `object store ${packagesBucket}`,
    );
    const [kv, objects] = await Promise.all([
      openBucket(js, functionsBucket, { history: 1, storage: StorageType.File }, replicas),
      retryNats(() => js.views.os(packagesBucket, { storage: StorageType.File, replicas: replicas ?? 1 })),
    ]);
    return new PackageStore(kv, objects);
  }

  /**
   * Stores a checked bundle as the next version of `name`, or keeps the latest version when its
   * digest is the same (then only the scale settings are updated, if they differ).
   */
  async put(
    name: string,
    bundle: Uint8Array,
    environment: Environment,
    scale: ScaleSettings,
  ): Promise<{ fn: FunctionPackage; outcome: PackagePutOutcome }> {
    const digest = digestOf(bundle);
    for (;;) {
      const entry = await this.kv.get(headKey(name));
      const head = entry && entry.operation === "PUT" ? entry.json<FunctionPackage | Tombstone>() : undefined;
      const latest = head && !isTombstone(head) ? head : undefined;
      const now = new Date().toISOString();
      if (latest?.digest === digest && latest.environment === environment) {
        if (sameScale(latest.scale, scale)) return { fn: latest, outcome: "unchanged" };
        const fn = { ...latest, scale, updatedAt: now };
        if (await this.moveHead(name, JSON.stringify(fn), entry?.revision))
          return { fn, outcome: "rescaled" };
        continue;
      }
      // The bundle before anything names it: once a version exists, its bundle can be read.
      const object = objectName(name, digest);
      const stored = await this.objects.info(object);
      if (stored === null || stored.deleted)
        await this.objects.putBlob({ name: object, description: digest, headers: undefined }, bundle);
      crashPoint("package-after-bundle");
      let version = (head?.version ?? 0) + 1;
      const base = { name, digest, size: bundle.byteLength, environment, createdAt: now, object };
      while (!(await this.createKey(versionKey(name, version), JSON.stringify({ ...base, version }))))
        version += 1;
      crashPoint("package-after-version");
      const fn: FunctionPackage = { ...base, version, scale, updatedAt: now };
      if (await this.moveHead(name, JSON.stringify(fn), entry?.revision)) {
        // A new version gets a fresh chance: the pools try it even if the last one was unhealthy.
        await this.kv.delete(healthKey(name)).catch(() => undefined);
        return { fn, outcome: latest ? "updated" : "created" };
      }
      // Another writer moved the head first: nothing names this version; take it back and retry.
      // The bundle stays: a version of the same code (the other writer's, perhaps) names it too.
      await eraseKeys(this.kv, versionKey(name, version)).catch(() => undefined);
    }
  }

  async get(name: string): Promise<FunctionPackage | undefined> {
    const entry = await this.kv.get(headKey(name));
    if (!entry || entry.operation !== "PUT") return undefined;
    const value = entry.json<FunctionPackage | Tombstone>();
    return isTombstone(value) ? undefined : value;
  }

  async version(name: string, version: number): Promise<PackageVersion | undefined> {
    const entry = await this.kv.get(versionKey(name, version));
    if (!entry || entry.operation !== "PUT") return undefined;
    return entry.json<PackageVersion>();
  }

  /** Every version of `name` still stored, oldest first. */
  async versions(name: string): Promise<PackageVersion[]> {
    const keys = await this.keys(`ver.${name}.*`);
    const versions: PackageVersion[] = [];
    for (const key of keys) {
      const entry = await this.kv.get(key);
      if (entry && entry.operation === "PUT") versions.push(entry.json<PackageVersion>());
    }
    return versions.filter((version) => version.name === name).sort((a, b) => a.version - b.version);
  }

  /** The latest version of every function that is not deleted, by name. */
  async list(): Promise<FunctionPackage[]> {
    const found: FunctionPackage[] = [];
    for (const key of await this.keys("fn.>")) {
      const entry = await this.kv.get(key);
      if (!entry || entry.operation !== "PUT") continue;
      const value = entry.json<FunctionPackage | Tombstone>();
      if (!isTombstone(value)) found.push(value);
    }
    return found.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The bundle of a version, checked against its digest; `undefined` when it is gone. */
  async bundle(
    name: string,
    version: number,
  ): Promise<{ bundle: Uint8Array; info: PackageVersion } | undefined> {
    const info = await this.version(name, version);
    if (info === undefined) return undefined;
    const bundle = await this.objects.getBlob(info.object ?? legacyObjectName(name, version));
    if (bundle === null) return undefined;
    if (digestOf(bundle) !== info.digest)
      throw new Error(`the bundle of ${name}@${version} does not match its digest ${info.digest}`);
    return { bundle, info };
  }

  /**
   * Deletes a function: no new worker loads it; its versions stay (a worker may be loading one).
   * Numbering goes on after it. `false` when there was nothing to delete.
   */
  async remove(name: string): Promise<boolean> {
    for (;;) {
      const entry = await this.kv.get(headKey(name));
      if (!entry || entry.operation !== "PUT") return false;
      const head = entry.json<FunctionPackage | Tombstone>();
      if (isTombstone(head)) return false;
      const tombstone: Tombstone = { name, deleted: true, version: head.version };
      if (await this.moveHead(name, JSON.stringify(tombstone), entry.revision)) {
        await this.kv.delete(healthKey(name)).catch(() => undefined);
        return true;
      }
    }
  }

  async health(name: string): Promise<FunctionHealth | undefined> {
    const entry = await this.kv.get(healthKey(name));
    if (!entry || entry.operation !== "PUT") return undefined;
    return entry.json<FunctionHealth>();
  }

  /**
   * Marks `version` of `name` unhealthy, unless a newer version has been deployed since.
   *
   * A deploy moves the head, then clears the mark. One that lands between this read of the head
   * and the write of the mark has cleared nothing yet; so the head is read again after the write,
   * and a mark it outdates is taken back (a delete on the mark's own revision: never a newer mark).
   * `afterCheck` runs between the first read and the write; tests use it to deploy there.
   */
  async markUnhealthy(
    name: string,
    version: number,
    reason: string,
    afterCheck?: () => Promise<void>,
  ): Promise<boolean> {
    const head = await this.get(name);
    if (head === undefined || head.version !== version) return false;
    await afterCheck?.();
    const health: FunctionHealth = { name, version, healthy: false, reason, since: new Date().toISOString() };
    const revision = await this.kv.put(healthKey(name), JSON.stringify(health));
    if ((await this.get(name))?.version === version) return true;
    await this.kv.delete(healthKey(name), { previousSeq: revision }).catch(() => undefined);
    return false;
  }

  /** The names of the unhealthy functions whose latest version is the unhealthy one. */
  async unhealthy(): Promise<FunctionHealth[]> {
    const found: FunctionHealth[] = [];
    for (const key of await this.keys("health.>")) {
      const entry = await this.kv.get(key);
      if (entry && entry.operation === "PUT") found.push(entry.json<FunctionHealth>());
    }
    return found;
  }

  private async keys(filter: string): Promise<string[]> {
    return listKeys(this.kv, filter);
  }

  private async createKey(key: string, bytes: string): Promise<boolean> {
    try {
      await this.kv.create(key, bytes);
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }

  private async moveHead(name: string, bytes: string, previous: number | undefined): Promise<boolean> {
    if (previous === undefined) return this.createKey(headKey(name), bytes);
    try {
      await this.kv.update(headKey(name), bytes, previous);
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }
}

function sameScale(a: ScaleSettings, b: ScaleSettings): boolean {
  return (
    a.minScale === b.minScale &&
    a.maxScale === b.maxScale &&
    a.concurrency === b.concurrency &&
    a.idleMs === b.idleMs
  );
}

const isConflict = (error: unknown) => /wrong last sequence|key exists/i.test(String(error));
