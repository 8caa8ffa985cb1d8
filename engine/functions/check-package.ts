/**
 * What a package must be before it is stored (docs/functions.md): one self-contained ES module
 * (JavaScript that parses and imports nothing but Node's built-in modules), or an archive of one
 * with the packages it loads at run time (package-archive.ts), that loads in an isolate without
 * throwing, and that defines, with `defineFunction`, the function it is uploaded as. Each
 * refusal says which of these failed.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { Isolate } from "../../sdk/worker/isolate.ts";
import { ArchiveError, bundleEntry, isArchive, unpackArchive } from "./package-archive.ts";

export class PackageRefusedError extends Error {
  override name = "PackageRefusedError";
  constructor(
    readonly code: "PackageInvalid" | "FunctionNameMismatch",
    message: string,
  ) {
    super(message);
  }
}

export interface CheckedPackage {
  /** Every function the bundle defines. */
  functions: string[];
}

/** How long a bundle may take to load in the checking isolate. */
const loadTimeoutMs = 15_000;
const builtins = new Set([...builtinModules, ...builtinModules.map((name) => `node:${name}`)]);

export async function checkPackage(name: string, bundle: Uint8Array): Promise<CheckedPackage> {
  const functions = await inspectBundle(bundle);
  if (!functions.includes(name))
    throw new PackageRefusedError(
      "FunctionNameMismatch",
      `the bundle defines ${functions.map((fn) => `"${fn}"`).join(", ")}, not "${name}": a package is named after the function it serves (deploy it as ${functions.length === 1 ? `"${functions[0]}"` : "one of those names"})`,
    );
  return { functions };
}

/** Checks that a package is one and loads; the functions it defines (at least one). */
export async function inspectBundle(bundle: Uint8Array): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), "baton-package-check-"));
  try {
    let file = join(dir, bundleEntry);
    if (isArchive(bundle)) {
      try {
        file = await unpackArchive(bundle, dir);
      } catch (error) {
        if (error instanceof ArchiveError) throw new PackageRefusedError("PackageInvalid", error.message);
        throw error;
      }
    } else await writeFile(file, bundle);
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(await readFile(file));
    } catch {
      throw new PackageRefusedError(
        "PackageInvalid",
        "not a bundle: the body is not UTF-8 text (send the ES module, or the archive, that `baton function deploy` builds)",
      );
    }
    if (text.trim() === "")
      throw new PackageRefusedError("PackageInvalid", "not a bundle: the body is empty");
    await checkSelfContained(text);
    const functions = await loadInIsolate(file);
    if (functions.length === 0)
      throw new PackageRefusedError(
        "PackageInvalid",
        "the bundle defines no function: export a defineFunction(...) result from the module",
      );
    return functions;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Parses the module and refuses any import that is not one of Node's built-in modules. */
async function checkSelfContained(text: string): Promise<void> {
  const outside: string[] = [];
  try {
    await build({
      stdin: { contents: text, loader: "js", resolveDir: tmpdir(), sourcefile: "bundle.mjs" },
      bundle: true,
      write: false,
      platform: "node",
      format: "esm",
      logLevel: "silent",
      plugins: [
        {
          name: "self-contained",
          setup(plugin) {
            plugin.onResolve({ filter: /.*/ }, (args) => {
              if (args.kind === "entry-point") return undefined;
              if (!builtins.has(args.path)) outside.push(args.path);
              return { path: args.path, external: true };
            });
          },
        },
      ],
    });
  } catch (error) {
    const messages = (
      error as { errors?: { text: string; location?: { line: number; column: number } | null }[] }
    ).errors;
    const first = messages?.[0];
    const where = first?.location
      ? ` at line ${first.location.line}, column ${first.location.column + 1}`
      : "";
    throw new PackageRefusedError(
      "PackageInvalid",
      `not a bundle: the body is not a JavaScript module${where}: ${first?.text ?? String(error)}`,
    );
  }
  if (outside.length > 0)
    throw new PackageRefusedError(
      "PackageInvalid",
      `not a bundle: it imports ${[...new Set(outside)].map((path) => `"${path}"`).join(", ")}, which it does not contain; bundle its dependencies in (baton function deploy does)`,
    );
}

/** Imports the bundle in an isolate, as a worker would; the functions it defines. */
async function loadInIsolate(file: string): Promise<string[]> {
  let isolate: Isolate | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const url = pathToFileURL(file).href;
    isolate = new Isolate({ modules: [url], heapMb: 256 });
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new PackageRefusedError(
              "PackageInvalid",
              `the module did not finish loading within ${loadTimeoutMs / 1000} s`,
            ),
          ),
        loadTimeoutMs,
      );
    });
    let ready;
    try {
      ready = await Promise.race([isolate.ready, timeout]);
    } catch (error) {
      if (error instanceof PackageRefusedError) throw error;
      throw new PackageRefusedError(
        "PackageInvalid",
        `the module crashed while loading: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    const failure = ready.failures[0];
    if (failure !== undefined)
      throw new PackageRefusedError(
        "PackageInvalid",
        `the module throws when it is loaded: ${failure.message}`,
      );
    return [...ready.functions];
  } finally {
    clearTimeout(timer);
    await isolate?.terminate();
  }
}
