/**
 * GitHub webhooks: the signature check and the trigger event a delivery becomes.
 *
 * GitHub signs the raw body with HMAC-SHA256 under the webhook's secret and sends
 * `X-Hub-Signature-256: sha256=<hex>`. Several secrets may be configured (`BATON_GITHUB_SECRET`,
 * comma-separated) so that one can be rotated: a signature made with any of them is accepted.
 * Comparison is constant-time.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Json } from "../workflow/definition.ts";
import { repositoryOf } from "./matcher.ts";
import type { TriggerEvent } from "./trigger-event.ts";

/** GitHub's own limit on a webhook payload. */
export const githubBodyLimit = 25 * 1024 * 1024;

/** `sha256=<hex>` of a body under a secret, as GitHub computes it. */
export function signGithubBody(secret: string, body: Buffer | string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** Whether `header` is a valid signature of `body` under one of `secrets`. */
export function verifyGithubSignature(
  secrets: readonly string[],
  body: Buffer,
  header: string | undefined,
): boolean {
  if (header === undefined || !/^sha256=[0-9a-f]{64}$/i.test(header.trim())) return false;
  const given = Buffer.from(header.trim().slice("sha256=".length).toLowerCase(), "hex");
  let valid = false;
  // Every secret is tried, whatever matched, so timing does not tell which one did.
  for (const secret of secrets) {
    const expected = createHmac("sha256", secret).update(body).digest();
    if (expected.length === given.length && timingSafeEqual(expected, given)) valid = true;
  }
  return valid;
}

/** The trigger event of a delivery: type = `X-GitHub-Event`, id = `X-GitHub-Delivery`. */
export function githubTriggerEvent(
  type: string,
  delivery: string,
  payload: Json,
  time = new Date(),
): TriggerEvent {
  const repository = repositoryOf(payload);
  return {
    source: "github",
    type,
    id: delivery,
    time: time.toISOString(),
    ...(repository === undefined ? {} : { subject: repository }),
    data: payload,
  };
}
