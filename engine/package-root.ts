/**
 * Where Baton's package is (package.json, bin/, scripts/), whether this code runs from the
 * TypeScript sources (engine/…) or compiled (dist/engine/…): for the files a process needs at run
 * time that are not modules, and for `bin/baton.mjs` when it starts a child process.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const engineDir = fileURLToPath(new URL(".", import.meta.url));

/** Whether this process runs the TypeScript sources (tsx, vitest) rather than dist/. */
export const runsFromSource = import.meta.url.endsWith(".ts");

/** The package's root directory. */
export const packageRoot = resolve(engineDir, runsFromSource ? ".." : "../..");

/** A path inside the package, e.g. `packagePath("bin/baton.mjs")`. */
export function packagePath(path: string): string {
  return resolve(packageRoot, path);
}
