/**
 * The image examples end to end, with real processes: an engine (`baton engine`) and a worker
 * (`baton worker functions/thumbnail.ts functions/image-to-pdf.ts`) over a real nats-server. The
 * test makes its images with sharp from raw pixels, uploads them to an Object Store bucket, starts
 * workflows/image-thumbnails.yaml and workflows/jpeg-to-pdf.yaml on them, and reads back what the
 * functions stored: thumbnails of the right pixel size, stored once; PDFs of one page the image's
 * size; and a PNG answered by the catch after exactly one attempt while its neighbours succeed.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connect, type NatsConnection, type ObjectStore } from "nats";
import { PDFDocument } from "pdf-lib";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { ExecutionRecord } from "../../engine/orchestrator/execution-record.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import type { HistoryEntry } from "../../engine/orchestrator/history.ts";
import type { MachineContext } from "../../engine/workflow/compile/machine-types.ts";
import type { StepRecord } from "../../engine/workflow/expressions.ts";
import type { FunctionContext } from "../../sdk/index.ts";
import { buckets, effectLedgerKey, type EffectLedgerEntry } from "../../sdk/protocol.ts";
import { storeThumbnails, type StoredThumbnail, type Thumbnail } from "../../functions/thumbnail.ts";
import type { ImageToPdfOutput } from "../../functions/image-to-pdf.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const server = useNatsServer();
let nc: NatsConnection;
let executions: Executions;
let uploads: ObjectStore;

const env = () => ({ NATS_URL: server().url, BATON_LOG_LEVEL: "warn" });
const example = (file: string) => readFileSync(join(root, "workflows", file), "utf8");

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  executions = await Executions.connect(nc);
  await executions.apply(example("image-thumbnails.yaml"));
  await executions.apply(example("jpeg-to-pdf.yaml"));
  uploads = await nc.jetstream().views.os("uploads");
  const engine = spawnProcess(process.execPath, [join(root, "bin/baton.mjs"), "engine"], {
    name: "engine",
    env: { ...env(), BATON_ENGINE_ID: "engine-images" },
  });
  const worker = spawnProcess(
    process.execPath,
    [
      join(root, "bin/baton.mjs"),
      "worker",
      join(root, "functions/thumbnail.ts"),
      join(root, "functions/image-to-pdf.ts"),
    ],
    { name: "worker", env: { ...env(), BATON_WORKER_NAME: "worker-images", BATON_LOG_LEVEL: "info" } },
  );
  await Promise.all([
    engine.waitForLine(/engine ready/),
    worker.waitForLine(/serving/, { timeoutMs: 40_000 }),
  ]);
}, 60_000);

afterAll(async () => {
  await killAllProcesses();
  await nc?.close();
});

// --- helpers -----------------------------------------------------------------------------------

/** An image of `width` × `height` made from raw pixels: a colour gradient, so it does not compress to nothing. */
function makeImage(
  width: number,
  height: number,
  format: "jpeg" | "png",
  orientation?: number,
): Promise<Buffer> {
  const channels = format === "png" ? 4 : 3;
  const pixels = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = (y * width + x) * channels;
      pixels[at] = Math.round((x / width) * 255);
      pixels[at + 1] = Math.round((y / height) * 255);
      pixels[at + 2] = (x * y) % 256;
      if (channels === 4) pixels[at + 3] = x < width / 2 ? 255 : 128; // half transparent
    }
  }
  const image = sharp(pixels, { raw: { width, height, channels } });
  if (orientation !== undefined) image.withMetadata({ orientation });
  return (format === "jpeg" ? image.jpeg({ quality: 85 }) : image.png()).toBuffer();
}

async function upload(name: string, data: Uint8Array): Promise<{ bucket: string; name: string }> {
  await uploads.putBlob({ name }, data);
  return { bucket: "uploads", name };
}

async function readObject(bucket: string, name: string): Promise<Uint8Array> {
  const data = await (await nc.jetstream().views.os(bucket)).getBlob(name);
  if (data === null) throw new Error(`no object "${name}" in bucket "${bucket}"`);
  return data;
}

async function objectNames(bucket: string, prefix: string): Promise<string[]> {
  const store = await nc.jetstream().views.os(bucket);
  return (await store.list())
    .filter((info) => !info.deleted && info.name.startsWith(prefix))
    .map((info) => info.name)
    .sort();
}

/** The object store's own digest format, `SHA-256=<base64url with padding>`. */
const digestOf = (data: Uint8Array) =>
  `SHA-256=${createHash("sha256").update(data).digest("base64").replaceAll("+", "-").replaceAll("/", "_")}`;

async function runToEnd(id: string): Promise<ExecutionRecord> {
  const record = await executions.waitForEnd(id, 45_000);
  if (record === undefined) throw new Error(`execution ${id} did not end within 45 s`);
  return record;
}

