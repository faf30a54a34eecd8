/**
 * Files written by today's coffer open unchanged: a local store and a server SQLite database made
 * by coffer at 7452aec (test/fixtures/compat-7452aec, see its README), before the storage driver
 * was one. Their values read back, their audit chains verify, their tables are the ones a new
 * file is created with (the same `sqlite_master` text: the server's, migrated to schema 2, gains
 * the execution tables), and new writes chain on.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, cpSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { getMember, initCoffer, openStore } from "../../src/index.ts";
import { createSqliteStorage, openSqliteStorage } from "../../src/storage/sqlite-async.ts";
import { SCHEMA_VERSION } from "../../src/storage/sqlite-schema.ts";
import { tempDir } from "../helpers.ts";
import { executionAudit, newExecution } from "./conformance-executions.ts";

const FIXTURES = join(import.meta.dirname, "../fixtures/compat-7452aec");

/** A private copy of a fixture directory (the files must be 0600, their dirs 0700). */
function copy(t: Parameters<typeof tempDir>[0], what: string): string {
  const dir = join(tempDir(t), what);
  cpSync(join(FIXTURES, what), dir, { recursive: true });
  const fix = (p: string): void => {
    const dirLike = statSync(p).isDirectory();
    chmodSync(p, dirLike ? 0o700 : 0o600);
    if (dirLike) for (const f of readdirSync(p)) fix(join(p, f));
  };
  fix(dir);
  return dir;
}

function schemaOf(path: string): string[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const version = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    const rows = db.prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name").all() as { type: string; name: string; sql: string | null }[];
    return [`user_version ${version}`, ...rows.map((r) => `${r.type} ${r.name}: ${r.sql ?? ""}`)];
  } finally {
    db.close();
  }
}

test("a local store written by coffer at 7452aec opens, reads, verifies and takes new writes", async (t) => {
  const home = copy(t, "local");
  const store = await openStore({ env: { COFFER_HOME: home } });
  t.after(() => store.close());
  assert.equal(store.headStatus.state, "ok");
  assert.equal(store.get("db/password").reveal(), "hunter3");
  assert.equal(store.get("db/password", { version: 1 }).reveal(), "hunter2");
  assert.deepEqual(Buffer.from(store.get("api/key").bytes()), Buffer.from([0, 1, 2, 255]));
  assert.equal(store.get("old").reveal(), "v1");
  assert.equal(store.get("old").version, 3);
  assert.throws(() => store.get("gone"), { code: "E_NOT_FOUND", message: /was removed/ });
  const [info] = store.list("db/");
  assert.equal(info?.description, "the db password");
  assert.equal(info?.rotationSeconds, 86400);
  assert.deepEqual(getMember(store, "bob").grants, ["db/*"]);
  assert.deepEqual(store.verifyAudit().ok, true);
  const before = store.auditLog().length;
  assert.equal(store.set("db/password", "hunter4").version, 3);
  assert.deepEqual(store.verifyAudit(), { ok: true, records: before + 1 });

  // The same tables, byte for byte, as a store created now.
  const fresh = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: fresh }, name: "new" });
  assert.deepEqual(schemaOf(join(home, "store.db")), schemaOf(join(fresh, "store.db")));
});

test("a server database written by coffer at 7452aec opens, reads, verifies and takes new writes", async (t) => {
  const dir = copy(t, "server");
  const storage = await openSqliteStorage(join(dir, "server.db"));
  t.after(() => storage.close());
  const current = await storage.readCurrent("app/token");
  assert.equal(current?.version, 2);
  assert.deepEqual(Buffer.from(current!.nonce), Buffer.alloc(12, 2));
  assert.deepEqual(Buffer.from(current!.ciphertext), Buffer.alloc(32, 0x42));
  assert.equal(current?.createdBy, "jwt:alice");
  assert.equal(await storage.readCurrent("app/gone"), undefined);
  assert.equal(await storage.getMeta("key_check"), "fixture-key-check");
  assert.deepEqual((await storage.findTokenById("00112233445566ff"))?.roles, ["reader"]);
  assert.deepEqual((await storage.list("")).map((s) => [s.name, s.version, s.description]), [["app/token", 2, "d"]]);
  const verified = await storage.verifyAudit();
  assert.equal(verified.ok, true);
  await storage.write({ name: "app/token", actor: "jwt:carol", auditDetail: null, seal: (v) => ({ nonce: Buffer.alloc(12, v), ciphertext: Buffer.alloc(32, v) }) });
  assert.deepEqual(await storage.verifyAudit(), { ok: true, records: verified.records + 1 });

  // Schema 1 → 2 on open: the execution tables (issue 13) are there and take rows.
  assert.equal(schemaOf(join(dir, "server.db"))[0], `user_version ${SCHEMA_VERSION.server}`);
  const e = newExecution("after-upgrade");
  await storage.createExecution(e, executionAudit("runbook.start", "after-upgrade", null));
  await storage.appendOutput(e.id, 0, Buffer.from("ok\n"), 3, false);
  await storage.heartbeat({ id: "i-1", host: "h", pid: 1, startedAt: e.createdAt, heartbeatAt: e.createdAt });
  assert.deepEqual((await storage.listExecutions({ limit: 10 })).map((x) => [x.id, x.outputBytes]), [[e.id, 3]]);
  assert.deepEqual(await storage.verifyAudit(), { ok: true, records: verified.records + 2 });

  const freshDir = tempDir(t);
  chmodSync(freshDir, 0o700);
  await createSqliteStorage(join(freshDir, "server.db"));
  assert.deepEqual(schemaOf(join(dir, "server.db")), schemaOf(join(freshDir, "server.db")));
});
