/**
 * TLS to NATS from NATS_CA, NATS_CERT and NATS_KEY, against a real nats-server that requires TLS
 * and verifies client certificates. The CA and the certificates are made for the test with the
 * openssl command (skipped, and says so, where there is none).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { natsAccessFromEnv } from "../../sdk/nats-access.ts";
import { connectNats } from "../../sdk/nats-connect.ts";
import { startNatsServer, type NatsServer } from "../helpers/nats-server.ts";

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!hasOpenssl())("TLS to NATS", () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-nats-tls-"));
  const path = (name: string) => join(dir, name);
  let server: NatsServer;

  beforeAll(async () => {
    const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
    const request = (name: string, cn: string) =>
      openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${name}-key.pem`,
        "-out",
        `${name}.csr`,
        "-subj",
        `/CN=${cn}`,
      );
    const sign = (name: string, ...extra: string[]) =>
      openssl(
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        `${name}.pem`,
        "-days",
        "1",
        ...extra,
      );
    openssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca-key.pem",
      "-out",
      "ca.pem",
      "-days",
      "1",
      "-subj",
      "/CN=baton-test-ca",
    );
    request("server", "127.0.0.1");
    writeFileSync(path("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    sign("server", "-extfile", "san.ext");
    request("client", "baton-test-client");
    sign("client");
    writeFileSync(
      path("tls.conf"),
      `tls { cert_file: "${path("server.pem")}", key_file: "${path("server-key.pem")}", ca_file: "${path("ca.pem")}", verify: true }\n`,
    );
    server = await startNatsServer({ jetstream: false, configFile: path("tls.conf") });
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("connects with the CA, a client certificate and its key", async () => {
    const nc = await connectNats(
      { servers: server.url },
      natsAccessFromEnv({
        NATS_CA: path("ca.pem"),
        NATS_CERT: path("client.pem"),
        NATS_KEY: path("client-key.pem"),
      }),
    );
    await nc.flush();
    await nc.close();
  });

  it("without NATS_CA the server's certificate is not trusted: says which variable to set", async () => {
    await expect(
      connectNats(
        { servers: server.url },
        natsAccessFromEnv({ NATS_CERT: path("client.pem"), NATS_KEY: path("client-key.pem") }),
      ),
    ).rejects.toThrow(
      /^TLS with NATS at nats:\/\/127\.0\.0\.1:\d+ failed \(.+\): check NATS_CERT\/NATS_KEY$/,
    );
    await expect(connectNats({ servers: server.url }, natsAccessFromEnv({}))).rejects.toThrow(
      /^TLS with NATS at .* failed \(.+\): no NATS_CA, NATS_CERT or NATS_KEY is set$/,
    );
  });

  it("without a client certificate a verifying server closes the connection: names NATS_CERT/NATS_KEY", async () => {
    await expect(
      connectNats({ servers: server.url, timeout: 2_000 }, natsAccessFromEnv({ NATS_CA: path("ca.pem") })),
    ).rejects.toThrow(
      /^no connection to NATS at .* in time: check NATS_URL, NATS_CA; a server that verifies clients also wants NATS_CERT\/NATS_KEY$/,
    );
  });
});