function stepOf(record: ExecutionRecord, step: string): StepRecord {
  const found = (record.snapshot.context as unknown as MachineContext).steps[step];
  if (found === undefined) throw new Error(`execution ${record.id} has no step "${step}"`);
  return found;
}

/**
 * The whole history of an ended execution. The record says "ended" as soon as it is written; the
 * history of that last write is published just after, so wait for the end to be in it.
 */
const historyToEnd = (id: string) =>
  waitUntil(`the end of ${id} in its history`, async () => {
    const history = await executions.history(id);
    return history.some((entry) => entry.type.startsWith("Execution") && entry.type !== "ExecutionStarted")
      ? history
      : undefined;
  });

const entriesOf = (history: HistoryEntry[], type: string, step: string) =>
  history.filter((entry) => entry.type === type && entry.step === step);

// --- thumbnails --------------------------------------------------------------------------------

describe("image-thumbnails", () => {
  it("stores one thumbnail per size, of the right pixel size, with one run of the effect step", async () => {
    const photo = await upload("photo.jpg", await makeImage(400, 300, "jpeg"));
    const logo = await upload("logo.png", await makeImage(300, 400, "png"));
    const [defaults, chosen] = await Promise.all([
      executions.start("image-thumbnails", { image: photo }),
      executions.start("image-thumbnails", { image: logo, sizes: [32, 500], into: "previews" }),
    ]);
    const cases = [
      {
        id: defaults.id,
        bucket: "thumbnails",
        format: "jpeg",
        extension: "jpg",
        // The longest side is the size; the aspect ratio is kept.
        expected: [
          { size: 64, width: 64, height: 48 },
          { size: 128, width: 128, height: 96 },
          { size: 256, width: 256, height: 192 },
        ],
      },
      {
        id: chosen.id,
        bucket: "previews",
        format: "png",
        extension: "png",
        // Never larger than the original: 500 gives the original's 300 × 400.
        expected: [
          { size: 32, width: 24, height: 32 },
          { size: 500, width: 300, height: 400 },
        ],
      },
    ];
    for (const { id, bucket, format, extension, expected } of cases) {
      const record = await runToEnd(id);
      expect(record.status, JSON.stringify(record.error)).toBe("succeeded");
      const output = record.output as unknown as { bucket: string; thumbnails: StoredThumbnail[] };
      expect(output.bucket).toBe(bucket);

      // The effect step ran once: one attempt in the history, one in its ledger entry.
      const history = await historyToEnd(id);
      const started = entriesOf(history, "AttemptStarted", "store");
      expect(started).toHaveLength(1);
      expect(stepOf(record, "store").attempts).toBe(1);
      const key = started[0]!.idempotencyKey!;
      expect(key).toMatch(new RegExp(`^${id}/store/\\d+$`));
      const ledger = await (await nc.jetstream().views.kv(buckets.effects)).get(effectLedgerKey(key));
      const entry = ledger?.json<EffectLedgerEntry>();
      expect(entry?.completed).toBe(true);
      expect(entry?.attempts.map((attempt) => attempt.outcome)).toEqual(["succeeded"]);

      // Every thumbnail is there, once, under the idempotency key, and is what the output says.
      expect(
        output.thumbnails.map(({ name, size, width, height }) => ({ name, size, width, height })),
      ).toEqual(expected.map((thumb) => ({ ...thumb, name: `${key}/${thumb.size}.${extension}` })));
      expect(await objectNames(bucket, `${id}/`)).toEqual(
        output.thumbnails.map((thumb) => thumb.name).sort(),
      );
      for (const stored of output.thumbnails) {
        const data = await readObject(bucket, stored.name);
        expect(digestOf(data)).toBe(stored.digest);
        expect(data.length).toBe(stored.bytes);
        const metadata = await sharp(data).metadata();
        expect({ format: metadata.format, width: metadata.width, height: metadata.height }).toEqual({
          format,
          width: stored.width,
          height: stored.height,
        });
      }
    }
  });

  it("a second attempt of store-thumbnails overwrites the first one's objects instead of adding copies", async () => {
    // The function itself, twice with one idempotency key, as a retry after a lost reply runs it.
    process.env.NATS_URL = server().url;
    const png = await makeImage(40, 20, "png");
    const thumbnails: Thumbnail[] = [
      { size: 40, width: 40, height: 20, format: "png", bytes: png.length, data: png.toString("base64") },
    ];
    const key = "exec-retried/store/3";
    const attempt = (number: number) =>
      storeThumbnails.handler({ bucket: "retried", thumbnails }, {
        executionId: "exec-retried",
        step: "store",
        attempt: number,
        idempotencyKey: key,
        signal: new AbortController().signal,
        logger: { debug() {}, info() {}, warn() {}, error() {} },
      } as unknown as FunctionContext);
    const stream = async () => (await nc.jetstreamManager()).streams.info("OBJ_retried");
    const first = await attempt(1);
    const afterFirst = (await stream()).state;
    const second = await attempt(2);
    expect(second).toEqual(first);
    expect(await objectNames("retried", "")).toEqual([`${key}/40.png`]);
    // The first attempt's chunks were replaced, not kept beside the second's.
    const afterSecond = (await stream()).state;
    expect({ messages: afterSecond.messages, bytes: afterSecond.bytes }).toEqual({
      messages: afterFirst.messages,
      bytes: afterFirst.bytes,
    });
  });
});

