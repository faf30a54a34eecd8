/**
 * The PostgreSQL storage driver: the conformance suite on a fresh database per test, then what
 * only PostgreSQL has — several instances (pools) on one database, migrations at open under a
 * lock, connection failures. Needs a PostgreSQL server (see test/services.ts); never skips.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import pg from "pg";
import { openPostgresStorage } from "../../src/storage/postgres.ts";
import { createSqliteStorage, openSqliteStorage } from "../../src/storage/sqlite-async.ts";
import { SCHEMA_VERSION } from "../../src/storage/sqlite-schema.ts";
import type { AuditInput, ServerStorage } from "../../src/storage/types.ts";
import { tempDir } from "../helpers.ts";
import { freshDatabase } from "../services.ts";
import { storageConformance } from "./conformance.ts";
import { executionAudit, newExecution } from "./conformance-executions.ts";

const urls = new WeakMap<ServerStorage, string>();

async function open(t: TestContext, url: string, options: Parameters<typeof openPostgresStorage>[1] = {}): Promise<ServerStorage> {
  const storage = await openPostgresStorage(url, options);
  urls.set(storage, url);
  t.after(() => storage.close());
  return storage;
}

async function fresh(t: TestContext): Promise<{ storage: ServerStorage; url: string }> {
  const url = await freshDatabase(t);
  return { storage: await open(t, url), url };
}

storageConformance("postgres", async (t) => (await fresh(t)).storage, {
  reopen: async (t, storage) => {
    const url = urls.get(storage)!;
    await storage.close();
    return open(t, url);
  },
});

/** A plain client on `url`, closed after the test (to look at or tamper with the tables). */
async function sql(t: TestContext, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  t.after(() => client.end().catch(() => {}));
  return client;
}

function write(storage: ServerStorage, name: string, options: { ifVersion?: number; actor?: string } = {}) {
  return storage.write({
    name, actor: options.actor ?? "jwt:alice", auditDetail: null,
    ...(options.ifVersion !== undefined && { ifVersion: options.ifVersion }),
    seal: () => ({ nonce: randomBytes(12), ciphertext: randomBytes(32) }),
  });
}

const read = (actor: string, i: number): AuditInput => ({ actor, action: "secret.read", name: `n${i}`, version: 1, detail: { i } });

test("postgres: two instances on one database see each other's writes", async (t) => {
  const { storage: a, url } = await fresh(t);
  const b = await open(t, url);
  assert.deepEqual(a.storeId, b.storeId);
  const w = await a.write({ name: "shared", actor: "jwt:a", auditDetail: null, seal: () => ({ nonce: Buffer.alloc(12, 1), ciphertext: Buffer.alloc(40, 2) }) });
  const got = await b.readCurrent("shared");
  assert.equal(got?.version, w.version);
  assert.deepEqual(Buffer.from(got!.nonce), Buffer.alloc(12, 1));
  assert.deepEqual(Buffer.from(got!.ciphertext), Buffer.alloc(40, 2));
  assert.equal((await write(b, "shared", { ifVersion: 1 })).version, 2);
  assert.equal((await a.readCurrent("shared"))?.version, 2);
  assert.deepEqual((await a.auditLog()).map((r) => r.seq), [1, 2]);
});

test("postgres: 20 concurrent writes with the same ifVersion across two instances: one wins, 19 get E_CONFLICT, no gaps", async (t) => {
  const { storage: a, url } = await fresh(t);
  const b = await open(t, url);
  await write(a, "race");
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => write(i % 2 === 0 ? a : b, "race", { ifVersion: 1 })));
  const won = results.filter((r) => r.status === "fulfilled");
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  assert.equal(won.length, 1);
  assert.equal(won[0]!.value.version, 2);
  assert.equal(lost.length, 19);
  for (const l of lost) assert.equal((l.reason as { code?: string }).code, "E_CONFLICT", String(l.reason));
  assert.deepEqual((await b.versions("race"))?.map((v) => v.version), [1, 2]);
  assert.deepEqual(await a.verifyAudit(), { ok: true, records: 2 });
});

