/**
 * Function packages that need files beside their bundle (docs/functions.md, "Native
 * dependencies"): a native addon (a `.node` file, and the libraries it loads) cannot be part of a
 * JavaScript bundle. Such a package is a gzipped tar of `bundle.mjs` and
 * `node_modules/<package>/…` for each package the bundle loads at run time, laid out so that the
 * bundle's `require` of them resolves as it did where it was built. A package without them stays
 * one ES module, as before.
 *
 * The archive is built the same way from the same files (sorted entries, no owners or times), so
 * an unchanged package has an unchanged digest and `baton apply` leaves it alone. `tar` is loaded
 * only when an archive is made or opened.
 */
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";

/** The bundle's name inside an archive. */
export const bundleEntry = "bundle.mjs";

/** At most this many files and bytes come out of one archive (a package is code, not a data set). */
export const archiveLimits = { entries: 20_000, bytes: 256 * 1024 * 1024 };

export class ArchiveError extends Error {
  override name = "ArchiveError";
}

/** A package the bundle loads at run time, and where it is installed here. */
export interface RuntimePackage {
  /** Its name, as `require` names it (`@img/sharp-linux-x64`). */
  name: string;
  /** Its installed directory. */
  dir: string;
}

/** The Content-Type a package is uploaded with (`PUT /v1/functions/{name}`). */
export const packageContentType = (bytes: Uint8Array): string =>
  isArchive(bytes) ? "application/gzip" : "application/javascript";

