/**
 * The conformance cases of runbook executions (issue 13) on the storage seam: what both server
 * drivers must do alike — the history and its pages, changes that apply only from given statuses
 * (of two racing, one wins), the per-runbook concurrency, approvals counted once per principal,
 * output chunks, instance heartbeats — and that each change carries exactly the audit record it
 * was given. Registered by `storageConformance` for drivers with the server's tables.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { AuditRecord } from "../../src/core/audit.ts";
import { newExecutionId } from "../../src/runbooks/executions.ts";
import type { AuditInput, NewExecution, ServerStorage, StoredExecution } from "../../src/storage/types.ts";

/** A UUIDv7 in lower case, strictly increasing within this process: the server's own. */
export const uuid7 = (): string => newExecutionId();

/** A new execution of `runbook` (running on instance i-1 unless told otherwise). */
export function newExecution(runbook: string, overrides: Partial<NewExecution> = {}): NewExecution {
  return {
    id: uuid7(),
    runbook,
    status: "running",
    requestedBy: "token:0123456789abcdef",
    principal: "jwt:alice",
    params: { REGION: "eu-west-1", NOTE: "" },
    approvalsRequired: 0,
    createdAt: new Date().toISOString(),
    expiresAt: null,
    instance: "i-1",
    ...overrides,
  };
}

/** The audit record a server would give for an execution's event. */
export function executionAudit(action: string, runbook: string, detail: Record<string, unknown> | null, actor = "jwt:alice"): AuditInput {
  return { actor, action, name: `runbook:${runbook}`, version: null, detail };
}

/** What a new execution reads back as. */
function expected(e: NewExecution, changes: Partial<StoredExecution> = {}): StoredExecution {
  return {
    id: e.id, runbook: e.runbook, status: e.status, requestedBy: e.requestedBy, principal: e.principal, params: e.params,
    approvalsRequired: e.approvalsRequired, approvals: [], createdAt: e.createdAt,
    startedAt: e.status === "running" ? e.createdAt : null, finishedAt: null, expiresAt: e.expiresAt,
    exitCode: null, signal: null, outputBytes: 0, truncated: false, instance: e.instance, cancelRequested: false,
    ...changes,
  };
}

async function lastSeq(s: ServerStorage): Promise<number> {
  return (await s.auditLog()).at(-1)?.seq ?? 0;
}

/** The records appended after `before`, without seq, time and hash. */
async function appended(s: ServerStorage, before: number): Promise<Omit<AuditRecord, "seq" | "at" | "hash">[]> {
  return (await s.auditLog({ afterSeq: before })).map(({ seq: _s, at: _a, hash: _h, ...rest }) => rest);
}

const conflict = (runbook: string, running: number, concurrency: number) => ({
  code: "E_CONFLICT",
  message: `runbook "${runbook}" already has ${running} execution${running === 1 ? "" : "s"} running (concurrency ${concurrency}); wait for one to finish`,
});

/**
 * Registers the execution cases (inside the driver's `describe`).
 * @param reopen - closes and reopens the same database, when the driver can
 */
