import { test } from "node:test";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { connect, type ChangeEvent } from "../../src/app/connect.ts";
import type { StaleEvent } from "../../src/client/cache.ts";
import { createServerProvider } from "../../src/providers/server.ts";
import { createIdentityFile } from "../../src/identity/identity.ts";
import { ensurePrivateDir } from "../../src/core/fs-secure.ts";
import { tempDir, waitFor } from "../helpers.ts";
import { startTestServer, type TestServer } from "../server/harness.ts";
import { makeCa, makeCert } from "../server/certs.ts";
import { parseServerConfig } from "../../src/server/config.ts";
import { initServer, startServer } from "../../src/server/server.ts";

const VALUE = "pg-password-9f8e7d6c5b4a-OUTAGE";

async function serverWithSecret(t: TestContext): Promise<TestServer> {
  const s = await startTestServer(t);
  const r = await s.call("PUT", "/v1/secrets/app/db", { token: s.rootToken, body: { value: VALUE } });
  assert.equal(r.status, 200, r.text);
  return s;
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
}

/** The error code the CLI's server provider gives for this (stopped) server. */
async function providerCode(url: string, token: string): Promise<string> {
  const p = createServerProvider("team", { type: "server", url }, { env: { COFFER_TOKEN: token } }, { diskCache: false });
  try {
    await p.resolve({ provider: "team", path: "app/db" } as never);
  } catch (err) {
    return (err as { code: string }).code;
  } finally {
    await p.close();
  }
  throw new Error("the provider read a secret from a stopped server");
}

test("connect: after the server stops, get() answers the cached value marked stale with a stale event; the disk cache holds no plaintext", async (t) => {
  const s = await serverWithSecret(t);
  const home = tempDir(t);
  const env = { HOME: home, XDG_CACHE_HOME: join(home, ".cache") };
  const c = connect({ url: s.url, token: s.rootToken, env, cache: { ttl: "1s", staleIfError: "1m" } });
  t.after(() => c.close());
  const events: StaleEvent[] = [];
  c.on("stale", (e) => events.push(e));
  const fresh = await c.get("app/db");
  assert.equal(fresh.reveal(), VALUE);
  assert.equal(fresh.meta.stale, false);
  assert.equal(fresh.meta.version, 1);
  await s.server.close();
  const stale = await waitFor("a stale answer", 20_000, async () => {
    const got = await c.get("app/db");
    return got.meta.stale ? got : undefined;
  });
  assert.equal(stale.reveal(), VALUE);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.name, "app/db");
  assert.equal(events[0]!.error.code, "E_PROVIDER");
  assert.ok(!events[0]!.error.message.includes(s.rootToken));

  // On disk: a 0700 dir, 0600 files, and neither the value nor its base64 anywhere in their bytes.
  const dir = join(home, ".cache", "coffer");
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const files = filesUnder(dir);
  assert.ok(files.some((f) => f.endsWith(".age")), `no cache file in ${files.join(", ")}`);
  assert.ok(files.some((f) => f.endsWith("cache.key")), "no identity here: a key file encrypts the cache");
  for (const f of files) {
    assert.equal(statSync(f).mode & 0o777, 0o600, f);
    const bytes = readFileSync(f);
    for (const needle of [VALUE, Buffer.from(VALUE).toString("base64"), "app/db", s.rootToken]) {
      assert.equal(bytes.indexOf(needle), -1, `${f} holds ${needle === VALUE ? "the value" : needle}`);
    }
  }

  // A new process (a new client) on the same cache reads it from disk while the server is down.
  const later = connect({ url: s.url, token: s.rootToken, env, retries: 0, cache: { ttl: "1s", staleIfError: "1m" } });
  t.after(() => later.close());
  const fromDisk = await later.get("app/db");
  assert.equal(fromDisk.reveal(), VALUE);
  assert.equal(fromDisk.meta.stale, true);

  // Another token never gets this token's cache.
  const other = connect({ url: s.url, token: "cof_another_token_entirely", env, retries: 0, cache: { ttl: "1s", staleIfError: "1m" } });
  t.after(() => other.close());
  await assert.rejects(other.get("app/db"), { code: "E_PROVIDER" });
});

