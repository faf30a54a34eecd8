import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { importDotenv, initCoffer, openStore, type Store } from "../../src/index.ts";
import { tempDir } from "../helpers.ts";
import type { TestContext } from "node:test";

async function freshStore(t: TestContext, name = "alice"): Promise<{ store: Store; home: string }> {
  const home = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: home }, name });
  const store = await openStore({ env: { COFFER_HOME: home } });
  t.after(() => store.close());
  return { store, home };
}

test("set/get: versions count up, every version stays readable, get is exact for binary", async (t) => {
  const { store } = await freshStore(t);
  assert.deepEqual(store.set("db/pw", "one"), { name: "db/pw", version: 1 });
  assert.deepEqual(store.set("db/pw", "two\n"), { name: "db/pw", version: 2 });
  const bin = Buffer.from([0, 255, 10, 13, 0]);
  store.set("bin", bin);
  assert.equal(store.get("db/pw").reveal(), "two\n");
  assert.equal(store.get("db/pw").version, 2);
  assert.equal(store.get("db/pw", { version: 1 }).reveal(), "one");
  assert.deepEqual(Buffer.from(store.get("bin").bytes()), bin);
  assert.throws(() => store.get("db/pw", { version: 3 }), { code: "E_NOT_FOUND", message: /has no version 3/ });
  assert.throws(() => store.get("db/pw", { version: 0 }), { code: "E_INVALID_VALUE" });
  assert.throws(() => store.get("nope"), { code: "E_NOT_FOUND", message: 'no secret "nope"; `coffer list` shows what there is' });
});

test("metadata: description kept across versions, who and when, rotation period", async (t) => {
  const { store } = await freshStore(t, "bob");
  store.set("api/key", "k1", { description: "the API key", rotationSeconds: 1 });
  store.set("api/key", "k2");
  const [info] = store.list();
  assert.equal(info?.name, "api/key");
  assert.equal(info?.version, 2);
  assert.equal(info?.description, "the API key");
  assert.equal(info?.updatedBy, "bob");
  assert.equal(info?.rotationSeconds, 1);
  assert.ok(Date.parse(info!.createdAt) <= Date.parse(info!.updatedAt));
  assert.deepEqual(store.history("api/key").map((v) => [v.version, v.current, v.createdBy]), [[1, false, "bob"], [2, true, "bob"]]);
});

test("list: sorted, by prefix, never values", async (t) => {
  const { store } = await freshStore(t);
  for (const n of ["b/2", "a/1", "b/1", "c"]) store.set(n, `value-of-${n}`);
  assert.deepEqual(store.list().map((i) => i.name), ["a/1", "b/1", "b/2", "c"]);
  assert.deepEqual(store.list("b/").map((i) => i.name), ["b/1", "b/2"]);
  assert.deepEqual(store.list("%").map((i) => i.name), []);
  assert.ok(!JSON.stringify(store.list()).includes("value-of"));
});

test("check-and-set: --if-version refuses a stale write and changes nothing", async (t) => {
  const { store } = await freshStore(t);
  assert.equal(store.set("k", "v1", { ifVersion: 0 }).version, 1);
  assert.throws(() => store.set("k", "v2", { ifVersion: 0 }), { code: "E_CONFLICT", message: /at version 1, not 0/ });
  assert.equal(store.set("k", "v2", { ifVersion: 1 }).version, 2);
  assert.throws(() => store.set("k", "v3", { ifVersion: 1 }), { code: "E_CONFLICT" });
  assert.equal(store.get("k").reveal(), "v2");
  assert.equal(store.history("k").length, 2);
});

test("an empty value is a value: stored, versioned and read back as zero bytes; import --dotenv keeps FLAG=", async (t) => {
  const { store } = await freshStore(t);
  assert.equal(store.set("flag", "").version, 1);
  assert.equal(store.get("flag").reveal(), "");
  assert.equal(store.get("flag").bytes().length, 0);
  store.set("flag", "on");
  store.set("flag", Buffer.alloc(0));
  assert.deepEqual(store.history("flag").map((h) => h.version), [1, 2, 3]);
  assert.equal(store.get("flag").reveal(), "");
  assert.equal(store.get("flag", { version: 2 }).reveal(), "on");
  const result = importDotenv(store, "FLAG=\nOTHER=x\nQUOTED=\"\"\n", "env/");
  assert.deepEqual(result.written.map((w) => w.name).sort(), ["env/FLAG", "env/OTHER", "env/QUOTED"]);
  assert.equal(store.get("env/FLAG").reveal(), "");
  assert.equal(store.get("env/QUOTED").reveal(), "");
});

