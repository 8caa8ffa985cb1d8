/**
 * Builds a function package: the module (TypeScript or JavaScript) and everything it imports
 * (its npm dependencies and the Baton SDK included) as one ES module, with esbuild. Only Node's
 * built-in modules stay imports. CommonJS dependencies get a `require` made with
 * `createRequire`, so that their `require("fs")` works inside an ES module.
 *
 * A dependency that loads a native addon at run time (sharp loads `@img/sharp-<platform>`) cannot
 * be bundled: the package is then an archive of the bundle and those packages' files
 * (package-archive.ts).
 */
import { resolve } from "node:path";
import { build } from "esbuild";
import { packArchive, runtimePackages } from "./package-archive.ts";

export class BundleError extends Error {
  override name = "BundleError";
}

/** The package of a module: one ES module, or an archive when it needs native addons beside it. */
export async function bundleFunction(entry: string): Promise<Uint8Array> {
  let result;
  try {
    result = await build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      platform: "node",
      format: "esm",
      target: "node20",
      logLevel: "silent",
      legalComments: "none",
      metafile: true,
      // The SDK resolves tsx's loader when it starts isolates; a function package never does.
      pure: ["import.meta.resolve"],
      banner: {
        js: 'import { createRequire as __batonCreateRequire } from "node:module"; const require = __batonCreateRequire(import.meta.url);',
      },
    });
  } catch (error) {
    const errors = (
      error as { errors?: { text: string; location?: { file: string; line: number } | null }[] }
    ).errors;
    if (errors === undefined) throw error;
    throw new BundleError(
      errors
        .map((item) =>
          item.location ? `${item.location.file}:${item.location.line}: ${item.text}` : item.text,
        )
        .join("\n"),
    );
  }
  const output = result.outputFiles[0];
  if (output === undefined) throw new BundleError(`esbuild produced nothing for ${entry}`);
  const inputs = Object.keys(result.metafile.inputs).map((input) => resolve(input));
  const beside = await runtimePackages(inputs);
  return beside.length === 0 ? output.contents : packArchive(output.contents, beside);
}
