/**
 * The execution manager of one instance (src/runbooks/executions.ts) over a real SQLite server
 * database: what a sweep ends (pending executions past their hour, running ones of instances that
 * are gone), ids that page in time order, and approvals from the requester's own principal.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { ensurePrivateDir } from "../../src/core/fs-secure.ts";
import { createSqliteStorage, openSqliteStorage } from "../../src/storage/sqlite-async.ts";
import type { ServerStorage } from "../../src/storage/types.ts";
import { ExecutionManager, newExecutionId } from "../../src/runbooks/executions.ts";
import { parseRunbook } from "../../src/runbooks/definition.ts";
import { newExecution, executionAudit } from "../storage/conformance-executions.ts";

async function setup(t: TestContext): Promise<{ storage: ServerStorage; manager: ExecutionManager }> {
  const dir = join(tempDir(t, "coffer-exec-manager-"), "data");
  ensurePrivateDir(dir);
  await createSqliteStorage(join(dir, "coffer.db"));
  const storage = await openSqliteStorage(join(dir, "coffer.db"));
  // The manager asks the storage whether a secret is there; its value comes from readSecret below.
  await storage.write({ name: "short/one", actor: "test", auditDetail: null, seal: () => ({ nonce: randomBytes(12), ciphertext: randomBytes(19) }) });
  const values = new Map([["short/one", Buffer.from("abc")]]);
  const manager = new ExecutionManager({
    storage,
    readSecret: async (name) => (values.has(name) ? Buffer.from(values.get(name)!) : undefined),
    baseDir: join(tempDir(t, "coffer-exec-base-"), "base"),
    hide: [dir],
  });
  t.after(async () => {
    await manager.close();
    await storage.close();
  });
  return { storage, manager };
}

const requester = (principal: string) => ({ subject: principal, principal, detail: { result: "ok" } });

test("a sweep ends pending executions past their hour as expired, and leaves younger ones pending", async (t) => {
  const { storage, manager } = await setup(t);
  const old = newExecution("deploy", { status: "pending-approval", approvalsRequired: 1, instance: null, expiresAt: new Date(Date.now() - 1000).toISOString() });
  const young = newExecution("deploy", { status: "pending-approval", approvalsRequired: 1, instance: null, expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
  for (const e of [old, young]) await storage.createExecution(e, executionAudit("runbook.run", "deploy", { status: e.status }));
  await manager.sweep();
  assert.equal((await storage.getExecution(old.id))?.status, "expired");
  assert.equal((await storage.getExecution(young.id))?.status, "pending-approval");
});

test("a sweep ends as interrupted what a silent instance, or a dead process of this host, left running; a live one's runs on", async (t) => {
  const { storage, manager } = await setup(t);
  const long = new Date(Date.now() - 60_000).toISOString();
  const now = new Date().toISOString();
  await storage.heartbeat({ id: "silent", host: "elsewhere", pid: 1, startedAt: long, heartbeatAt: long });
  await storage.heartbeat({ id: "dead-here", host: hostname(), pid: 2 ** 22 + 12345, startedAt: now, heartbeatAt: now });
  await storage.heartbeat({ id: "alive", host: "elsewhere", pid: 1, startedAt: now, heartbeatAt: now });
  const rows = ["silent", "dead-here", "alive"].map((instance) => newExecution("deploy", { instance }));
  for (const e of rows) await storage.createExecution(e, executionAudit("runbook.run", "deploy", { status: "running" }));
  await manager.sweep();
  assert.deepEqual(await Promise.all(rows.map(async (e) => (await storage.getExecution(e.id))?.status)), ["interrupted", "interrupted", "running"]);
  assert.deepEqual((await storage.instances()).map((i) => i.id).sort(), ["alive"]);
});

test("execution ids made in one millisecond still sort in the order they were made", () => {
  const now = Date.now();
  const ids = Array.from({ length: 100 }, () => newExecutionId(now));
  assert.deepEqual([...ids].sort(), ids);
  assert.match(ids[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test("a secret too short to mask is named in the output (never its value), so the reader knows it shows", async (t) => {
  const { storage, manager } = await setup(t);
  const runbook = parseRunbook("short", "short.yml", "description: short\nrun: echo \"v=$PIN\"\nsecrets:\n  PIN: short/one\n");
  const e = await manager.request(runbook, {}, requester("jwt:alice"));
  const deadline = Date.now() + 30_000;
  while ((await storage.getExecution(e.id))?.status === "running") {
    assert.ok(Date.now() < deadline, "the execution never ended");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const out = Buffer.concat((await storage.readOutput(e.id, -1)).map((c) => c.data)).toString("utf8");
  assert.match(out, /^coffer: PIN: shorter than 4 bytes, so not masked in this output\n/);
});

test("the requester's own principal cannot approve, whatever subject it comes as", async (t) => {
  const { manager } = await setup(t);
  const runbook = parseRunbook("guarded", "guarded.yml", "description: guarded\napprovals: 1\nrun: \"true\"\n");
  const e = await manager.request(runbook, {}, requester("jwt:alice"));
  assert.equal(e.status, "pending-approval");
  await assert.rejects(manager.approve(e.id, runbook, { subject: "token:00000000000000aa", principal: "jwt:alice", detail: {} }), { code: "E_DENIED" });
});

test("values given with a request are refused under a name the runbook sets, or one that changes how programs run", async (t) => {
  const { storage, manager } = await setup(t);
  const runbook = parseRunbook("extra", "extra.yml", "description: extra\nrun: \"true\"\nsecrets:\n  PIN: short/one\n");
  for (const env of ["PIN", "LD_PRELOAD", "COFFER_X", "1BAD"]) {
    await assert.rejects(manager.request(runbook, {}, requester("rotation"), { extraSecrets: { [env]: Buffer.from("value-1234") } }), { code: "E_INVALID_VALUE" });
  }
  await assert.rejects(manager.request(runbook, {}, requester("rotation"), { extraSecrets: { NEW_VALUE: Buffer.from("a\0b") } }), { code: "E_INVALID_VALUE", message: /NUL/ });
  assert.deepEqual(await storage.listExecutions({ runbook: "extra", limit: 10 }), [], "nothing was recorded");
});