// --- JPEG → PDF --------------------------------------------------------------------------------

describe("jpeg-to-pdf", () => {
  it("has a retry policy on the convert step (else one attempt would prove nothing)", () => {
    const workflow = parse(example("jpeg-to-pdf.yaml")) as {
      steps: { name: string; retry?: { attempts?: number } }[];
    };
    const convert = workflow.steps.find((step) => step.name === "convert");
    expect(convert?.retry).toBeDefined();
    expect(convert?.retry?.attempts ?? 3).toBeGreaterThan(1); // a policy without attempts has 3
  });

  it("answers a PNG after one attempt while the JPEGs started with it become PDFs", async () => {
    // [width, height, EXIF orientation]: orientation 6 is a portrait photo stored on its side.
    const jpegs: [number, number, number?][] = [
      [120, 80],
      [200, 150],
      [333, 222],
      [64, 640],
      [500, 20],
      [300, 200, 6],
    ];
    const sources = await Promise.all(
      jpegs.map(async ([width, height, orientation], index) => ({
        ref: await upload(`photo-${index}.jpg`, await makeImage(width, height, "jpeg", orientation)),
        // As the image is seen: turned a quarter for orientation 6.
        page: orientation === 6 ? { width: height, height: width } : { width, height },
      })),
    );
    // Named .jpg on purpose: the format is read from the content, not the name.
    const png = await upload("scan.jpg", await makeImage(90, 60, "png"));

    // All at once, the PNG in the middle of its neighbours.
    const middle = Math.floor(sources.length / 2);
    const inputs = [
      ...sources.slice(0, middle).map((s) => s.ref),
      png,
      ...sources.slice(middle).map((s) => s.ref),
    ];
    const started = await Promise.all(inputs.map((image) => executions.start("jpeg-to-pdf", { image })));
    const records = await Promise.all(started.map(({ id }) => runToEnd(id)));
    const pngRecord = records[middle]!;
    const jpegRecords = records.filter((_, index) => index !== middle);

    // The PNG: the catch's answer, after exactly one attempt that failed with UnsupportedImageFormat.
    expect(pngRecord.status, JSON.stringify(pngRecord.error)).toBe("succeeded");
    const answer = pngRecord.output as { ok: boolean; reason: string };
    expect(answer.ok).toBe(false);
    expect(answer.reason).toContain("uploads/scan.jpg");
    expect(answer.reason).toContain("PNG image");
    expect(answer.reason).toContain("accepts only JPEG");
    const convert = stepOf(pngRecord, "convert");
    expect(convert.attempts).toBe(1);
    expect(convert.error).toMatchObject({ code: "UnsupportedImageFormat", retryable: false });
    const history = await historyToEnd(pngRecord.id);
    expect(entriesOf(history, "AttemptStarted", "convert")).toHaveLength(1);
    const failed = entriesOf(history, "AttemptFailed", "convert");
    expect(failed).toHaveLength(1);
    expect(failed[0]!.data).toMatchObject({ error: { code: "UnsupportedImageFormat", retryable: false } });
    expect(await objectNames("pdfs", `${pngRecord.id}/`)).toEqual([]);

    // Every neighbour: a PDF of one page, the size of its image (one point per pixel).
    for (const [index, record] of jpegRecords.entries()) {
      const { page } = sources[index]!;
      expect(record.status, JSON.stringify(record.error)).toBe("succeeded");
      expect(stepOf(record, "convert").attempts).toBe(1);
      const output = record.output as unknown as { ok: boolean } & Omit<ImageToPdfOutput, "pages">;
      expect(output).toMatchObject({ ok: true, ...page, pdf: { bucket: "pdfs" } });
      expect(output.pdf.name).toMatch(new RegExp(`^${record.id}/convert/\\d+/photo-${index}\\.pdf$`));
      const bytes = await readObject("pdfs", output.pdf.name);
      expect(digestOf(bytes)).toBe(output.pdf.digest);
      const pdf = await PDFDocument.load(bytes);
      expect(pdf.getPageCount()).toBe(1);
      expect(pdf.getPage(0).getSize()).toEqual(page);
    }
  });
});
