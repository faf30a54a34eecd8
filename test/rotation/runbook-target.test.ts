/**
 * The runbook apply target (src/rotation/runbook-target.ts) over a real SQLite server database and
 * the real execution manager: OLD_VALUE and NEW_VALUE reach the script and are masked in its
 * stored output, a failing script fails the rotation naming its exit code, a runbook with
 * approvals is refused, and an abort cancels the execution.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { ensurePrivateDir } from "../../src/core/fs-secure.ts";
import { createSqliteStorage, openSqliteStorage } from "../../src/storage/sqlite-async.ts";
import type { ServerStorage } from "../../src/storage/types.ts";
import { ExecutionManager } from "../../src/runbooks/executions.ts";
import { parseRunbook, type Runbook } from "../../src/runbooks/definition.ts";
import type { CatalogEntry } from "../../src/runbooks/catalog.ts";
import type { ApplyContext } from "../../src/rotation/apply.ts";
import { runbookTarget, runbookTargetProblem } from "../../src/rotation/runbook-target.ts";

const OLD = "old-value-4f1c9a77e2";
const NEW = "new-value-b83d0e5c61";

async function setup(t: TestContext, runbooks: Runbook[]): Promise<{ storage: ServerStorage; manager: ExecutionManager; catalog: { get(name: unknown): CatalogEntry | undefined } }> {
  const dir = join(tempDir(t, "coffer-rot-runbook-"), "data");
  ensurePrivateDir(dir);
  await createSqliteStorage(join(dir, "coffer.db"));
  const storage = await openSqliteStorage(join(dir, "coffer.db"));
  const manager = new ExecutionManager({ storage, readSecret: async () => undefined, baseDir: join(tempDir(t, "coffer-rot-base-"), "base"), hide: [dir] });
  t.after(async () => {
    await manager.close();
    await storage.close();
  });
  const entries = new Map(runbooks.map((r) => [r.name, { name: r.name, file: r.file, valid: true as const, runbook: r, warnings: [] }]));
  return { storage, manager, catalog: { get: (name) => (typeof name === "string" ? entries.get(name) : undefined) } };
}

const runbook = (name: string, yaml: string): Runbook => parseRunbook(name, `${name}.yml`, `description: ${name}\n${yaml}`);

function context(over: Partial<ApplyContext> = {}): ApplyContext {
  return {
    name: "app/api-key",
    oldValue: Buffer.from(OLD),
    newValue: Buffer.from(NEW),
    readSecret: async () => assert.fail("a runbook target reads no other secret"),
    signal: new AbortController().signal,
    ...over,
  };
}

async function outputOf(storage: ServerStorage, id: string): Promise<string> {
  return Buffer.concat((await storage.readOutput(id, -1)).map((c) => c.data)).toString("utf8");
}

test("the runbook gets OLD_VALUE and NEW_VALUE, exits 0, and its stored output shows both masked", async (t) => {
  const rb = runbook("swap", 'run: |\n  [ "$NEW_VALUE" != "$OLD_VALUE" ] || exit 9\n  echo "old=$OLD_VALUE new=$NEW_VALUE"\n  printf %s "$NEW_VALUE" | base64\n');
  const { storage, manager, catalog } = await setup(t, [rb]);
  const target = runbookTarget("swap", { catalog, executions: manager });
  assert.equal(target.label, "runbook:swap");
  assert.equal(target.idempotent, false);
  const ctx = context();
  await target.apply(ctx);
  const [e] = await storage.listExecutions({ runbook: "swap", limit: 10 });
  assert.ok(e !== undefined);
  assert.equal(e.status, "succeeded");
  assert.equal(e.requestedBy, "rotation");
  assert.deepEqual(e.params, {}, "the values are not params: nothing of them in the row");
  const out = await outputOf(storage, e.id);
  assert.match(out, /^old=\*\*\* new=\*\*\*\n\*\*\*\n$/);
  assert.ok(!out.includes(OLD) && !out.includes(NEW));
  assert.equal(ctx.newValue.toString(), NEW, "the caller's buffers are left to the caller");
  const audit = await storage.auditLog({ actor: "rotation" });
  assert.deepEqual(audit.map((r) => r.action), ["runbook.run"], "requested by rotation on the audit chain (the finish is the server's)");
  const all = JSON.stringify(await storage.auditLog());
  assert.ok(all.includes('"rotation":"app/api-key"'), "the run's audit record names the secret rotated");
  assert.ok(!all.includes(OLD) && !all.includes(NEW));
});

test("a secret without a value yet gives an empty OLD_VALUE", async (t) => {
  const rb = runbook("first", 'run: |\n  [ -z "$OLD_VALUE" ] && [ -n "$NEW_VALUE" ]\n');
  const { manager, catalog } = await setup(t, [rb]);
  await runbookTarget("first", { catalog, executions: manager }).apply(context({ oldValue: undefined }));
});

test("a runbook that exits 1 fails the rotation with E_ROTATION naming the exit code, and no value", async (t) => {
  const rb = runbook("broken", 'run: |\n  echo "trying $NEW_VALUE"\n  exit 1\n');
  const { storage, manager, catalog } = await setup(t, [rb]);
  const err = await runbookTarget("broken", { catalog, executions: manager }).apply(context()).then(() => assert.fail("it succeeded"), (e: unknown) => e as Error & { code: string });
  assert.equal(err.code, "E_ROTATION");
  assert.match(err.message, /^runbook broken exited 1 \(execution [0-9a-f-]{36}\)$/);
  const [e] = await storage.listExecutions({ runbook: "broken", limit: 10 });
  assert.equal(e?.status, "failed");
  assert.equal(await outputOf(storage, e!.id), "trying ***\n");
});

test("a runbook that times out fails the rotation saying so", async (t) => {
  const rb = runbook("slow", "timeout: 1s\nrun: exec sleep 30\n");
  const { manager, catalog } = await setup(t, [rb]);
  await assert.rejects(runbookTarget("slow", { catalog, executions: manager }).apply(context()), { code: "E_ROTATION", message: /^runbook slow timed out/ });
});

test("a runbook that needs approvals is refused as an apply target, and nothing runs", async (t) => {
  const rb = runbook("guarded", 'approvals: 1\nrun: "true"\n');
  const { storage, manager, catalog } = await setup(t, [rb]);
  assert.match(runbookTargetProblem("guarded", catalog) ?? "", /needs 1 approval/);
  await assert.rejects(runbookTarget("guarded", { catalog, executions: manager }).apply(context()), { code: "E_ROTATION", message: /runbook "guarded" needs 1 approval\(s\), so it cannot apply a rotation/ });
  assert.deepEqual(await storage.listExecutions({ runbook: "guarded", limit: 10 }), []);
  // The manager refuses values on a request that would wait for approvals, whoever asks.
  await assert.rejects(manager.request(rb, {}, { subject: "x", principal: "x", detail: {} }, { extraSecrets: { NEW_VALUE: Buffer.from(NEW) } }), { code: "E_INVALID_VALUE" });
});

test("an unknown runbook, one with a required param, or one that sets NEW_VALUE itself is refused", async (t) => {
  const needs = runbook("needs", "params:\n  HOST:\n    required: true\nrun: \"true\"\n");
  const clash = runbook("clash", "params:\n  NEW_VALUE:\n    default: x\nrun: \"true\"\n");
  const { manager, catalog } = await setup(t, [needs, clash]);
  assert.equal(runbookTargetProblem("gone", catalog), 'no runbook "gone" is loaded on this server');
  await assert.rejects(runbookTarget("gone", { catalog, executions: manager }).apply(context()), { code: "E_ROTATION" });
  assert.match(runbookTargetProblem("needs", catalog) ?? "", /cannot run without params.*HOST/);
  assert.match(runbookTargetProblem("clash", catalog) ?? "", /sets NEW_VALUE itself/);
  assert.throws(() => runbookTarget("../x", { catalog, executions: manager }), { code: "E_INVALID_VALUE" });
});

test("an abort (the server stopping) cancels the running execution and fails the rotation", async (t) => {
  const rb = runbook("long", "run: |\n  echo started\n  exec sleep 30\n");
  const { storage, manager, catalog } = await setup(t, [rb]);
  const abort = new AbortController();
  const applying = runbookTarget("long", { catalog, executions: manager }).apply(context({ signal: abort.signal }));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [e] = await storage.listExecutions({ runbook: "long", limit: 1 });
    if (e !== undefined && (await outputOf(storage, e.id)).includes("started")) break;
    assert.ok(Date.now() < deadline, "the script never started");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const t0 = Date.now();
  abort.abort();
  await assert.rejects(applying, { code: "E_ROTATION", message: /^runbook long was cancelled/ });
  assert.ok(Date.now() - t0 < 10_000, "the cancel stopped the script at once (SIGTERM)");
  const [e] = await storage.listExecutions({ runbook: "long", limit: 1 });
  assert.equal(e?.status, "cancelled");
});
