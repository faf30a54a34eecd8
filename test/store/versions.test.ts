/**
 * Per-version delete, undelete and destroy on the local store (issue 16): what `get`, `history`,
 * `rollback` and the audit chain say afterwards, that a destroyed value is gone from the file and
 * its WAL, and that a store of schema 3 (before version marks) opens and migrates.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { initCoffer, openStore, type Store } from "../../src/index.ts";
import { SCHEMA_VERSION } from "../../src/storage/sqlite-schema.ts";
import { tempDir } from "../helpers.ts";

async function fresh(t: TestContext): Promise<{ store: Store; home: string }> {
  const home = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: home }, name: "alice" });
  const store = await openStore({ env: { COFFER_HOME: home } });
  t.after(() => store.close());
  return { store, home };
}

test("store: a deleted version is refused by get with the command that restores it; undelete gives the value back", async (t) => {
  const { store } = await fresh(t);
  store.set("db/pw", "one");
  store.set("db/pw", "two");
  const done = store.deleteVersions("db/pw", [1]);
  assert.equal(done.name, "db/pw");
  assert.equal(done.versions[0]?.version, 1);
  assert.ok(done.versions[0]?.deletedAt);
  assert.throws(() => store.get("db/pw", { version: 1 }), {
    code: "E_NOT_FOUND", message: "version 1 of db/pw was deleted; `coffer undelete db/pw --version 1` restores it",
  });
  assert.equal(store.get("db/pw").reveal(), "two");
  assert.deepEqual(store.history("db/pw").map((v) => [v.version, v.deletedAt !== null, v.destroyed]), [[1, true, false], [2, false, false]]);
  assert.throws(() => store.rollback("db/pw", 1), { code: "E_NOT_FOUND", message: /version 1 of db\/pw was deleted/ });

  store.undeleteVersions("db/pw", [1]);
  assert.equal(store.get("db/pw", { version: 1 }).reveal(), "one");
  const actions = store.auditLog().slice(-2).map((r) => [r.action, r.name, r.version, r.detail]);
  assert.deepEqual(actions, [["delete-version", "db/pw", 1, { changed: true }], ["undelete", "db/pw", 1, { changed: true }]]);
  assert.equal(store.verifyAudit().ok, true);
});

test("store: deleting the current version makes a plain get refuse until a new version is written", async (t) => {
  const { store } = await fresh(t);
  store.set("k", "v1");
  store.deleteVersions("k", [1]);
  assert.throws(() => store.get("k"), { code: "E_NOT_FOUND", message: "version 1 of k was deleted; `coffer undelete k --version 1` restores it" });
  assert.deepEqual(store.list().map((s) => s.name), ["k"], "the secret itself stays listed");
  store.set("k", "v2");
  assert.equal(store.get("k").reveal(), "v2");
});

test("store: a destroyed version is gone for good, from the database file and its WAL too; undelete leaves it destroyed", async (t) => {
  const { store, home } = await fresh(t);
  const marker = "destroyed-value-marker-" + "q".repeat(3000);
  store.set("gone", marker);
  store.set("gone", "next");
  store.set("kept", "still here");
  const path = join(home, "store.db");
  const peek = new DatabaseSync(path, { readOnly: true });
  const sealed = Buffer.from((peek.prepare("SELECT ciphertext FROM versions WHERE name = 'gone' AND version = 1").get() as { ciphertext: Uint8Array }).ciphertext);
  peek.close();
  const needle = sealed.subarray(100, 180);
  store.destroyVersions("gone", [1]);
  const db = new DatabaseSync(path, { readOnly: true });
  const row = db.prepare("SELECT length(nonce) AS n, length(ciphertext) AS c, destroyed_at FROM versions WHERE name = 'gone' AND version = 1").get() as { n: number; c: number; destroyed_at: string };
  db.close();
  assert.deepEqual([row.n, row.c], [0, 0]);
  assert.ok(row.destroyed_at);
  for (const f of [path, `${path}-wal`]) assert.ok(!existsSync(f) || !readFileSync(f).includes(needle), `ciphertext bytes left in ${f}`);
  assert.throws(() => store.get("gone", { version: 1 }), { code: "E_NOT_FOUND", message: "version 1 of gone was destroyed; its value is gone for good" });
  const back = store.undeleteVersions("gone", [1]);
  assert.deepEqual(back.versions.map((v) => v.destroyed), [true]);
  assert.throws(() => store.get("gone", { version: 1 }), { code: "E_NOT_FOUND", message: /destroyed/ });
  assert.throws(() => store.rollback("gone", 1), { code: "E_NOT_FOUND", message: /destroyed/ });
  assert.equal(store.get("gone").reveal(), "next");
  assert.equal(store.get("kept").reveal(), "still here");
  assert.deepEqual(store.history("gone").map((v) => [v.version, v.destroyed, v.createdBy]), [[1, true, "alice"], [2, false, "alice"]]);
  assert.equal(store.verifyAudit().ok, true);
});

test("store: unknown secrets and versions are refused by name, nothing changed", async (t) => {
  const { store } = await fresh(t);
  assert.throws(() => store.deleteVersions("nope", [1]), { code: "E_NOT_FOUND", message: /no secret "nope"/ });
  store.set("k", "v");
  assert.throws(() => store.destroyVersions("k", [1, 4]), { code: "E_INVALID_VALUE", message: /has no version 4/ });
  assert.equal(store.get("k").reveal(), "v");
  assert.throws(() => store.deleteVersions("bad name!", [1]), { code: "E_INVALID_NAME" });
});

test("store: a store of schema 3 (before version marks) opens, migrates, and its versions can then be deleted", async (t) => {
  const home = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: home }, name: "alice" });
  const first = await openStore({ env: { COFFER_HOME: home } });
  first.set("old", "v1");
  first.close();
  const db = new DatabaseSync(join(home, "store.db"));
  db.exec("ALTER TABLE versions DROP COLUMN deleted_at; ALTER TABLE versions DROP COLUMN destroyed_at; PRAGMA user_version = 3");
  db.close();
  const store = await openStore({ env: { COFFER_HOME: home } });
  t.after(() => store.close());
  assert.equal(store.get("old").reveal(), "v1");
  assert.deepEqual(store.history("old").map((v) => [v.deletedAt, v.destroyed]), [[null, false]]);
  store.deleteVersions("old", [1]);
  assert.throws(() => store.get("old"), { code: "E_NOT_FOUND" });
  const check = new DatabaseSync(join(home, "store.db"), { readOnly: true });
  assert.equal((check.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, SCHEMA_VERSION.store);
  check.close();
});
