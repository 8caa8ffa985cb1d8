// What kind of file a byte string is, from its first bytes ("magic numbers"), for the image
// examples: a file name or a content type can lie, the content cannot.

export type DetectedFormat =
  "jpeg" | "png" | "gif" | "webp" | "tiff" | "bmp" | "avif" | "heic" | "pdf" | "svg";

/** How each format is named in error messages. */
const formatPhrases: Record<DetectedFormat, string> = {
  jpeg: "a JPEG image",
  png: "a PNG image",
  gif: "a GIF image",
  webp: "a WebP image",
  tiff: "a TIFF image",
  bmp: "a BMP image",
  avif: "an AVIF image",
  heic: "a HEIC image",
  pdf: "a PDF document, not an image",
  svg: "an SVG image",
};

const startsWith = (bytes: Uint8Array, prefix: readonly number[], at = 0): boolean =>
  bytes.length >= at + prefix.length && prefix.every((byte, index) => bytes[at + index] === byte);

const ascii = (bytes: Uint8Array, from: number, to: number): string =>
  String.fromCharCode(...bytes.subarray(from, to));

/** The format of `bytes`, or `undefined` when none of the formats above is recognised. */
export function detectImageFormat(bytes: Uint8Array): DetectedFormat | undefined {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (ascii(bytes, 0, 6) === "GIF87a" || ascii(bytes, 0, 6) === "GIF89a") return "gif";
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP") return "webp";
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a]))
    return "tiff";
  if (ascii(bytes, 0, 2) === "BM" && bytes.length >= 26) return "bmp";
  if (ascii(bytes, 4, 8) === "ftyp") {
    const brand = ascii(bytes, 8, 12);
    if (brand === "avif" || brand === "avis") return "avif";
    if (["heic", "heix", "hevc", "heim", "heis", "mif1"].includes(brand)) return "heic";
  }
  if (ascii(bytes, 0, 5) === "%PDF-") return "pdf";
  const head = ascii(bytes, 0, Math.min(bytes.length, 256)).trimStart();
  if (/^(<\?xml[^>]*>\s*)?<svg[\s>]/i.test(head)) return "svg";
  return undefined;
}

/**
 * How to name the content of `bytes` in a message: `a PNG image`, or, when it is not recognised,
 * `not an image format this function recognises (first bytes: 00 01 02 03 ...)`.
 */
export function describeContent(bytes: Uint8Array): string {
  const format = detectImageFormat(bytes);
  if (format !== undefined) return formatPhrases[format];
  if (bytes.length === 0) return "empty (0 bytes)";
  const first = [...bytes.subarray(0, 8)].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
  return `not in any image format this function recognises (first bytes: ${first})`;
}