export function executionConformance(
  factory: (t: TestContext) => Promise<ServerStorage>,
  reopen?: (t: TestContext, storage: ServerStorage) => Promise<ServerStorage>,
): void {
  test("executions: create running or pending, read back every field with its type; a taken id is E_CONFLICT", async (t) => {
    const s = await factory(t);
    const running = newExecution("cdn-flush", { params: { REGION: "eu", "WEIRD name": "ü\n\"quoted\"" } });
    const created = await s.createExecution(running, executionAudit("runbook.start", "cdn-flush", { id: running.id }));
    assert.deepEqual(created, expected(running));
    assert.deepEqual(await s.getExecution(running.id), created);

    const pending = newExecution("cdn-flush", {
      status: "pending-approval", instance: null, approvalsRequired: 2, expiresAt: new Date(Date.now() + 3_600_000).toISOString(), params: {},
    });
    assert.deepEqual(await s.createExecution(pending, executionAudit("runbook.request", "cdn-flush", null)), expected(pending));

    assert.equal(await s.getExecution(uuid7()), undefined);
    // ids that are no execution's (from a URL, say) find nothing, alike in both drivers
    for (const odd of ["not-an-id", running.id.toUpperCase(), `${running.id}\u0000`, "", "%"]) {
      assert.equal(await s.getExecution(odd), undefined);
      assert.equal(await s.updateExecution(odd, { from: ["running"], status: "failed" }), undefined);
      assert.equal(await s.approveExecution(odd, "jwt:bob", executionAudit("runbook.approve", "cdn-flush", null, "jwt:bob")), undefined);
      assert.deepEqual(await s.readOutput(odd, -1), []);
    }
    await assert.rejects(s.listExecutions({ before: "\u0000", limit: 1 }), TypeError);

    const before = await lastSeq(s);
    await assert.rejects(s.createExecution({ ...running, runbook: "other" }, executionAudit("runbook.start", "other", null)), {
      code: "E_CONFLICT", message: `an execution with id ${running.id} already exists; start it again for a new id`,
    });
    await assert.rejects(s.createExecution({ ...newExecution("x"), id: running.id.toUpperCase() }, executionAudit("runbook.start", "x", null)), TypeError);
    await assert.rejects(s.createExecution(newExecution("x", { params: { N: 1 as unknown as string } }), executionAudit("runbook.start", "x", null)), TypeError);
    await assert.rejects(s.createExecution(newExecution("x"), executionAudit("runbook.start", "x", null), 0), TypeError);
    assert.equal(await lastSeq(s), before, "refused creations audit nothing");
    assert.deepEqual((await s.getExecution(running.id))?.runbook, "cdn-flush");

    if (reopen !== undefined) {
      const again = await reopen(t, s);
      assert.deepEqual(await again.getExecution(running.id), created);
    }
  });

  test("listExecutions: newest first by id, pages with before and limit, filters by runbook, approvals filled", async (t) => {
    const s = await factory(t);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const e = newExecution(i % 2 === 0 ? "a" : "b", { status: "pending-approval", instance: null, approvalsRequired: 1, expiresAt: "2099-01-01T00:00:00.000Z" });
      await s.createExecution(e, executionAudit("runbook.request", e.runbook, null));
      ids.push(e.id);
    }
    await s.approveExecution(ids[2]!, "jwt:bob", executionAudit("runbook.approve", "a", null, "jwt:bob"));
    await s.approveExecution(ids[2]!, "jwt:carol", executionAudit("runbook.approve", "a", null, "jwt:carol"));
    const newest = [...ids].reverse();
    const page = async (o: { runbook?: string; before?: string; limit: number }) => (await s.listExecutions(o)).map((e) => e.id);

    assert.deepEqual(await page({ limit: 100 }), newest);
    assert.deepEqual(await page({ limit: 3 }), newest.slice(0, 3));
    assert.deepEqual(await page({ limit: 3, before: newest[2]! }), newest.slice(3, 6));
    assert.deepEqual(await page({ limit: 3, before: newest[5]! }), newest.slice(6));
    assert.deepEqual(await page({ limit: 3, before: newest[6]! }), []);
    assert.deepEqual(await page({ limit: 0 }), []);
    // before need not be a stored id: any id below it
    assert.deepEqual(await page({ limit: 100, before: "ffffffff-ffff-7fff-bfff-ffffffffffff" }), newest);
    assert.deepEqual(await page({ limit: 100, before: "00000000-0000-7000-8000-000000000000" }), []);

    const a = newest.filter((_, i) => (6 - i) % 2 === 0);
    assert.deepEqual(await page({ runbook: "a", limit: 100 }), a);
    assert.deepEqual(await page({ runbook: "a", limit: 2 }), a.slice(0, 2));
    assert.deepEqual(await page({ runbook: "a", limit: 2, before: a[1]! }), a.slice(2));
    assert.deepEqual(await page({ runbook: "b", limit: 100 }), newest.filter((_, i) => (6 - i) % 2 === 1));
    assert.deepEqual(await page({ runbook: "none", limit: 100 }), []);

    const listed = await s.listExecutions({ limit: 100 });
    assert.deepEqual(listed.find((e) => e.id === ids[2])?.approvals, ["jwt:bob", "jwt:carol"]);
    for (const e of listed) {
      if (e.id !== ids[2]) assert.deepEqual(e.approvals, []);
      assert.deepEqual(e, await s.getExecution(e.id));
    }
  });

  test("updateExecution applies only from the given statuses: of two racing changes one wins, and only it is audited", async (t) => {
    const s = await factory(t);
    const e = newExecution("deploy");
    await s.createExecution(e, executionAudit("runbook.start", "deploy", null));
    const before = await lastSeq(s);
    const finishedAt = new Date().toISOString();
    const results = await Promise.all([
      s.updateExecution(e.id, { from: ["running"], status: "succeeded", finishedAt, exitCode: 0 }, executionAudit("runbook.finish", "deploy", { status: "succeeded" })),
      s.updateExecution(e.id, { from: ["running"], status: "cancelled", finishedAt, signal: "SIGTERM" }, executionAudit("runbook.finish", "deploy", { status: "cancelled" })),
    ]);
    const won = results.filter((r) => r !== undefined);
    assert.equal(won.length, 1, "exactly one of the racing changes applied");
    const winner = won[0]!;
    assert.deepEqual(await s.getExecution(e.id), winner);
    assert.deepEqual(await appended(s, before), [
      { actor: "jwt:alice", action: "runbook.finish", name: "runbook:deploy", version: null, detail: { status: winner.status } },
    ]);

    const after = await lastSeq(s);
    assert.equal(await s.updateExecution(e.id, { from: ["running", "pending-approval"], status: "interrupted" }, executionAudit("runbook.finish", "deploy", null)), undefined);
    assert.equal(await s.updateExecution(uuid7(), { from: ["running"], status: "failed" }, executionAudit("runbook.finish", "deploy", null)), undefined);
    assert.equal(await lastSeq(s), after, "changes that did not apply audit nothing");
    assert.deepEqual(await s.getExecution(e.id), winner);
    await assert.rejects(s.updateExecution(e.id, { from: [], status: "failed" }), TypeError);
    await assert.rejects(s.updateExecution(e.id, { from: ["running"], status: "done" as never }), TypeError);
  });

  test("updateExecution sets each field it is given, with its type, and leaves the others", async (t) => {
    const s = await factory(t);
    const e = newExecution("deploy");
    await s.createExecution(e, executionAudit("runbook.start", "deploy", null));
    const before = await lastSeq(s);
    const cancel = await s.updateExecution(e.id, { from: ["running"], cancelRequested: true });
    assert.deepEqual(cancel, expected(e, { cancelRequested: true }));
    assert.equal(await lastSeq(s), before, "a change without an audit record appends none");
    const finishedAt = new Date(Date.now() + 1000).toISOString();
    const done = await s.updateExecution(e.id, {
      from: ["running"], status: "timed-out", finishedAt, exitCode: 124, signal: "SIGKILL", outputBytes: 3_000_000_000, truncated: true, instance: "i-2",
    });
    assert.deepEqual(done, expected(e, {
      status: "timed-out", finishedAt, exitCode: 124, signal: "SIGKILL", outputBytes: 3_000_000_000, truncated: true, instance: "i-2", cancelRequested: true,
    }));
    const back = await s.updateExecution(e.id, { from: ["timed-out"], exitCode: null, signal: null, truncated: false, cancelRequested: false });
    assert.deepEqual(back, expected(e, { status: "timed-out", finishedAt, outputBytes: 3_000_000_000, instance: "i-2" }));
    assert.deepEqual(await s.updateExecution(e.id, { from: ["timed-out"] }), back, "an empty change applies and changes nothing");
  });

  test("concurrency: a running execution beyond its runbook's concurrency is refused with E_CONFLICT, creating or starting", async (t) => {
    const s = await factory(t);
    const first = newExecution("flush");
    await s.createExecution(first, executionAudit("runbook.start", "flush", null), 1);
    const before = await lastSeq(s);
    const second = newExecution("flush");
    await assert.rejects(s.createExecution(second, executionAudit("runbook.start", "flush", null), 1), conflict("flush", 1, 1));
    assert.equal(await s.getExecution(second.id), undefined);
    assert.equal(await lastSeq(s), before, "a refused start audits nothing");
    // another runbook, more room, or no limit: not refused
    await s.createExecution(newExecution("other"), executionAudit("runbook.start", "other", null), 1);
    await s.createExecution(second, executionAudit("runbook.start", "flush", null), 2);
    await assert.rejects(s.createExecution(newExecution("flush"), executionAudit("runbook.start", "flush", null), 2), conflict("flush", 2, 2));
    await s.createExecution(newExecution("flush"), executionAudit("runbook.start", "flush", null));

    // pending executions do not count, and start only when there is room
    const pending = newExecution("flush", { status: "pending-approval", instance: null, approvalsRequired: 1, expiresAt: "2099-01-01T00:00:00.000Z" });
    await s.createExecution(pending, executionAudit("runbook.request", "flush", null), 1);
    const start = { from: ["pending-approval"] as const, status: "running" as const, startedAt: new Date().toISOString(), instance: "i-1", concurrency: 3 };
    const mark = await lastSeq(s);
    await assert.rejects(s.updateExecution(pending.id, start, executionAudit("runbook.start", "flush", null)), conflict("flush", 3, 3));
    assert.equal((await s.getExecution(pending.id))?.status, "pending-approval");
    assert.equal(await lastSeq(s), mark);
    // a change that would not apply anyway is not refused
    assert.equal(await s.updateExecution(pending.id, { ...start, from: ["running"] }), undefined);
    for (const e of await s.runningExecutions()) {
      if (e.runbook === "flush") await s.updateExecution(e.id, { from: ["running"], status: "succeeded", finishedAt: new Date().toISOString(), exitCode: 0 });
    }
    const started = await s.updateExecution(pending.id, { ...start, concurrency: 1 }, executionAudit("runbook.start", "flush", null));
    assert.equal(started?.status, "running");
    assert.equal(started?.startedAt, start.startedAt);
    // the running execution itself is not counted against its own start
    assert.equal((await s.updateExecution(pending.id, { from: ["running"], status: "running", concurrency: 1 }))?.status, "running");
  });

  test("concurrency: parallel starts of a runbook with concurrency 1: exactly one runs", async (t) => {
    const s = await factory(t);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => s.createExecution(newExecution("solo"), executionAudit("runbook.start", "solo", null), 1)));
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) if (r.status === "rejected") assert.equal((r.reason as { code?: string }).code, "E_CONFLICT", String(r.reason));
    assert.equal((await s.runningExecutions()).length, 1);
    assert.equal((await s.verifyAudit()).ok, true);
  });

  test("approveExecution: each principal counts once, only while pending, audited only when added", async (t) => {
    const s = await factory(t);
    const e = newExecution("rotate", { status: "pending-approval", instance: null, approvalsRequired: 2, expiresAt: "2099-01-01T00:00:00.000Z" });
    await s.createExecution(e, executionAudit("runbook.request", "rotate", null));
    let before = await lastSeq(s);
    const bob = await s.approveExecution(e.id, "jwt:bob", executionAudit("runbook.approve", "rotate", { by: "bob" }, "jwt:bob"));
    assert.deepEqual(bob, { added: true, execution: expected(e, { approvals: ["jwt:bob"] }) });
    assert.deepEqual(await appended(s, before), [{ actor: "jwt:bob", action: "runbook.approve", name: "runbook:rotate", version: null, detail: { by: "bob" } }]);

    before = await lastSeq(s);
    const again = await Promise.all(Array.from({ length: 4 }, () => s.approveExecution(e.id, "jwt:bob", executionAudit("runbook.approve", "rotate", null, "jwt:bob"))));
    for (const r of again) assert.deepEqual(r, { added: false, execution: expected(e, { approvals: ["jwt:bob"] }) });
    assert.equal(await lastSeq(s), before, "a repeated approval audits nothing");

    const carol = await Promise.all(Array.from({ length: 4 }, () => s.approveExecution(e.id, "cert:carol", executionAudit("runbook.approve", "rotate", null, "cert:carol"))));
    assert.equal(carol.filter((r) => r?.added).length, 1, "of parallel approvals by one principal, one is added");
    assert.deepEqual((await s.getExecution(e.id))?.approvals, ["jwt:bob", "cert:carol"]);
    assert.equal((await appended(s, before)).length, 1);

    await s.updateExecution(e.id, { from: ["pending-approval"], status: "running", startedAt: new Date().toISOString(), instance: "i-1" });
    before = await lastSeq(s);
    assert.equal(await s.approveExecution(e.id, "jwt:dave", executionAudit("runbook.approve", "rotate", null, "jwt:dave")), undefined);
    assert.equal(await s.approveExecution(uuid7(), "jwt:dave", executionAudit("runbook.approve", "rotate", null, "jwt:dave")), undefined);
    assert.equal(await lastSeq(s), before);
    assert.deepEqual((await s.getExecution(e.id))?.approvals, ["jwt:bob", "cert:carol"]);
  });

  test("output: chunks append and read back in order from any point; outputBytes and truncated follow; no audit", async (t) => {
    const s = await factory(t);
    const e = newExecution("logs");
    const other = newExecution("logs");
    await s.createExecution(e, executionAudit("runbook.start", "logs", null));
    await s.createExecution(other, executionAudit("runbook.start", "logs", null));
    const before = await lastSeq(s);
    const chunks = [Buffer.from("hello\n"), Buffer.from([0, 255, 10, 13]), randomBytes(70_000), Buffer.from("ü ***\n"), Buffer.alloc(1)];
    let bytes = 0;
    for (const [seq, chunk] of chunks.entries()) {
      bytes += chunk.length;
      await s.appendOutput(e.id, seq, new Uint8Array(chunk), bytes, seq === chunks.length - 1);
    }
    await s.appendOutput(other.id, 0, Buffer.from("other"), 5, false);
    const all = await s.readOutput(e.id, -1);
    assert.deepEqual(all.map((c) => c.seq), [0, 1, 2, 3, 4]);
    for (const c of all) {
      assert.ok(Buffer.isBuffer(c.data));
      assert.deepEqual(c.data, chunks[c.seq]);
    }
    assert.deepEqual((await s.readOutput(e.id, 1)).map((c) => c.seq), [2, 3, 4]);
    assert.deepEqual((await s.readOutput(e.id, 1, 2)).map((c) => c.seq), [2, 3]);
    assert.deepEqual(await s.readOutput(e.id, 4), []);
    assert.deepEqual(await s.readOutput(uuid7(), -1), []);
    assert.deepEqual((await s.readOutput(other.id, -1)).map((c) => c.data.toString()), ["other"]);
    const got = await s.getExecution(e.id);
    assert.equal(got?.outputBytes, bytes);
    assert.equal(got?.truncated, true);

    await assert.rejects(s.appendOutput(e.id, 2, Buffer.from("again"), bytes + 5, true), { code: "E_CONFLICT" });
    await assert.rejects(s.appendOutput(uuid7(), 0, Buffer.from("x"), 1, false), { code: "E_NOT_FOUND" });
    assert.deepEqual((await s.readOutput(e.id, 1, 1))[0]?.data, chunks[2], "a refused chunk changes nothing");
    assert.equal((await s.getExecution(e.id))?.outputBytes, bytes);
    assert.equal(await lastSeq(s), before, "output is not audited");
  });

  test("instances: heartbeat inserts then updates; instances lists them; retireInstance removes one", async (t) => {
    const s = await factory(t);
    const t0 = "2026-03-01T10:00:00.000Z";
    const before = await lastSeq(s);
    await s.heartbeat({ id: "i-1", host: "web-1", pid: 4242, startedAt: t0, heartbeatAt: t0 });
    await s.heartbeat({ id: "i-2", host: "web-2", pid: 7, startedAt: t0, heartbeatAt: t0 });
    await s.heartbeat({ id: "i-1", host: "web-1", pid: 4242, startedAt: t0, heartbeatAt: "2026-03-01T10:00:05.000Z" });
    assert.deepEqual(await s.instances(), [
      { id: "i-1", host: "web-1", pid: 4242, startedAt: t0, heartbeatAt: "2026-03-01T10:00:05.000Z" },
      { id: "i-2", host: "web-2", pid: 7, startedAt: t0, heartbeatAt: t0 },
    ]);
    await s.retireInstance("i-1");
    await s.retireInstance("never");
    assert.deepEqual((await s.instances()).map((i) => i.id), ["i-2"]);
    assert.equal(await lastSeq(s), before, "heartbeats are not audited");
  });

  test("runningExecutions and expiredExecutions: what runs (per instance) and what waited for approval too long", async (t) => {
    const s = await factory(t);
    const now = new Date();
    const past = new Date(now.getTime() - 1000).toISOString();
    const future = new Date(now.getTime() + 3_600_000).toISOString();
    const a1 = newExecution("r", { instance: "i-1" });
    const b1 = newExecution("r", { instance: "i-2" });
    const a2 = newExecution("q", { instance: "i-1" });
    const done = newExecution("r", { instance: "i-1" });
    const stale = newExecution("r", { status: "pending-approval", instance: null, approvalsRequired: 1, expiresAt: past });
    const fresh = newExecution("r", { status: "pending-approval", instance: null, approvalsRequired: 1, expiresAt: future });
    for (const e of [a1, b1, a2, done, stale, fresh]) await s.createExecution(e, executionAudit("runbook.start", e.runbook, null));
    await s.updateExecution(done.id, { from: ["running"], status: "failed", exitCode: 1 });
    assert.deepEqual((await s.runningExecutions()).map((e) => e.id), [a1.id, b1.id, a2.id]);
    assert.deepEqual((await s.runningExecutions("i-1")).map((e) => e.id), [a1.id, a2.id]);
    assert.deepEqual(await s.runningExecutions("i-9"), []);
    assert.deepEqual(await s.expiredExecutions(now.toISOString()), [expected(stale)]);
    assert.deepEqual((await s.expiredExecutions(new Date(now.getTime() + 7_200_000).toISOString())).map((e) => e.id), [stale.id, fresh.id]);
    assert.deepEqual(await s.expiredExecutions(past), [], "strictly before now");
  });

  test("execution audit: create, update and approve append exactly the record given, nothing else; the chain verifies", async (t) => {
    const s = await factory(t);
    const detail = { runbook: "cdn", params: { REGION: "eu" }, requestId: "req-1" };
    let before = await lastSeq(s);
    const e = newExecution("cdn", { status: "pending-approval", instance: null, approvalsRequired: 1, expiresAt: "2099-01-01T00:00:00.000Z" });
    await s.createExecution(e, { ...executionAudit("runbook.request", "cdn", detail), at: e.createdAt });
    const [created] = await s.auditLog({ afterSeq: before });
    assert.equal(created?.at, e.createdAt);
    assert.deepEqual(await appended(s, before), [{ actor: "jwt:alice", action: "runbook.request", name: "runbook:cdn", version: null, detail }]);

    before = await lastSeq(s);
    await s.approveExecution(e.id, "jwt:bob", executionAudit("runbook.approve", "cdn", { id: e.id }, "jwt:bob"));
    assert.deepEqual(await appended(s, before), [{ actor: "jwt:bob", action: "runbook.approve", name: "runbook:cdn", version: null, detail: { id: e.id } }]);

    before = await lastSeq(s);
    await s.updateExecution(e.id, { from: ["pending-approval"], status: "running", startedAt: new Date().toISOString(), instance: "i-1" },
      executionAudit("runbook.start", "cdn", { id: e.id, status: "running" }, "jwt:bob"));
    assert.deepEqual(await appended(s, before), [
      { actor: "jwt:bob", action: "runbook.start", name: "runbook:cdn", version: null, detail: { id: e.id, status: "running" } },
    ]);

    before = await lastSeq(s);
    await s.appendOutput(e.id, 0, Buffer.from("out"), 3, false);
    await s.heartbeat({ id: "i-1", host: "h", pid: 1, startedAt: e.createdAt, heartbeatAt: e.createdAt });
    await s.getExecution(e.id);
    await s.listExecutions({ limit: 10 });
    await s.readOutput(e.id, -1);
    await s.runningExecutions();
    await s.expiredExecutions(new Date().toISOString());
    await s.instances();
    await s.retireInstance("i-1");
    assert.equal(await s.updateExecution(e.id, { from: ["pending-approval"], status: "expired" }, executionAudit("runbook.expire", "cdn", null)), undefined);
    assert.equal(await s.approveExecution(e.id, "jwt:carol", executionAudit("runbook.approve", "cdn", null, "jwt:carol")), undefined);
    assert.deepEqual(await s.auditLog({ afterSeq: before }), [], "output, heartbeats, reads and changes that did not apply append nothing");

    // a bad audit record refuses the change before anything is stored
    const bad = newExecution("cdn");
    await assert.rejects(s.createExecution(bad, { ...executionAudit("runbook.start", "cdn", null), action: "" }), TypeError);
    assert.equal(await s.getExecution(bad.id), undefined);
    assert.deepEqual(await s.verifyAudit(), { ok: true, records: before });
  });
}
