import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { TestContext } from "node:test";
import { createSqliteStorage, openSqliteStorage } from "../../src/storage/sqlite-async.ts";
import type { ServerStorage } from "../../src/storage/types.ts";
import { tempDir } from "../helpers.ts";
import type * as ops from "../../src/storage/ops.ts";
import * as exec from "../../src/storage/ops-executions.ts";
import { storageConformance } from "./conformance.ts";
import { executionAudit, newExecution } from "./conformance-executions.ts";

const paths = new WeakMap<ServerStorage, string>();

async function fresh(t: TestContext): Promise<{ storage: ServerStorage; path: string }> {
  const path = join(tempDir(t, "coffer-server-"), "server.db");
  await createSqliteStorage(path);
  const storage = await openSqliteStorage(path);
  paths.set(storage, path);
  t.after(() => storage.close());
  return { storage, path };
}

storageConformance("sqlite", async (t) => (await fresh(t)).storage, {
  reopen: async (t, storage) => {
    const path = paths.get(storage)!;
    await storage.close();
    const again = await openSqliteStorage(path);
    t.after(() => again.close());
    return again;
  },
});

function write(storage: ServerStorage, name: string, actor = "jwt:alice") {
  return storage.write({
    name, actor, auditDetail: null,
    seal: () => ({ nonce: randomBytes(12), ciphertext: randomBytes(32) }),
  });
}

test("sqlite: the database file is 0600 and its WAL files private even under umask 0", async (t) => {
  const old = process.umask(0);
  t.after(() => process.umask(old));
  const { storage, path } = await fresh(t);
  await write(storage, "a");
  for (const f of [path, `${path}-wal`, `${path}-shm`]) {
    if (existsSync(f)) assert.equal(statSync(f).mode & 0o777, 0o600, f);
  }
  // No temp file is left beside it.
  assert.deepEqual(readdirSync(join(path, "..")).filter((f) => !f.startsWith("server.db")), []);
});

test("sqlite: creating twice is E_CONFLICT and leaves the first database whole", async (t) => {
  const { storage, path } = await fresh(t);
  await write(storage, "kept");
  await assert.rejects(createSqliteStorage(path), {
    code: "E_CONFLICT",
    message: `a server database already exists at ${path}; refusing to overwrite it`,
  });
  assert.equal((await storage.state("kept"))?.latest, 1);
});

test("sqlite: create refuses a missing or shared data directory", async (t) => {
  const dir = tempDir(t);
  await assert.rejects(createSqliteStorage(join(dir, "nope", "server.db")), { code: "E_USAGE", message: /does not exist; create it with `mkdir -m 700/ });
  const shared = join(dir, "shared");
  mkdirSync(shared);
  chmodSync(shared, 0o755);
  await assert.rejects(createSqliteStorage(join(shared, "server.db")), { code: "E_PERMISSIONS", message: /run `chmod 700/ });
  assert.equal(existsSync(join(shared, "server.db")), false);
});

test("sqlite: opening a missing database is E_NOT_INITIALIZED and says how to create it", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "server.db");
  await assert.rejects(openSqliteStorage(path), {
    code: "E_NOT_INITIALIZED",
    message: `no server database at ${path}; run \`coffer server init --data ${dir}\``,
  });
});

