/**
 * `POST /v1/hooks/github`: GitHub webhook deliveries. No bearer token: a delivery is
 * authenticated by its signature (HMAC-SHA256 of the raw body, `X-Hub-Signature-256`) under one
 * of the secrets in `BATON_GITHUB_SECRET`. The body is read raw (up to GitHub's 25 MiB) because
 * the signature covers the bytes as sent.
 *
 * The delivery is stored on BATON_TRIGGERS and matched in the request (the same code as the
 * engine's matcher), so that the `202` names the executions it started. `X-GitHub-Delivery` is
 * the delivery id: a redelivery starts nothing new and answers with the first one's executions.
 */
import type { FastifyPluginCallback } from "fastify";
import { githubBodyLimit, githubTriggerEvent, verifyGithubSignature } from "../../triggers/github-webhook.ts";
import type { Json } from "../../workflow/definition.ts";
import { isNestedDeeper, maxJsonDepth } from "../body-parsers.ts";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../problems.ts";
import { problemResponses } from "../schemas.ts";
import { acceptedAnswer, acceptedResponse } from "./deliveries.ts";

const headerPattern = /^[\x21-\x7e]{1,256}$/;

/** Roughly what a trigger event and the start it makes add to the payload (bytes). */
const envelopeBytes = 4_096;

export function githubRoutes({ triggers, githubSecrets }: ApiContext): FastifyPluginCallback {
  return (app, _options, done) => {
    // This route alone reads its body as bytes: the signature is over them.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(
      "*",
      { parseAs: "buffer", bodyLimit: githubBodyLimit },
      (request, body, parsed) => {
        request.bodyBytes = (body as Buffer).length;
        parsed(null, body);
      },
    );

    app.post(
      "/v1/hooks/github",
      {
        bodyLimit: githubBodyLimit,
        config: { isPublic: true },
        schema: {
          tags: ["events"],
          summary: "A GitHub webhook delivery (signed with a secret from BATON_GITHUB_SECRET; no token)",
          security: [],
          response: {
            200: {
              type: "object",
              description: "A `ping`: the webhook is set up.",
              required: ["ok"],
              properties: { ok: { type: "boolean" }, zen: { type: "string" } },
            },
            202: acceptedResponse,
            ...problemResponses(400, 413),
          },
        },
      },
      async (request, reply) => {
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const signature = request.headers["x-hub-signature-256"];
        if (githubSecrets.length === 0)
          throw new ApiError(
            "SignatureInvalid",
            "no webhook secret is configured (BATON_GITHUB_SECRET): every delivery is refused",
          );
        if (typeof signature !== "string")
          throw new ApiError(
            "SignatureInvalid",
            "the delivery has no X-Hub-Signature-256 header: set a secret on the webhook",
          );
        if (!verifyGithubSignature(githubSecrets, body, signature))
          throw new ApiError(
            "SignatureInvalid",
            "X-Hub-Signature-256 does not match the body under any configured secret",
          );

        const type = request.headers["x-github-event"];
        const delivery = request.headers["x-github-delivery"];
        if (typeof type !== "string" || !headerPattern.test(type))
          throw new ApiError("RequestInvalid", "X-GitHub-Event is missing or malformed", [
            { code: "RequestInvalid", message: "missing or malformed", path: "headers/x-github-event" },
          ]);
        if (typeof delivery !== "string" || !headerPattern.test(delivery))
          throw new ApiError("RequestInvalid", "X-GitHub-Delivery is missing or malformed", [
            { code: "RequestInvalid", message: "missing or malformed", path: "headers/x-github-delivery" },
          ]);

        const payload = parsePayload(body, request.headers["content-type"]);
        if (type === "ping") {
          const zen = (payload as { zen?: unknown } | null)?.zen;
          return reply.code(200).send({ ok: true, ...(typeof zen === "string" ? { zen } : {}) });
        }
        const maxPayload = triggers.connection.info?.max_payload ?? Infinity;
        if (body.length + envelopeBytes > maxPayload)
          throw new ApiError(
            "BodyTooLarge",
            `the delivery is ${body.length} bytes; NATS takes messages of at most ${maxPayload} bytes (max_payload)`,
          );
        return reply
          .code(202)
          .send(acceptedAnswer(await triggers.accept(githubTriggerEvent(type, delivery, payload))));
      },
    );
    done();
  };
}

/** The JSON payload: the body itself, or the `payload` field of a form-encoded body. */
function parsePayload(body: Buffer, contentType: string | undefined): Json {
  let text = body.toString("utf8");
  if (contentType?.startsWith("application/x-www-form-urlencoded"))
    text = new URLSearchParams(text).get("payload") ?? "";
  if (isNestedDeeper(text, maxJsonDepth))
    throw new ApiError("RequestInvalid", `the JSON body is nested deeper than ${maxJsonDepth} levels`);
  try {
    return JSON.parse(text) as Json;
  } catch (error) {
    throw new ApiError("RequestInvalid", `the body is not JSON: ${(error as Error).message}`, [
      { code: "RequestInvalid", message: "not JSON", path: "body" },
    ]);
  }
}