test("connect: past staleIfError, get() fails with the code the CLI's server provider gives for an unreachable server", async (t) => {
  const s = await serverWithSecret(t);
  const home = tempDir(t);
  const c = connect({ url: s.url, token: s.rootToken, env: { HOME: home }, retries: 0, cache: { ttl: "1s", staleIfError: "2s" } });
  t.after(() => c.close());
  await c.get("app/db");
  await s.server.close();
  const err = await waitFor("the error after staleIfError", 30_000, async () => {
    try {
      await c.get("app/db");
      return undefined;
    } catch (e) {
      return e as { code: string; message: string };
    }
  });
  assert.equal(err.code, await providerCode(s.url, s.rootToken));
  assert.equal(err.code, "E_PROVIDER");
  assert.ok(!err.message.includes(VALUE));
});

test("connect: a passphrase identity without COFFER_PASSPHRASE_FILE keeps the cache in memory (the library never prompts)", async (t) => {
  const s = await serverWithSecret(t);
  const home = tempDir(t);
  const env = { HOME: home };
  ensurePrivateDir(join(home, ".config", "coffer"));
  await createIdentityFile({ path: join(home, ".config", "coffer", "identity"), name: "me", passphrase: "correct horse battery", logN: 10 });
  const c = connect({ url: s.url, token: s.rootToken, env, cache: { ttl: "1s", staleIfError: "1m" } });
  t.after(() => c.close());
  assert.equal((await c.get("app/db")).reveal(), VALUE);
  const dir = join(home, ".cache", "coffer");
  assert.ok(!existsSync(dir) || filesUnder(dir).length === 0, "no file without a key");
});

test("connect: with an identity the disk cache is encrypted to it (no key file)", async (t) => {
  const s = await serverWithSecret(t);
  const home = tempDir(t);
  const env = { HOME: home };
  ensurePrivateDir(join(home, ".config", "coffer"));
  await createIdentityFile({ path: join(home, ".config", "coffer", "identity"), name: "me" });
  const c = connect({ url: s.url, token: s.rootToken, env, cache: { ttl: "1s", staleIfError: "1m" } });
  t.after(() => c.close());
  await c.get("app/db");
  const files = filesUnder(join(home, ".cache", "coffer"));
  assert.equal(files.filter((f) => f.endsWith(".age")).length, 1);
  assert.ok(!files.some((f) => f.endsWith("cache.key")));
});

test("connect: list, versions, getMany and watch against a real server", async (t) => {
  const s = await serverWithSecret(t);
  await s.call("PUT", "/v1/secrets/app/api", { token: s.rootToken, body: { value: "k-1" } });
  const c = connect({ url: s.url, token: s.rootToken, env: {} });
  t.after(() => c.close());
  assert.deepEqual((await c.list("app/")).map((r) => r.name).sort(), ["app/api", "app/db"]);
  assert.deepEqual((await c.versions("app/db")).map((v) => v.version), [1]);
  const many = await c.getMany(["app/db", "app/api"]);
  assert.equal(many["app/api"]!.reveal(), "k-1");
  assert.equal(String(many["app/db"]), "[redacted]");
  await assert.rejects(c.getMany(["app/db", "app/missing"]), { code: "E_NOT_FOUND" });
  const changes: ChangeEvent[] = [];
  c.watch("app/", (e) => changes.push(e));
  await waitFor("the stream to open", 10_000, async () => {
    await s.call("PUT", "/v1/secrets/app/api", { token: s.rootToken, body: { value: `k-${Date.now()}` } });
    return changes.some((e) => e.kind === "change" && e.name === "app/api") ? true : undefined;
  });
});

/** A stub server answering from `replies` in turn (then 200), counting requests and noting when each came. */
async function stub(t: TestContext, replies: { status: number; headers?: Record<string, string> }[]): Promise<{ url: string; times: number[] }> {
  const times: number[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    times.push(performance.now());
    const r = replies[times.length - 1] ?? { status: 200 };
    res.writeHead(r.status, { "content-type": "application/json", ...r.headers });
    res.end(r.status === 200
      ? JSON.stringify({ name: "app/db", version: 3, value: "v", createdAt: "2026-01-01T00:00:00Z", createdBy: "x", updatedAt: "2026-01-01T00:00:00Z" })
      : JSON.stringify({ error: { code: "E_X", message: `status ${r.status}` } }));
    void req;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, times };
}

test("connect: a 4xx is never retried", async (t) => {
  for (const status of [400, 401, 403, 404]) {
    const s = await stub(t, [{ status }, { status }, { status }]);
    const c = connect({ url: s.url, token: "cof_x", env: {} });
    await assert.rejects(c.get("app/db"));
    assert.equal(s.times.length, 1, `status ${status}`);
    c.close();
  }
});

