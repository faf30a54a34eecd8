/**
 * The storage operations of runbook executions (issue 13), written once for both dialects as
 * `ops.ts`'s are (generators yielding SQL in SQLite's form): the history, changes that apply only
 * from given statuses, the per-runbook concurrency count under {@link Dialect.runbookLock},
 * approvals, output chunks and instance heartbeats. A change appends exactly the audit record
 * its caller gave, through the one audit append, in the same transaction.
 */
import { CofferError } from "../errors.ts";
import {
  checkActor, checkAuditInput, checkBeat, checkExecutionChange, checkListExecutions, checkNewExecution, checkOutputChunk,
  checkReadOutput, checkTime, isExecutionId,
} from "./checks.ts";
import { all, appendAudit, get, run, type Dialect, type Op } from "./ops.ts";
import type { AuditInput, ExecutionChange, ExecutionStatus, InstanceBeat, NewExecution, ServerStorage, StoredExecution } from "./types.ts";

// An execution's row with one of its approvers (null when it has none): one row per approval.
interface ExecutionRow {
  id: string;
  runbook: string;
  status: string;
  requested_by: string;
  principal: string;
  params: string;
  approvals_required: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  expires_at: string | null;
  exit_code: number | null;
  signal: string | null;
  /** a BIGINT: PostgreSQL gives it as a string */
  output_bytes: number | string;
  truncated: number;
  instance: string | null;
  cancel_requested: number;
  approver: string | null;
}

const EXECUTION_COLUMNS = [
  "id", "runbook", "status", "requested_by", "principal", "params", "approvals_required", "created_at", "started_at", "finished_at",
  "expires_at", "exit_code", "signal", "output_bytes", "truncated", "instance", "cancel_requested",
].map((c) => `e.${c}`).join(", ");

// The executions `where` selects (ordered by id, at most `limit` when `limited`), each with its
// approvals: one statement, so an execution and its approvals come from one snapshot.
const executionSelects = new Map<string, string>();
function selectExecutions(where: string, order: "ASC" | "DESC", limited: boolean): string {
  const key = `${where}|${order}|${limited}`;
  let sql = executionSelects.get(key);
  if (sql === undefined) {
    sql = `SELECT ${EXECUTION_COLUMNS}, a.principal AS approver
       FROM (SELECT * FROM executions${where === "" ? "" : ` WHERE ${where}`}${limited ? ` ORDER BY id ${order} LIMIT ?` : ""}) e
       LEFT JOIN execution_approvals a ON a.execution_id = e.id ORDER BY e.id ${order}, a.at, a.principal`;
    executionSelects.set(key, sql);
  }
  return sql;
}

// Rows of selectExecutions as executions, approvals gathered (an execution's rows are adjacent).
function executionsFromRows(rows: readonly ExecutionRow[]): StoredExecution[] {
  const out: StoredExecution[] = [];
  for (const r of rows) {
    const last = out.at(-1);
    if (last?.id === r.id) {
      if (r.approver !== null) last.approvals.push(r.approver);
      continue;
    }
    out.push({
      id: r.id, runbook: r.runbook, status: r.status as ExecutionStatus, requestedBy: r.requested_by, principal: r.principal,
      params: JSON.parse(r.params) as Record<string, string>, approvalsRequired: Number(r.approvals_required),
      approvals: r.approver === null ? [] : [r.approver],
      createdAt: r.created_at, startedAt: r.started_at, finishedAt: r.finished_at, expiresAt: r.expires_at,
      exitCode: r.exit_code === null ? null : Number(r.exit_code), signal: r.signal,
      outputBytes: Number(r.output_bytes), truncated: Number(r.truncated) === 1,
      instance: r.instance, cancelRequested: Number(r.cancel_requested) === 1,
    });
  }
  return out;
}

function* selectAll(where: string, order: "ASC" | "DESC", ...params: unknown[]): Op<StoredExecution[]> {
  return executionsFromRows(yield* all<ExecutionRow>(selectExecutions(where, order, false), ...params));
}

/** {@link ServerStorage.getExecution} */
export function* getExecution(id: string): Op<StoredExecution | undefined> {
  if (!isExecutionId("getExecution", id)) return undefined;
  return (yield* selectAll("id = ?", "ASC", id))[0];
}

/** {@link ServerStorage.listExecutions}: newest first, a page below `before`. */
export function* listExecutions(options: { runbook?: string; before?: string; limit: number }): Op<StoredExecution[]> {
  checkListExecutions(options);
  const where: string[] = [];
  const params: unknown[] = [];
  if (options.runbook !== undefined) {
    where.push("runbook = ?");
    params.push(options.runbook);
  }
  if (options.before !== undefined) {
    where.push("id < ?");
    params.push(options.before);
  }
  return executionsFromRows(yield* all<ExecutionRow>(selectExecutions(where.join(" AND "), "DESC", true), ...params, options.limit));
}

