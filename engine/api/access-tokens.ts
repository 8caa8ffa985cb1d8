/**
 * Execution access tokens: what the `result` and `events` links of a started execution carry, so
 * that a browser can follow the one execution it started without holding an API token (a
 * browser cannot put a header on a websocket). A token is a JWT (HS256, by `jose`) whose subject
 * is the execution id and whose scope is `execution:read`: valid on `GET /v1/executions/{id}`,
 * `.../result` and `.../events` of that execution only, until it expires (`BATON_API_ACCESS_TTL`).
 *
 * The signing key is the same on every API replica and across restarts: `BATON_API_SIGNING_KEY`,
 * or else a random key created once in the KV bucket `baton_api` (whichever replica creates it
 * first wins; the others read it).
 */
import { openBucket } from "../../sdk/replication.ts";
import { randomBytes } from "node:crypto";
import { SignJWT, jwtVerify } from "jose";
import { StorageType, type NatsConnection } from "nats";

export const apiBucket = "baton_api";
export const signingKeyKey = "signing-key";
const issuer = "baton";
const scope = "execution:read";

export interface AccessGrant {
  execution: string;
}

export class AccessTokens {
  private constructor(
    private readonly key: Uint8Array,
    private readonly ttlMs: number,
  ) {}

  /** Reads (or creates, once) the key in JetStream, unless `signingKey` is given. */
  static async open(
    nc: NatsConnection,
    options: { ttlMs: number; signingKey?: string | undefined },
  ): Promise<AccessTokens> {
    const key = options.signingKey ?? (await sharedKey(nc));
    return new AccessTokens(new TextEncoder().encode(key), options.ttlMs);
  }

  /** A token that reads execution `execution` until the TTL has passed. */
  issue(execution: string, now = Date.now()): Promise<string> {
    return new SignJWT({ scope })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuer(issuer)
      .setSubject(execution)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor((now + this.ttlMs) / 1000))
      .sign(this.key);
  }

  /** What a token grants, or `undefined` when it is malformed, forged, expired or of another scope. */
  async verify(token: string): Promise<AccessGrant | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer, algorithms: ["HS256"] });
      if (payload.scope !== scope || typeof payload.sub !== "string") return undefined;
      return { execution: payload.sub };
    } catch {
      return undefined;
    }
  }
}

async function sharedKey(nc: NatsConnection): Promise<string> {
  const kv = await openBucket(nc.jetstream(), apiBucket, { history: 1, storage: StorageType.File });
  const existing = await kv.get(signingKeyKey);
  if (existing && existing.operation === "PUT") return existing.string();
  try {
    const key = randomBytes(32).toString("base64url");
    await kv.create(signingKeyKey, key);
    return key;
  } catch (error) {
    // Another replica created it first: use that one.
    if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
    const created = await kv.get(signingKeyKey);
    if (!created) throw error;
    return created.string();
  }
}
