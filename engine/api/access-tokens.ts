/**
 * Execution access tokens: what the `result` and `events` links of a started execution carry, so
 * that a browser can follow the one execution it started without holding an API token (a
 * browser cannot put a header on a websocket). A token is a JWT (HS256, by `fast-jwt`) whose subject
 * is the execution id and whose scope is `execution:read`: valid on `GET /v1/executions/{id}`,
 * `.../result` and `.../events` of that execution only, until it expires (`BATON_API_ACCESS_TTL`).
 *
 * The signing key is the same on every API replica and across restarts: `BATON_API_SIGNING_KEY`,
 * or else a random key created once in the KV bucket `baton_api` (whichever replica creates it
 * first wins; the others read it).
 */
import { openBucket } from "../../sdk/replication.ts";
import { randomBytes } from "node:crypto";
import { createSigner, createVerifier } from "fast-jwt";
import { StorageType, type NatsConnection } from "nats";

export const apiBucket = "baton_api";
export const signingKeyKey = "signing-key";
const issuer = "baton";
const scope = "execution:read";

export interface AccessGrant {
  execution: string;
}

export class AccessTokens {
  // fast-jwt signs and verifies HS256 synchronously with node:crypto: a token costs a few
  // microseconds, where WebCrypto's asynchronous HMAC (jose) cost about 150 µs of every start.
  readonly #sign: (payload: Record<string, unknown>) => string;
  readonly #verify: (token: string) => Record<string, unknown>;

  private constructor(
    key: string,
    private readonly ttlMs: number,
  ) {
    this.#sign = createSigner({ key, algorithm: "HS256" });
    this.#verify = createVerifier({
      key,
      algorithms: ["HS256"],
      allowedIss: issuer,
      requiredClaims: ["exp", "iss", "sub"],
    });
  }

  /** Reads (or creates, once) the key in JetStream, unless `signingKey` is given. */
  static async open(
    nc: NatsConnection,
    options: { ttlMs: number; signingKey?: string | undefined },
  ): Promise<AccessTokens> {
    return new AccessTokens(options.signingKey ?? (await sharedKey(nc)), options.ttlMs);
  }

  /** A token that reads execution `execution` until the TTL has passed. */
  issue(execution: string, now = Date.now()): Promise<string> {
    return Promise.resolve(
      this.#sign({
        scope,
        iss: issuer,
        sub: execution,
        iat: Math.floor(now / 1000),
        exp: Math.floor((now + this.ttlMs) / 1000),
      }),
    );
  }

  /** What a token grants, or `undefined` when it is malformed, forged, expired or of another scope. */
  verify(token: string): Promise<AccessGrant | undefined> {
    try {
      const payload = this.#verify(token);
      if (payload.scope !== scope || typeof payload.sub !== "string") return Promise.resolve(undefined);
      return Promise.resolve({ execution: payload.sub });
    } catch {
      return Promise.resolve(undefined);
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
