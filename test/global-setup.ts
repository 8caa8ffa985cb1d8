/**
 * Before any test file runs: `npm run build` (scripts/build.mjs; incremental, seconds when nothing
 * changed), so that the tests of the compiled code (cli-start, package, the tracing test's
 * worker, the compiled isolate) run a dist/ as new as the sources, and nothing rebuilds it while
 * they run (package.test.ts packs with --ignore-scripts: a `prepare` there used to rebuild dist/
 * under the feet of the files running beside it).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

export default function setup(): void {
  const root = join(import.meta.dirname, "..");
  const built = spawnSync(process.execPath, [join(root, "scripts/build.mjs")], {
    cwd: root,
    encoding: "utf8",
  });
  if (built.status !== 0)
    throw new Error(
      `npm run build failed before the tests (exit ${built.status}):\n${built.stdout}${built.stderr}`,
    );
}
