import { test } from "node:test";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createVaultProvider, type VaultProviderOptions } from "../../src/providers/vault.ts";
import type { Provider } from "../../src/providers/provider.ts";
import { startFakeVault, type FakeVault } from "./fake-vault.ts";

const VALUE = "sk_live_TOPSECRET_value";

async function setup(
  t: TestContext,
  spec: { namespace?: string; tokenEnv?: string; mount?: string } = {},
  options: VaultProviderOptions = {},
  env: NodeJS.ProcessEnv | undefined = undefined,
): Promise<{ vault: FakeVault; provider: Provider }> {
  const vault = await startFakeVault({ mounts: ["secret", "kv/team"] });
  t.after(() => vault.close());
  const provider = createVaultProvider(
    "vault",
    { type: "vault", address: vault.address, mount: spec.mount ?? "secret", ...spec },
    { env: env ?? { [spec.tokenEnv ?? "VAULT_TOKEN"]: vault.token } },
    { timeoutMs: 2000, ...options },
  );
  t.after(() => provider.close());
  return { vault, provider };
}

/** Asserts the error's code and message, and that neither the token nor the value is in it. */
async function rejects(p: Promise<unknown>, code: string, message: RegExp, vault: FakeVault): Promise<void> {
  await assert.rejects(p, (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    assert.ok(!err.message.includes(vault.token), "token in message");
    assert.ok(!err.message.includes(VALUE), "value in message");
    assert.ok(!String(err.stack).includes(vault.token));
    return true;
  });
}

test("vault: reads data.data[key], sends the token, version and created_time from metadata", async (t) => {
  const { vault, provider } = await setup(t);
  vault.put("payments/stripe", { api_key: VALUE, webhook: "whsec" });
  const s = await provider.resolve({ provider: "vault", path: "payments/stripe", key: "api_key" });
  assert.equal(s.reveal(), VALUE);
  assert.equal(s.version, 1);
  assert.equal(s.name, "payments/stripe#api_key");
  assert.ok(!Number.isNaN(Date.parse(s.updatedAt)));
  const req = vault.requests.at(-1)!;
  assert.equal(req.method, "GET");
  assert.equal(req.url, "/v1/secret/data/payments/stripe");
  assert.equal(req.headers["x-vault-token"], vault.token);
  assert.equal(req.headers["x-vault-namespace"], undefined);
});

test("vault: version pinning sends ?version=N; latest without it", async (t) => {
  const { vault, provider } = await setup(t);
  vault.put("db", { pw: "one" });
  vault.put("db", { pw: "two" });
  const v1 = await provider.resolve({ provider: "vault", path: "db", key: "pw", version: 1 });
  assert.equal(v1.reveal(), "one");
  assert.equal(v1.version, 1);
  assert.equal(vault.requests.at(-1)!.url, "/v1/secret/data/db?version=1");
  const latest = await provider.resolve({ provider: "vault", path: "db" });
  assert.equal(latest.reveal(), "two");
  assert.equal(latest.version, 2);
  await rejects(provider.resolve({ provider: "vault", path: "db", version: 3 }), "E_NOT_FOUND", /no secret db version 3/, vault);
  await rejects(provider.resolve({ provider: "vault", path: "db", version: 0 }), "E_INVALID_VALUE", /whole number/, vault);
});

test("vault: namespace header, custom mount and token variable, path segments encoded", async (t) => {
  const { vault, provider } = await setup(t, { namespace: "team-a", tokenEnv: "MY_TOKEN", mount: "kv/team" });
  vault.put("a b/c?d", { v: VALUE }, "kv/team");
  assert.equal((await provider.resolve({ provider: "vault", path: "a b/c?d" })).reveal(), VALUE);
  const req = vault.requests.at(-1)!;
  assert.equal(req.url, "/v1/kv/team/data/a%20b/c%3Fd");
  assert.equal(req.headers["x-vault-namespace"], "team-a");
  assert.equal(req.headers["x-vault-token"], vault.token);
});

test("vault: keys: one key without #key, several keys ask for one, a missing key lists the keys", async (t) => {
  const { vault, provider } = await setup(t);
  vault.put("multi", { user: "u", password: VALUE });
  await rejects(provider.resolve({ provider: "vault", path: "multi" }), "E_CONFIG", /holds 2 keys; name a key: one of user, password/, vault);
  await rejects(
    provider.resolve({ provider: "vault", path: "multi", key: "token" }),
    "E_NOT_FOUND",
    /multi#token does not exist: multi has the keys user, password/,
    vault,
  );
  vault.put("empty", {});
  await rejects(provider.resolve({ provider: "vault", path: "empty" }), "E_INVALID_VALUE", /holds no keys/, vault);
  vault.put("blank", { k: "" });
  assert.equal((await provider.resolve({ provider: "vault", path: "blank" })).reveal(), "", "an empty value is a value");
});

