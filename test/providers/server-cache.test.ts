import { test } from "node:test";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { createServerProvider, type ServerSpec } from "../../src/providers/server.ts";
import type { SecretRef } from "../../src/providers/provider.ts";
import { tempDir } from "../helpers.ts";
import { startFakeCofferServer } from "./fake-coffer-server.ts";

const VALUE = "provider-cache-value-31f";
const ref = { provider: "team", path: "app/db" } as SecretRef;

async function setup(t: TestContext, spec: Partial<ServerSpec> = {}, offline = false, now?: () => number) {
  const server = await startFakeCofferServer();
  t.after(() => server.close());
  server.put("app/db", VALUE);
  const home = tempDir(t);
  const warnings: string[] = [];
  const make = (off = offline) => {
    const p = createServerProvider("team", { type: "server", url: server.url, ...spec }, { env: { HOME: home, COFFER_TOKEN: server.token }, warn: (m) => warnings.push(m), offline: off }, { timeoutMs: 2000, ...(now !== undefined && { now }) });
    t.after(() => p.close());
    return p;
  };
  return { server, home, warnings, make };
}

test("server provider: a 5xx or unreachable server serves the last value read (from the encrypted disk cache) with a warning; a 403 never does", async (t) => {
  const { server, home, warnings, make } = await setup(t);
  assert.equal((await make().resolve(ref)).reveal(), VALUE);
  assert.equal(warnings.length, 0);
  assert.ok(readdirSync(join(home, ".cache", "coffer", "secrets")).length === 1);

  server.fault = { kind: "error", status: 503, code: "E_UNAVAILABLE", message: "down for maintenance" };
  const stale = await make().resolve(ref); // a new provider: from disk
  assert.equal(stale.reveal(), VALUE);
  assert.equal(stale.meta.stale, true);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^provider "team": app\/db \(version 1\) served from the cache, stale since .* \(up to 1d\): .*down for maintenance/);
  assert.ok(!warnings[0]!.includes(VALUE) && !warnings[0]!.includes(server.token));

  server.fault = { kind: "error", status: 403, code: "E_DENIED", message: "no" };
  await assert.rejects(make().resolve(ref), { code: "E_DENIED" });
  server.fault = { kind: "error", status: 503, code: "E_UNAVAILABLE", message: "down" };
  await assert.rejects(make().resolve(ref), { code: "E_UNAVAILABLE" }, "the 403 dropped the cached value");
});

test("server provider: staleIfError in .coffer.yml bounds the outage; 0s keeps nothing", async (t) => {
  let now = Date.now();
  const { server, make } = await setup(t, { staleIfError: "1h" }, false, () => now);
  await make().resolve(ref);
  server.fault = { kind: "error", status: 502, code: "E_PROVIDER", message: "bad gateway" };
  now += 3_600_000;
  assert.equal((await make().resolve(ref)).meta.stale, true);
  now += 1;
  await assert.rejects(make().resolve(ref), { code: "E_PROVIDER" });

  const none = await setup(t, { staleIfError: "0s" });
  await none.make().resolve(ref);
  none.server.fault = { kind: "error", status: 503, code: "E_UNAVAILABLE", message: "down" };
  await assert.rejects(none.make().resolve(ref), { code: "E_UNAVAILABLE" });
  assert.throws(() => readdirSync(join(none.home, ".cache", "coffer", "secrets")), { code: "ENOENT" });
});

test("server provider: offline makes no request", async (t) => {
  const { server, make } = await setup(t);
  await make().resolve(ref);
  const before = server.requests.length;
  const s = await make(true).resolve(ref);
  assert.equal(s.reveal(), VALUE);
  assert.equal(server.requests.length, before);
  await assert.rejects(make(true).resolve({ provider: "team", path: "app/other" } as SecretRef), { code: "E_PROVIDER", message: /team:app\/other|app\/other.*offline|offline.*app\/other/ });
  assert.equal(server.requests.length, before);
});
