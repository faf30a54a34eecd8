import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initCoffer, openStore } from "../../src/index.ts";
import { createProvider, ProviderSet } from "../../src/providers/index.ts";
import type { Provider, ProviderSpec } from "../../src/providers/provider.ts";
import { tempDir } from "../helpers.ts";
import { startFakeVault } from "./fake-vault.ts";

test("createProvider: one line per type; an unknown type is E_CONFIG", () => {
  const ctx = { env: {} };
  assert.equal(createProvider("e", { type: "env" }, ctx).name, "e");
  assert.equal(createProvider("s", { type: "store" }, ctx).name, "s");
  assert.equal(createProvider("f", { type: "folder", dir: "/tmp" }, ctx).name, "f");
  assert.equal(createProvider("v", { type: "vault", address: "http://127.0.0.1:8200", mount: "secret" }, ctx).name, "v");
  assert.equal(createProvider("t", { type: "server", url: "http://127.0.0.1:8200" }, ctx).name, "t");
  assert.throws(() => createProvider("x", { type: "nope" } as unknown as ProviderSpec, ctx), {
    code: "E_CONFIG",
    message: /provider "x" has the unknown type "nope"; known types: store, folder, env, vault, server$/,
  });
});

test("ProviderSet: routes by provider, creates lazily, store always there, unknown provider E_CONFIG, closes all", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home, VAULT_TOKEN: "", CI_TOKEN: "from-env" };
  await initCoffer({ env, name: "alice" });
  const s = await openStore({ env });
  s.set("db/pw", "local");
  s.close();
  const dir = join(home, "etc-secrets");
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(join(dir, "tls"), "from-folder", { mode: 0o600 });
  const vault = await startFakeVault();
  t.after(() => vault.close());
  vault.put("api", { key: "from-vault" });
  env.VAULT_TOKEN = vault.token;

  const created: string[] = [];
  const closed: string[] = [];
  const specs: Record<string, ProviderSpec> = {
    files: { type: "folder", dir },
    ci: { type: "env" },
    vault: { type: "vault", address: vault.address, mount: "secret" },
    broken: { type: "folder", dir: "relative" },
  };
  const set = new ProviderSet(specs, { env }, (name, spec, ctx) => {
    created.push(name);
    const p = createProvider(name, spec, ctx);
    const wrapped: Provider = {
      name: p.name,
      resolve: (ref) => p.resolve(ref),
      ...(p.watch !== undefined && { watch: p.watch.bind(p) }),
      openedStore: () => (p as { openedStore?: () => unknown }).openedStore?.(),
      close: async () => {
        closed.push(name);
        await p.close();
      },
    } as Provider;
    return wrapped;
  });
  assert.deepEqual(set.names.sort(), ["broken", "ci", "files", "store", "vault"]);
  assert.deepEqual(created, []);
  assert.equal(set.openedStore(), undefined);

  assert.equal((await set.resolve({ provider: "ci", path: "CI_TOKEN" })).reveal(), "from-env");
  assert.equal((await set.resolve({ provider: "files", path: "tls" })).reveal(), "from-folder");
  assert.equal((await set.resolve({ provider: "vault", path: "api" })).reveal(), "from-vault");
  assert.equal((await set.resolve({ provider: "store", path: "db/pw" })).reveal(), "local");
  assert.equal((await set.resolve({ provider: "ci", path: "CI_TOKEN" })).reveal(), "from-env");
  assert.deepEqual(created, ["ci", "files", "vault", "store"]);
  assert.ok(set.openedStore() !== undefined);

  await assert.rejects(set.resolve({ provider: "nope", path: "x" }), { code: "E_CONFIG", message: /no provider named "nope"; configured: store, files, ci, vault, broken/ });
  await assert.rejects(set.resolve({ provider: "broken", path: "x" }), { code: "E_CONFIG", message: /absolute/ });
  await assert.rejects(set.resolve({ provider: "toString", path: "x" }), { code: "E_CONFIG" });

  const { stop, unwatched } = set.watch([{ provider: "ci", path: "CI_TOKEN" }, { provider: "files", path: "tls" }], () => {});
  assert.deepEqual(unwatched, [{ provider: "ci", path: "CI_TOKEN" }]);
  stop();

  await set.close();
  assert.deepEqual(closed.sort(), ["ci", "files", "store", "vault"]);
  await set.close(); // idempotent
  await assert.rejects(set.resolve({ provider: "ci", path: "CI_TOKEN" }), /after close/);
});