/** Whether a package's bytes are an archive (gzip) rather than one module. */
export function isArchive(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** The bundle and the packages beside it, as one gzipped tar. */
export async function packArchive(
  bundle: Uint8Array,
  packages: readonly RuntimePackage[],
): Promise<Uint8Array> {
  const staging = await mkdtemp(join(tmpdir(), "baton-package-"));
  try {
    await writeFile(join(staging, bundleEntry), bundle);
    for (const pkg of packages)
      await cp(pkg.dir, join(staging, "node_modules", pkg.name), { recursive: true, dereference: true });
    const files = (await filesUnder(staging)).sort();
    const { create } = await import("tar");
    const chunks: Buffer[] = [];
    const archive = create(
      { cwd: staging, gzip: true, portable: true, mtime: new Date(0), noDirRecurse: true },
      files,
    );
    for await (const chunk of archive) chunks.push(chunk);
    return Buffer.concat(chunks);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Unpacks an archive into `dir` (which must be empty or missing) and returns the bundle's path.
 * Refuses, with the entry it stopped at, anything but regular files and directories (without
 * set-id bits) under `bundle.mjs` and `node_modules/`, and archives past {@link archiveLimits}.
 * The gzip layer is inflated first, in the thread pool and bounded by the byte limit, so a small
 * upload that inflates to gigabytes is refused without ever being held whole.
 */
export async function unpackArchive(bytes: Uint8Array, dir: string): Promise<string> {
  let tarBytes: Buffer;
  try {
    tarBytes = await promisify(gunzip)(bytes, { maxOutputLength: archiveLimits.bytes + tarOverhead });
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE")
      throw new ArchiveError(`the package archive holds more than ${archiveLimits.bytes} bytes unpacked`);
    throw new ArchiveError(
      `not a package archive: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  let entries = 0;
  let size = 0;
  let refused: string | undefined;
  const { extract } = await import("tar");
  const unpack = extract({
    cwd: dir,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    filter: (path, entry) => {
      const reason = refusal(path, entry);
      if (reason !== undefined) {
        // Nothing after the first refusal is written: the whole archive is refused.
        refused ??= reason;
        unpack.abort(new ArchiveError(reason));
        return false;
      }
      return refused === undefined;
    },
  });
  const refusal = (path: string, entry: { type?: string; size?: number; mode?: number }) => {
    const clean = path.replace(/^\.\//, "");
    if (clean.split("/").includes("..") || clean.startsWith("/"))
      return `an entry that leaves the package: ${path}`;
    if (clean !== bundleEntry && !clean.startsWith("node_modules/"))
      return `an entry outside ${bundleEntry} and node_modules/: ${path}`;
    if (entry.type !== "File" && entry.type !== "OldFile" && entry.type !== "Directory")
      return `an entry that is not a file or a directory (${String(entry.type)}): ${path}`;
    if (((entry.mode ?? 0) & 0o7000) !== 0) return `an entry with set-id or sticky bits: ${path}`;
    entries += 1;
    size += entry.size ?? 0;
    if (entries > archiveLimits.entries) return `more than ${archiveLimits.entries} files`;
    if (size > archiveLimits.bytes) return `more than ${archiveLimits.bytes} bytes unpacked`;
    return undefined;
  };
  try {
    await pipeline(Readable.from(slices(tarBytes)), unpack);
  } catch (error) {
    if (refused === undefined)
      throw new ArchiveError(
        `not a package archive: ${error instanceof Error ? error.message : String(error)}`,
      );
  }
  if (refused !== undefined) throw new ArchiveError(`the package archive holds ${refused}`);
  const bundle = join(dir, bundleEntry);
  if (!(await isFile(bundle))) throw new ArchiveError(`the package archive holds no ${bundleEntry}`);
  return bundle;
}

/** Room for tar's own headers and padding beyond the files' bytes (512 bytes and more per entry). */
const tarOverhead = archiveLimits.entries * 1_024 + 1_024 * 1_024;

/** A buffer in 64 KiB pieces, so that tar parses it as a stream (and can stop early). */
function* slices(buffer: Buffer): Generator<Buffer> {
  for (let at = 0; at < buffer.length; at += 65_536) yield buffer.subarray(at, at + 65_536);
}

/**
 * The packages a bundle loads at run time: every dependency (or optional dependency) of a bundled
 * package that is installed, not bundled itself, and holds a native addon (a `.node` file), with
 * everything those depend on in turn. `inputs` are the bundle's input files (esbuild's metafile).
 */
export async function runtimePackages(inputs: readonly string[]): Promise<RuntimePackage[]> {
  const bundled = new Set(inputs.map(packageDirOf).filter((dir): dir is string => dir !== undefined));
  const found = new Map<string, RuntimePackage>();
  const take = async (pkg: RuntimePackage): Promise<void> => {
    if (found.has(pkg.name)) return;
    found.set(pkg.name, pkg);
    for (const dependency of await dependenciesOf(pkg.dir)) await take(dependency);
  };
  for (const dir of [...bundled].sort())
    for (const dependency of await dependenciesOf(dir))
      if (!bundled.has(dependency.dir) && (await holdsAddon(dependency.dir))) await take(dependency);
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** The installed directory of the package a file belongs to (`…/node_modules/<name>`), if any. */
function packageDirOf(file: string): string | undefined {
  const parts = file.split(sep);
  const at = parts.lastIndexOf("node_modules");
  if (at < 0 || at + 1 >= parts.length) return undefined;
  const length = parts[at + 1]!.startsWith("@") ? at + 3 : at + 2;
  return parts.length > length ? parts.slice(0, length).join(sep) : undefined;
}

/** A package's dependencies and optional dependencies that are installed, found as Node finds them. */
async function dependenciesOf(dir: string): Promise<RuntimePackage[]> {
  let manifest: { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
  try {
    manifest = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as typeof manifest;
  } catch {
    return [];
  }
  const names = [
    ...new Set([
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.optionalDependencies ?? {}),
    ]),
  ];
  const found: RuntimePackage[] = [];
  for (const name of names) {
    for (let from = dir; ; from = dirname(from)) {
      const candidate = join(from, "node_modules", name);
      if (await isFile(join(candidate, "package.json"))) {
        found.push({ name, dir: candidate });
        break;
      }
      if (dirname(from) === from) break;
    }
  }
  return found;
}

/** Whether a package holds a native addon (a `.node` file), its own nested packages left out. */
async function holdsAddon(dir: string): Promise<boolean> {
  for (const file of await filesUnder(dir, { skip: "node_modules" })) if (file.endsWith(".node")) return true;
  return false;
}

/** Every file under `dir`, as paths relative to it with `/`, following no links. */
async function filesUnder(dir: string, { skip }: { skip?: string } = {}): Promise<string[]> {
  const files: string[] = [];
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      if (entry.name === skip) continue;
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) files.push(relative(dir, path).split(sep).join("/"));
    }
  };
  await walk(dir);
  return files;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
