/**
 * The exports of a CommonJS package loaded with a dynamic `import()`. Node puts its names on the
 * namespace (and the whole `module.exports` on `default`); esbuild's bundle of the command line
 * (dist/cli, scripts/build.mjs) can only give `default`. Either way, this is `module.exports`.
 */
export function commonJsExports<T extends object>(namespace: T): T {
  const fallback = (namespace as { default?: unknown }).default;
  return typeof fallback === "object" && fallback !== null ? (fallback as T) : namespace;
}
