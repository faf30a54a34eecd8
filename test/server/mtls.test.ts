/**
 * The team server over HTTPS with mutual TLS, certificates made by openssl in the test: the
 * CA's client certificate gets the roles `clients:` gives it; no certificate, a certificate
 * from another CA, and TLS 1.1 are refused; a bearer token on top is authenticated too.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { SecureVersion } from "node:tls";
import { tempDir } from "../helpers.ts";
import { makeCa, makeCert } from "./certs.ts";
import { parseServerConfig } from "../../src/server/config.ts";
import { initServer, startServer } from "../../src/server/server.ts";

interface Answer {
  status: number;
  json: any;
}

function get(url: string, path: string, options: { ca: string; cert?: string; key?: string; token?: string; minVersion?: SecureVersion; maxVersion?: SecureVersion; ciphers?: string }): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname, port: u.port, path, method: "GET", agent: false,
        ca: readFileSync(options.ca),
        ...(options.cert !== undefined && { cert: readFileSync(options.cert), key: readFileSync(options.key!) }),
        ...(options.minVersion !== undefined && { minVersion: options.minVersion }),
        ...(options.maxVersion !== undefined && { maxVersion: options.maxVersion }),
        ...(options.ciphers !== undefined && { ciphers: options.ciphers }),
        headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * A server with TLS whose client CA is a fresh test CA that maps `ci-runner` to `reader`: the
 * CA, another CA, the runner's certificate, the server and its root token.
 */
async function startMtlsServer(t: import("node:test").TestContext) {
  const dir = tempDir(t);
  const ca = makeCa(dir, "coffer-test-ca");
  const otherCa = makeCa(dir, "other-ca");
  const server = makeCert(dir, ca, { cn: "coffer-server", dns: ["localhost"], ips: ["127.0.0.1"], server: true });
  const runner = makeCert(dir, ca, { cn: "ci-runner", client: true });
  const yaml = `
roles:
  reader: [ { path: "app/*", capabilities: [read, list] } ]
tls: { cert: ${server.cert}, key: ${server.key}, clientCa: ${ca.cert} }
clients: { ci-runner: [reader] }
`;
  const config = parseServerConfig(yaml, "mtls.yml", {}, { listen: "127.0.0.1:0" });
  const dataDir = join(dir, "data");
  const { rootToken } = await initServer(dataDir, config);
  const s = await startServer({ dataDir, config, logger: false });
  t.after(() => s.close());
  return { dir, ca, otherCa, runner, s, rootToken };
}

