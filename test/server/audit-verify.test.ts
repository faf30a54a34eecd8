/**
 * `GET /v1/audit/verify`: a page at a time with the event loop free between pages, from a
 * MAC'd checkpoint, one run at a time; and what the checkpoint catches that recomputing cannot.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { FastifyInstance } from "fastify";
import { tempDir } from "../helpers.ts";
import { buildServer } from "../../src/server/app.ts";
import { AUDIT_CHECKPOINT_META, type AuditVerifierOptions } from "../../src/server/audit-verify.ts";
import { parseServerConfig } from "../../src/server/config.ts";
import { readMasterKey } from "../../src/server/keys.ts";
import { initServer, MASTER_KEY_FILE, SQLITE_FILE } from "../../src/server/server.ts";
import { openSqliteStorage } from "../../src/storage/sqlite-async.ts";
import type { ServerStorage } from "../../src/storage/types.ts";
import { chainHash, GENESIS_HASH } from "../../src/core/audit.ts";

interface Setup {
  app: FastifyInstance;
  storage: ServerStorage;
  db: string;
  verifyCalls: () => number;
  verify: (full?: boolean) => Promise<{ ok: boolean; records: number; fromCheckpoint: number; brokenAt?: number; reason?: string }>;
}

async function setup(t: TestContext, options: AuditVerifierOptions = {}): Promise<Setup> {
  const dataDir = join(tempDir(t), "data");
  const config = parseServerConfig("", "none.yml", {}, { listen: "127.0.0.1:0" });
  const { rootToken } = await initServer(dataDir, config);
  const real = await openSqliteStorage(join(dataDir, SQLITE_FILE));
  t.after(() => real.close());
  let calls = 0;
  const storage = new Proxy(real, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop === "verifyAudit") calls++;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const app = await buildServer({ config, storage, masterKey: readMasterKey(join(dataDir, MASTER_KEY_FILE)), logger: false, version: "test", auditVerify: options });
  t.after(() => app.close());
  const verify = async (full = false) => {
    const r = await app.inject({ method: "GET", url: `/v1/audit/verify${full ? "?full=true" : ""}`, headers: { authorization: `Bearer ${rootToken}` } });
    assert.equal(r.statusCode, 200, r.body);
    return JSON.parse(r.body);
  };
  return { app, storage: real, db: join(dataDir, SQLITE_FILE), verifyCalls: () => calls, verify };
}

async function append(storage: ServerStorage, n: number): Promise<void> {
  await storage.appendAudit(Array.from({ length: n }, (_, i) => ({ actor: "token:test", action: "secret.read", name: `app/n${i}`, version: 1, detail: { result: "ok" } })));
}

/** Rewrites record `seq`'s actor and recomputes every hash from it on, as someone with the database file could. */
function rewriteChain(db: string, seq: number): void {
  const d = new DatabaseSync(db);
  try {
    const rows = d.prepare("SELECT seq, at, actor, action, name, version, detail FROM audit ORDER BY seq").all() as {
      seq: number; at: string; actor: string; action: string; name: string | null; version: number | null; detail: string | null;
    }[];
    let prev: Uint8Array = GENESIS_HASH;
    const update = d.prepare("UPDATE audit SET actor = ?, hash = ? WHERE seq = ?");
    for (const r of rows) {
      const actor = r.seq === seq ? "token:someone-else" : r.actor;
      const hash = chainHash(prev, { ...r, actor, detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, unknown>) });
      if (r.seq >= seq) update.run(actor, hash, r.seq);
      prev = hash;
    }
  } finally {
    d.close();
  }
}

test("verifying the audit does not block the server: it yields every page and another request is served mid-verify", async (t) => {
  let pages = 0;
  let healthDuringVerify: Promise<number> | undefined;
  let servedBeforePage5: boolean | undefined;
  let healthDone = false;
  const s = await setup(t, {
    pageSize: 10,
    onPage: () => {
      pages++;
      if (pages === 1) {
        healthDuringVerify = s.app.inject({ method: "GET", url: "/v1/sys/health" }).then((r) => {
          healthDone = true;
          return r.statusCode;
        });
      }
      if (pages === 5) servedBeforePage5 = healthDone;
    },
  });
  await append(s.storage, 95);
  const result = await s.verify(true);
  assert.equal(result.ok, true);
  assert.ok(result.records >= 96, `${result.records} records`);
  assert.equal(pages, Math.floor(result.records / 10), "one yield after every full page of 10");
  assert.equal(await healthDuringVerify, 200);
  assert.equal(servedBeforePage5, true, "the health request was answered while the verification was still running");
});

