/**
 * The console's front end (engine/api/ui/app, TypeScript + Preact + Chart.js) as one JavaScript
 * bundle, built by esbuild from the repository's own files the first time `/ui` is asked for, then
 * kept in memory: no build step to forget, no CDN, nothing fetched from the network.
 */
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const entry = fileURLToPath(new URL("./app/main.tsx", import.meta.url));

let bundle: Promise<string> | undefined;

/** The bundle's JavaScript; built once per process (a failed build is tried again next time). */
export function consoleBundle(): Promise<string> {
  bundle ??= build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "esm",
    target: "es2022",
    minify: true,
    jsx: "automatic",
    jsxImportSource: "preact",
    legalComments: "none",
    logLevel: "silent",
  })
    .then((result) => result.outputFiles[0]!.text)
    .catch((error: unknown) => {
      bundle = undefined;
      throw error;
    });
  return bundle;
}