test("vault: non-string values are JSON-encoded", async (t) => {
  const { vault, provider } = await setup(t);
  vault.put("typed", { n: 42, o: { a: [1, "x"] }, b: true, z: null });
  const get = async (key: string): Promise<string> => (await provider.resolve({ provider: "vault", path: "typed", key })).reveal();
  assert.equal(await get("n"), "42");
  assert.equal(await get("o"), '{"a":[1,"x"]}');
  assert.equal(await get("b"), "true");
  assert.equal(await get("z"), "null");
});

test("vault: deleted and destroyed versions are E_NOT_FOUND saying so", async (t) => {
  const { vault, provider } = await setup(t);
  vault.put("gone", { k: VALUE });
  vault.put("gone", { k: VALUE });
  const del = await fetch(`${vault.address}/v1/secret/data/gone`, { method: "DELETE", headers: { "X-Vault-Token": vault.token } });
  assert.equal(del.status, 204);
  await rejects(provider.resolve({ provider: "vault", path: "gone" }), "E_NOT_FOUND", /vault secret gone \(version 2\) was deleted/, vault);
  assert.equal((await provider.resolve({ provider: "vault", path: "gone", version: 1 })).reveal(), VALUE);
  vault.destroy("gone", 1);
  await rejects(provider.resolve({ provider: "vault", path: "gone", version: 1 }), "E_NOT_FOUND", /gone version 1 \(version 1\) was destroyed/, vault);
});

test("vault: 404 missing, 403 denied with Vault's errors, wrong token", async (t) => {
  const { vault, provider } = await setup(t);
  await rejects(provider.resolve({ provider: "vault", path: "nope" }), "E_NOT_FOUND", /^vault has no secret nope in mount secret$/, vault);
  vault.put("locked", { k: VALUE });
  vault.denied.add("secret/locked");
  await rejects(provider.resolve({ provider: "vault", path: "locked" }), "E_DENIED", /^vault denied locked: permission denied/, vault);

  const wrong = createVaultProvider("v", { type: "vault", address: vault.address, mount: "secret" }, { env: { VAULT_TOKEN: "s.wrong-token" } });
  t.after(() => wrong.close());
  await assert.rejects(wrong.resolve({ provider: "v", path: "locked" }), (err: Error & { code?: string }) => {
    assert.equal(err.code, "E_DENIED");
    assert.ok(!err.message.includes("s.wrong-token"));
    return true;
  });
  // an unknown mount: Vault's 404 with a "no handler for route" error
  const other = createVaultProvider("v", { type: "vault", address: vault.address, mount: "nomount" }, { env: { VAULT_TOKEN: vault.token } });
  t.after(() => other.close());
  await rejects(other.resolve({ provider: "v", path: "x" }), "E_NOT_FOUND", /no handler for route/, vault);
});

test("vault: missing token is E_CONFIG naming the variable, before any request", async (t) => {
  const { vault, provider } = await setup(t, { tokenEnv: "CI_VAULT_TOKEN" }, {}, {});
  await rejects(provider.resolve({ provider: "vault", path: "x" }), "E_CONFIG", /CI_VAULT_TOKEN/, vault);
  const empty = createVaultProvider("v", { type: "vault", address: vault.address, mount: "secret" }, { env: { VAULT_TOKEN: "" } });
  await rejects(empty.resolve({ provider: "v", path: "x" }), "E_CONFIG", /VAULT_TOKEN/, vault);
  assert.equal(vault.requests.length, 0);
});

test("vault: 500/503/429 are E_PROVIDER with the status and errors", async (t) => {
  const { vault, provider } = await setup(t);
  vault.fault = { kind: "status", status: 500, body: JSON.stringify({ errors: ["internal error"] }) };
  await rejects(provider.resolve({ provider: "vault", path: "x" }), "E_PROVIDER", /answered 500 for x: internal error/, vault);
  vault.fault = { kind: "status", status: 503, body: JSON.stringify({ errors: ["Vault is sealed"] }) };
  await rejects(provider.resolve({ provider: "vault", path: "x" }), "E_PROVIDER", /answered 503 for x \(sealed or unavailable\): Vault is sealed/, vault);
  vault.fault = { kind: "status", status: 429, body: JSON.stringify({ errors: [] }) };
  await rejects(provider.resolve({ provider: "vault", path: "x" }), "E_PROVIDER", /answered 429 for x/, vault);
});

test("vault: a non-JSON body is E_PROVIDER", async (t) => {
  const { vault, provider } = await setup(t);
  vault.fault = { kind: "status", status: 200, body: "<html>proxy login</html>", contentType: "text/html" };
  await rejects(provider.resolve({ provider: "vault", path: "x" }), "E_PROVIDER", /not JSON \(text\/html\)/, vault);
  vault.fault = { kind: "status", status: 200, body: JSON.stringify({ data: { keys: ["a"] } }) };
  await rejects(provider.resolve({ provider: "vault", path: "x" }), "E_PROVIDER", /KV version 2/, vault);
});