/** {@link ServerStorage.runningExecutions}, oldest first. */
export function* runningExecutions(instance?: string): Op<StoredExecution[]> {
  if (instance !== undefined && typeof instance !== "string") throw new TypeError("runningExecutions: instance must be a string");
  return instance === undefined
    ? yield* selectAll("status = 'running'", "ASC")
    : yield* selectAll("status = 'running' AND instance = ?", "ASC", instance);
}

/** {@link ServerStorage.expiredExecutions}, oldest first. */
export function* expiredExecutions(now: string): Op<StoredExecution[]> {
  // compared as text with expires_at: the same exact form, or the comparison would mislead
  checkTime("expiredExecutions", "now", now);
  return yield* selectAll("status = 'pending-approval' AND expires_at < ?", "ASC", now);
}

// Locks `runbook` to the commit (see Dialect.runbookLock).
function* lockRunbook(d: Dialect, runbook: string): Op<void> {
  if (d.runbookLock !== null) yield* get(d.runbookLock, runbook);
}

/**
 * Refuses (E_CONFLICT) when `concurrency` executions of `runbook` other than `id` are running.
 * Called under the runbook's lock (held to the commit): of two transactions taking its last slot,
 * the second counts after the first committed.
 */
function* refuseFull(runbook: string, id: string, concurrency: number): Op<void> {
  const row = yield* get<{ n: number | string }>("SELECT count(*) AS n FROM executions WHERE runbook = ? AND status = 'running' AND id <> ?", runbook, id);
  const running = Number(row?.n ?? 0);
  if (running >= concurrency) {
    throw new CofferError(
      "E_CONFLICT",
      `runbook "${runbook}" already has ${running} execution${running === 1 ? "" : "s"} running (concurrency ${concurrency}); wait for one to finish`,
    );
  }
}

/**
 * {@link ServerStorage.createExecution}
 * @throws CofferError E_CONFLICT when its runbook's concurrency is full or the id is taken
 */
