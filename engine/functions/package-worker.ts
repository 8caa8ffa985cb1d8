/**
 * A worker of a deployed function package (`baton worker --package NAME[@VERSION]`, and every
 * worker the pool starts): reads the version (default: the latest) from JetStream, checks its
 * digest, writes it to a local cache file, imports it and serves the function, naming the
 * package and version in its heartbeats.
 */
import { natsAccessFromEnv } from "../../sdk/nats-access.ts";
import { connectNats } from "../../sdk/nats-connect.ts";
import { mkdir, rename, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { definedFunctions } from "../../sdk/worker/define-function.ts";
import { runWorker } from "../../sdk/worker/run-worker.ts";
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

/** Fetches a package version into the cache (once per digest); its file and what it is. */
export async function fetchPackage(
  name: string,
  version: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ file: string; version: number; digest: string }> {
  const nc = await connectNats(
    { servers: env.NATS_URL ?? "nats://127.0.0.1:4222", name: `package-fetch-${name}` },
    natsAccessFromEnv(env),
  );
  try {
    const store = await PackageStore.open(nc.jetstream());
    const wanted = version ?? (await store.get(name))?.version;
    if (wanted === undefined)
      throw new PackageNotFoundError(`no function package named "${name}" is deployed`);
    const info = await store.version(name, wanted);
    if (info === undefined)
      throw new PackageNotFoundError(`function package "${name}" has no version ${wanted}`);
    const dir = join(packageCacheDir(env), name);
    const file = join(dir, `v${wanted}-${info.digest.replace(/^sha256:/, "").slice(0, 16)}.mjs`);
    if (!(await exists(file))) {
      const found = await store.bundle(name, wanted);
      if (found === undefined)
        throw new PackageNotFoundError(`the bundle of function package "${name}" version ${wanted} is gone`);
      await mkdir(dir, { recursive: true });
      const partial = `${file}.${process.pid}.partial`;
      await writeFile(partial, found.bundle);
      await rename(partial, file);
    }
    return { file, version: wanted, digest: info.digest };
  } finally {
    await nc.close();
  }
}

/** Serves package `name` (version: latest) until drained; resolves with the exit code. */
export async function runPackageWorker(
  name: string,
  version: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const fetched = await fetchPackage(name, version, env);
  await import(pathToFileURL(fetched.file).href);
  const definition = definedFunctions().get(name);
  if (definition === undefined)
    throw new Error(
      `function package "${name}" version ${fetched.version} does not define a function "${name}"`,
    );
  return runWorker([], env, {
    functions: [definition],
    package: { name, version: fetched.version, digest: fetched.digest },
  });
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