test("vault: an oversized body is refused after 2 MiB", async (t) => {
  const { vault, provider } = await setup(t);
  vault.fault = { kind: "oversized", bytes: 8 * 1024 * 1024 };
  await rejects(provider.resolve({ provider: "vault", path: "x" }), "E_PROVIDER", /over the limit of 2097152 bytes/, vault);
});

test("vault: a server that hangs times out (E_PROVIDER naming the address)", async (t) => {
  const { vault, provider } = await setup(t, {}, { timeoutMs: 200 });
  vault.fault = { kind: "hang" };
  const started = Date.now();
  await rejects(provider.resolve({ provider: "vault", path: "x" }), "E_PROVIDER", new RegExp(`vault at ${vault.address} did not answer within 200 ms`), vault);
  assert.ok(Date.now() - started < 15_000, "the timeout ends the wait");
});

test("vault: nobody listening is E_PROVIDER naming the address", async (t) => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  const provider = createVaultProvider("v", { type: "vault", address: `http://127.0.0.1:${port}`, mount: "secret" }, { env: { VAULT_TOKEN: "t0k" } });
  await assert.rejects(provider.resolve({ provider: "v", path: "x" }), {
    code: "E_PROVIDER",
    message: new RegExp(`cannot reach vault at http://127.0.0.1:${port}: ECONNREFUSED`),
  });
});

test("vault: redirects are refused, not followed", async (t) => {
  const srv = createServer((_req, res) => res.writeHead(307, { Location: "http://127.0.0.1:1/elsewhere" }).end());
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  const { port } = srv.address() as AddressInfo;
  const provider = createVaultProvider("v", { type: "vault", address: `http://127.0.0.1:${port}`, mount: "secret" }, { env: { VAULT_TOKEN: "t0k" } });
  await assert.rejects(provider.resolve({ provider: "v", path: "x" }), { code: "E_PROVIDER", message: /cannot reach vault/ });
});

test("vault: bad address and bad paths are refused", async () => {
  const env = { VAULT_TOKEN: "t" };
  assert.throws(() => createVaultProvider("v", { type: "vault", address: "ftp://x", mount: "secret" }, { env }), { code: "E_CONFIG", message: /http/ });
  assert.throws(() => createVaultProvider("v", { type: "vault", address: "not a url", mount: "secret" }, { env }), { code: "E_CONFIG" });
  assert.throws(() => createVaultProvider("v", { type: "vault", address: "https://u:p@x", mount: "secret" }, { env }), { code: "E_CONFIG" });
  const p = createVaultProvider("v", { type: "vault", address: "http://127.0.0.1:1", mount: "secret" }, { env });
  for (const path of ["", "/a", "a//b", "a/../b", "a/."]) {
    await assert.rejects(p.resolve({ provider: "v", path }), { code: "E_INVALID_NAME" }, path);
  }
});

test("vault: nothing is cached between resolve() calls", async (t) => {
  const { vault, provider } = await setup(t);
  vault.put("k", { v: "one" });
  assert.equal((await provider.resolve({ provider: "vault", path: "k" })).reveal(), "one");
  vault.put("k", { v: "two" });
  assert.equal((await provider.resolve({ provider: "vault", path: "k" })).reveal(), "two");
  assert.equal(vault.requests.length, 2);
});

test("vault: watch polls metadata and reports a new version and a delete; stop ends it", async (t) => {
  const { vault, provider } = await setup(t, {}, { pollIntervalMs: 40 });
  vault.put("w", { v: "1" });
  const seen: string[] = [];
  const refs = [
    { provider: "vault", path: "w", key: "v" },
    { provider: "vault", path: "w", version: 1 }, // pinned: cannot change
  ];
  let notify: () => void = () => {};
  const stop = provider.watch!(refs, (ref) => {
    seen.push(`${ref.path}#${ref.key ?? ""}`);
    notify();
  });
  t.after(stop);
  const next = (): Promise<void> => new Promise((r) => (notify = r));
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(seen, []);
  assert.ok(vault.requests.some((r) => r.url === "/v1/secret/metadata/w"));
  let changed = next();
  vault.put("w", { v: "2" });
  await changed;
  assert.deepEqual(seen, ["w#v"]);
  changed = next();
  await fetch(`${vault.address}/v1/secret/data/w`, { method: "DELETE", headers: { "X-Vault-Token": vault.token } });
  await changed;
  assert.deepEqual(seen, ["w#v", "w#v"]);
  stop();
  const count = vault.requests.length;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(vault.requests.length, count);
});
