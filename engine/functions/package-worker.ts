/**
 * A worker of a deployed function package (`baton worker --package NAME[@VERSION]`, and every
 * worker the pool starts): reads the version (default: the latest) from JetStream, checks its
 * digest, writes it to a local cache (a module as a file, an archive unpacked in a directory),
 * imports it and serves the function, naming the package and version in its heartbeats.
 */
import { natsAccessFromEnv } from "../../sdk/nats-access.ts";
import { connectNats } from "../../sdk/nats-connect.ts";
import { mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { definedFunctions } from "../../sdk/worker/define-function.ts";
import { discardPrewarmed, prewarmIsolate } from "../../sdk/worker/isolate-pool.ts";
import { runWorker } from "../../sdk/worker/run-worker.ts";
import { isolateHeapMb } from "../../sdk/worker/worker-env.ts";
import type { NatsConnection } from "nats";
import { bundleEntry, isArchive, unpackArchive } from "./package-archive.ts";
import { PackageStore } from "./package-store.ts";

export class PackageNotFoundError extends Error {
  override name = "PackageNotFoundError";
}

/** `NAME` or `NAME@VERSION`. */
export function parsePackageRef(text: string): { name: string; version: number | undefined } | undefined {
  const match = /^([a-z][a-z0-9._-]{0,127})(?:@([1-9][0-9]{0,9}))?$/.exec(text);
  if (!match) return undefined;
  return { name: match[1]!, version: match[2] === undefined ? undefined : Number(match[2]) };
}

/** Where bundles are kept on this machine (`BATON_PACKAGE_CACHE`, default `<tmp>/baton-packages`). */
export function packageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.BATON_PACKAGE_CACHE || join(tmpdir(), "baton-packages");
}

/** Connects as a worker does: NATS_URL, and the credentials and TLS of the environment. */
function connectWorker(name: string, env: NodeJS.ProcessEnv): Promise<NatsConnection> {
  return connectNats(
    {
      servers: env.NATS_URL ?? "nats://127.0.0.1:4222",
      name: `package-worker-${name}`,
      maxReconnectAttempts: -1,
      noAsyncTraces: true,
    },
    natsAccessFromEnv(env),
  );
}

/**
 * Fetches a package version into the cache (once per digest); its file and what it is. On `nc`
 * when given (left open), else on a connection of its own.
 */
export async function fetchPackage(
  name: string,
  version: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
  connection?: NatsConnection,
): Promise<{ file: string; version: number; digest: string }> {
  const nc = connection ?? (await connectWorker(name, env));
  try {
    const store = await PackageStore.open(nc.jetstream());
    const wanted = version ?? (await store.get(name))?.version;
    if (wanted === undefined)
      throw new PackageNotFoundError(`no function package named "${name}" is deployed`);
    const info = await store.version(name, wanted);
    if (info === undefined)
      throw new PackageNotFoundError(`function package "${name}" has no version ${wanted}`);
    const dir = join(packageCacheDir(env), name);
    const base = join(dir, `v${wanted}-${info.digest.replace(/^sha256:/, "").slice(0, 16)}`);
    // A module is kept as `<base>.mjs`; an archive (package-archive.ts) unpacked in `<base>/`.
    let file = (await exists(`${base}.mjs`))
      ? `${base}.mjs`
      : (await exists(join(base, bundleEntry)))
        ? join(base, bundleEntry)
        : undefined;
    if (file === undefined) {
      const found = await store.bundle(name, wanted);
      if (found === undefined)
        throw new PackageNotFoundError(`the bundle of function package "${name}" version ${wanted} is gone`);
      await mkdir(dir, { recursive: true });
      const partial = `${base}.${process.pid}.partial`;
      if (isArchive(found.bundle)) {
        await rm(partial, { recursive: true, force: true });
        await mkdir(partial);
        try {
          await unpackArchive(found.bundle, partial);
          // Another worker on this machine may have unpacked the same version meanwhile: keep its.
          await rename(partial, base).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
          });
        } finally {
          await rm(partial, { recursive: true, force: true });
        }
        file = join(base, bundleEntry);
      } else {
        await writeFile(partial, found.bundle);
        await rename(partial, `${base}.mjs`);
        file = `${base}.mjs`;
      }
    }
    return { file, version: wanted, digest: info.digest };
  } finally {
    if (connection === undefined) await nc.close();
  }
}

/** Serves package `name` (version: latest) until drained; resolves with the exit code. */
export async function runPackageWorker(
  name: string,
  version: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  // One connection for the fetch and the serving (the package's bucket has told the server who
  // this is; a second connect would cost a round of handshakes at every cold start).
  const nc = await connectWorker(name, env);
  try {
    const fetched = await fetchPackage(name, version, env, nc);
    const url = pathToFileURL(fetched.file).href;
    // The first isolate boots and imports the bundle while this thread imports it too.
    prewarmIsolate([url], isolateHeapMb(env));
    await import(url).catch(async (error: unknown) => {
      await discardPrewarmed();
      throw error;
    });
    const definition = definedFunctions().get(name);
    if (definition === undefined) {
      await discardPrewarmed();
      throw new Error(
        `function package "${name}" version ${fetched.version} does not define a function "${name}"`,
      );
    }
    return await runWorker([], env, {
      functions: [definition],
      package: { name, version: fetched.version, digest: fetched.digest },
      connection: nc,
    });
  } finally {
    await nc.drain().catch(() => nc.close());
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
