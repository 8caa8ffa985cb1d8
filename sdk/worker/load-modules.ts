// Finding the functions of ES modules, as `baton worker MODULE...` does: each module's default
// export (a definition or an array of them) and its named exports that are definitions.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isFunctionDefinition, type FunctionDefinition } from "./define-function.ts";

const isTypeScript = (url: string): boolean => /\.[cm]?tsx?$/.test(new URL(url).pathname);

let typeScriptLoader: Promise<void> | undefined;

/**
 * Makes `import()` of a user's TypeScript module work. Running from the sources (tsx, vitest), a
 * loader already is in place; compiled (dist/, as `baton worker` runs), tsx's hooks are registered
 * once, when the first TypeScript module is loaded, so that JavaScript modules start without them.
 */
function registerTypeScriptLoader(): Promise<void> {
  if (import.meta.url.endsWith(".ts")) return Promise.resolve();
  typeScriptLoader ??= import("tsx/esm/api").then(({ register }) => void register());
  return typeScriptLoader;
}

/** The URL `loadFunctionModules` imports `module` (a path relative to `cwd`, or a URL) from. */
export function moduleUrl(module: string, cwd: string = process.cwd()): string {
  return /^[a-z][a-z0-9+.-]*:/i.test(module) ? module : pathToFileURL(resolve(cwd, module)).href;
}

/** Imports `modules` (paths relative to `cwd`, or URLs) and returns the definitions they export, each once. */
export async function loadFunctionModules(
  modules: readonly string[],
  cwd: string = process.cwd(),
): Promise<FunctionDefinition[]> {
  const found = new Map<string, FunctionDefinition>();
  for (const module of modules) {
    const url = moduleUrl(module, cwd);
    if (isTypeScript(url)) await registerTypeScriptLoader();
    const exports = (await import(url)) as Record<string, unknown>;
    const definitions = Object.entries(exports).flatMap(([name, value]) =>
      name === "default" && Array.isArray(value)
        ? value.filter(isFunctionDefinition)
        : isFunctionDefinition(value)
          ? [value]
          : [],
    );
    if (definitions.length === 0) {
      throw new Error(
        `${module} exports no function definitions; export defineFunction(...) results (as the default export, an array of them, or named exports)`,
      );
    }
    for (const definition of definitions) {
      const other = found.get(definition.name);
      if (other !== undefined && other !== definition) {
        throw new Error(
          `function "${definition.name}" is defined twice (in ${other.module} and ${definition.module})`,
        );
      }
      found.set(definition.name, definition);
    }
  }
  return [...found.values()];
}
