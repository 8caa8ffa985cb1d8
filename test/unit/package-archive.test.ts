/**
 * Packages that carry native addons beside their bundle (engine/functions/package-archive.ts):
 * which installed packages go in, that the archive is the same for the same files, and that an
 * archive is refused when it would write outside its directory, holds links or lacks its bundle.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { create } from "tar";
import { afterAll, describe, expect, it } from "vitest";
import { digestOf } from "../../engine/functions/package-store.ts";
import {
  archiveLimits,
  isArchive,
  packArchive,
  runtimePackages,
  unpackArchive,
} from "../../engine/functions/package-archive.ts";

const root = mkdtempSync(join(tmpdir(), "baton-archive-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Writes `files` (path → text) under `dir`. */
function tree(dir: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

const manifest = (name: string, dependencies: Record<string, string> = {}, optional = {}) =>
  JSON.stringify({ name, version: "1.0.0", dependencies, optionalDependencies: optional });

async function archiveOf(files: Record<string, string>, links: Record<string, string> = {}) {
  const dir = mkdtempSync(join(root, "staging-"));
  tree(dir, files);
  for (const [path, target] of Object.entries(links)) symlinkSync(target, join(dir, path));
  const chunks: Buffer[] = [];
  for await (const chunk of create({ cwd: dir, gzip: true, portable: true, preservePaths: true }, [
    ...Object.keys(files),
    ...Object.keys(links),
  ]))
    chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe("runtimePackages", () => {
  it("takes the installed dependencies of bundled packages that hold an addon, and what they depend on", async () => {
    const project = join(root, "project");
    tree(project, {
      "node_modules/imaging/package.json": manifest(
        "imaging",
        { plain: "1" },
        { "@img/native-x": "1", absent: "1" },
      ),
      "node_modules/imaging/index.js": "module.exports = 1;",
      "node_modules/plain/package.json": manifest("plain"),
      "node_modules/plain/index.js": "module.exports = 2;",
      "node_modules/@img/native-x/package.json": manifest("@img/native-x", {}, { "lib-y": "1" }),
      "node_modules/@img/native-x/build/native.node": "binary",
      "node_modules/lib-y/package.json": manifest("lib-y"),
      "node_modules/lib-y/lib/liby.so": "binary",
      // An addon in a package nothing bundled depends on stays out.
      "node_modules/unrelated/package.json": manifest("unrelated"),
      "node_modules/unrelated/x.node": "binary",
    });
    const inputs = ["node_modules/imaging/index.js", "node_modules/plain/index.js", "src/fn.ts"].map((path) =>
      join(project, path),
    );
    const found = await runtimePackages(inputs);
    expect(found.map((pkg) => pkg.name)).toEqual(["@img/native-x", "lib-y"]);
    expect(found[0]!.dir).toBe(join(project, "node_modules/@img/native-x"));
    // Nothing bundled needs an addon: a plain module.
    expect(await runtimePackages([join(project, "node_modules/plain/index.js")])).toEqual([]);
  });
});

describe("packArchive and unpackArchive", () => {
  const bundle = new TextEncoder().encode("export const answer = 42;\n");
  const native = join(root, "native");
  tree(native, { "package.json": manifest("native"), "build/native.node": "binary" });

  it("builds the same archive from the same files, and unpacks the bundle beside node_modules", async () => {
    const first = await packArchive(bundle, [{ name: "@img/native", dir: native }]);
    const second = await packArchive(bundle, [{ name: "@img/native", dir: native }]);
    expect(isArchive(first)).toBe(true);
    expect(isArchive(bundle)).toBe(false);
    expect(digestOf(second)).toBe(digestOf(first));
    const into = mkdtempSync(join(root, "unpacked-"));
    const file = await unpackArchive(first, into);
    expect(file).toBe(join(into, "bundle.mjs"));
    expect(readFileSync(file, "utf8")).toBe("export const answer = 42;\n");
    expect(readFileSync(join(into, "node_modules/@img/native/build/native.node"), "utf8")).toBe("binary");
  });

  it.each([
    ["an entry outside bundle.mjs and node_modules/", { "bundle.mjs": "x", "other.txt": "x" }, {}, /outside/],
    ["no bundle", { "node_modules/a/index.js": "x" }, {}, /no bundle\.mjs/],
    [
      "a link",
      { "bundle.mjs": "x", "node_modules/a/index.js": "x" },
      { "node_modules/evil": "/etc" },
      /not a file or a directory/,
    ],
  ])("refuses an archive with %s", async (_what, files, links, message) => {
    const into = mkdtempSync(join(root, "refused-"));
    await expect(unpackArchive(await archiveOf(files, links), into)).rejects.toThrow(message);
  });

  it("refuses an archive whose entry climbs out of its directory, and writes nothing there", async () => {
    const dir = mkdtempSync(join(root, "climb-"));
    tree(dir, { "inner/bundle.mjs": "x", "outside.txt": "x" });
    const chunks: Buffer[] = [];
    for await (const chunk of create({ cwd: join(dir, "inner"), gzip: true, preservePaths: true }, [
      "bundle.mjs",
      "../outside.txt",
    ]))
      chunks.push(chunk);
    const into = mkdtempSync(join(root, "climbed-"));
    mkdirSync(join(into, "target"));
    await expect(unpackArchive(Buffer.concat(chunks), join(into, "target"))).rejects.toThrow(
      /leaves the package/,
    );
    expect(() => readFileSync(join(into, "outside.txt"))).toThrow();
  });

  it("refuses an archive past its limits before holding it whole, and set-id bits", async () => {
    const limits = { ...archiveLimits };
    try {
      archiveLimits.bytes = 1024 * 1024;
      // 64 MiB of zeros: about 64 KiB on the wire, refused while inflating, past 1 MiB (+ headers).
      const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
      await expect(unpackArchive(bomb, mkdtempSync(join(root, "bomb-")))).rejects.toThrow(
        /more than 1048576 bytes unpacked/,
      );
      archiveLimits.entries = 2;
      const many = await archiveOf({
        "bundle.mjs": "x",
        "node_modules/a/1.js": "x",
        "node_modules/a/2.js": "x",
      });
      const into = mkdtempSync(join(root, "many-"));
      await expect(unpackArchive(many, into)).rejects.toThrow(/more than 2 files/);
    } finally {
      Object.assign(archiveLimits, limits);
    }
    const dir = mkdtempSync(join(root, "setuid-"));
    tree(dir, { "bundle.mjs": "x", "node_modules/a/run": "x" });
    chmodSync(join(dir, "node_modules/a/run"), 0o4755);
    const chunks: Buffer[] = [];
    for await (const chunk of create({ cwd: dir, gzip: true }, ["bundle.mjs", "node_modules/a/run"]))
      chunks.push(chunk);
    await expect(
      unpackArchive(Buffer.concat(chunks), mkdtempSync(join(root, "setuid-into-"))),
    ).rejects.toThrow(/set-id or sticky bits: node_modules\/a\/run/);
  });

  it("refuses bytes that only look like an archive", async () => {
    const into = mkdtempSync(join(root, "garbage-"));
    await expect(unpackArchive(Buffer.from([0x1f, 0x8b, 1, 2, 3]), into)).rejects.toThrow(
      /not a package archive/,
    );
  });
});
