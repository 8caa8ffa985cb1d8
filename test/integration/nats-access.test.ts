/**
 * NATS credentials and TLS from the environment (sdk/nats-access.ts, sdk/nats-connect.ts): what is
 * refused before connecting (with the variable named), and real connections to nats-servers that
 * ask for an nkey, a token or a password, or that speak no TLS.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nkeys } from "nats";
import { afterAll, describe, expect, it } from "vitest";
import { NatsAccessError, natsAccessFromEnv, withoutNatsAccess } from "../../sdk/nats-access.ts";
import { connectNats, natsAccessOptions } from "../../sdk/nats-connect.ts";
import { useNatsServer } from "../helpers/nats-server.ts";

const dir = mkdtempSync(join(tmpdir(), "baton-nats-access-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** nats.js's nkeys (typed loosely by the package): user key pairs for the nkey server. */
const createUser = () =>
  (nkeys as { createUser(): { getSeed(): Uint8Array; getPublicKey(): string } }).createUser();
const user = createUser();
const seedFile = file("user.nk", `${new TextDecoder().decode(user.getSeed())}\n`);
const token = "t0ken-for-the-test-server";
const nkeyServer = useNatsServer({
  jetstream: false,
  configFile: file("nkey.conf", `authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }\n`),
});
const tokenServer = useNatsServer({
  jetstream: false,
  configFile: file("token.conf", `authorization { token: "${token}" }\n`),
});
const passwordServer = useNatsServer({
  jetstream: false,
  configFile: file("password.conf", `authorization { users: [ { user: "u", password: "p4ss" } ] }\n`),
});

const refused = (env: NodeJS.ProcessEnv) => {
  try {
    natsAccessFromEnv(env);
  } catch (error) {
    expect(error).toBeInstanceOf(NatsAccessError);
    return (error as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
};

describe("reading the environment", () => {
  it("asks for nothing when nothing is set", () => {
    expect(natsAccessFromEnv({})).toEqual({
      credential: { kind: "none" },
      credentialVariables: [],
      tlsVariables: [],
    });
    expect(natsAccessOptions(natsAccessFromEnv({}))).toEqual({});
  });

  it("refuses a user without a password and a password without a user", () => {
    expect(refused({ NATS_USER: "u" })).toMatch(/^NATS_USER is set but NATS_PASSWORD is not/);
    expect(refused({ NATS_PASSWORD: "p" })).toMatch(/^NATS_PASSWORD is set but NATS_USER is not/);
  });

  it("refuses two kinds of credential at once, naming both", () => {
    expect(refused({ NATS_TOKEN: "t", NATS_USER: "u", NATS_PASSWORD: "p" })).toMatch(
      /^NATS_USER\/NATS_PASSWORD and NATS_TOKEN are both set/,
    );
    expect(refused({ NATS_TOKEN: "t", NATS_NKEY: seedFile })).toMatch(/NATS_TOKEN and NATS_NKEY/);
  });

  it("refuses missing, empty and wrong files, naming the variable", () => {
    const missing = join(dir, "missing.creds");
    expect(refused({ NATS_CREDS: missing })).toBe(
      `NATS_CREDS="${missing}" does not exist; it should be a credentials file`,
    );
    expect(refused({ NATS_CREDS: file("empty.creds", "") })).toMatch(/^NATS_CREDS=".*" is empty/);
    expect(refused({ NATS_CREDS: file("bad.creds", "hello") })).toMatch(
      /^NATS_CREDS=".*" is not a credentials file/,
    );
    expect(refused({ NATS_NKEY: dir })).toMatch(/^NATS_NKEY=".*" is a directory/);
    expect(refused({ NATS_NKEY: file("bad.nk", "SUnot-a-seed") })).toMatch(/does not hold a user nkey seed/);
    expect(refused({ NATS_CA: missing })).toMatch(/^NATS_CA=".*" does not exist/);
  });

  it("refuses a client certificate without its key, and the reverse", () => {
    const pem = file("any.pem", "-----BEGIN CERTIFICATE-----\n");
    expect(refused({ NATS_CERT: pem })).toMatch(/^NATS_CERT is set but NATS_KEY is not/);
    expect(refused({ NATS_KEY: pem })).toMatch(/^NATS_KEY is set but NATS_CERT is not/);
    expect(natsAccessOptions(natsAccessFromEnv({ NATS_CA: pem, NATS_CERT: pem, NATS_KEY: pem }))).toEqual({
      tls: { caFile: pem, certFile: pem, keyFile: pem },
    });
  });

  it("builds nats.js's own authenticators for creds and nkey files", () => {
    expect(natsAccessOptions(natsAccessFromEnv({ NATS_NKEY: seedFile })).authenticator).toBeTypeOf(
      "function",
    );
    expect(natsAccessOptions(natsAccessFromEnv({ NATS_USER: "u", NATS_PASSWORD: "p" }))).toEqual({
      user: "u",
      pass: "p",
    });
  });

  it("withoutNatsAccess drops every credential and TLS variable, and keeps the rest", () => {
    expect(withoutNatsAccess({ NATS_URL: "x", NATS_TOKEN: "t", NATS_CA: "c", BATON_X: "1" })).toEqual({
      NATS_URL: "x",
      BATON_X: "1",
    });
  });
});

describe("connecting", () => {
  it("connects with an nkey seed file; another seed is refused naming NATS_NKEY", async () => {
    const nc = await connectNats({ servers: nkeyServer().url }, natsAccessFromEnv({ NATS_NKEY: seedFile }));
    await nc.flush();
    await nc.close();
    const other = file("other.nk", new TextDecoder().decode(createUser().getSeed()));
    const error = await connectNats(
      { servers: nkeyServer().url },
      natsAccessFromEnv({ NATS_NKEY: other }),
    ).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(NatsAccessError);
    expect((error as Error).message).toMatch(
      /^NATS at nats:\/\/127\.0\.0\.1:\d+ refused the credentials of NATS_NKEY \(.*Authorization Violation.*\)/i,
    );
  });

  it("connects with a token; a wrong one is refused naming NATS_TOKEN", async () => {
    const nc = await connectNats({ servers: tokenServer().url }, natsAccessFromEnv({ NATS_TOKEN: token }));
    await nc.close();
    await expect(
      connectNats({ servers: tokenServer().url }, natsAccessFromEnv({ NATS_TOKEN: "wrong" })),
    ).rejects.toThrow(/refused the credentials of NATS_TOKEN/);
  });

  it("connects with a user and password; none at all is refused with the variables to set", async () => {
    const nc = await connectNats(
      { servers: passwordServer().url },
      natsAccessFromEnv({ NATS_USER: "u", NATS_PASSWORD: "p4ss" }),
    );
    await nc.close();
    await expect(connectNats({ servers: passwordServer().url }, natsAccessFromEnv({}))).rejects.toThrow(
      /refused a connection without credentials .*: set NATS_CREDS, NATS_USER and NATS_PASSWORD, NATS_TOKEN or NATS_NKEY$/,
    );
  });

  it("TLS asked of a server without it fails naming NATS_CA", async () => {
    const ca = file("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    await expect(
      connectNats(
        { servers: passwordServer().url },
        natsAccessFromEnv({ NATS_CA: ca, NATS_USER: "u", NATS_PASSWORD: "p4ss" }),
      ),
    ).rejects.toThrow(/^TLS with NATS at nats:\/\/127\.0\.0\.1:\d+ failed \(.*\): check NATS_CA$/);
  });
});
