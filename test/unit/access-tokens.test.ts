/**
 * Execution access tokens (engine/api/access-tokens.ts): what verifies and what does not. Tokens
 * are built here by hand or with fast-jwt's signer, as a forger holding (or not holding) the key would.
 */
import { createSigner } from "fast-jwt";
import { expect, it } from "vitest";
import { AccessTokens } from "../../engine/api/access-tokens.ts";

const key = "k".repeat(43);
const open = (ttlMs = 60_000, signingKey = key) =>
  AccessTokens.open(undefined as never, { ttlMs, signingKey });
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

it("grants its own execution, and nothing to a token that is forged, expired, of another scope or incomplete", async () => {
  const tokens = await open();
  const token = await tokens.issue("e-1");
  expect(await tokens.verify(token)).toEqual({ execution: "e-1" });

  // Another key, a tampered payload, an expired token.
  expect(await (await open(60_000, "j".repeat(43))).verify(token)).toBeUndefined();
  const [header, , signature] = token.split(".");
  expect(
    await tokens.verify(
      `${header}.${b64({ scope: "execution:read", iss: "baton", sub: "e-2", exp: now() + 60 })}.${signature}`,
    ),
  ).toBeUndefined();
  expect(await tokens.verify(await tokens.issue("e-1", Date.now() - 120_000))).toBeUndefined();

  // Signed with the key, but without an expiry, an issuer or a subject, or of another scope.
  const sign = createSigner({ key, algorithm: "HS256", noTimestamp: true });
  expect(await tokens.verify(sign({ scope: "execution:read", iss: "baton", sub: "e-1" }))).toBeUndefined();
  expect(await tokens.verify(sign({ scope: "execution:read", sub: "e-1", exp: now() + 60 }))).toBeUndefined();
  expect(
    await tokens.verify(sign({ scope: "execution:read", iss: "baton", exp: now() + 60 })),
  ).toBeUndefined();
  expect(
    await tokens.verify(sign({ scope: "admin", iss: "baton", sub: "e-1", exp: now() + 60 })),
  ).toBeUndefined();
  expect(
    await tokens.verify(sign({ scope: "execution:read", iss: "baton", sub: "e-1", exp: now() + 60 })),
  ).toEqual({
    execution: "e-1",
  });

  // alg "none", and text that is no token at all.
  const unsigned = `${b64({ alg: "none", typ: "JWT" })}.${b64({ scope: "execution:read", iss: "baton", sub: "e-1", exp: now() + 60 })}.`;
  expect(await tokens.verify(unsigned)).toBeUndefined();
  expect(await tokens.verify("not a token")).toBeUndefined();
  expect(await tokens.verify("")).toBeUndefined();
});
