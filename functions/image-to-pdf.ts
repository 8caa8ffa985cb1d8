// JPEG → PDF, for workflows/jpeg-to-pdf.yaml: `image-to-pdf` wraps a JPEG into a one-page PDF
// of the image's size and stores it. Serve it with `baton worker functions/image-to-pdf.ts`; it
// reaches the images through the worker's NATS_URL.
//
// pdf-lib builds the PDF: a JPEG goes into a PDF as it is (DCTDecode), so nothing is re-encoded
// and nothing is lost. sharp only reads the EXIF orientation, which PDF viewers ignore.
import { basename, extname } from "node:path";
import { degrees, PDFDocument } from "pdf-lib";
import sharp from "sharp";
import { BatonError, defineFunction } from "../sdk/index.ts";
import { describeContent, detectImageFormat } from "./lib/image-format.ts";
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

/** Largest JPEG accepted: the PDF is about as large, and both are held in memory. */
const MAX_SOURCE_BYTES = 64 * 1024 * 1024;

export interface ImageToPdfOutput {
  pdf: StoredObject;
  pages: 1;
  /** The page's size in points: one point per pixel (72 dpi), width and height as the image is seen. */
  width: number;
  height: number;
}

/**
 * `{ image: { bucket, name }, bucket }` → `{ pdf: { bucket, name, bytes, digest }, pages, width,
 * height }`: reads the JPEG, makes a PDF of one page exactly the image's size (one point per
 * pixel, turned as its EXIF orientation says) and puts it into `bucket` (created when missing) as
 * `<idempotency key>/<image name without extension>.pdf`. Named after the step run's idempotency
 * key, an attempt that runs again overwrites what an earlier one wrote. Runs only as an effect
 * step. Anything but a JPEG fails with `UnsupportedImageFormat` (not retryable): a PNG stays a PNG
 * however often it is tried.
 */
export const imageToPdf = defineFunction({
  name: "image-to-pdf",
  effect: true,
  input: {
    type: "object",
    required: ["image", "bucket"],
    properties: { image: objectRefSchema, bucket: { type: "string", pattern: bucketNamePattern } },
  },
  timeout: "1m",
  async handler(input: { image: ObjectRef; bucket: string }, ctx): Promise<ImageToPdfOutput> {
    const key = ctx.idempotencyKey;
    if (key === undefined) {
      throw new BatonError(
        "IdempotencyKeyMissing",
        "image-to-pdf names the PDF after the step's idempotency key, so it runs only as an effect step: add `effect: true` to the step",
      );
    }
    return withNats(ctx.signal, async (nc) => {
      const jpeg = await readObject(nc, input.image, MAX_SOURCE_BYTES);
      // Decided from the content, not the name: "photo.jpg" may well be a PNG.
      const detected = detectImageFormat(jpeg);
      if (detected !== "jpeg") {
        throw new BatonError(
          "UnsupportedImageFormat",
          `cannot make a PDF of "${input.image.bucket}/${input.image.name}": it is ${describeContent(jpeg)}, and image-to-pdf accepts only JPEG images (files that start with the bytes FF D8 FF); convert it to JPEG first`,
          {
            retryable: false,
            details: { ...input.image, detected: detected ?? "unknown", accepted: ["jpeg"] },
          },
        );
      }
      const { pdf, width, height } = await jpegToPdf(jpeg, input.image);
      const name = `${key}/${basename(input.image.name, extname(input.image.name))}.pdf`;
      const store = await openBucket(nc, input.bucket);
      const stored = await writeObject(
        store,
        input.bucket,
        name,
        pdf,
        `PDF of ${input.image.bucket}/${input.image.name}`,
      );
      ctx.logger.info("pdf stored", { bucket: stored.bucket, name: stored.name, bytes: stored.bytes });
      return { pdf: stored, pages: 1, width, height };
    });
  },
});

/** A one-page PDF showing `jpeg`, the page exactly the size of the image as it is meant to be seen. */
async function jpegToPdf(
  jpeg: Uint8Array,
  ref: ObjectRef,
): Promise<{ pdf: Uint8Array; width: number; height: number }> {
  const doc = await PDFDocument.create();
  let image: Awaited<ReturnType<PDFDocument["embedJpg"]>>;
  try {
    // A copy: pdf-lib reads the bytes through `jpeg.buffer` from offset 0, and what NATS hands
    // over is a view into a larger buffer (a Node Buffer, whose slice() would be a view too).
    image = await doc.embedJpg(new Uint8Array(jpeg));
  } catch (error) {
    throw new BatonError(
      "ImageUnreadable",
      `"${ref.bucket}/${ref.name}" starts like a JPEG but cannot be read (${String(error)}); upload the image again, it may be cut short or damaged`,
      { retryable: false, details: { ...ref } },
    );
  }
  const { width, height } = image;
  // EXIF orientation 6 and 8 are a portrait photo stored on its side, 3 upside down (the mirrored
  // ones, 2, 4, 5 and 7, are rare outside scanners and are shown as stored). pdf-lib turns an
  // image counter-clockwise around its anchor, the image's bottom-left corner.
  const orientation = await exifOrientation(jpeg);
  const turned = orientation === 6 || orientation === 8;
  const page = doc.addPage(turned ? [height, width] : [width, height]);
  if (orientation === 6) page.drawImage(image, { x: 0, y: width, width, height, rotate: degrees(-90) });
  else if (orientation === 8) page.drawImage(image, { x: height, y: 0, width, height, rotate: degrees(90) });
  else if (orientation === 3)
    page.drawImage(image, { x: width, y: height, width, height, rotate: degrees(180) });
  else page.drawImage(image, { x: 0, y: 0, width, height });
  doc.setTitle(basename(ref.name));
  doc.setCreator("Baton image-to-pdf");
  const pdf = await doc.save();
  return { pdf, width: turned ? height : width, height: turned ? width : height };
}

/** The JPEG's EXIF orientation (1 to 8), or 1 when it has none or it cannot be read. */
async function exifOrientation(jpeg: Uint8Array): Promise<number> {
  try {
    return (await sharp(jpeg).metadata()).orientation ?? 1;
  } catch {
    return 1;
  }
}