test("a verify after a checkpoint recomputes only the records appended since", async (t) => {
  let pages = 0;
  const s = await setup(t, { pageSize: 10, onPage: () => void pages++ });
  await append(s.storage, 200);
  const first = await s.verify();
  assert.equal(first.ok, true);
  assert.equal(first.fromCheckpoint, 0, "no checkpoint yet: from the first record");
  assert.ok(pages >= 20);
  pages = 0;
  await append(s.storage, 5);
  const second = await s.verify();
  assert.equal(second.ok, true);
  assert.equal(second.fromCheckpoint, first.records, "from the head the first run verified");
  assert.equal(second.records, first.records + 1 + 5, "the first run's own audit record and the 5 appended");
  assert.equal(pages, 0, "7 new records fit in one page: no full page was read");
  const full = await s.verify(true);
  assert.equal(full.ok, true);
  assert.equal(full.fromCheckpoint, 0, "full=true re-checks everything");
  assert.equal(full.records, second.records + 1);
});

test("rewriting the audit chain and recomputing every hash is caught by the checkpoint", async (t) => {
  const s = await setup(t);
  await append(s.storage, 20);
  assert.equal((await s.verify()).ok, true);
  rewriteChain(s.db, 3);
  for (const full of [false, true]) {
    const r = await s.verify(full);
    assert.equal(r.ok, false, `full=${full}`);
    assert.match(r.reason ?? "", /is not the one verified before: the chain was rewritten/);
  }
});

test("cutting records from the end of the audit chain is caught by the checkpoint", async (t) => {
  const s = await setup(t);
  await append(s.storage, 20);
  const before = await s.verify();
  assert.equal(before.ok, true);
  const d = new DatabaseSync(s.db);
  d.prepare("DELETE FROM audit WHERE seq > ?").run(before.records - 3);
  d.close();
  for (const full of [false, true]) {
    const r = await s.verify(full);
    assert.equal(r.ok, false, `full=${full}`);
    assert.equal(r.brokenAt, before.records);
    assert.match(r.reason ?? "", /missing: the chain was cut/);
  }
});

test("a checkpoint forged in the database is refused; full=true re-checks the chain and replaces it", async (t) => {
  const s = await setup(t);
  await append(s.storage, 10);
  assert.equal((await s.verify()).ok, true);
  const stored = (await s.storage.getMeta(AUDIT_CHECKPOINT_META))!;
  const [count, hash] = stored.split(":");
  // Moving the checkpoint needs the MAC key; a made-up MAC, or one copied from another head, fails.
  for (const forged of [`${count}:${hash}:${"0".repeat(64)}`, `${Number(count) - 1}:${hash}:${stored.split(":")[2]}`, "garbage"]) {
    await s.storage.setMeta(AUDIT_CHECKPOINT_META, forged);
    const r = await s.verify();
    assert.equal(r.ok, false, forged);
    assert.match(r.reason ?? "", /checkpoint does not verify .*\?full=true re-checks the whole chain/);
  }
  const full = await s.verify(true);
  assert.equal(full.ok, true);
  assert.equal((await s.verify()).ok, true, "the checkpoint was replaced by a verified one");
});

test("concurrent verifications share one run", async (t) => {
  let release: (() => void) | undefined;
  const gate = new Promise<void>((r) => (release = r));
  const s = await setup(t, { pageSize: 5, onPage: () => gate });
  await append(s.storage, 30);
  const calls = s.verifyCalls();
  const running = [s.verify(), s.verify(), s.verify()];
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  release!();
  const results = await Promise.all(running);
  for (const r of results) assert.equal(r.ok, true);
  assert.equal(s.verifyCalls() - calls, 1, "three requests, one verification");
  assert.equal(new Set(results.map((r) => r.records)).size, 1);
});