test("sqlite: opening a database readable by others is E_PERMISSIONS", async (t) => {
  const { storage, path } = await fresh(t);
  await storage.close();
  chmodSync(path, 0o644);
  await assert.rejects(openSqliteStorage(path), { code: "E_PERMISSIONS", message: /run `chmod 600/ });
});

test("sqlite: a file that is not a coffer server database is refused with E_INTEGRITY", async (t) => {
  const dir = tempDir(t);
  const junk = join(dir, "junk.db");
  writeFileSync(junk, randomBytes(4096), { mode: 0o600 });
  await assert.rejects(openSqliteStorage(junk), { code: "E_INTEGRITY", message: /not a readable coffer server database/ });
  const other = join(dir, "other.db");
  writeFileSync(other, "", { mode: 0o600 });
  const db = new DatabaseSync(other);
  db.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('format', '1');");
  db.close();
  await assert.rejects(openSqliteStorage(other), { code: "E_INTEGRITY", message: /is not a coffer server database of format coffer-server-1/ });
});

test("sqlite: a database from a newer coffer is refused", async (t) => {
  const { storage, path } = await fresh(t);
  await storage.close();
  const db = new DatabaseSync(path);
  db.exec("PRAGMA user_version = 99");
  db.close();
  await assert.rejects(openSqliteStorage(path), { code: "E_INTEGRITY", message: /written by a newer coffer \(schema 99/ });
});

test("sqlite: tampering with an audit row's detail in the file breaks verifyAudit at that record", async (t) => {
  const { storage, path } = await fresh(t);
  await write(storage, "a");
  await storage.appendAudit([{ actor: "jwt:alice", action: "secret.read", name: "a", version: 1, detail: { result: "ok" } }]);
  await write(storage, "a");
  assert.deepEqual(await storage.verifyAudit(), { ok: true, records: 3 });
  const db = new DatabaseSync(path);
  db.prepare("UPDATE audit SET detail = ? WHERE seq = 2").run(JSON.stringify({ result: "denied" }));
  db.close();
  const verified = await storage.verifyAudit();
  assert.equal(verified.ok, false);
  assert.equal(verified.brokenAt, 2);
});

test("sqlite: a deleted audit row is reported as missing", async (t) => {
  const { storage, path } = await fresh(t);
  for (let i = 0; i < 3; i++) await write(storage, `s${i}`);
  const db = new DatabaseSync(path);
  db.exec("DELETE FROM audit WHERE seq = 2");
  db.close();
  assert.deepEqual(await storage.verifyAudit(), { ok: false, records: 1, brokenAt: 3, reason: "record 2 is missing" });
});

test("sqlite: a second process-like connection's audit records are chained after, not over", async (t) => {
  const { storage, path } = await fresh(t);
  const second = await openSqliteStorage(path);
  t.after(() => second.close());
  await write(storage, "a");
  await second.appendAudit([{ actor: "token:b", action: "secret.read", name: "a", version: 1, detail: null }]);
  await storage.appendAudit([{ actor: "token:a", action: "secret.read", name: "a", version: 1, detail: null }]);
  await write(second, "a");
  assert.deepEqual((await storage.auditLog()).map((r) => r.seq), [1, 2, 3, 4]);
  assert.deepEqual(await second.verifyAudit(), { ok: true, records: 4 });
  assert.equal((await storage.readCurrent("a"))?.version, 2);
});

test("sqlite: a write blocked by another connection's lock fails with E_BUSY after the timeout", async (t) => {
  const { path } = await fresh(t);
  const impatient = await openSqliteStorage(path, { busyTimeoutMs: 50 });
  t.after(() => impatient.close());
  const locker = new DatabaseSync(path);
  t.after(() => locker.close());
  locker.exec("BEGIN IMMEDIATE");
  await assert.rejects(write(impatient, "x"), { code: "E_BUSY", message: /stayed locked by another process/ });
  await assert.rejects(impatient.appendAudit([{ actor: "a", action: "secret.read", name: null, version: null, detail: null }]), { code: "E_BUSY" });
  locker.exec("ROLLBACK");
  assert.equal((await write(impatient, "x")).version, 1);
});

test("sqlite: a database failure becomes E_UNAVAILABLE with the cause attached and no value in the message", async (t) => {
  const { storage, path } = await fresh(t);
  const db = new DatabaseSync(path);
  db.exec("DROP TABLE tokens");
  db.close();
  const err = await storage.listTokens().then(() => undefined, (e: unknown) => e);
  assert.equal((err as { code?: string }).code, "E_UNAVAILABLE");
  assert.match((err as Error).message, /^the server's database failed: /);
  assert.ok((err as Error).cause !== undefined);
});

test("sqlite: a rejected seal() rolls the write back", async (t) => {
  const { storage } = await fresh(t);
  await assert.rejects(
    storage.write({ name: "x", actor: "jwt:a", auditDetail: null, seal: () => ({ nonce: randomBytes(11), ciphertext: randomBytes(32) }) }),
    TypeError,
  );
  await assert.rejects(
    storage.write({ name: "x", actor: "jwt:a", auditDetail: null, seal: () => { throw new Error("boom"); } }),
    { message: "boom" },
  );
  assert.equal(await storage.state("x"), undefined);
  assert.deepEqual(await storage.auditLog(), []);
  assert.equal((await write(storage, "x")).version, 1);
});

test("sqlite: readCurrent is one indexed search of the newest version row", async (t) => {
  const { path } = await fresh(t);
  const db = new DatabaseSync(path);
  t.after(() => db.close());
  const plan = db.prepare(
    "EXPLAIN QUERY PLAN SELECT version, nonce, ciphertext, created_at, created_by, removed_at FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1",
  ).all("x") as { detail: string }[];
  assert.deepEqual(plan.map((p) => p.detail), ["SEARCH versions USING PRIMARY KEY (name=?)"]);
});

test("sqlite: the execution queries search an index, never scan the whole history", async (t) => {
  const { path } = await fresh(t);
  const db = new DatabaseSync(path);
  t.after(() => db.close());
  // The first statement each operation yields, as the driver would run it.
  const plan = (op: ops.Op<unknown>): string => {
    const q = op.next().value as ops.Query;
    return (db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...(q.params as string[])) as { detail: string }[])
      .map((p) => p.detail).filter((d) => /\bexecutions\b/.test(d)).join("; ");
  };
  const d: ops.Dialect = { rotation: false, rotationLocks: false, forUpdate: "", auditLock: null, runbookLock: null, auditChunk: 1, tokenOrder: "rowid", noLimit: -1, maxVersion: 1 };
  const byStatus = /^SEARCH executions USING (COVERING )?INDEX executions_by_status \(status=\?\)$/;
  assert.equal(plan(exec.listExecutions({ runbook: "a", before: "b", limit: 20 })), "SEARCH executions USING INDEX executions_by_runbook (runbook=? AND id<?)");
  assert.equal(plan(exec.getExecution(newExecution("a").id)), "SEARCH executions USING INDEX sqlite_autoindex_executions_1 (id=?)");
  // the concurrency count, the first statement of a start with a limit (SQLite takes no runbook lock)
  assert.match(plan(exec.createExecution(d, newExecution("a"), executionAudit("runbook.start", "a", null), 1)), byStatus);
  assert.match(plan(exec.runningExecutions("i-1")), byStatus);
  assert.match(plan(exec.expiredExecutions(new Date().toISOString())), byStatus);
});

test("sqlite: a purge leaves none of the ciphertext in the database file or its WAL (secure_delete, then a checkpoint)", async (t) => {
  const { storage, path } = await fresh(t);
  const ciphertext = Buffer.alloc(4096 + 16, 0x5a);
  ciphertext.write("purged-ciphertext-marker", 100);
  await storage.write({ name: "gone", actor: "jwt:alice", auditDetail: null, seal: () => ({ nonce: randomBytes(12), ciphertext }) });
  await write(storage, "kept");
  const needle = ciphertext.subarray(90, 160);
  const holds = (f: string): boolean => existsSync(f) && readFileSync(f).includes(needle);
  assert.ok(holds(path) || holds(`${path}-wal`), "the ciphertext is on disk before the purge");
  assert.deepEqual(await storage.purge("gone", "jwt:alice", null), { versions: 1, version: 1 });
  for (const f of [path, `${path}-wal`]) assert.equal(holds(f), false, `ciphertext bytes left in ${f}`);
  assert.equal((await storage.state("kept"))?.latest, 1);
});

test("sqlite: a destroyed version leaves none of its ciphertext in the database file or its WAL (secure_delete, then a checkpoint)", async (t) => {
  const { storage, path } = await fresh(t);
  const ciphertext = Buffer.alloc(4096 + 16, 0x5b);
  ciphertext.write("destroyed-ciphertext-marker", 100);
  await storage.write({ name: "app/v", actor: "jwt:alice", auditDetail: null, seal: () => ({ nonce: randomBytes(12), ciphertext }) });
  await write(storage, "app/v");
  const needle = ciphertext.subarray(90, 160);
  const holds = (f: string): boolean => existsSync(f) && readFileSync(f).includes(needle);
  assert.ok(holds(path) || holds(`${path}-wal`), "the ciphertext is on disk before the destroy");
  assert.deepEqual((await storage.destroyVersions("app/v", [1], "jwt:alice", null))?.changed, [1]);
  for (const f of [path, `${path}-wal`]) assert.equal(holds(f), false, `ciphertext bytes left in ${f}`);
  assert.equal((await storage.readCurrent("app/v"))?.version, 2);
});

test("sqlite: a server database of schema 4 (before version marks) opens and is migrated", async (t) => {
  const { storage, path } = await fresh(t);
  await write(storage, "old");
  await storage.close();
  const db = new DatabaseSync(path);
  db.exec("ALTER TABLE versions DROP COLUMN deleted_at; ALTER TABLE versions DROP COLUMN destroyed_at; PRAGMA user_version = 4");
  db.close();
  const again = await openSqliteStorage(path);
  t.after(() => again.close());
  assert.equal((await again.readCurrent("old"))?.version, 1);
  assert.deepEqual((await again.deleteVersions("old", [1], "jwt:alice", null))?.changed, [1]);
  const check = new DatabaseSync(path, { readOnly: true });
  assert.equal((check.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, 5);
  check.close();
});
