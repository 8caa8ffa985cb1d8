// Thumbnails of an image, for workflows/image-thumbnails.yaml: `thumbnail` renders one size (pure:
// it only reads), `store-thumbnails` stores them all (an effect). Serve them with
// `baton worker functions/thumbnail.ts`; both reach the images through the worker's NATS_URL.
//
// sharp (libvips) does the resizing. It is a native addon and works in the worker threads that run
// each attempt: this module imports it at the top, so the worker's main thread loads it (when it
// reads the module's exports) before any thread does, as sharp asks on Linux.
import sharp from "sharp";
import { BatonError, defineFunction } from "../sdk/index.ts";
import { describeContent } from "./lib/image-format.ts";
import {
  bucketNamePattern,
  objectRefSchema,
  openBucket,
  readObject,
  withNats,
  writeObject,
  type ObjectRef,
  type StoredObject,
} from "./lib/object-store.ts";

/** Largest original accepted; sharp also refuses images of more than 268 megapixels. */
const MAX_SOURCE_BYTES = 64 * 1024 * 1024;
/**
 * Largest thumbnail side. Thumbnails travel inline (base64) in step outputs and in the store
 * step's task, and a NATS message holds at most 1 MiB: a few thumbnails of 512 px fit, a 2000 px
 * "thumbnail" would not.
 */
export const MAX_THUMBNAIL_SIZE = 512;
/** The formats sharp decodes that a thumbnail is made from (as sharp's metadata names them). */
const ACCEPTED_FORMATS = ["jpeg", "png", "webp", "gif", "tiff"] as const;

/** One rendered thumbnail, as it travels from `thumbnail` to `store-thumbnails`. */
export interface Thumbnail {
  /** The size asked for: the longest side may be at most this. */
  size: number;
  width: number;
  height: number;
  format: "jpeg" | "png";
  bytes: number;
  /** The image, base64. */
  data: string;
}

/**
 * `{ image: { bucket, name }, size }` → a thumbnail whose longest side is `size` pixels (never
 * larger than the original; the aspect ratio is kept, EXIF orientation applied). A JPEG stays a
 * JPEG; the other formats become PNG, which keeps transparency. An image in a format it cannot
 * read fails with `UnsupportedImageFormat` (not retryable).
 */
export const thumbnail = defineFunction({
  name: "thumbnail",
  input: {
    type: "object",
    required: ["image", "size"],
    properties: {
      image: objectRefSchema,
      size: { type: "integer", minimum: 16, maximum: MAX_THUMBNAIL_SIZE },
    },
  },
  timeout: "1m",
  async handler(input: { image: ObjectRef; size: number }, ctx): Promise<Thumbnail> {
    const source = await withNats(ctx.signal, (nc) => readObject(nc, input.image, MAX_SOURCE_BYTES));
    const format = await readableFormat(source, input.image);
    const resized = sharp(source)
      .rotate() // EXIF orientation: a portrait photo stays portrait
      .resize({ width: input.size, height: input.size, fit: "inside", withoutEnlargement: true });
    const output =
      format === "jpeg" ? resized.jpeg({ quality: 80, mozjpeg: true }) : resized.png({ compressionLevel: 9 });
    const { data, info } = await output.toBuffer({ resolveWithObject: true });
    ctx.logger.info("thumbnail rendered", { size: input.size, width: info.width, height: info.height });
    return {
      size: input.size,
      width: info.width,
      height: info.height,
      format: format === "jpeg" ? "jpeg" : "png",
      bytes: data.length,
      data: data.toString("base64"),
    };
  },
});

/** The format of `source` as sharp reads it, or `UnsupportedImageFormat` when it is not one we take. */
async function readableFormat(source: Uint8Array, ref: ObjectRef): Promise<string> {
  let format: string | undefined;
  try {
    format = (await sharp(source).metadata()).format;
  } catch {
    // sharp cannot read it at all; the message below says what it looks like instead.
  }
  if (format !== undefined && (ACCEPTED_FORMATS as readonly string[]).includes(format)) return format;
  throw new BatonError(
    "UnsupportedImageFormat",
    `cannot make thumbnails of "${ref.bucket}/${ref.name}": it is ${describeContent(source)}; thumbnails are made from ${ACCEPTED_FORMATS.map((name) => name.toUpperCase()).join(", ")} images`,
    { retryable: false, details: { ...ref, accepted: [...ACCEPTED_FORMATS] } },
  );
}

/** A stored thumbnail, as `store-thumbnails` reports it. */
export interface StoredThumbnail extends StoredObject {
  size: number;
  width: number;
  height: number;
}

/**
 * `{ bucket, source?, thumbnails }` → `{ bucket, thumbnails: [{ name, size, width, height, bytes,
 * digest }] }`: puts each thumbnail into the Object Store bucket (created when missing) as
 * `<idempotency key>/<size>.<jpg|png>`. The names come from the step run's idempotency key, the
 * same for all its attempts, so an attempt that runs again overwrites the objects an earlier one
 * wrote instead of adding copies. Runs only as an effect step.
 */
export const storeThumbnails = defineFunction({
  name: "store-thumbnails",
  effect: true,
  input: {
    type: "object",
    required: ["bucket", "thumbnails"],
    properties: {
      bucket: { type: "string", pattern: bucketNamePattern },
      source: objectRefSchema,
      thumbnails: {
        type: "array",
        items: {
          type: "object",
          required: ["size", "width", "height", "format", "data"],
          properties: {
            size: { type: "integer", minimum: 1 },
            width: { type: "integer", minimum: 1 },
            height: { type: "integer", minimum: 1 },
            format: { enum: ["jpeg", "png"] },
            data: { type: "string", minLength: 1 },
          },
        },
      },
    },
  },
  timeout: "1m",
  async handler(
    input: { bucket: string; source?: ObjectRef; thumbnails: Thumbnail[] },
    ctx,
  ): Promise<{ bucket: string; thumbnails: StoredThumbnail[] }> {
    const key = ctx.idempotencyKey;
    if (key === undefined) {
      throw new BatonError(
        "IdempotencyKeyMissing",
        "store-thumbnails names the objects after the step's idempotency key, so it runs only as an effect step: add `effect: true` to the step",
      );
    }
    const of = input.source === undefined ? "" : ` of ${input.source.bucket}/${input.source.name}`;
    return withNats(ctx.signal, async (nc) => {
      const store = await openBucket(nc, input.bucket);
      const stored: StoredThumbnail[] = [];
      // One at a time: each put is a stream of chunks, and a handful of small files gain nothing from overlapping.
      for (const thumb of input.thumbnails) {
        const name = `${key}/${thumb.size}.${thumb.format === "jpeg" ? "jpg" : "png"}`;
        const data = Buffer.from(thumb.data, "base64");
        const description = `${thumb.width}x${thumb.height} thumbnail${of}`;
        const object = await writeObject(store, input.bucket, name, data, description);
        stored.push({ ...object, size: thumb.size, width: thumb.width, height: thumb.height });
      }
      ctx.logger.info("thumbnails stored", { bucket: input.bucket, count: stored.length });
      return { bucket: input.bucket, thumbnails: stored };
    });
  },
});