test("connect: a 5xx is retried with backoff, 3 attempts by default", async (t) => {
  const ok = await stub(t, [{ status: 500 }, { status: 503 }]);
  const c = connect({ url: ok.url, token: "cof_x", env: {} });
  assert.equal((await c.get("app/db")).version, 3);
  assert.equal(ok.times.length, 3);
  const down = await stub(t, [{ status: 502 }, { status: 502 }, { status: 502 }, { status: 502 }]);
  const d = connect({ url: down.url, token: "cof_x", env: {} });
  await assert.rejects(d.get("app/db"), { code: "E_PROVIDER" });
  assert.equal(down.times.length, 3);
  c.close();
  d.close();
});

test("connect: a 429 is retried no sooner than its Retry-After", async (t) => {
  const s = await stub(t, [{ status: 429, headers: { "retry-after": "1" } }]);
  const c = connect({ url: s.url, token: "cof_x", env: {} });
  t.after(() => c.close());
  assert.equal((await c.get("app/db")).version, 3);
  assert.equal(s.times.length, 2);
  assert.ok(s.times[1]! - s.times[0]! >= 990, `retried after ${s.times[1]! - s.times[0]!} ms`);
});

test("connect: URL and token from COFFER_SERVER and COFFER_TOKEN; none is E_CONFIG; TLS needs https", async (t) => {
  const s = await stub(t, []);
  const c = connect({ env: { COFFER_SERVER: s.url, COFFER_TOKEN: "cof_x" } });
  assert.equal((await c.get("app/db")).version, 3);
  c.close();
  assert.throws(() => connect({ env: {} }), { code: "E_CONFIG" });
  assert.throws(() => connect({ url: s.url, env: { HOME: tempDir(t) } }), { code: "E_CONFIG" });
  assert.throws(() => connect({ url: s.url, token: "cof_x", env: {}, ca: Buffer.from("pem") }), { code: "E_USAGE" });
  assert.throws(() => connect({ url: s.url, token: "cof_x", env: {}, cache: { ttl: "5 min" } }), { code: "E_INVALID_VALUE" });
});

test("connect: a private CA and a client certificate (mutual TLS), as paths or PEM buffers; without the certificate the handshake fails as E_PROVIDER", async (t) => {
  const dir = tempDir(t);
  const ca = makeCa(dir, "coffer-test-ca");
  const server = makeCert(dir, ca, { cn: "coffer-server", dns: ["localhost"], ips: ["127.0.0.1"], server: true });
  const runner = makeCert(dir, ca, { cn: "ci-runner", client: true });
  const config = parseServerConfig(`tls: { cert: ${server.cert}, key: ${server.key}, clientCa: ${ca.cert} }\n`, "mtls.yml", {}, { listen: "127.0.0.1:0" });
  const { rootToken } = await initServer(join(dir, "data"), config);
  const s = await startServer({ dataDir: join(dir, "data"), config, logger: false });
  t.after(() => s.close());
  const byPath = connect({ url: s.url, token: rootToken, env: {}, ca: ca.cert, cert: runner.cert, key: runner.key });
  t.after(() => byPath.close());
  await assert.rejects(byPath.get("app/none"), { code: "E_NOT_FOUND" }, "the request went through TLS and was answered");
  assert.deepEqual(await byPath.list(""), []);
  const byPem = connect({ url: s.url, token: rootToken, env: {}, ca: readFileSync(ca.cert), cert: readFileSync(runner.cert), key: readFileSync(runner.key) });
  t.after(() => byPem.close());
  assert.deepEqual(await byPem.list(""), []);
  const noCert = connect({ url: s.url, token: rootToken, env: {}, retries: 0, ca: ca.cert });
  t.after(() => noCert.close());
  await assert.rejects(noCert.list(""), (err: { code: string; message: string }) => err.code === "E_PROVIDER" && !err.message.includes(rootToken));
});

test("connect: a change the server pushes to watch() makes the next cached get() ask again", async (t) => {
  const s = await serverWithSecret(t);
  const c = connect({ url: s.url, token: s.rootToken, env: {}, cache: { ttl: "1h", dir: false } });
  t.after(() => c.close());
  assert.equal((await c.get("app/db")).reveal(), VALUE);
  const changes: ChangeEvent[] = [];
  const stop = c.watch("app/", (e) => changes.push(e));
  t.after(stop);
  await waitFor("the change event", 10_000, async () => {
    await s.call("PUT", "/v1/secrets/app/db", { token: s.rootToken, body: { value: "rotated-value" } });
    return changes.some((e) => e.kind === "change" && e.name === "app/db") ? true : undefined;
  });
  const after = await c.get("app/db");
  assert.equal(after.reveal(), "rotated-value");
  assert.ok(after.version >= 2);
});