export function* createExecution(d: Dialect, e: NewExecution, audit: AuditInput, concurrency?: number): Op<StoredExecution> {
  checkNewExecution(e, concurrency);
  checkAuditInput(audit, e.createdAt, d.maxVersion);
  if (e.status === "running" && concurrency !== undefined) {
    yield* lockRunbook(d, e.runbook);
    yield* refuseFull(e.runbook, e.id, concurrency);
  }
  const inserted = yield* run(
    `INSERT INTO executions (id, runbook, status, requested_by, principal, params, approvals_required, created_at, started_at, expires_at, instance)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    e.id, e.runbook, e.status, e.requestedBy, e.principal, JSON.stringify(e.params), e.approvalsRequired, e.createdAt,
    e.status === "running" ? e.createdAt : null, e.expiresAt, e.instance,
  );
  if (inserted === 0) throw new CofferError("E_CONFLICT", `an execution with id ${e.id} already exists; start it again for a new id`);
  yield* appendAudit(d, [audit]);
  return (yield* getExecution(e.id))!;
}

// ExecutionChange's fields → their columns, and how a value is stored.
const CHANGE_COLUMNS: readonly [keyof ExecutionChange, string, (v: never) => unknown][] = [
  ["status", "status", (v: string) => v],
  ["startedAt", "started_at", (v: string) => v],
  ["finishedAt", "finished_at", (v: string) => v],
  ["exitCode", "exit_code", (v: number | null) => v],
  ["signal", "signal", (v: string | null) => v],
  ["outputBytes", "output_bytes", (v: number) => v],
  ["truncated", "truncated", (v: boolean) => (v ? 1 : 0)],
  ["instance", "instance", (v: string) => v],
  ["cancelRequested", "cancel_requested", (v: boolean) => (v ? 1 : 0)],
];

/**
 * {@link ServerStorage.updateExecution}: one conditional UPDATE (of two racing changes, the
 * second finds the status changed and changes nothing), its audit record only when it applied.
 * @throws CofferError E_CONFLICT when it would start the execution and its runbook's concurrency is full
 */
export function* updateExecution(d: Dialect, id: string, change: ExecutionChange, audit?: AuditInput): Op<StoredExecution | undefined> {
  checkExecutionChange(change);
  if (audit !== undefined) checkAuditInput(audit, new Date().toISOString(), d.maxVersion);
  if (!isExecutionId("updateExecution", id)) return undefined;
  if (change.concurrency !== undefined && change.status === "running") {
    const found = yield* get<{ runbook: string }>("SELECT runbook FROM executions WHERE id = ?", id);
    if (found === undefined) return undefined;
    yield* lockRunbook(d, found.runbook);
    // Its status read again under the lock: a change that will not apply is not refused.
    const now = yield* get<{ status: ExecutionStatus }>("SELECT status FROM executions WHERE id = ?", id);
    if (now === undefined || !change.from.includes(now.status)) return undefined;
    yield* refuseFull(found.runbook, id, change.concurrency);
  }
  const sets: string[] = [];
  const values: unknown[] = [];
  for (const [field, column, store] of CHANGE_COLUMNS) {
    if (change[field] === undefined) continue;
    sets.push(`${column} = ?`);
    values.push(store(change[field] as never));
  }
  if (sets.length === 0) sets.push("status = status");
  const changed = yield* run(
    `UPDATE executions SET ${sets.join(", ")} WHERE id = ? AND status IN (${change.from.map(() => "?").join(", ")})`,
    ...values, id, ...change.from,
  );
  if (changed === 0) return undefined;
  if (audit !== undefined) yield* appendAudit(d, [audit]);
  return yield* getExecution(id);
}

/** {@link ServerStorage.approveExecution} */
export function* approveExecution(
  d: Dialect, id: string, principal: string, audit: AuditInput,
): Op<{ execution: StoredExecution; added: boolean } | undefined> {
  checkActor("approveExecution", principal);
  const { at } = checkAuditInput(audit, new Date().toISOString(), d.maxVersion);
  if (!isExecutionId("approveExecution", id)) return undefined;
  // Locked (PostgreSQL): a change racing this one waits, or this one sees it made.
  const row = yield* get<{ status: string }>(`SELECT status FROM executions WHERE id = ?${d.forUpdate}`, id);
  if (row?.status !== "pending-approval") return undefined;
  const added = (yield* run("INSERT INTO execution_approvals (execution_id, principal, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", id, principal, at)) > 0;
  if (added) yield* appendAudit(d, [audit]);
  return { execution: (yield* getExecution(id))!, added };
}

/**
 * {@link ServerStorage.appendOutput}
 * @throws CofferError E_NOT_FOUND when there is no such execution, E_CONFLICT when chunk `seq` is stored already
 */
export function* appendOutput(id: string, seq: number, data: Uint8Array, outputBytes: number, truncated: boolean): Op<void> {
  checkOutputChunk(id, seq, data, outputBytes, truncated);
  if ((yield* run("UPDATE executions SET output_bytes = ?, truncated = ? WHERE id = ?", outputBytes, truncated ? 1 : 0, id)) === 0) {
    throw new CofferError("E_NOT_FOUND", `no execution ${id}: its output cannot be stored`);
  }
  if ((yield* run("INSERT INTO execution_output (execution_id, seq, data) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", id, seq, data)) === 0) {
    throw new CofferError("E_CONFLICT", `execution ${id} already has output chunk ${seq}`);
  }
}

/** {@link ServerStorage.readOutput} */
export function* readOutput(d: Dialect, id: string, afterSeq: number, limit?: number): Op<{ seq: number; data: Buffer }[]> {
  checkReadOutput(afterSeq, limit);
  if (!isExecutionId("readOutput", id)) return [];
  const rows = yield* all<{ seq: number; data: Uint8Array }>(
    "SELECT seq, data FROM execution_output WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?", id, afterSeq, limit ?? d.noLimit,
  );
  return rows.map((r) => ({ seq: Number(r.seq), data: Buffer.isBuffer(r.data) ? r.data : Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength) }));
}

/** {@link ServerStorage.heartbeat} */
export function* heartbeat(beat: InstanceBeat): Op<void> {
  checkBeat(beat);
  yield* run(
    `INSERT INTO instances (id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET
       host = excluded.host, pid = excluded.pid, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
    beat.id, beat.host, beat.pid, beat.startedAt, beat.heartbeatAt,
  );
}

/** {@link ServerStorage.instances}, by id. */
export function* instances(): Op<InstanceBeat[]> {
  const rows = yield* all<{ id: string; host: string; pid: number; started_at: string; heartbeat_at: string }>(
    "SELECT id, host, pid, started_at, heartbeat_at FROM instances ORDER BY id",
  );
  return rows.map((r) => ({ id: r.id, host: r.host, pid: Number(r.pid), startedAt: r.started_at, heartbeatAt: r.heartbeat_at }));
}

/** {@link ServerStorage.retireInstance} */
export function* retireInstance(id: string): Op<void> {
  if (typeof id !== "string") throw new TypeError("retireInstance: id must be a string");
  yield* run("DELETE FROM instances WHERE id = ?", id);
}
