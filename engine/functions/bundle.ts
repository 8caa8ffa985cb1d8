/**
 * Builds a function package: the module (TypeScript or JavaScript) and everything it imports
 * (its npm dependencies and the Baton SDK included) as one ES module, with esbuild. Only Node's
 * built-in modules stay imports. CommonJS dependencies get a `require` made with
 * `createRequire`, so that their `require("fs")` works inside an ES module.
 */
import { build } from "esbuild";

export class BundleError extends Error {
  override name = "BundleError";
}

export async function bundleFunction(entry: string): Promise<Uint8Array> {
  try {
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      platform: "node",
      format: "esm",
      target: "node20",
      logLevel: "silent",
      legalComments: "none",
      // The SDK resolves tsx's loader when it starts isolates; a function package never does.
      pure: ["import.meta.resolve"],
      banner: {
        js: 'import { createRequire as __batonCreateRequire } from "node:module"; const require = __batonCreateRequire(import.meta.url);',
      },
    });
    const output = result.outputFiles[0];
    if (output === undefined) throw new BundleError(`esbuild produced nothing for ${entry}`);
    return output.contents;
  } catch (error) {
    if (error instanceof BundleError) throw error;
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
}
