/**
 * How a process proves who it is to NATS, read from the environment and checked before anything
 * connects (docs/operations.md, "Credentials and permissions"):
 *
 * | variable                     | what                                                           |
 * |------------------------------|----------------------------------------------------------------|
 * | `NATS_CREDS`                 | a credentials file (user JWT and nkey seed, from `nsc`)        |
 * | `NATS_USER`, `NATS_PASSWORD` | a user and its password                                        |
 * | `NATS_TOKEN`                 | a token                                                        |
 * | `NATS_NKEY`                  | a file holding a user nkey seed (`SU...`)                      |
 * | `NATS_CA`                    | CA certificate(s) the server's certificate is checked against  |
 * | `NATS_CERT`, `NATS_KEY`      | a client certificate and its key (mutual TLS)                  |
 *
 * At most one kind of credential; TLS goes with any of them. Nothing set: no credentials, no TLS
 * of our own (what `baton dev`'s loopback server wants). This module reads files but does not load
 * the NATS client, so that `serve` can check the environment before it starts anything;
 * nats-connect.ts turns the result into nats.js's own options.
 */
import { readFileSync } from "node:fs";

/** The variables that say how to reach NATS securely (`NATS_URL` aside). */
export const natsAccessVariables = [
  "NATS_CREDS",
  "NATS_USER",
  "NATS_PASSWORD",
  "NATS_TOKEN",
  "NATS_NKEY",
  "NATS_CA",
  "NATS_CERT",
  "NATS_KEY",
] as const;

/** A credential or TLS setting that cannot work: the message names the variable and the fix. */
export class NatsAccessError extends Error {
  override name = "NatsAccessError";
}

export type NatsCredential =
  | { kind: "none" }
  | { kind: "creds"; creds: Uint8Array }
  | { kind: "password"; user: string; password: string }
  | { kind: "token"; token: string }
  | { kind: "nkey"; seed: Uint8Array };

export interface NatsAccess {
  readonly credential: NatsCredential;
  /** TLS file paths (nats.js reads them itself); undefined: TLS only if the server asks for it. */
  readonly tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** The credential's variable(s) in play, for messages (`NATS_USER/NATS_PASSWORD`); none: no credential. */
  readonly credentialVariables: readonly string[];
  /** The TLS variables in play (`NATS_CA`, `NATS_CERT/NATS_KEY`). */
  readonly tlsVariables: readonly string[];
}

/** No credentials, no TLS settings: `baton dev`'s own server on loopback. */
export const noNatsAccess: NatsAccess = {
  credential: { kind: "none" },
  credentialVariables: [],
  tlsVariables: [],
};

/**
 * Reads and checks the credential and TLS variables of `env`. Throws a {@link NatsAccessError}
 * naming the variable when a file is missing or unreadable, a user has no password (or the
 * reverse), or two kinds of credential are set at once.
 */
export function natsAccessFromEnv(env: NodeJS.ProcessEnv = process.env): NatsAccess {
  const value = (name: string): string | undefined => {
    const text = env[name]?.trim();
    return text === undefined || text === "" ? undefined : text;
  };
  const credsFile = value("NATS_CREDS");
  const user = value("NATS_USER");
  const password =
    env.NATS_PASSWORD === undefined || env.NATS_PASSWORD === "" ? undefined : env.NATS_PASSWORD;
  const token = value("NATS_TOKEN");
  const nkeyFile = value("NATS_NKEY");

  if (user !== undefined && password === undefined)
    throw new NatsAccessError("NATS_USER is set but NATS_PASSWORD is not: set both, or neither");
  if (password !== undefined && user === undefined)
    throw new NatsAccessError("NATS_PASSWORD is set but NATS_USER is not: set both, or neither");
  const kinds = [
    credsFile === undefined ? undefined : "NATS_CREDS",
    user === undefined ? undefined : "NATS_USER/NATS_PASSWORD",
    token === undefined ? undefined : "NATS_TOKEN",
    nkeyFile === undefined ? undefined : "NATS_NKEY",
  ].filter((kind) => kind !== undefined);
  if (kinds.length > 1)
    throw new NatsAccessError(
      `${kinds.join(" and ")} are both set: a connection uses one kind of credential; unset all but one`,
    );

  let credential: NatsCredential = { kind: "none" };
  if (credsFile !== undefined) {
    const creds = readVariableFile("NATS_CREDS", credsFile, "a credentials file");
    const text = new TextDecoder().decode(creds);
    if (!/-----BEGIN NATS USER JWT-----/.test(text) || !/-----BEGIN USER NKEY SEED-----/.test(text))
      throw new NatsAccessError(
        `NATS_CREDS="${credsFile}" is not a credentials file: it should hold a user JWT and a user nkey seed (nsc generate creds)`,
      );
    credential = { kind: "creds", creds };
  } else if (user !== undefined && password !== undefined) {
    credential = { kind: "password", user, password };
  } else if (token !== undefined) {
    credential = { kind: "token", token };
  } else if (nkeyFile !== undefined) {
    const seed = new TextDecoder().decode(
      readVariableFile("NATS_NKEY", nkeyFile, "a file holding an nkey seed"),
    );
    const trimmed = seed.trim();
    if (!/^SU[A-Z2-7]{56}$/.test(trimmed))
      throw new NatsAccessError(
        `NATS_NKEY="${nkeyFile}" does not hold a user nkey seed (one line starting with SU, as nk -gen user writes)`,
      );
    credential = { kind: "nkey", seed: new TextEncoder().encode(trimmed) };
  }

  const caFile = value("NATS_CA");
  const certFile = value("NATS_CERT");
  const keyFile = value("NATS_KEY");
  if ((certFile === undefined) !== (keyFile === undefined))
    throw new NatsAccessError(
      certFile === undefined
        ? "NATS_KEY is set but NATS_CERT is not: a client key goes with its certificate; set both, or neither"
        : "NATS_CERT is set but NATS_KEY is not: a client certificate needs its key; set both, or neither",
    );
  if (caFile !== undefined) readVariableFile("NATS_CA", caFile, "a PEM file of CA certificates");
  if (certFile !== undefined) readVariableFile("NATS_CERT", certFile, "a PEM client certificate");
  if (keyFile !== undefined) readVariableFile("NATS_KEY", keyFile, "the PEM key of NATS_CERT");
  const tls =
    caFile === undefined && certFile === undefined
      ? undefined
      : {
          ...(caFile === undefined ? {} : { caFile }),
          ...(certFile === undefined ? {} : { certFile, keyFile }),
        };

  const tlsVariables = [
    ...(caFile === undefined ? [] : ["NATS_CA"]),
    ...(certFile === undefined ? [] : ["NATS_CERT/NATS_KEY"]),
  ];
  return { credential, ...(tls === undefined ? {} : { tls }), credentialVariables: kinds, tlsVariables };
}

/** `env` without the credential and TLS variables (for a process talking to `baton dev`'s own server). */
export function withoutNatsAccess(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of natsAccessVariables) delete copy[name];
  return copy;
}

function readVariableFile(variable: string, path: string, what: string): Uint8Array {
  try {
    const data = readFileSync(path);
    if (data.length === 0) throw new NatsAccessError(`${variable}="${path}" is empty; it should be ${what}`);
    return data;
  } catch (error) {
    if (error instanceof NatsAccessError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT"
        ? "does not exist"
        : code === "EACCES"
          ? "cannot be read (permission denied)"
          : code === "EISDIR"
            ? "is a directory"
            : `cannot be read (${code ?? String(error)})`;
    throw new NatsAccessError(`${variable}="${path}" ${reason}; it should be ${what}`);
  }
}