test("postgres: first writers of a new name race across instances: ifVersion 0 lets one in; without it all land 1..N", async (t) => {
  const { storage: a, url } = await fresh(t);
  const b = await open(t, url);
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => write(i % 2 === 0 ? a : b, "new", { ifVersion: 0 })));
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
  for (const r of results) {
    if (r.status === "rejected") assert.match(String((r.reason as Error).message), /^secret "new" is at version 1, not 0/);
  }
  const all = await Promise.all(Array.from({ length: 20 }, (_, i) => write(i % 2 === 0 ? a : b, "fresh-many")));
  assert.deepEqual(all.map((r) => r.version).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 1));
  assert.deepEqual((await a.versions("fresh-many"))?.map((v) => v.version), Array.from({ length: 20 }, (_, i) => i + 1));
  assert.deepEqual(await b.verifyAudit(), { ok: true, records: 21 });
});

test("postgres: concurrent appendAudit batches from two instances keep one chain, seqs 1..N without gaps", async (t) => {
  const { storage: a, url } = await fresh(t);
  const b = await open(t, url);
  const batches = await Promise.all(
    Array.from({ length: 30 }, (_, k) => (k % 2 === 0 ? a : b).appendAudit(Array.from({ length: 5 }, (_, i) => read(`token:${k}`, i)))),
  );
  for (const batch of batches) {
    const first = batch[0]!.seq;
    assert.deepEqual(batch.map((r) => r.seq), [first, first + 1, first + 2, first + 3, first + 4]);
  }
  const log = await a.auditLog();
  assert.deepEqual(log.map((r) => r.seq), Array.from({ length: 150 }, (_, i) => i + 1));
  assert.deepEqual(await b.verifyAudit(), { ok: true, records: 150 });
});

test("postgres: two instances opening an empty database at once both succeed and agree on the store id", async (t) => {
  const url = await freshDatabase(t);
  const opened = await Promise.all(Array.from({ length: 4 }, () => openPostgresStorage(url, { poolSize: 2 })));
  t.after(() => Promise.all(opened.map((s) => s.close())));
  for (const s of opened) assert.deepEqual(s.storeId, opened[0]!.storeId);
  const client = await sql(t, url);
  assert.deepEqual((await client.query("SELECT version FROM coffer_schema")).rows, [{ version: SCHEMA_VERSION.server }]);
  assert.equal((await client.query("SELECT count(*)::int AS n FROM coffer_meta WHERE key = 'store_id'")).rows[0].n, 1);
});

test("postgres: an unreachable server is E_UNAVAILABLE, and the message never shows the password", async () => {
  const err = await openPostgresStorage("postgres://user:hunter2@127.0.0.1:1/x", { connectTimeoutMs: 2_000 }).then(
    () => assert.fail("opened an unreachable database"),
    (e: unknown) => e as Error & { code?: string },
  );
  assert.equal(err.code, "E_UNAVAILABLE");
  assert.match(err.message, /^the server's database failed: /);
  assert.match(err.message, /retry$/);
  assert.match(err.message, /127\.0\.0\.1:1/);
  assert.ok(!err.message.includes("hunter2"), err.message);
  assert.ok(!String(err.stack).includes("hunter2"));
  assert.ok(err.cause !== undefined);
});

test("postgres: a database from a newer coffer is refused with E_INTEGRITY", async (t) => {
  const { storage, url } = await fresh(t);
  await storage.close();
  const client = await sql(t, url);
  await client.query("UPDATE coffer_schema SET version = 99");
  await assert.rejects(openPostgresStorage(url), { code: "E_INTEGRITY", message: /written by a newer coffer \(schema 99/ });
});

test("postgres: a connection killed while idle is replaced; the next calls succeed", async (t) => {
  const { storage, url } = await fresh(t);
  await write(storage, "a");
  const client = await sql(t, url);
  const killed = await client.query(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'coffer-server'",
  );
  assert.ok(killed.rowCount! >= 1);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await storage.readCurrent("a"))?.version, 1);
  assert.equal((await write(storage, "a")).version, 2);
  // and again, without giving the pool time to notice
  await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'coffer-server'");
  assert.equal((await storage.readCurrent("a"))?.version, 2);
  assert.equal((await write(storage, "a")).version, 3);
  assert.deepEqual(await storage.verifyAudit(), { ok: true, records: 3 });
});

