/**
 * Bearer tokens (`Authorization: Bearer <token>`), compared in constant time: both sides are
 * hashed to SHA-256 digests of equal length and compared with `timingSafeEqual`, against every
 * configured token without stopping at a match, so neither the position of a mismatch nor which
 * token matched shows in the time taken.
 */
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();

/** A check of the `Authorization` header against the tokens; with no tokens, everything passes. */
export function createTokenCheck(tokens: readonly string[]): (authorization: string | undefined) => boolean {
  const digests = tokens.map(digest);
  if (digests.length === 0) return () => true;
  return (authorization) => {
    const match = /^Bearer +(\S+) *$/i.exec(authorization ?? "");
    // Still compare when the header is missing or malformed: the time taken says nothing.
    const presented = digest(match?.[1] ?? "");
    let isValid = false;
    for (const candidate of digests) isValid = timingSafeEqual(presented, candidate) || isValid;
    return isValid && match !== null;
  };
}

const loopbackHosts = new Set(["localhost", "::1", "[::1]", "0:0:0:0:0:0:0:1"]);

/** Whether only this machine can reach an address (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return (
    loopbackHosts.has(host.toLowerCase()) || /^127(\.\d{1,3}){3}$/.test(host) || /^::ffff:127\./i.test(host)
  );
}
