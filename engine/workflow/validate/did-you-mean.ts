/** Near misses: the name the user probably meant. */
import { distance } from "fastest-levenshtein";

/** The candidate closest to `name`, when it is close enough to be what the user meant. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === name) continue;
    if (candidate.toLowerCase() === name.toLowerCase()) return candidate;
    const d = distance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  const limit = Math.min(3, Math.floor(name.length / 2));
  if (best !== undefined && bestDistance <= limit) return best;
  // An abbreviation ("expo" for "exponential") is a near miss too.
  return name.length >= 3 ? [...candidates].find((candidate) => candidate.startsWith(name)) : undefined;
}

function hint(suggestion: string | undefined): string {
  return suggestion === undefined ? "" : ` (did you mean ${JSON.stringify(suggestion)}?)`;
}

/** ` (did you mean "x"?)` when a candidate is a near miss of `name`, otherwise nothing. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  return hint(closest(name, candidates));
}

/**
 * For a mapping that names none of `candidates` (a step without a kind, a trigger without a
 * source): the hint for the first of its keys that is a near miss of one.
 */
export function didYouMeanAnyOf(keys: readonly string[], candidates: readonly string[]): string {
  return hint(keys.map((key) => closest(key, candidates)).find((guess) => guess !== undefined));
}
