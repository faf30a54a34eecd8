/**
 * The conformance suite of the storage seam (`src/storage/types.ts`): every driver runs these
 * same cases — the local store's SQLite (test/storage/local.test.ts), the server's SQLite
 * (sqlite.test.ts) and PostgreSQL (postgres.test.ts) — so they behave alike above the seam.
 *
 * Values here are opaque sealed bytes (random buffers): a driver never sees plaintext.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { AuditRecord } from "../../src/core/audit.ts";
import type { SealedValue, ServerStorage, StoredToken, StoredVersion, WriteRequest } from "../../src/storage/types.ts";
import { executionConformance } from "./conformance-executions.ts";
import { roleConformance } from "./conformance-roles.ts";
import { versionConformance } from "./conformance-versions.ts";

/** Hooks a driver may give beyond its factory. */
export interface ConformanceOptions {
  /** Closes `storage` and opens the same database again (enables the reopen cases). */
  reopen?: (t: TestContext, storage: ServerStorage) => Promise<ServerStorage>;
  /** false for a local store's SQLite, which has no tokens table (the token cases are not registered) */
  tokens?: boolean;
  /** false for a local store's SQLite, which has no execution tables (conformance-executions.ts is not registered) */
  executions?: boolean;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function sealed(size = 24): SealedValue {
  return { nonce: randomBytes(12), ciphertext: randomBytes(size + 16) };
}

function bytes(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** A write request whose seal() records the versions it was asked for and what it returned. */
function request(name: string, options: Partial<Omit<WriteRequest, "name" | "seal">> = {}) {
  const calls: number[] = [];
  const values = new Map<number, SealedValue>();
  const req: WriteRequest = {
    name,
    actor: options.actor ?? "token:0123456789abcdef",
    auditDetail: options.auditDetail ?? null,
    ...(options.description !== undefined && { description: options.description }),
    ...(options.ifVersion !== undefined && { ifVersion: options.ifVersion }),
    ...(options.action !== undefined && { action: options.action }),
    seal: (version) => {
      calls.push(version);
      const v = sealed();
      values.set(version, v);
      return v;
    },
  };
  return { req, calls, values };
}

async function put(s: ServerStorage, name: string, options: Partial<Omit<WriteRequest, "name" | "seal">> = {}) {
  const r = request(name, options);
  const result = await s.write(r.req);
  return { ...result, sealed: r.values.get(result.version)! };
}

function assertStored(actual: StoredVersion | undefined, name: string, version: number, value: SealedValue, by: string): void {
  assert.ok(actual !== undefined, `${name} v${version} should be readable`);
  assert.equal(actual.name, name);
  assert.equal(actual.version, version);
  assert.deepEqual(bytes(actual.nonce), bytes(value.nonce));
  assert.deepEqual(bytes(actual.ciphertext), bytes(value.ciphertext));
  assert.equal(actual.createdBy, by);
  assert.match(actual.createdAt, ISO);
}

async function lastSeq(s: ServerStorage): Promise<number> {
  const all = await s.auditLog();
  return all.at(-1)?.seq ?? 0;
}

function token(overrides: Partial<StoredToken> = {}): StoredToken {
  return {
    id: randomBytes(8).toString("hex"),
    name: "ci",
    hash: randomBytes(32),
    roles: ["reader"],
    createdAt: new Date().toISOString(),
    createdBy: "token:admin",
    expiresAt: null,
    revokedAt: null,
    ...overrides,
  };
}

function assertToken(actual: StoredToken | undefined, expected: StoredToken): void {
  assert.ok(actual !== undefined, `token ${expected.id} should be found`);
  const { hash, ...rest } = actual;
  const { hash: wantHash, ...wantRest } = expected;
  assert.deepEqual(rest, wantRest);
  assert.deepEqual(bytes(hash), bytes(wantHash));
}

/**
 * Registers the conformance cases for one driver.
 * @param driverLabel - names the suite ("sqlite", "postgres")
 * @param factory - a fresh, empty storage for one test; the factory arranges its closing
 * @param options - optional hooks (reopen) and which tables the driver lacks
 */
export function storageConformance(
  driverLabel: string,
  factory: (t: TestContext) => Promise<ServerStorage>,
  options: ConformanceOptions = {},
): void {
  // A local store has no tokens table: its run registers no token case (rather than skipping them).
  const tokenTest = options.tokens === false ? (..._: unknown[]): void => {} : test;
  describe(`storage conformance: ${driverLabel}`, () => {
    test("write then readCurrent and readVersion give back the sealed bytes and who wrote them", async (t) => {
      const s = await factory(t);
      assert.equal(await s.readCurrent("db/password"), undefined);
      assert.equal(await s.state("db/password"), undefined);
      const w = await put(s, "db/password", { actor: "jwt:alice" });
      assert.equal(w.version, 1);
      assertStored(await s.readCurrent("db/password"), "db/password", 1, w.sealed, "jwt:alice");
      assertStored(await s.readVersion("db/password", 1), "db/password", 1, w.sealed, "jwt:alice");
      assert.equal(await s.readVersion("db/password", 2), undefined);
      assert.equal(await s.readVersion("other", 1), undefined);
      assert.deepEqual(await s.state("db/password"), { latest: 1, deletedAt: null });
    });

    test("versions count up; seal() is asked for the version being written; every version stays readable", async (t) => {
      const s = await factory(t);
      const written: SealedValue[] = [];
      for (let i = 1; i <= 3; i++) {
        const r = request("api/key");
        const result = await s.write(r.req);
        assert.equal(result.version, i);
        assert.deepEqual(r.calls, [i]);
        written.push(r.values.get(i)!);
      }
      for (let i = 1; i <= 3; i++) assertStored(await s.readVersion("api/key", i), "api/key", i, written[i - 1]!, "token:0123456789abcdef");
      assertStored(await s.readCurrent("api/key"), "api/key", 3, written[2]!, "token:0123456789abcdef");
      const history = await s.versions("api/key");
      assert.deepEqual(history?.map((v) => [v.version, v.current, v.createdBy]), [
        [1, false, "token:0123456789abcdef"], [2, false, "token:0123456789abcdef"], [3, true, "token:0123456789abcdef"],
      ]);
      for (const v of history ?? []) assert.match(v.createdAt, ISO);
      assert.equal(await s.versions("never/written"), undefined);
    });

    test("ifVersion 0 writes a new name and refuses an existing one", async (t) => {
      const s = await factory(t);
      assert.equal((await put(s, "fresh", { ifVersion: 0 })).version, 1);
      await assert.rejects(put(s, "fresh", { ifVersion: 0 }), {
        code: "E_CONFLICT",
        message: 'secret "fresh" is at version 1, not 0: someone else wrote it; read it again and retry',
      });
      assert.equal((await put(s, "fresh", { ifVersion: 1 })).version, 2);
    });

    test("ifVersion mismatch: E_CONFLICT with the exact message, seal() not called, nothing written or audited", async (t) => {
      const s = await factory(t);
      const first = await put(s, "k");
      const before = await lastSeq(s);
      const r = request("k", { ifVersion: 5 });
      await assert.rejects(s.write(r.req), {
        code: "E_CONFLICT",
        message: 'secret "k" is at version 1, not 5: someone else wrote it; read it again and retry',
      });
      assert.deepEqual(r.calls, []);
      assert.equal(await s.readVersion("k", 2), undefined);
      assertStored(await s.readCurrent("k"), "k", 1, first.sealed, "token:0123456789abcdef");
      assert.deepEqual(await s.state("k"), { latest: 1, deletedAt: null });
      assert.equal(await lastSeq(s), before);
      const missing = request("nothing/here", { ifVersion: 1 });
      await assert.rejects(s.write(missing.req), { code: "E_CONFLICT", message: /is at version 0, not 1/ });
      assert.equal(await s.state("nothing/here"), undefined);
      assert.equal(await lastSeq(s), before);
    });

    test("concurrent writes with the same ifVersion: exactly one wins, the others get E_CONFLICT", async (t) => {
      const s = await factory(t);
      await put(s, "race");
      const before = await lastSeq(s);
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => put(s, "race", { ifVersion: 1 })));
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      assert.equal(won.length, 1);
      assert.equal(won[0]!.value.version, 2);
      assert.equal(lost.length, 7);
      for (const l of lost) assert.equal((l.reason as { code?: string }).code, "E_CONFLICT");
      assert.deepEqual(await s.state("race"), { latest: 2, deletedAt: null });
      const records = await s.auditLog({ afterSeq: before });
      assert.deepEqual(records.map((r) => [r.action, r.name, r.version]), [["secret.write", "race", 2]]);
    });

    test("concurrent writes without ifVersion all land, each with its own version", async (t) => {
      const s = await factory(t);
      const results = await Promise.all(Array.from({ length: 6 }, () => put(s, "busy")));
      assert.deepEqual(results.map((r) => r.version).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6]);
      for (const r of results) assertStored(await s.readVersion("busy", r.version), "busy", r.version, r.sealed, "token:0123456789abcdef");
      assert.equal((await s.verifyAudit()).ok, true);
    });

    test("description is kept across versions until changed; updatedBy follows the writer", async (t) => {
      const s = await factory(t);
      await put(s, "svc/token", { description: "the service token", actor: "jwt:alice" });
      await put(s, "svc/token", { actor: "jwt:bob" });
      let [info] = await s.list("svc/");
      assert.equal(info?.description, "the service token");
      assert.equal(info?.version, 2);
      assert.equal(info?.createdBy, "jwt:alice");
      assert.equal(info?.updatedBy, "jwt:bob");
      assert.ok(Date.parse(info!.createdAt) <= Date.parse(info!.updatedAt));
      await put(s, "svc/token", { description: "rotated monthly" });
      [info] = await s.list("svc/");
      assert.equal(info?.description, "rotated monthly");
      await put(s, "plain");
      assert.equal((await s.list("plain"))[0]?.description, null);
    });

    test("remove hides a secret from readCurrent and list; versions stay; writing again brings it back", async (t) => {
      const s = await factory(t);
      const v1 = await put(s, "app/secret");
      const v2 = await put(s, "app/secret");
      await put(s, "app/other");
      assert.deepEqual(await s.remove("app/secret", "jwt:alice", null), { version: 2 });
      assert.equal(await s.readCurrent("app/secret"), undefined);
      assert.deepEqual((await s.list("app/")).map((i) => i.name), ["app/other"]);
      const state = await s.state("app/secret");
      assert.equal(state?.latest, 2);
      assert.match(state?.deletedAt ?? "", ISO);
      assertStored(await s.readVersion("app/secret", 1), "app/secret", 1, v1.sealed, "token:0123456789abcdef");
      assertStored(await s.readVersion("app/secret", 2), "app/secret", 2, v2.sealed, "token:0123456789abcdef");
      assert.deepEqual((await s.versions("app/secret"))?.map((v) => v.current), [false, false]);

      const v3 = await put(s, "app/secret", { ifVersion: 2 });
      assert.equal(v3.version, 3);
      assertStored(await s.readCurrent("app/secret"), "app/secret", 3, v3.sealed, "token:0123456789abcdef");
      assert.deepEqual(await s.state("app/secret"), { latest: 3, deletedAt: null });
      assert.deepEqual((await s.list("app/")).map((i) => [i.name, i.version]), [["app/other", 1], ["app/secret", 3]]);
      assert.deepEqual((await s.versions("app/secret"))?.map((v) => v.current), [false, false, true]);
      assertStored(await s.readVersion("app/secret", 2), "app/secret", 2, v2.sealed, "token:0123456789abcdef");
    });

    test("remove of a missing or already removed secret returns undefined and audits nothing", async (t) => {
      const s = await factory(t);
      assert.equal(await s.remove("never", "jwt:alice", null), undefined);
      await put(s, "once");
      assert.deepEqual(await s.remove("once", "jwt:alice", null), { version: 1 });
      const before = await lastSeq(s);
      assert.equal(await s.remove("once", "jwt:alice", null), undefined);
      assert.equal(await lastSeq(s), before);
    });

    test("purge destroys every version and the row of a live or removed secret, audited as secret.purge with the count", async (t) => {
      const s = await factory(t);
      for (let i = 0; i < 3; i++) await put(s, "app/leaked");
      await put(s, "app/removed");
      await put(s, "app/removed");
      await s.remove("app/removed", "jwt:alice", null);
      const kept = await put(s, "app/leaked2");

      assert.deepEqual(await s.purge("app/leaked", "jwt:alice", { requestId: "req-9" }), { versions: 3, version: 3 });
      assert.equal(await s.readCurrent("app/leaked"), undefined);
      for (const v of [1, 2, 3]) assert.equal(await s.readVersion("app/leaked", v), undefined);
      assert.equal(await s.state("app/leaked"), undefined);
      assert.equal(await s.versions("app/leaked"), undefined);
      assert.deepEqual((await s.list("app/")).map((i) => i.name), ["app/leaked2"], "a name it is a prefix of is untouched");
      assertStored(await s.readCurrent("app/leaked2"), "app/leaked2", 1, kept.sealed, "token:0123456789abcdef");
      const [record] = (await s.auditLog()).slice(-1);
      assert.deepEqual(
        [record?.actor, record?.action, record?.name, record?.version, record?.detail],
        ["jwt:alice", "secret.purge", "app/leaked", null, { versions: 3, requestId: "req-9" }],
      );

      assert.deepEqual(await s.purge("app/removed", "jwt:alice", null), { versions: 2, version: 2 });
      assert.equal(await s.versions("app/removed"), undefined);
      assert.ok((await s.verifyAudit()).ok);

      // The name is free again: a write starts at v1.
      const again = await put(s, "app/leaked", { ifVersion: 0 });
      assert.equal(again.version, 1);
      assert.deepEqual((await s.versions("app/leaked"))?.map((v) => [v.version, v.current]), [[1, true]]);
    });

    test("purge of a name never written, or purged already, returns undefined and audits nothing", async (t) => {
      const s = await factory(t);
      assert.equal(await s.purge("never", "jwt:alice", null), undefined);
      await put(s, "once");
      assert.deepEqual(await s.purge("once", "jwt:alice", null), { versions: 1, version: 1 });
      const before = await lastSeq(s);
      assert.equal(await s.purge("once", "jwt:alice", null), undefined);
      assert.equal(await lastSeq(s), before);
      await assert.rejects(s.purge("x", "", null), TypeError);
    });

    test("list: by prefix, sorted by name, deleted excluded, LIKE wildcards are plain characters", async (t) => {
      const s = await factory(t);
      for (const n of ["b/2", "a/1", "b/1", "c", "b", "a_b", "axb", "b/1/x", "bz"]) await put(s, n);
      await s.remove("b/2", "jwt:alice", null);
      assert.deepEqual((await s.list("")).map((i) => i.name), ["a/1", "a_b", "axb", "b", "b/1", "b/1/x", "bz", "c"]);
      assert.deepEqual((await s.list("b/")).map((i) => i.name), ["b/1", "b/1/x"]);
      assert.deepEqual((await s.list("b")).map((i) => i.name), ["b", "b/1", "b/1/x", "bz"]);
      assert.deepEqual((await s.list("a_")).map((i) => i.name), ["a_b"]);
      assert.deepEqual((await s.list("%")).map((i) => i.name), []);
      assert.deepEqual((await s.list("zzz")).map((i) => i.name), []);
      const [info] = await s.list("c");
      assert.deepEqual(Object.keys(info!).sort(), ["createdAt", "createdBy", "description", "name", "updatedAt", "updatedBy", "version"]);
    });

    tokenTest("tokens: create, find by hash, list newest first, revoke once", async (t) => {
      const s = await factory(t);
      const older = token({ name: "deploy", roles: ["reader", "writer"], createdAt: "2026-01-01T00:00:00.000Z" });
      const newer = token({ name: "ci", createdAt: "2026-02-01T00:00:00.000Z", expiresAt: "2026-03-01T00:00:00.000Z" });
      await s.createToken(older, "token:admin", null);
      await s.createToken(newer, "token:admin", null);
      assertToken(await s.findToken(older.hash), older);
      assertToken(await s.findToken(newer.hash), newer);
      assert.equal(await s.findToken(randomBytes(32)), undefined);
      const listed = await s.listTokens();
      assert.deepEqual(listed.map((k) => k.id), [newer.id, older.id]);
      assertToken(listed[1], older);

      assert.equal(await s.revokeToken(older.id, "token:admin", null), true);
      const revoked = await s.findToken(older.hash);
      assert.match(revoked?.revokedAt ?? "", ISO);
      assert.equal(await s.revokeToken(older.id, "token:admin", null), false);
      assert.equal(await s.revokeToken("ffffffffffffffff", "token:admin", null), false);
      assert.equal((await s.findToken(newer.hash))?.revokedAt, null);
    });

    tokenTest("createToken refuses a duplicate id or hash with E_CONFLICT and audits nothing", async (t) => {
      const s = await factory(t);
      const k = token();
      await s.createToken(k, "token:admin", null);
      const before = await lastSeq(s);
      await assert.rejects(s.createToken(token({ id: k.id }), "token:admin", null), { code: "E_CONFLICT" });
      await assert.rejects(s.createToken(token({ hash: Buffer.from(k.hash) }), "token:admin", null), { code: "E_CONFLICT" });
      assert.equal(await lastSeq(s), before);
      assert.deepEqual((await s.listTokens()).map((x) => x.id), [k.id]);
    });

    test("appendAudit: one batch lands in order with consecutive seqs and extends the chain", async (t) => {
      const s = await factory(t);
      await put(s, "x");
      const before = await lastSeq(s);
      assert.deepEqual(await s.appendAudit([]), []);
      const at = "2026-05-01T12:00:00.000Z";
      const records = await s.appendAudit([
        { actor: "token:a", action: "secret.read", name: "x", version: 1, detail: { result: "ok", requestId: "r1" } },
        { at, actor: "token:b", action: "secret.read", name: "y", version: null, detail: { result: "denied" } },
        { actor: "anonymous", action: "secret.list", name: null, version: null, detail: null },
      ]);
      assert.deepEqual(records.map((r) => [r.seq, r.actor, r.action, r.name, r.version]), [
        [before + 1, "token:a", "secret.read", "x", 1],
        [before + 2, "token:b", "secret.read", "y", null],
        [before + 3, "anonymous", "secret.list", null, null],
      ]);
      assert.equal(records[1]?.at, at);
      assert.match(records[0]!.at, ISO);
      assert.deepEqual(records[0]?.detail, { result: "ok", requestId: "r1" });
      for (const r of records) assert.match(r.hash, /^[0-9a-f]{64}$/);
      assert.deepEqual(await s.auditLog({ afterSeq: before }), records);
      const verified = await s.verifyAudit();
      assert.equal(verified.ok, true);
      assert.equal(verified.records, before + 3);
    });

    test("verifyAudit reads the chain in pages and yields after every full page", async (t) => {
      const s = await factory(t);
      await s.appendAudit(Array.from({ length: 23 }, (_, i) => ({ actor: "token:a", action: "secret.read", name: `p${i}`, version: 1, detail: null })));
      const total = await lastSeq(s);
      const seen: number[] = [];
      let immediates = 0;
      const verified = await s.verifyAudit({
        pageSize: 5,
        onPage: (records) => {
          seen.push(records);
          // The storage yields after this hook: a setImmediate queued here runs before the next page.
          setImmediate(() => immediates++);
        },
      });
      assert.deepEqual(verified, { ok: true, records: total });
      assert.deepEqual(seen, Array.from({ length: Math.floor(total / 5) }, (_, i) => (i + 1) * 5));
      assert.equal(immediates, seen.length, "the event loop ran between every two pages");
      await assert.rejects(s.verifyAudit({ pageSize: 0 }), TypeError);
    });

    test("verifyAudit from a checkpoint checks the records after it; a cut or rewritten checkpoint record fails", async (t) => {
      const s = await factory(t);
      await s.appendAudit(Array.from({ length: 8 }, (_, i) => ({ actor: "token:a", action: "secret.read", name: `c${i}`, version: 1, detail: null })));
      const total = await lastSeq(s);
      const [head] = await s.auditLog({ afterSeq: total - 1, limit: 1 });
      await s.appendAudit([{ actor: "token:a", action: "secret.read", name: "after", version: 1, detail: null }]);
      let pages = 0;
      const resumed = await s.verifyAudit({ from: { records: total, hash: head!.hash }, pageSize: 1, onPage: () => void pages++ });
      assert.deepEqual(resumed, { ok: true, records: total + 1 });
      assert.equal(pages, 1, "one record after the checkpoint: one full page of 1, then an empty one");
      assert.deepEqual(await s.verifyAudit({ from: { records: total, hash: "0".repeat(64) } }), {
        ok: false, records: 0, brokenAt: total, reason: `record ${total} is not the one verified before: the chain was rewritten`,
      });
      assert.deepEqual(await s.verifyAudit({ from: { records: total + 50, hash: head!.hash } }), {
        ok: false, records: 0, brokenAt: total + 50, reason: `record ${total + 50}, verified before, is missing: the chain was cut`,
      });
      assert.deepEqual(await s.verifyAudit({ from: { records: 0, hash: "" } }), { ok: true, records: total + 1 }, "no checkpoint: from the first record");
    });

    tokenTest("findTokenById finds a token by its public id, revoked ones too", async (t) => {
      const s = await factory(t);
      const token: StoredToken = {
        id: "0f1e2d3c4b5a6978", name: "by-id", hash: randomBytes(32), roles: ["reader"],
        createdAt: new Date().toISOString(), createdBy: "token:a", expiresAt: null, revokedAt: null,
      };
      await s.createToken(token, "token:a", null);
      assert.equal((await s.findTokenById(token.id))?.name, "by-id");
      assert.equal(await s.findTokenById("ffffffffffffffff"), undefined);
      assert.equal(await s.revokeToken(token.id, "token:a", null), true);
      assert.notEqual((await s.findTokenById(token.id))?.revokedAt, null);
    });

    test("setMeta replaces a value; setMetaIfAbsent keeps the first", async (t) => {
      const s = await factory(t);
      assert.equal(await s.setMetaIfAbsent("conformance_key", "one"), "one");
      await s.setMeta("conformance_key", "two");
      assert.equal(await s.getMeta("conformance_key"), "two");
      assert.equal(await s.setMetaIfAbsent("conformance_key", "three"), "two");
      await s.setMeta("conformance_new", "x");
      assert.equal(await s.getMeta("conformance_new"), "x");
    });

    test("appendAudit: concurrent batches each land whole and keep the chain", async (t) => {
      const s = await factory(t);
      const batches = await Promise.all(
        Array.from({ length: 5 }, (_, b) =>
          s.appendAudit(Array.from({ length: 4 }, (_, i) => ({ actor: `token:${b}`, action: "secret.read", name: `n${i}`, version: 1, detail: null }))),
        ),
      );
      for (const batch of batches) {
        const seqs = batch.map((r) => r.seq);
        assert.deepEqual(seqs, [seqs[0]!, seqs[0]! + 1, seqs[0]! + 2, seqs[0]! + 3]);
      }
      assert.equal(new Set(batches.flat().map((r) => r.seq)).size, 20);
      assert.equal((await s.verifyAudit()).ok, true);
    });

    test("audit details are stored as JSON reads them back, so the chain verifies", async (t) => {
      const s = await factory(t);
      const [record] = await s.appendAudit([
        { actor: "token:a", action: "secret.read", name: "x", version: 1, detail: { when: new Date("2026-01-02T03:04:05.000Z"), gone: undefined, n: 1 } },
      ]);
      assert.deepEqual(record?.detail, { when: "2026-01-02T03:04:05.000Z", n: 1 });
      assert.deepEqual((await s.auditLog({ afterSeq: record!.seq - 1 }))[0], record);
      assert.equal((await s.verifyAudit()).ok, true);
    });

    test("auditLog: oldest first, since, afterSeq and limit", async (t) => {
      const s = await factory(t);
      const base = await lastSeq(s);
      const times = ["2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z", "2026-01-03T00:00:00.000Z", "2026-01-04T00:00:00.000Z"];
      await s.appendAudit(times.map((at, i) => ({ at, actor: "token:a", action: "secret.read", name: `s${i}`, version: 1, detail: null })));
      const mine = (records: AuditRecord[]) => records.filter((r) => r.seq > base).map((r) => r.name);
      assert.deepEqual(mine(await s.auditLog()), ["s0", "s1", "s2", "s3"]);
      assert.deepEqual(mine(await s.auditLog({ since: new Date("2026-01-02T00:00:00.000Z") })), ["s1", "s2", "s3"]);
      assert.deepEqual(mine(await s.auditLog({ since: new Date("2026-01-02T12:00:00.000Z") })), ["s2", "s3"]);
      assert.deepEqual(mine(await s.auditLog({ afterSeq: base + 2 })), ["s2", "s3"]);
      assert.deepEqual(mine(await s.auditLog({ afterSeq: base, limit: 2 })), ["s0", "s1"]);
      assert.deepEqual(mine(await s.auditLog({ afterSeq: base + 1, limit: 2 })), ["s1", "s2"]);
      assert.deepEqual(mine(await s.auditLog({ since: new Date("2026-01-02T00:00:00.000Z"), afterSeq: base + 2, limit: 1 })), ["s2"]);
      assert.deepEqual(await s.auditLog({ afterSeq: base, limit: 0 }), []);
      assert.deepEqual(await s.auditLog({ afterSeq: base + 4 }), []);
    });

    test("write records its action: secret.write by default, or the one asked for (the server's rollback)", async (t) => {
      const s = await factory(t);
      const first = await put(s, "rb/one", { actor: "token:a" });
      const second = await put(s, "rb/one", { actor: "token:a", action: "secret.rollback", auditDetail: { from: 1 } });
      assert.deepEqual([first.audit.action, second.audit.action, second.audit.version, second.audit.detail], ["secret.write", "secret.rollback", 2, { from: 1 }]);
      assert.deepEqual((await s.auditLog({ afterSeq: first.audit.seq })).map((r) => r.action), ["secret.rollback"]);
    });

    test("auditLog: filters by actor, action and name prefix (a name prefix, not a LIKE pattern), with paging", async (t) => {
      const s = await factory(t);
      const base = await lastSeq(s);
      const rows: [string, string, string | null][] = [
        ["token:a", "secret.read", "app/db"], ["token:b", "secret.read", "app/db"], ["token:a", "secret.write", "app/x"],
        ["token:a", "secret.read", "app2/y"], ["token:a", "token.list", null], ["token:a", "secret.read", "app_/z"], ["token:a", "secret.read", "app/é"],
      ];
      await s.appendAudit(rows.map(([actor, action, name]) => ({ actor, action, name, version: null, detail: null })));
      const seqs = (records: AuditRecord[]) => records.filter((r) => r.seq > base).map((r) => r.seq - base);
      assert.deepEqual(seqs(await s.auditLog({ actor: "token:b" })), [2]);
      assert.deepEqual(seqs(await s.auditLog({ action: "secret.read", actor: "token:a" })), [1, 4, 6, 7]);
      assert.deepEqual(seqs(await s.auditLog({ namePrefix: "app/" })), [1, 2, 3, 7]);
      assert.deepEqual(seqs(await s.auditLog({ namePrefix: "app_" })), [6], "_ is not a wildcard");
      assert.deepEqual(seqs(await s.auditLog({ namePrefix: "app/é" })), [7], "counted in code points");
      assert.deepEqual(seqs(await s.auditLog({ namePrefix: "app/", action: "secret.read", afterSeq: base, limit: 2 })), [1, 2]);
      assert.deepEqual(seqs(await s.auditLog({ namePrefix: "app/", action: "secret.read", afterSeq: base + 2, limit: 2 })), [7]);
      assert.deepEqual(seqs(await s.auditLog({ namePrefix: "" , afterSeq: base })), [1, 2, 3, 4, 5, 6, 7], "an empty prefix filters nothing");
      await assert.rejects(s.auditLog({ actor: 1 as unknown as string }), { code: "E_INVALID_VALUE" });
    });

    tokenTest("every change method appends exactly its own record, and the chain verifies", async (t) => {
      const s = await factory(t);
      const expectOne = async (before: number, expected: Omit<AuditRecord, "seq" | "at" | "hash">): Promise<AuditRecord> => {
        const records = await s.auditLog({ afterSeq: before });
        assert.equal(records.length, 1, `one record for ${expected.action}`);
        const { seq, at, hash, ...rest } = records[0]!;
        assert.equal(seq, before + 1);
        assert.match(at, ISO);
        assert.match(hash, /^[0-9a-f]{64}$/);
        assert.deepEqual(rest, expected);
        return records[0]!;
      };

      let before = await lastSeq(s);
      const w = await s.write(request("db/pw", { actor: "jwt:alice", auditDetail: { requestId: "req-1", source: "10.0.0.1" } }).req);
      const logged = await expectOne(before, { actor: "jwt:alice", action: "secret.write", name: "db/pw", version: 1, detail: { requestId: "req-1", source: "10.0.0.1" } });
      assert.deepEqual(w.audit, logged);

      before = await lastSeq(s);
      await s.remove("db/pw", "jwt:bob", { requestId: "req-2" });
      await expectOne(before, { actor: "jwt:bob", action: "secret.delete", name: "db/pw", version: 1, detail: { requestId: "req-2" } });

      before = await lastSeq(s);
      const k = token({ name: "deploy", roles: ["writer"], expiresAt: "2027-01-01T00:00:00.000Z" });
      await s.createToken(k, "token:admin", { requestId: "req-3" });
      await expectOne(before, {
        actor: "token:admin", action: "token.create", name: null, version: null,
        detail: { requestId: "req-3", id: k.id, name: "deploy", roles: ["writer"], expiresAt: "2027-01-01T00:00:00.000Z" },
      });

      before = await lastSeq(s);
      await s.revokeToken(k.id, "token:admin", { requestId: "req-4" });
      await expectOne(before, { actor: "token:admin", action: "token.revoke", name: null, version: null, detail: { requestId: "req-4", id: k.id } });

      before = await lastSeq(s);
      assert.equal(await s.revokeToken(k.id, "token:admin", null), false);
      await s.getMeta("key_check");
      await s.setMetaIfAbsent("key_check", "abc");
      await s.readCurrent("db/pw");
      await s.list("");
      await s.findToken(k.hash);
      assert.deepEqual(await s.auditLog({ afterSeq: before }), [], "reads, meta and refused changes append nothing");

      const verified = await s.verifyAudit();
      assert.deepEqual(verified, { ok: true, records: before });
      assert.ok(!JSON.stringify(await s.auditLog()).includes(bytes(k.hash).toString("hex")), "no token hash in the audit log");
    });

    test("meta: setMetaIfAbsent keeps the first value; getMeta reads it", async (t) => {
      const s = await factory(t);
      assert.equal(await s.getMeta("key_check"), undefined);
      assert.equal(await s.setMetaIfAbsent("key_check", "first"), "first");
      assert.equal(await s.setMetaIfAbsent("key_check", "second"), "first");
      assert.equal(await s.getMeta("key_check"), "first");
      const both = await Promise.all([s.setMetaIfAbsent("race", "a"), s.setMetaIfAbsent("race", "b")]);
      assert.equal(both[0], both[1]);
    });

    test("storeId is 16 bytes, and the driver says which it is", async (t) => {
      const s = await factory(t);
      assert.ok(Buffer.isBuffer(s.storeId));
      assert.equal(s.storeId.length, 16);
      assert.ok(s.driver === "sqlite" || s.driver === "postgres");
      const other = await factory(t);
      assert.ok(!other.storeId.equals(s.storeId), "each new storage gets its own random id");
    });

    test("storeId and everything stored survive a reopen", { skip: options.reopen === undefined && "the driver gave no reopen hook" }, async (t) => {
      const s = await factory(t);
      const id = Buffer.from(s.storeId);
      const w = await put(s, "kept");
      await s.setMetaIfAbsent("key_check", "v");
      const again = await options.reopen!(t, s);
      assert.deepEqual(again.storeId, id);
      assertStored(await again.readCurrent("kept"), "kept", 1, w.sealed, "token:0123456789abcdef");
      assert.equal(await again.getMeta("key_check"), "v");
      assert.equal((await again.verifyAudit()).ok, true);
      assert.equal((await put(again, "kept")).version, 2);
    });

    test("close: later calls reject with E_UNAVAILABLE", async (t) => {
      const s = await factory(t);
      await put(s, "before");
      await s.close();
      await assert.rejects(s.readCurrent("before"), { code: "E_UNAVAILABLE" });
      await assert.rejects(s.write(request("after").req), { code: "E_UNAVAILABLE" });
      await assert.rejects(s.appendAudit([{ actor: "a", action: "secret.read", name: null, version: null, detail: null }]), { code: "E_UNAVAILABLE" });
      await assert.rejects(s.auditLog(), { code: "E_UNAVAILABLE" });
      await s.close();
    });

    // Per-version delete, undelete and destroy; the rotation lock only where there are rotations (a server's).
    versionConformance(factory, { rotations: options.executions !== false, reopen: options.reopen });
    if (options.executions !== false) executionConformance(factory, options.reopen);
    // Roles are server tables too: a local store has none.
    if (options.executions !== false) roleConformance(factory, options.reopen);
  });
}