test("postgres: tampering with an audit row's detail breaks verifyAudit at that record; a deleted row is missing", async (t) => {
  const { storage, url } = await fresh(t);
  await write(storage, "a");
  await storage.appendAudit([{ actor: "jwt:alice", action: "secret.read", name: "a", version: 1, detail: { result: "ok" } }]);
  await write(storage, "a");
  assert.deepEqual(await storage.verifyAudit(), { ok: true, records: 3 });
  const client = await sql(t, url);
  await client.query("UPDATE coffer_audit SET detail = $1 WHERE seq = 2", [JSON.stringify({ result: "denied" })]);
  const verified = await storage.verifyAudit();
  assert.equal(verified.ok, false);
  assert.equal(verified.brokenAt, 2);
  await client.query("DELETE FROM coffer_audit WHERE seq = 2");
  assert.deepEqual(await storage.verifyAudit(), { ok: false, records: 1, brokenAt: 3, reason: "record 2 is missing" });
});

test("postgres: a rejected seal() rolls the write back", async (t) => {
  const { storage } = await fresh(t);
  await assert.rejects(
    storage.write({ name: "x", actor: "jwt:a", auditDetail: null, seal: () => ({ nonce: randomBytes(11), ciphertext: randomBytes(32) }) }),
    TypeError,
  );
  await assert.rejects(storage.write({ name: "x", actor: "jwt:a", auditDetail: null, seal: () => { throw new Error("boom"); } }), { message: "boom" });
  assert.equal(await storage.state("x"), undefined);
  assert.deepEqual(await storage.auditLog(), []);
  assert.equal((await write(storage, "x")).version, 1);
});

test("postgres: a database failure is E_UNAVAILABLE with the cause attached; no value in the message", async (t) => {
  const { storage, url } = await fresh(t);
  const client = await sql(t, url);
  await client.query("DROP TABLE coffer_tokens");
  const err = await storage.listTokens().then(() => undefined, (e: unknown) => e as Error & { code?: string });
  assert.equal(err?.code, "E_UNAVAILABLE");
  assert.match(err!.message, /^the server's database failed: PostgreSQL 42P01/);
  assert.ok(err!.cause !== undefined);
});

test("postgres: a statement stuck behind a lock past the timeout is E_BUSY", async (t) => {
  const { storage: quick, url } = await fresh(t);
  await write(quick, "held");
  const impatient = await open(t, url, { statementTimeoutMs: 300 });
  const client = await sql(t, url);
  await client.query("BEGIN");
  await client.query("SELECT * FROM coffer_secrets WHERE name = 'held' FOR UPDATE");
  await assert.rejects(write(impatient, "held"), { code: "E_BUSY", message: /did not finish in time while writing a secret/ });
  await client.query("ROLLBACK");
  assert.equal((await write(impatient, "held")).version, 2);
});

test("postgres: audit records and chain hashes are byte for byte the SQLite driver's", async (t) => {
  const { storage: p } = await fresh(t);
  const path = join(tempDir(t, "coffer-server-"), "server.db");
  await createSqliteStorage(path);
  const s = await openSqliteStorage(path);
  t.after(() => s.close());
  const entries: AuditInput[] = [
    { at: "2026-01-01T00:00:00.000Z", actor: "token:a", action: "secret.read", name: "x/ü", version: 3, detail: { b: 1, a: ["é", null, { z: true }] } },
    { at: "2026-01-01T00:00:01.000Z", actor: "anonymous", action: "secret.list", name: null, version: null, detail: null },
  ];
  const fromPg = await p.appendAudit(entries);
  const fromSqlite = await s.appendAudit(entries);
  assert.deepEqual(fromPg, fromSqlite);
  assert.deepEqual(await p.auditLog(), await s.auditLog());
});

test("postgres: throughput across two instances (measured, reported as diagnostics)", async (t) => {
  // 400 queries wait for 2 pools of 10: on a loaded machine that wait passes the default 5 s
  // connect timeout, which is not what this measures
  const url = await freshDatabase(t);
  const a = await open(t, url, { connectTimeoutMs: 120_000 });
  const b = await open(t, url, { connectTimeoutMs: 120_000 });
  const n = 400;
  let start = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => write(i % 2 === 0 ? a : b, `bench/${i % 50}`)));
  const writeSecs = (performance.now() - start) / 1000;
  start = performance.now();
  const reads = 4000;
  await Promise.all(Array.from({ length: reads }, (_, i) => (i % 2 === 0 ? a : b).readCurrent(`bench/${i % 50}`)));
  const readSecs = (performance.now() - start) / 1000;
  start = performance.now();
  await Promise.all(Array.from({ length: 40 }, (_, k) => (k % 2 === 0 ? a : b).appendAudit(Array.from({ length: 50 }, (_, i) => read("token:x", i)))));
  const auditSecs = (performance.now() - start) / 1000;
  t.diagnostic(`writes: ${Math.round(n / writeSecs)}/s (${n} concurrent, 2 pools of 10)`);
  t.diagnostic(`reads: ${Math.round(reads / readSecs)}/s (${reads} concurrent, 2 pools of 10)`);
  t.diagnostic(`audit appends: ${Math.round(2000 / auditSecs)} records/s (40 batches of 50)`);
  assert.deepEqual(await a.verifyAudit(), { ok: true, records: n + 2000 });
});

