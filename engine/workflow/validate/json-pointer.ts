/** Between ajv's JSON pointers and the document's paths. */
import type { JsonPath, PathSegment } from "../load.ts";
import { isRecord } from "./fields.ts";

/** Turns ajv's JSON pointer into path segments, list indexes as numbers. */
export function pointerToPath(pointer: string, value: unknown): PathSegment[] {
  if (pointer === "") return [];
  const path: PathSegment[] = [];
  let at = value;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(at)) {
      const index = Number(key);
      path.push(index);
      at = at[index];
    } else {
      path.push(key);
      at = isRecord(at) ? at[key] : undefined;
    }
  }
  return path;
}

export function valueAtPath(root: unknown, path: JsonPath): unknown {
  let at = root;
  for (const segment of path) {
    if (Array.isArray(at) && typeof segment === "number") at = at[segment];
    else if (isRecord(at) && typeof segment === "string") at = at[segment];
    else return undefined;
  }
  return at;
}
