#!/usr/bin/env node
// `npm run build`: compiles Baton's TypeScript (engine/ and sdk/) to JavaScript in dist/, with
// declaration files, by tsc (tsconfig.build.json; incremental: an unchanged tree takes seconds),
// then writes the language schema's precompiled validators, bundles the command line (dist/cli/,
// esbuild) and writes dist/.built, the stamp bin/baton.mjs compares the sources against.
//
// `--if-possible` (how `prepare` runs it, on `npm ci`/`npm install`): skips the build, saying so,
// when the sources or TypeScript are not there (`npm ci --omit=dev` in the Docker image's first
// layer, before the sources are copied). `npm run build` itself never skips.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const root = resolve(import.meta.dirname, "..");
const ifPossible = process.argv.includes("--if-possible");

let tsc;
try {
  tsc = createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");
} catch {
  tsc = undefined;
}
const missing = !existsSync(join(root, "engine/cli/main.ts"))
  ? "the sources (engine/, sdk/) are not there"
  : tsc === undefined
    ? "TypeScript is not installed (a dev dependency)"
    : undefined;
if (missing !== undefined) {
  if (ifPossible) {
    process.stderr.write(`baton build: skipped: ${missing}; run "npm run build" once they are\n`);
    process.exit(0);
  }
  process.stderr.write(`baton build: cannot build: ${missing}\n`);
  process.exit(1);
}

const result = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], {
  cwd: root,
  stdio: "inherit",
});
if (result.status !== 0) {
  process.stderr.write("baton build: tsc failed (see above); dist/ is not up to date\n");
  process.exit(result.status ?? 1);
}
// The language schema's validators as plain JavaScript (ajv's standalone code), so that the
// compiled `baton validate` does not compile the schema at every start.
const languageSchema = join(root, "dist/engine/workflow/validate/language-schema.js");
const { precompiledValidatorsSource, precompiledValidatorsFile } = await import(
  pathToFileURL(languageSchema).href
);
writeFileSync(join(dirname(languageSchema), precompiledValidatorsFile), precompiledValidatorsSource());
// The same for the draft 2020-12 meta-schema, which checks a workflow's own input schema.
const inputSchemaCheck = join(root, "dist/engine/workflow/validate/check-input-schema.js");
const { precompiledMetaValidatorSource, precompiledMetaValidatorFile } = await import(
  pathToFileURL(inputSchemaCheck).href
);
writeFileSync(
  join(dirname(inputSchemaCheck), precompiledMetaValidatorFile),
  precompiledMetaValidatorSource(),
);

// The command line as one bundle (dist/cli/): `baton` loads a few files instead of hundreds (yaml
// and ajv alone are 160 CommonJS files), which is most of a one-shot command's start. Commands
// stay lazy (a chunk each, loaded when run). The isolate's runtime is an entry of its own, beside
// the chunks, where the isolate looks for it; so are the language schema's validators. Left out:
// what is loaded from files at run time or is native (fastify and its plugins, pino, the
// OpenTelemetry SDK but not its API, tsx, esbuild, sharp, ws); they load from node_modules as before. dist/engine
// and dist/sdk stay: the package's exports (`import ... from "baton"`) and the types.
const { build } = await import("esbuild");
const cli = join(root, "dist/cli");
rmSync(cli, { recursive: true, force: true });
await build({
  entryPoints: {
    main: join(root, "dist/engine/cli/main.js"),
    "isolate-runtime": join(root, "dist/sdk/worker/isolate-runtime.js"),
  },
  outdir: cli,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // Less text for V8 to parse at every start. Identifiers are not renamed, so functions and
  // classes keep their names in stack traces without esbuild's keepNames (whose `__name` wrapper
  // on every function expression cost the engine 3% of its CPU).
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: "warning",
  external: [
    "fastify",
    "@fastify/*",
    // The OpenTelemetry SDK, loaded only when tracing is configured. The API (@opentelemetry/api,
    // about 90 CommonJS files, needed by every worker and engine) is bundled; copies of it share
    // their state through a global keyed by its version, so the SDK's own copy sees the same.
    "@opentelemetry/sdk-node",
    "@opentelemetry/sdk-trace",
    "@opentelemetry/resources",
    "@opentelemetry/semantic-conventions",
    "pino",
    "ws",
    "tsx",
    "esbuild",
    "sharp",
    "playwright-core",
    "chart.js",
  ],
  // CommonJS dependencies inside an ES module bundle still call require.
  banner: {
    js: 'import { createRequire as __batonCreateRequire } from "node:module"; const require = __batonCreateRequire(import.meta.url);',
  },
});
copyFileSync(join(dirname(languageSchema), precompiledValidatorsFile), join(cli, precompiledValidatorsFile));
copyFileSync(
  join(dirname(inputSchemaCheck), precompiledMetaValidatorFile),
  join(cli, precompiledMetaValidatorFile),
);
writeFileSync(join(root, "dist/.built"), `${new Date().toISOString()}\n`);