test("postgres: 50 concurrent createExecution calls over two instances give 50 rows, none lost, and one whole chain", async (t) => {
  const { storage: a, url } = await fresh(t);
  const b = await open(t, url);
  const made = Array.from({ length: 50 }, (_, i) => newExecution(`rb${i % 3}`, { instance: i % 2 === 0 ? "i-a" : "i-b" }));
  const created = await Promise.all(made.map((e, i) => (i % 2 === 0 ? a : b).createExecution(e, executionAudit("runbook.start", e.runbook, { id: e.id }))));
  assert.deepEqual(created.map((e) => e.id), made.map((e) => e.id));
  // every row, read back through the other instance, page by page
  const seen: string[] = [];
  for (let before: string | undefined; ;) {
    const page = await b.listExecutions({ limit: 20, ...(before !== undefined && { before }) });
    if (page.length === 0) break;
    seen.push(...page.map((e) => e.id));
    before = page.at(-1)!.id;
  }
  assert.deepEqual(seen, made.map((e) => e.id).sort().reverse());
  assert.equal((await a.runningExecutions("i-a")).length, 25);
  const records = await a.auditLog();
  assert.deepEqual(records.map((r) => r.seq), Array.from({ length: 50 }, (_, i) => i + 1));
  assert.deepEqual(new Set(records.map((r) => (r.detail as { id: string }).id)), new Set(made.map((e) => e.id)));
  assert.deepEqual(await b.verifyAudit(), { ok: true, records: 50 });
});

test("postgres: starts of a runbook with concurrency 1 racing across two instances, creating and approving: exactly one runs", async (t) => {
  const { storage: a, url } = await fresh(t);
  const b = await open(t, url);
  const pending = Array.from({ length: 10 }, () => newExecution("solo", { status: "pending-approval", instance: null, approvalsRequired: 1, expiresAt: "2099-01-01T00:00:00.000Z" }));
  for (const e of pending) await a.createExecution(e, executionAudit("runbook.request", "solo", null));
  const before = (await a.auditLog()).length;
  const starts = [
    ...Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).createExecution(newExecution("solo"), executionAudit("runbook.start", "solo", null), 1)),
    ...pending.map((e, i) => (i % 2 === 0 ? b : a).updateExecution(
      e.id, { from: ["pending-approval"], status: "running", startedAt: new Date().toISOString(), instance: "i-x", concurrency: 1 },
      executionAudit("runbook.start", "solo", null),
    )),
  ];
  const results = await Promise.allSettled(starts);
  const started = results.filter((r) => r.status === "fulfilled" && r.value !== undefined);
  assert.equal(started.length, 1, "one start of twenty wins the only slot");
  for (const r of results) if (r.status === "rejected") assert.equal((r.reason as { code?: string }).code, "E_CONFLICT", String(r.reason));
  assert.equal((await b.runningExecutions()).length, 1);
  assert.equal((await a.auditLog()).length, before + 1, "only the start that won is audited");
  // another runbook is not held up by this one's lock
  await a.createExecution(newExecution("other"), executionAudit("runbook.start", "other", null), 1);
});

// What a database of schema 4 lacks: the version marks of issue 16.
const DROP_VERSION_MARKS = "ALTER TABLE coffer_versions DROP COLUMN deleted_at, DROP COLUMN destroyed_at";