test("bad input changes nothing: bad name, oversized value, a bad entry in a batch", async (t) => {
  const { store } = await freshStore(t);
  const before = store.auditLog().length;
  assert.throws(() => store.set("../x", "v"), { code: "E_INVALID_NAME" });
  assert.throws(() => store.set("x", Buffer.alloc(1024 * 1024 + 1)), { code: "E_INVALID_VALUE", message: /over the limit of 1048576 bytes/ });
  assert.throws(() => store.setMany([{ name: "ok/1", value: "v" }, { name: "bad/../x", value: "v" }]), { code: "E_INVALID_NAME" });
  store.set("c", "v1");
  assert.throws(() => store.setMany([{ name: "ok/2", value: "v" }, { name: "c", value: "v", ifVersion: 0 }]), { code: "E_CONFLICT" });
  assert.deepEqual(store.list().map((i) => i.name), ["c"]);
  assert.equal(store.auditLog().length, before + 1);
});

test("remove hides, keeps history; rollback restores; purge destroys every version", async (t) => {
  const { store } = await freshStore(t);
  store.set("t", "a");
  store.set("t", "b");
  assert.deepEqual(store.remove("t"), { name: "t", version: 2 });
  assert.throws(() => store.get("t"), { code: "E_NOT_FOUND", message: /was removed; `coffer rollback t --to 2` restores it/ });
  assert.throws(() => store.remove("t"), { code: "E_NOT_FOUND" });
  assert.deepEqual(store.list(), []);
  assert.equal(store.list("", { deleted: true })[0]?.deletedAt !== null, true);
  assert.deepEqual(store.rollback("t", 1), { name: "t", version: 3 });
  assert.equal(store.get("t").reveal(), "a");
  assert.throws(() => store.rollback("t", 9), { code: "E_NOT_FOUND" });
  assert.deepEqual(store.purge("t"), { name: "t", versions: 3 });
  assert.throws(() => store.get("t", { version: 1 }), { code: "E_NOT_FOUND", message: 'no secret "t"; `coffer list` shows what there is' });
  assert.throws(() => store.history("t"), { code: "E_NOT_FOUND" });
  assert.throws(() => store.purge("t"), { code: "E_NOT_FOUND" });
  assert.deepEqual(store.auditLog().map((r) => r.action), ["init", "set", "set", "rm", "rollback", "purge"]);
  assert.ok(store.verifyAudit().ok);
});

test("purge leaves no ciphertext in the database file or its WAL", async (t) => {
  const { store } = await freshStore(t);
  store.set("gone", Buffer.alloc(4096, 0x5a));
  const db = new DatabaseSync(store.path, { readOnly: true });
  const row = db.prepare("SELECT ciphertext FROM versions WHERE name = 'gone'").get() as { ciphertext: Uint8Array };
  db.close();
  const needle = Buffer.from(row.ciphertext).subarray(100, 164);
  store.purge("gone");
  for (const f of [store.path, `${store.path}-wal`]) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(f);
    } catch {
      continue;
    }
    assert.equal(bytes.indexOf(needle), -1, `ciphertext bytes left in ${f}`);
  }
});

test("attack: every single-byte flip of a stored nonce or ciphertext fails with E_DECRYPT", async (t) => {
  const { store } = await freshStore(t);
  store.set("victim", "0123456789");
  const db = new DatabaseSync(store.path);
  t.after(() => db.close());
  const row = db.prepare("SELECT nonce, ciphertext FROM versions WHERE name = 'victim'").get() as { nonce: Uint8Array; ciphertext: Uint8Array };
  const update = db.prepare("UPDATE versions SET nonce = ?, ciphertext = ? WHERE name = 'victim'");
  let flips = 0;
  for (const col of ["nonce", "ciphertext"] as const) {
    for (let i = 0; i < row[col].length; i++) {
      const bad = Buffer.from(row[col]);
      bad[i]! ^= 0x80;
      update.run(col === "nonce" ? bad : row.nonce, col === "ciphertext" ? bad : row.ciphertext);
      assert.throws(() => store.get("victim"), { code: "E_DECRYPT", message: 'cannot decrypt secret "victim" v1: wrong key or tampered data' });
      flips++;
    }
  }
  assert.equal(flips, 12 + 10 + 16);
  update.run(row.nonce, row.ciphertext);
  assert.equal(store.get("victim").reveal(), "0123456789");
});

