/**
 * Local rotation (issue 15): `set` remembers its generator with the secret, `rotate` makes a new
 * version from it (audited as rotate, restarting the rotation period), a value set by hand forgets
 * it and cannot be rotated, `list({due})`, and schema 3's migration of a store written before it.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { importDotenv, initCoffer, openStore, type Store } from "../../src/index.ts";
import { SCHEMA_VERSION } from "../../src/storage/sqlite-schema.ts";
import { tempDir } from "../helpers.ts";

async function freshStore(t: TestContext): Promise<{ store: Store; home: string }> {
  const home = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: home }, name: "alice" });
  const store = await openStore({ env: { COFFER_HOME: home } });
  t.after(() => store.close());
  return { store, home };
}

test("rotate makes a new version from the remembered generator: charset and length kept, values differ, audited as rotate", async (t) => {
  const { store } = await freshStore(t);
  store.set("app/hmac", "abcdefghijklmnopqrstuvwx", { generator: { charset: "hex", length: 24 } });
  assert.deepEqual(store.list()[0]?.generator, { charset: "hex", length: 24 });
  const seen = new Set([store.get("app/hmac").reveal()]);
  for (let i = 0; i < 3; i++) {
    const r = await store.rotate("app/hmac");
    assert.deepEqual(r, { name: "app/hmac", version: i + 2, generator: { charset: "hex", length: 24 } });
    const value = store.get("app/hmac").reveal();
    assert.match(value, /^[0-9a-f]{24}$/);
    seen.add(value);
  }
  assert.equal(seen.size, 4, "each rotation is a new value");
  const records = store.auditLog().filter((r) => r.action === "rotate");
  assert.deepEqual(records.map((r) => [r.name, r.version, r.detail]), [2, 3, 4].map((v) => ["app/hmac", v, { charset: "hex", length: 24 }]));
  for (const v of seen) assert.ok(!JSON.stringify(store.auditLog()).includes(v), "no value in the audit log");

  store.set("app/words", "a-b", { generator: { charset: "words", length: 5 } });
  await store.rotate("app/words");
  assert.match(store.get("app/words").reveal(), /^[a-z]+(-[a-z]+){4}$/);
});

test("a value set by hand forgets the generator; rotating it asks for --generate first; a missing or removed secret is E_NOT_FOUND", async (t) => {
  const { store } = await freshStore(t);
  store.set("api/key", "vendor-key");
  await assert.rejects(store.rotate("api/key"), { code: "E_INVALID_VALUE", message: /no generator.*set it with --generate first/ });
  store.set("app/secret", "x".repeat(32), { generator: { charset: "alnum", length: 32 } });
  store.set("app/secret", "typed-by-hand", { generator: null });
  assert.equal(store.list()[1]?.generator, null);
  await assert.rejects(store.rotate("app/secret"), { code: "E_INVALID_VALUE" });
  // absent: kept (a library write that says nothing about it, a rollback)
  store.set("app/kept", "y".repeat(8), { generator: { charset: "alnum", length: 8 } });
  store.set("app/kept", "z".repeat(8));
  store.rollback("app/kept", 1);
  assert.deepEqual(store.list("app/kept")[0]?.generator, { charset: "alnum", length: 8 });
  assert.equal((await store.rotate("app/kept")).version, 4);
  await assert.rejects(store.rotate("nope"), { code: "E_NOT_FOUND" });
  store.remove("app/kept");
  await assert.rejects(store.rotate("app/kept"), { code: "E_NOT_FOUND", message: /was removed/ });
  assert.throws(() => store.set("bad", "v", { generator: { charset: "alnum", length: 0 } }), { code: "E_INVALID_VALUE" });
  // A value imported from a .env file is not one this store generated.
  store.set("env/TOKEN", "t".repeat(12), { generator: { charset: "alnum", length: 12 } });
  importDotenv(store, "TOKEN=from-a-file\n", "env/");
  assert.equal(store.list("env/")[0]?.generator, null);
});

test("a rotation never overwrites a value set, or resurrects a secret removed, while its new value was being made", async (t) => {
  const { store } = await freshStore(t);
  store.set("app/a", "a".repeat(16), { generator: { charset: "alnum", length: 16 } });
  const racing = store.rotate("app/a");
  store.set("app/a", "typed-by-hand", { generator: null });
  await assert.rejects(racing, { code: "E_CONFLICT", message: /written by someone else while its new value was made; nothing was written/ });
  assert.equal(store.get("app/a").reveal(), "typed-by-hand");

  store.set("app/b", "b".repeat(16), { generator: { charset: "alnum", length: 16 } });
  const removed = store.rotate("app/b");
  store.remove("app/b");
  await assert.rejects(removed, { code: "E_NOT_FOUND", message: /was removed/ });
  assert.throws(() => store.get("app/b"), { code: "E_NOT_FOUND" });
  assert.equal(store.history("app/b").length, 1);
});

test("rotate restarts the rotation period: list({due}) drops the secret", async (t) => {
  const { store, home } = await freshStore(t);
  store.set("app/a", "a".repeat(16), { rotationSeconds: 60, generator: { charset: "alnum", length: 16 } });
  store.set("app/b", "b", { rotationSeconds: 60 });
  store.set("app/c", "c");
  assert.deepEqual(store.list("", { due: true }), []);
  // Both written two minutes ago (as if), so both are due.
  const db = new DatabaseSync(join(home, "store.db"));
  db.exec(`UPDATE secrets SET updated_at = '${new Date(Date.now() - 120_000).toISOString()}' WHERE name IN ('app/a', 'app/b')`);
  db.close();
  assert.deepEqual(store.list("", { due: true }).map((s) => s.name), ["app/a", "app/b"]);
  await store.rotate("app/a");
  assert.deepEqual(store.list("", { due: true }).map((s) => s.name), ["app/b"]);
  assert.equal(store.list("app/a")[0]?.rotationSeconds, 60, "the period is kept");
});

test("a store of schema 2 (before generators) opens, is migrated to the newest schema, and remembers generators from then on", async (t) => {
  const home = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: home }, name: "alice" });
  const first = await openStore({ env: { COFFER_HOME: home } });
  first.set("old", "v1", { rotationSeconds: 86400 });
  first.close();
  // Make it what coffer wrote before schema 3: no generator column (nor schema 4's version marks), user_version 2.
  const db = new DatabaseSync(join(home, "store.db"));
  db.exec("ALTER TABLE secrets DROP COLUMN generator; ALTER TABLE versions DROP COLUMN deleted_at; ALTER TABLE versions DROP COLUMN destroyed_at; PRAGMA user_version = 2");
  const before = (db.prepare("SELECT sql FROM sqlite_master WHERE name = 'secrets'").get() as { sql: string }).sql;
  db.close();
  assert.doesNotMatch(before, /generator/);

  const store = await openStore({ env: { COFFER_HOME: home } });
  t.after(() => store.close());
  assert.equal(store.get("old").reveal(), "v1");
  assert.equal(store.list()[0]?.generator, null);
  assert.equal(store.list()[0]?.rotationSeconds, 86400);
  await assert.rejects(store.rotate("old"), { code: "E_INVALID_VALUE" });
  store.set("new", "n".repeat(10), { generator: { charset: "base64", length: 10 } });
  assert.match((await store.rotate("new"), store.get("new").reveal()), /^[A-Za-z0-9_-]{10}$/);
  assert.equal(store.verifyAudit().ok, true);
  const check = new DatabaseSync(join(home, "store.db"), { readOnly: true });
  assert.equal((check.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, SCHEMA_VERSION.store);
  check.close();
  assert.equal(SCHEMA_VERSION.store, 4);
});