test("postgres: a version-1 database gains the execution tables on open, its data kept", async (t) => {
  const { storage, url } = await fresh(t);
  await write(storage, "kept");
  await storage.close();
  const client = await sql(t, url);
  await client.query("DROP TABLE coffer_executions, coffer_execution_approvals, coffer_execution_output, coffer_instances, coffer_roles, coffer_rotations");
  await client.query(DROP_VERSION_MARKS);
  await client.query("UPDATE coffer_schema SET version = 1");
  const migrated = await open(t, url);
  assert.deepEqual((await client.query("SELECT version FROM coffer_schema")).rows, [{ version: SCHEMA_VERSION.server }]);
  assert.equal((await migrated.readCurrent("kept"))?.version, 1);
  const e = newExecution("after");
  await migrated.createExecution(e, executionAudit("runbook.start", "after", null));
  await migrated.appendOutput(e.id, 0, Buffer.from("x"), 1, false);
  assert.equal((await migrated.listExecutions({ limit: 5 }))[0]?.id, e.id);
  assert.deepEqual(await migrated.verifyAudit(), { ok: true, records: 2 });
});

test("postgres: a version-2 database gains the roles table on open, its data kept", async (t) => {
  const { storage, url } = await fresh(t);
  await write(storage, "kept");
  await storage.close();
  const client = await sql(t, url);
  await client.query("DROP TABLE coffer_roles, coffer_rotations");
  await client.query(DROP_VERSION_MARKS);
  await client.query("UPDATE coffer_schema SET version = 2");
  const migrated = await open(t, url);
  assert.deepEqual((await client.query("SELECT version FROM coffer_schema")).rows, [{ version: SCHEMA_VERSION.server }]);
  assert.equal((await migrated.readCurrent("kept"))?.version, 1);
  await migrated.putRole("dev", [{ path: "app/**", capabilities: ["read"] }], "token:alice", null);
  assert.equal((await migrated.getRole("dev"))?.version, 1);
  assert.deepEqual(await migrated.verifyAudit(), { ok: true, records: 2 });
});

test("postgres: a version-3 database gains the rotations table on open, its data kept", async (t) => {
  const { storage, url } = await fresh(t);
  await write(storage, "kept");
  await storage.close();
  const client = await sql(t, url);
  await client.query("DROP TABLE coffer_rotations");
  await client.query(DROP_VERSION_MARKS);
  await client.query("UPDATE coffer_schema SET version = 3");
  const migrated = await open(t, url);
  assert.deepEqual((await client.query("SELECT version FROM coffer_schema")).rows, [{ version: SCHEMA_VERSION.server }]);
  assert.equal((await migrated.readCurrent("kept"))?.version, 1);
  await migrated.putRotation({ name: "kept", every: "30d", everyMs: 30 * 86_400_000, generate: { charset: "hex", length: 32 }, apply: null }, "token:alice", null);
  assert.equal((await migrated.getRotation("kept"))?.everyMs, 30 * 86_400_000);
  assert.deepEqual(await migrated.verifyAudit(), { ok: true, records: 2 });
});

test("postgres: a version-4 database gains the version marks on open, its data kept", async (t) => {
  const { storage, url } = await fresh(t);
  await write(storage, "kept");
  await storage.close();
  const client = await sql(t, url);
  await client.query(DROP_VERSION_MARKS);
  await client.query("UPDATE coffer_schema SET version = 4");
  const migrated = await open(t, url);
  assert.deepEqual((await client.query("SELECT version FROM coffer_schema")).rows, [{ version: SCHEMA_VERSION.server }]);
  assert.equal(SCHEMA_VERSION.server, 5);
  assert.equal((await migrated.readCurrent("kept"))?.version, 1);
  assert.deepEqual((await migrated.versions("kept"))?.map((v) => [v.deletedAt, v.destroyed]), [[null, false]]);
  assert.deepEqual((await migrated.destroyVersions("kept", [1], "token:alice", null))?.changed, [1]);
  assert.equal(Number((await client.query("SELECT length(ciphertext) AS n FROM coffer_versions WHERE name = 'kept'")).rows[0].n), 0);
  assert.deepEqual(await migrated.verifyAudit(), { ok: true, records: 2 });
});
