/**
 * What a package must be before it is stored (docs/functions.md): one self-contained ES module
 * (JavaScript that parses and imports nothing but Node's built-in modules), or an archive of one
 * with the packages it loads at run time (package-archive.ts), that loads in a process of its own without
 * throwing, and that defines, with `defineFunction`, the function it is uploaded as. Each
 * refusal says which of these failed.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
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

/** How long a bundle may take to load in the checking process, and the heap it has. */
const loadTimeoutMs = 15_000;
const checkHeapMb = 256;
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
    const functions = await loadInChild(file);
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

/** How the checking process reports: one line, after whatever the module itself printed. */
const reportPrefix = "baton-package-check:";

/**
 * What the checking process runs: it imports the bundle as a worker's isolate does (marked as an
 * isolate, so a module that serves itself does not connect anywhere), then names the functions
 * `defineFunction` recorded (the SDK keeps them on `globalThis`, sdk/worker/define-function.ts).
 */
const probe = `
globalThis[Symbol.for("baton.insideIsolate")] = true;
let failure;
try {
  await import(process.argv[1]);
} catch (error) {
  failure = error instanceof Error ? error.message : String(error);
}
const registry = globalThis[Symbol.for("baton.functions")];
process.stdout.write("\\n${reportPrefix}" + JSON.stringify({ failure, functions: [...(registry?.keys() ?? [])] }) + "\\n");
process.exit(0);
`;

/**
 * Imports the bundle in a Node process of its own and returns the functions it defines. A process,
 * not a thread of the API's: the package's code sees none of the API's environment (its NATS
 * credentials, its tokens), a native addon it loads (sharp) is mapped into that process and gone
 * with it, and a crash at load (an abort, a fault in an addon) ends only that process.
 */
async function loadInChild(file: string): Promise<string[]> {
  const child = spawn(
    process.execPath,
    [`--max-old-space-size=${checkHeapMb}`, "--input-type=module", "-e", probe, pathToFileURL(file).href],
    { cwd: dirname(file), env: {}, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr = (stderr + text).slice(-2_000)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, loadTimeoutMs);
  const [code, signal] = (await once(child, "close").finally(() => clearTimeout(timer))) as [
    number | null,
    NodeJS.Signals | null,
  ];
  const line = stdout.split("\n").findLast((text) => text.startsWith(reportPrefix));
  if (line === undefined) {
    if (timedOut)
      throw new PackageRefusedError(
        "PackageInvalid",
        `the module did not finish loading within ${loadTimeoutMs / 1000} s`,
      );
    const last = stderr.trim().split("\n").slice(-3).join(" ").trim();
    throw new PackageRefusedError(
      "PackageInvalid",
      `the module crashed while loading (${signal === null ? `exit code ${code}` : signal})${last === "" ? "" : `: ${last}`}`,
    );
  }
  const report = JSON.parse(line.slice(reportPrefix.length)) as { failure?: string; functions: string[] };
  if (report.failure !== undefined)
    throw new PackageRefusedError("PackageInvalid", `the module throws when it is loaded: ${report.failure}`);
  return report.functions;
}
