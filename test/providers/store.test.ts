import { test } from "node:test";
import assert from "node:assert/strict";
import { initCoffer, openStore } from "../../src/index.ts";
import { createStoreProvider } from "../../src/providers/store.ts";
import { tempDir } from "../helpers.ts";

test("store: opens the local store once, lazily; versions; openedStore for audit; close closes it", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  await initCoffer({ env, name: "alice" });
  const setup = await openStore({ env });
  setup.set("db/pw", "one");
  setup.set("db/pw", "two");
  setup.close();

  const p = createStoreProvider("store", { type: "store" }, { env });
  t.after(() => p.close());
  assert.equal(p.openedStore(), undefined);
  const [a, b] = await Promise.all([
    p.resolve({ provider: "store", path: "db/pw" }),
    p.resolve({ provider: "store", path: "db/pw", version: 1 }),
  ]);
  assert.equal(a.reveal(), "two");
  assert.equal(a.version, 2);
  assert.equal(b.reveal(), "one");
  const store = p.openedStore();
  assert.ok(store !== undefined);
  store.appendAudit({ action: "deliver", name: null, version: null, detail: { via: "test" } });
  assert.equal(store.auditLog().at(-1)?.action, "deliver");

  await assert.rejects(p.resolve({ provider: "store", path: "nope" }), { code: "E_NOT_FOUND", message: /no secret "nope"/ });
  // key: reads the value as a map (core/kv-map.ts): plain text is {value: …}
  assert.equal((await p.resolve({ provider: "store", path: "db/pw", key: "value" })).reveal(), "two");
  await assert.rejects(p.resolve({ provider: "store", path: "db/pw", key: "x" }), { code: "E_NOT_FOUND", message: /store:db\/pw#x: the secret has no key "x"; it has the keys value/ });
  await assert.rejects(p.resolve({ provider: "store", path: "db/pw", version: 9 }), { code: "E_NOT_FOUND", message: /has no version 9/ });
  await p.close();
  assert.equal(p.openedStore(), undefined);
  await assert.rejects(p.resolve({ provider: "store", path: "db/pw" }), /after close/);
});

test("store: storePath and a failed open (no identity) can be retried", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  const p = createStoreProvider("store", { type: "store" }, { env, storePath: `${home}/store.db` });
  t.after(() => p.close());
  await assert.rejects(p.resolve({ provider: "store", path: "x" }), { code: "E_NOT_INITIALIZED" });
  await initCoffer({ env, name: "bob" });
  await assert.rejects(p.resolve({ provider: "store", path: "x" }), { code: "E_NOT_FOUND", message: /no secret "x"/ });
});
