/**
 * The console's front end (engine/api/ui/app: TypeScript, Preact, Chart.js, Mermaid) as
 * JavaScript modules, built by esbuild from the repository's own files the first time `/ui` is
 * asked for, then kept in memory: no build step to forget, no CDN, nothing fetched from the
 * network. `app.js` is the entry; Mermaid (large, for the workflow diagram) is split into chunks
 * the page loads only when it draws a diagram.
 */
import { basename } from "node:path";
import { build } from "esbuild";
import { packagePath } from "../../package-root.ts";

// The app's sources, not dist/: esbuild compiles them (they ship in the package for that).
const entry = packagePath("engine/api/ui/app/main.tsx");

let bundle: Promise<Map<string, string>> | undefined;

/** The built files by name (`app.js`, `chunk-….js`); built once per process (a failed build is tried again). */
export function consoleBundle(): Promise<Map<string, string>> {
  bundle ??= build({
    entryPoints: { app: entry },
    bundle: true,
    splitting: true,
    outdir: "/ui",
    write: false,
    format: "esm",
    target: "es2022",
    minify: true,
    jsx: "automatic",
    jsxImportSource: "preact",
    legalComments: "none",
    logLevel: "silent",
  })
    .then((result) => new Map(result.outputFiles.map((file) => [basename(file.path), file.text])))
    .catch((error: unknown) => {
      bundle = undefined;
      throw error;
    });
  return bundle;
}