test("attack: a ciphertext copied to another name or version fails to open", async (t) => {
  const { store } = await freshStore(t);
  store.set("a", "value-a");
  store.set("b", "value-b");
  store.set("b", "value-b2");
  const db = new DatabaseSync(store.path);
  t.after(() => db.close());
  const a = db.prepare("SELECT nonce, ciphertext FROM versions WHERE name = 'a'").get() as { nonce: Uint8Array; ciphertext: Uint8Array };
  const b1 = db.prepare("SELECT nonce, ciphertext FROM versions WHERE name = 'b' AND version = 1").get() as { nonce: Uint8Array; ciphertext: Uint8Array };
  db.prepare("UPDATE versions SET nonce = ?, ciphertext = ? WHERE name = 'b' AND version = 2").run(a.nonce, a.ciphertext);
  assert.throws(() => store.get("b"), { code: "E_DECRYPT" });
  db.prepare("UPDATE versions SET nonce = ?, ciphertext = ? WHERE name = 'b' AND version = 2").run(b1.nonce, b1.ciphertext);
  assert.throws(() => store.get("b"), { code: "E_DECRYPT" });
});

test("attack: a store opened with another identity fails cleanly with E_DECRYPT", async (t) => {
  const { home } = await freshStore(t);
  const other = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: other }, name: "mallory" });
  await assert.rejects(openStore({ env: { COFFER_HOME: other }, store: join(home, "store.db") }), {
    code: "E_DECRYPT",
    message: /not wrapped to it \(wrong identity\?\)/,
  });
});

test("the age-wrapped store key opens when the fast local copy is gone", async (t) => {
  const { store, home } = await freshStore(t);
  store.set("k", "v");
  store.close();
  const db = new DatabaseSync(join(home, "store.db"));
  db.exec("DELETE FROM store_keys WHERE kind = 'local-v1'");
  db.close();
  const again = await openStore({ env: { COFFER_HOME: home } });
  t.after(() => again.close());
  assert.equal(again.get("k").reveal(), "v");
});

test("attack: an edited audit record is caught by verifyAudit", async (t) => {
  const { store } = await freshStore(t);
  store.set("x", "1");
  store.set("x", "2");
  const db = new DatabaseSync(store.path);
  db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 2").run();
  db.close();
  assert.deepEqual(store.verifyAudit(), { ok: false, records: 1, brokenAt: 2, reason: "hash does not match its content and predecessor" });
});

test("permissions: files 0600; a store made group-readable is refused with the chmod to run", async (t) => {
  const { home, store } = await freshStore(t);
  store.close();
  const path = join(home, "store.db");
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(home, "identity")).mode & 0o777, 0o600);
  chmodSync(path, 0o640);
  await assert.rejects(openStore({ env: { COFFER_HOME: home } }), {
    code: "E_PERMISSIONS",
    message: `store ${path} is accessible by group or others (mode 0640); run \`chmod 600 ${path}\``,
  });
});

test("init: refuses a second store at the same path; not-a-store files are refused", async (t) => {
  const { home } = await freshStore(t);
  await assert.rejects(initCoffer({ env: { COFFER_HOME: home } }), { code: "E_CONFLICT" });
  const other = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: other }, store: join(other, "second.db") });
  const second = await openStore({ env: { COFFER_HOME: other }, store: join(other, "second.db") });
  second.close();
  await assert.rejects(openStore({ env: { COFFER_HOME: other }, store: join(other, "missing.db") }), { code: "E_NOT_INITIALIZED" });
});

test("a closed store refuses every call with a CofferError, and close twice is harmless", async (t) => {
  const { store } = await freshStore(t);
  store.set("k", "v");
  store.close();
  store.close();
  for (const call of [() => store.get("k"), () => store.set("k", "w"), () => store.list(), () => store.history("k"), () => store.verifyAudit()]) {
    assert.throws(call, { code: "E_USAGE", message: "the store is closed; open it again with openStore()" });
  }
});

test("permissions: a store owned by someone else is refused with the chown to run", { skip: process.getuid?.() !== 0 ? "only root can give a file to another user" : false }, async (t) => {
  const { home, store } = await freshStore(t);
  store.close();
  const path = join(home, "store.db");
  chownSync(path, 65534, 65534);
  await assert.rejects(openStore({ env: { COFFER_HOME: home } }), {
    code: "E_PERMISSIONS",
    message: `store ${path} is owned by uid 65534, not by you (uid 0); make it yours with \`sudo chown 0 ${path}\` or use your own`,
  });
});
