/** Reading the mappings of a document whose shape is not yet known. */

/** A mapping of the document, before it is known to be the right one. */
export type Fields = Record<string, unknown>;

export function isRecord(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function has(value: Fields, key: string): boolean {
  return Object.hasOwn(value, key);
}

/** The keys of `value` that are among `names` (a step's kinds, a trigger's sources), in the order written. */
export function keysAmong<T extends string>(value: Fields, names: readonly T[]): T[] {
  return Object.keys(value).filter((key): key is T => (names as readonly string[]).includes(key));
}
