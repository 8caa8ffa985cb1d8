#!/usr/bin/env node
// The `baton` command. Runs the compiled CLI (dist/, built by `npm run build`, which `npm ci` runs
// as `prepare`): no TypeScript is compiled at start.
//
// BATON_FROM_SOURCE=1 runs the TypeScript sources through tsx instead; the test suite sets it
// (vitest.config.ts), so that a test always runs the code as it is on disk, and every process it
// starts (and they start) inherits it.
//
// In a checkout (the sources beside dist/), a dist/ older than any source file is refused rather
// than run: `npm run build` brings it up to date. An installed package has no sources to compare.
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * The newest source file of the compiled directories (engine/, sdk/; the console's app is not
 * compiled by the build). By plain readdir and stat with string paths: this runs on every start
 * in a checkout, and path.join per entry (as readdir's `recursive` does) costs more than the stats.
 */
function newestSource() {
  let newest;
  const visit = (dir) => {
    for (const entry of readdirSync(`${root}${dir}`, { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (path !== "engine/api/ui/app") visit(path);
      } else if (entry.name.endsWith(".ts") || entry.name.endsWith(".json")) {
        const mtimeMs = statSync(`${root}${path}`).mtimeMs;
        if (newest === undefined || mtimeMs > newest.mtimeMs) newest = { file: path, mtimeMs };
      }
    }
  };
  for (const dir of ["engine", "sdk"]) if (existsSync(`${root}${dir}`)) visit(dir);
  return newest;
}

function fail(message) {
  process.stderr.write(`baton: ${message}\n`);
  process.exit(2);
}

let main;
if (process.env.BATON_FROM_SOURCE === "1") {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../engine/cli/main.ts"));
} else {
  const hint = `(or set BATON_FROM_SOURCE=1 to run the TypeScript sources through tsx)`;
  if (existsSync(`${root}engine/cli/main.ts`)) {
    // A checkout: dist/ must have been built, and after the last change to a source.
    const stamp = `${root}dist/.built`;
    if (!existsSync(stamp))
      fail(`the compiled code is missing (${root}dist/): run "npm run build" in ${root} ${hint}`);
    const newest = newestSource();
    if (newest !== undefined && newest.mtimeMs > statSync(stamp).mtimeMs)
      fail(`dist/ is older than ${newest.file}: run "npm run build" in ${root} ${hint}`);
  } else if (!existsSync(`${root}dist/cli/main.js`)) {
    fail(`the compiled code is missing from ${root}dist/: this copy of Baton is incomplete; reinstall it`);
  }
  // The command line's bundle (scripts/build.mjs): a few files to load instead of hundreds.
  ({ main } = await import("../dist/cli/main.js"));
}
process.exitCode = await main(process.argv.slice(2));