test("mutual TLS: the CA's client certificate gets its roles; no certificate, another CA and TLS 1.1 are refused", async (t) => {
  const { dir, ca, otherCa, runner, s, rootToken } = await startMtlsServer(t);
  const stranger = makeCert(dir, ca, { cn: "stranger", client: true });
  const forged = makeCert(dir, otherCa, { cn: "ci-runner-forged", client: true });
  assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);

  const asRunner = { ca: ca.cert, cert: runner.cert, key: runner.key };
  // root (a bearer token on top of a certificate) writes; the certificate alone reads
  const put = await new Promise<number>((resolve, reject) => {
    const u = new URL(s.url);
    const body = JSON.stringify({ value: "over-mtls" });
    const req = request({
      host: u.hostname, port: u.port, path: "/v1/secrets/app/db", method: "PUT", agent: false,
      ca: readFileSync(ca.cert), cert: readFileSync(runner.cert), key: readFileSync(runner.key),
      headers: { authorization: `Bearer ${rootToken}`, "content-type": "application/json" },
    }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(body);
  });
  assert.equal(put, 200);

  const self = await get(s.url, "/v1/auth/self", asRunner);
  assert.equal(self.status, 200);
  assert.deepEqual([self.json.subject, self.json.kind, self.json.roles], ["cert:ci-runner", "cert", ["reader"]]);
  const read = await get(s.url, "/v1/secrets/app/db", asRunner);
  assert.equal(read.status, 200);
  assert.equal(read.json.value, "over-mtls");
  // a valid certificate that clients: does not list has no roles: denied, not refused
  assert.equal((await get(s.url, "/v1/secrets/app/db", { ca: ca.cert, cert: stranger.cert, key: stranger.key })).status, 403);
  // a bearer token on top is authenticated: a bad one is 401 even with a good certificate
  const bad = await get(s.url, "/v1/auth/self", { ...asRunner, token: `cof_${"A".repeat(43)}` });
  assert.equal(bad.status, 401);
  const withToken = await get(s.url, "/v1/auth/self", { ...asRunner, token: rootToken });
  assert.deepEqual(withToken.json.roles, ["root"]);

  // refused in the handshake
  await assert.rejects(get(s.url, "/v1/sys/health", { ca: ca.cert }), "no client certificate");
  await assert.rejects(get(s.url, "/v1/sys/health", { ca: ca.cert, cert: forged.cert, key: forged.key }), "a certificate from another CA");
  await assert.rejects(
    get(s.url, "/v1/sys/health", { ...asRunner, minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" }),
    "TLS 1.1",
  );
  // and the audit names the certificate
  const audit = await get(s.url, "/v1/audit?limit=1000", { ...asRunner, token: rootToken });
  const reads = (audit.json.records as { actor: string; action: string }[]).filter((r) => r.action === "secret.read");
  assert.ok(reads.some((r) => r.actor === "cert:ci-runner"));
});

test("HTTPS without client certificates: TLS 1.2 minimum, bearer tokens as usual", async (t) => {
  const dir = tempDir(t);
  const ca = makeCa(dir, "ca");
  const server = makeCert(dir, ca, { cn: "coffer-server", dns: ["localhost"], ips: ["127.0.0.1"], server: true });
  const config = parseServerConfig(`tls: { cert: ${server.cert}, key: ${server.key} }\n`, "tls.yml", {}, { listen: "127.0.0.1:0" });
  const dataDir = join(dir, "data");
  const { rootToken } = await initServer(dataDir, config);
  const s = await startServer({ dataDir, config, logger: false });
  t.after(() => s.close());
  assert.equal((await get(s.url, "/v1/sys/health", { ca: ca.cert, maxVersion: "TLSv1.2" })).status, 200);
  assert.equal((await get(s.url, "/v1/auth/self", { ca: ca.cert, token: rootToken })).json.subject.startsWith("token:"), true);
  assert.equal((await get(s.url, "/v1/auth/self", { ca: ca.cert })).status, 401);
  await assert.rejects(get(s.url, "/v1/sys/health", { ca: ca.cert, minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" }));
});

test("coffer's TLS fetch trusts only the given CA, presents the client certificate, streams a watch and stops it on abort", async (t) => {
  const { tlsFetch } = await import("../../src/client/http.ts");
  const { ca, otherCa, runner, s } = await startMtlsServer(t);

  const asRunner = tlsFetch({ ca: readFileSync(ca.cert), cert: readFileSync(runner.cert), key: readFileSync(runner.key) });
  const self = await asRunner(`${s.url}/v1/auth/self`, { headers: { accept: "application/json" } });
  assert.equal(self.status, 200);
  assert.equal(((await self.json()) as { subject: string }).subject, "cert:ci-runner");

  // Another CA does not vouch for the server; without a client certificate the server refuses.
  const strangerCa = tlsFetch({ ca: readFileSync(otherCa.cert), cert: readFileSync(runner.cert), key: readFileSync(runner.key) });
  await assert.rejects(strangerCa(`${s.url}/v1/auth/self`), (err: Error) => err instanceof TypeError && (err.cause as { code?: string }).code !== undefined);
  const noCert = tlsFetch({ ca: readFileSync(ca.cert) });
  await assert.rejects(async () => (await noCert(`${s.url}/v1/auth/self`)).text());
  await assert.rejects(asRunner(`http://127.0.0.1:1/`), TypeError, "plain http is refused");

  const aborter = new AbortController();
  const res = await asRunner(`${s.url}/v1/watch?prefix=app/`, { headers: { accept: "text/event-stream" }, signal: aborter.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  const reader = res.body!.getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /event: ready/);
  aborter.abort();
  await assert.rejects(async () => {
    for (;;) if ((await reader.read()).done) return;
  });
});
