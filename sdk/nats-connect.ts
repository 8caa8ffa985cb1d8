/**
 * Connecting to NATS the way every Baton process does: the credential and TLS settings of
 * nats-access.ts as nats.js's own options (`credsAuthenticator`, `nkeyAuthenticator`, `user`/`pass`,
 * `token`, `tls`), and a refusal at connect (credentials, TLS, nobody listening) turned into one
 * line that names the variables in play instead of a stack trace.
 */
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from "nats";
import { NatsAccessError, type NatsAccess } from "./nats-access.ts";
import { quietCancelErrors } from "./nats-cancel-errors.ts";
import { coalesceWrites } from "./nats-coalesce.ts";

/** nats.js connection options for `access`: only the credential and TLS ones. */
export function natsAccessOptions(access: NatsAccess): Partial<ConnectionOptions> {
  const { credential } = access;
  const options: Partial<ConnectionOptions> = {};
  switch (credential.kind) {
    case "creds":
      options.authenticator = credsAuthenticator(credential.creds);
      break;
    case "nkey":
      options.authenticator = nkeyAuthenticator(credential.seed);
      break;
    case "password":
      options.user = credential.user;
      options.pass = credential.password;
      break;
    case "token":
      options.token = credential.token;
      break;
    case "none":
      break;
  }
  if (access.tls !== undefined) options.tls = { ...access.tls };
  return options;
}

/**
 * `connect` with `access`'s credentials and TLS, its writes coalesced (nats-coalesce.ts). A connection refused for its credentials or its
 * TLS, or a server nobody answers at, rejects with a {@link NatsAccessError} whose message is one
 * line naming the variables; any other error is passed on as is.
 */
export async function connectNats(options: ConnectionOptions, access: NatsAccess): Promise<NatsConnection> {
  quietCancelErrors();
  try {
    const nc = await connect({ ...options, ...natsAccessOptions(access) });
    coalesceWrites(nc);
    return nc;
  } catch (error) {
    throw explainConnectError(error, access, options.servers) ?? error;
  }
}

const authCodes = new Set([
  "AUTHORIZATION_VIOLATION",
  "AUTHENTICATION_EXPIRED",
  "AUTHENTICATION_TIMEOUT",
  "ACCOUNT_EXPIRED",
]);

/** The one-line explanation of a failed connect, or undefined when it is none of ours to explain. */
export function explainConnectError(
  error: unknown,
  access: NatsAccess,
  servers: ConnectionOptions["servers"],
): NatsAccessError | undefined {
  const where = Array.isArray(servers) ? servers.join(",") : (servers ?? "nats://127.0.0.1:4222");
  const rawCode = (error as { code?: unknown } | undefined)?.code;
  const code = typeof rawCode === "string" ? rawCode : "";
  const message = (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
  const { credentialVariables, tlsVariables } = access;
  if (authCodes.has(code) || /authorization violation|authentication/i.test(message)) {
    if (credentialVariables.length === 0)
      return new NatsAccessError(
        `NATS at ${where} refused a connection without credentials (${message}): set NATS_CREDS, NATS_USER and NATS_PASSWORD, NATS_TOKEN or NATS_NKEY`,
      );
    return new NatsAccessError(
      `NATS at ${where} refused the credentials of ${credentialVariables.join(", ")} (${message}): check them against the server's users`,
    );
  }
  if (isTlsError(code, message)) {
    const named =
      tlsVariables.length === 0
        ? "no NATS_CA, NATS_CERT or NATS_KEY is set"
        : `check ${tlsVariables.join(", ")}`;
    return new NatsAccessError(`TLS with NATS at ${where} failed (${message}): ${named}`);
  }
  if (code === "CONNECTION_REFUSED" || /ECONNREFUSED/.test(message))
    return new NatsAccessError(`cannot reach NATS at ${where} (NATS_URL): connection refused`);
  if (code === "TIMEOUT") {
    // A server that verifies client certificates closes a TLS connection without one, which the
    // client only sees as no connection in time.
    const noClientCertificate =
      access.tls !== undefined && access.tls.certFile === undefined
        ? "; a server that verifies clients also wants NATS_CERT/NATS_KEY"
        : "";
    return new NatsAccessError(
      `no connection to NATS at ${where} in time: check NATS_URL${tlsVariables.length > 0 ? `, ${tlsVariables.join(", ")}` : ""}${noClientCertificate}`,
    );
  }
  return undefined;
}

/**
 * A request NATS refused for the permissions of `role`'s user (say, a worker's user creating a
 * stream the engine has not created yet), as one line; undefined for any other error.
 */
export function explainPermissionError(
  error: unknown,
  access: NatsAccess,
  role: string,
): NatsAccessError | undefined {
  const rawCode = (error as { code?: unknown } | undefined)?.code;
  if (rawCode !== "PERMISSIONS_VIOLATION") return undefined;
  // The server's -ERR text, which nats.js keeps in its quotes.
  const message = ((error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "").replace(
    /^'(.*)'$/,
    "$1",
  );
  const who =
    access.credentialVariables.length === 0
      ? "without credentials"
      : `as ${access.credentialVariables.join(", ")}`;
  const hint = /\$JS\.API\.(STREAM|CONSUMER)\.CREATE|\$JS\.API\.CONSUMER\.DURABLE\.CREATE/.test(message)
    ? `; a ${role} may not be allowed to create streams (deploy/nats/baton.conf): start the engine first, which creates them`
    : `; check the permissions of the ${role}'s user (deploy/nats/baton.conf)`;
  return new NatsAccessError(`NATS refused the ${role} connected ${who}: ${message}${hint}`);
}

function isTlsError(code: string, message: string): boolean {
  return (
    /^(ERR_TLS|ERR_SSL|ERR_OSSL|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO|CERT_|ERR_TLS_CERT)/.test(code) ||
    /\btls\b|ssl|certificate/i.test(message)
  );
}
