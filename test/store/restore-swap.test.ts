/**
 * Issue 11 (low): after `coffer restore`, running processes must not keep serving (or writing)
 * the store file that was replaced.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { initCoffer, openStore } from "../../src/index.ts";
import { loadIdentity } from "../../src/identity/identity.ts";
import { backupStore, restoreBackup } from "../../src/store/backup.ts";
import { createStoreProvider } from "../../src/providers/store.ts";
import { tempDir } from "../helpers.ts";

test("an open store and the agent's store provider do not keep serving pre-restore values after a restore", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  await initCoffer({ env, name: "alice" });
  const identity = await loadIdentity(join(home, "identity"));
  const open = await openStore({ env });
  t.after(() => open.close());
  open.set("db/pw", "in-the-backup");
  const file = join(tempDir(t), "b.backup");
  await backupStore(open, { out: file, recipients: [identity.recipient], identityFile: null });
  open.set("db/pw", "written-after-the-backup");

  const provider = createStoreProvider("store", { type: "store" }, { env });
  t.after(() => provider.close());
  assert.equal((await provider.resolve({ provider: "store", path: "db/pw" })).reveal(), "written-after-the-backup");

  await restoreBackup({ env, file, replace: true });

  assert.equal(open.replaced, true);
  assert.throws(() => open.get("db/pw"), { code: "E_REPLACED", message: /was replaced \(restored from a backup\?\) after this process opened it; open it again/ });
  assert.throws(() => open.set("db/pw", "lost-write"), { code: "E_REPLACED" });
  assert.equal((await provider.resolve({ provider: "store", path: "db/pw" })).reveal(), "in-the-backup");
  const fresh = await openStore({ env });
  assert.equal(fresh.replaced, false);
  assert.equal(fresh.get("db/pw").reveal(), "in-the-backup");
  assert.equal(fresh.auditLog().at(-1)?.action, "restore");
  fresh.close();
});

test("a restore waits for the store's write lock and refuses, changing nothing, when another process keeps it", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  await initCoffer({ env, name: "alice" });
  const identity = await loadIdentity(join(home, "identity"));
  const s = await openStore({ env });
  s.set("k", "v1");
  const file = join(tempDir(t), "b.backup");
  await backupStore(s, { out: file, recipients: [identity.recipient], identityFile: null });
  s.set("k", "v2");
  s.close();
  // Another process in the middle of a write: holds the lock past the restore's patience.
  const writer = new DatabaseSync(join(home, "store.db"));
  writer.exec("BEGIN IMMEDIATE");
  await assert.rejects(restoreBackup({ env, file, replace: true, busyTimeoutMs: 300 }), { code: "E_BUSY", message: /kept the store .* locked; stop it/ });
  writer.exec("ROLLBACK");
  writer.close();
  const after = await openStore({ env });
  assert.equal(after.get("k").reveal(), "v2");
  after.close();
});
