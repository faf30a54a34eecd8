/**
 * The storage operations, written once for both dialects (docs/design.md §7): each is a generator
 * that yields its SQL statements (in SQLite's form: `?` placeholders, table names unprefixed) and
 * receives their results, so the SQLite driver runs it synchronously (`sqlite.ts`, under the
 * local store's synchronous `get`) and the PostgreSQL driver asynchronously (`postgres.ts`, which
 * numbers the placeholders and prefixes the tables `coffer_`). The caller runs an operation that
 * changes something inside one transaction, so a change and its audit record land together.
 *
 * What differs between the dialects is in {@link Dialect}; everything else — the checks, the
 * version rule, the one audit append — is here once.
 */
import { CofferError } from "../errors.ts";
import { assertVersion } from "../core/names.ts";
import { chainHash, GENESIS_HASH, recordFromRow, type AuditRecord, type AuditRow } from "../core/audit.ts";
import {
  AUDIT_COLUMNS, checkActor, checkAuditInput, checkAuditLogOptions, checkBeat, checkExecutionChange, checkExecutionId, checkListExecutions,
  checkNewExecution, checkOutputChunk, checkReadOutput, checkSealed, checkToken, checkWriteRequest, normalizeDetail, type SecretRow,
} from "./checks.ts";
import type {
  AuditInput, ExecutionChange, ExecutionStatus, InstanceBeat, NewExecution, SealedValue, ServerStorage, StoredExecution, StoredToken, StoredVersion,
  StoredVersionInfo, WriteRequest,
} from "./types.ts";

/** One statement for the driver to run: `get` gives the first row, `all` every row, `run` the rows changed. */
export interface Query {
  sql: string;
  params: unknown[];
  mode: "get" | "all" | "run";
  /** rows as arrays (in the columns' order) rather than objects */
  arrays?: boolean;
}

/** An operation: yields queries, receives each one's result, returns its own. */
export type Op<T> = Generator<Query, T, unknown>;

/** What differs between the dialects (and between a local store and a server). */
export interface Dialect {
  /** a local store's `secrets` has `rotation_s` */
  rotation: boolean;
  /** appended to the read of a secret's row in a write: PostgreSQL locks it (`FOR UPDATE`) */
  forUpdate: string;
  /** taken before the chain's tail is read (PostgreSQL's advisory lock), or none */
  auditLock: string | null;
  /**
   * locks one runbook to the commit (its one parameter: the runbook's name), so the executions it
   * has running are counted race-free (PostgreSQL's advisory lock); none where transactions are
   * serialised anyway (SQLite's `BEGIN IMMEDIATE`)
   */
  runbookLock: string | null;
  /** audit records per INSERT */
  auditChunk: number;
  /** the tie-break of tokens created at the same time, newest first */
  tokenOrder: string;
  /** LIMIT's "no limit" */
  noLimit: number | null;
  /** the largest version the `version` column holds */
  maxVersion: number;
}

/** A write of the SQLite driver: the seam's, plus what only a local store records. */
export interface OpWriteRequest extends WriteRequest {
  /** rotation period in seconds (a local store's `secrets.rotation_s`) */
  rotationSeconds?: number;
  /** the audit action (default `secret.write`; a local store writes `set`, `rollback`) */
  action?: string;
}

function* get<R>(sql: string, ...params: unknown[]): Op<R | undefined> {
  return (yield { sql, params, mode: "get" }) as R | undefined;
}
function* all<R>(sql: string, ...params: unknown[]): Op<R[]> {
  return (yield { sql, params, mode: "all" }) as R[];
}
function* run(sql: string, ...params: unknown[]): Op<number> {
  return Number(yield { sql, params, mode: "run" });
}

const TOKEN_COLUMNS = "id, name, hash, roles, created_at, created_by, expires_at, revoked_at";
// A token row as an array, in TOKEN_COLUMNS order (the hash as the driver reads bytes).
type TokenRow = readonly [string, string, Uint8Array, string, string, string, string | null, string | null];
function tokenFromRow(r: TokenRow): StoredToken {
  return {
    id: r[0], name: r[1], hash: r[2], roles: JSON.parse(r[3]) as string[],
    createdAt: r[4], createdBy: r[5], expiresAt: r[6], revokedAt: r[7],
  };
}

/**
 * The smallest string greater than every string that starts with `prefix` in code point order,
 * or null when there is none. Code point order is UTF-8 byte order, which is how both drivers
 * compare names: SQLite's BINARY collation, and PostgreSQL's `COLLATE "C"` on UTF-8.
 */
function prefixEnd(prefix: string): string | null {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = cps.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      cps.push(String.fromCodePoint(next));
      return cps.join("");
    }
  }
  return null;
}

export function* getMeta(key: string): Op<string | undefined> {
  return (yield* get<{ value: string }>("SELECT value FROM meta WHERE key = ?", key))?.value;
}

/** Sets `key` (with `ifAbsent`, only when unset); returns the value now stored. */
export function* setMeta(key: string, value: string, ifAbsent: boolean): Op<string> {
  if (typeof key !== "string" || typeof value !== "string") throw new TypeError("meta keys and values are strings");
  const action = ifAbsent ? "NOTHING" : "UPDATE SET value = excluded.value";
  yield* run(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO ${action}`, key, value);
  // A statement of its own: after waiting for a concurrent insert of the same key, this read
  // (a new snapshot in PostgreSQL) sees the value that won.
  return (yield* getMeta(key))!;
}

type VersionRow = SealedValue & { version: number; created_at: string; created_by: string; removed_at: string | null };
const VERSION = "SELECT version, nonce, ciphertext, created_at, created_by, removed_at FROM versions WHERE name = ?";
function stored(name: string, r: VersionRow | undefined): StoredVersion | undefined {
  return r && { name, version: r.version, nonce: r.nonce, ciphertext: r.ciphertext, createdAt: r.created_at, createdBy: r.created_by };
}

export function* readCurrent(name: string): Op<StoredVersion | undefined> {
  const row = yield* get<VersionRow>(`${VERSION} ORDER BY version DESC LIMIT 1`, name);
  return row?.removed_at === null ? stored(name, row) : undefined;
}

export function* readVersion(d: Dialect, name: string, version: number): Op<StoredVersion | undefined> {
  assertVersion(version);
  return version > d.maxVersion ? undefined : stored(name, yield* get<VersionRow>(`${VERSION} AND version = ?`, name, version));
}

export function* state(name: string): Op<{ latest: number; deletedAt: string | null } | undefined> {
  const row = yield* get<{ latest: number; deleted_at: string | null }>("SELECT latest, deleted_at FROM secrets WHERE name = ?", name);
  return row === undefined ? undefined : { latest: row.latest, deletedAt: row.deleted_at };
}

/**
 * {@link ServerStorage.write}. Race-free across PostgreSQL instances: the secret's row is locked,
 * and the first writer of a new name claims it (a concurrent claimer waits for it, finds nothing
 * claimed and goes round again to lock the row it made), so of two writers with the same
 * `ifVersion` one wins and the other gets E_CONFLICT, and versions have no gaps.
 */
export function* write(d: Dialect, request: OpWriteRequest): Op<{ version: number; audit: AuditRecord }> {
  const { name, actor, ifVersion, description, detail } = checkWriteRequest(request);
  const rotation = d.rotation ? [request.rotationSeconds ?? null] : [];
  const sql = writeSql(d);
  for (;;) {
    const row = yield* get<{ latest: number }>(sql.read, name);
    const latest = row?.latest ?? 0;
    if (ifVersion !== undefined && ifVersion !== latest) {
      throw new CofferError("E_CONFLICT", `secret "${name}" is at version ${latest}, not ${ifVersion}: someone else wrote it; read it again and retry`);
    }
    const version = latest + 1;
    const now = new Date().toISOString();
    const claimed = row !== undefined || (yield* run(sql.claim, name, description, ...rotation, now, actor, now, actor)) > 0;
    if (!claimed) continue;
    const sealed = checkSealed(request.seal(version));
    yield* run(INSERT_VERSION, name, version, sealed.nonce, sealed.ciphertext, now, actor);
    if (row !== undefined) yield* run(sql.update, version, description, ...rotation, now, actor, name);
    const [audit] = yield* appendAudit(d, [{ at: now, actor, action: request.action ?? "secret.write", name, version, detail }]);
    return { version, audit: audit! };
  }
}

const INSERT_VERSION = "INSERT INTO versions (name, version, nonce, ciphertext, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)";

// A write's statements, built once per dialect: the drivers cache prepared statements by their
// text, and a string used again hashes once (the hot path of setMany and PUT).
const writeSqlCache = new WeakMap<Dialect, Record<"read" | "claim" | "update", string>>();
function writeSql(d: Dialect): Record<"read" | "claim" | "update", string> {
  const rot = (text: string): string => (d.rotation ? text : "");
  return writeSqlCache.get(d) ?? writeSqlCache.set(d, {
    read: `SELECT latest FROM secrets WHERE name = ?${d.forUpdate}`,
    claim: `INSERT INTO secrets (name, latest, deleted_at, description, ${rot("rotation_s, ")}created_at, created_by, updated_at, updated_by)
       VALUES (?, 1, NULL, ?, ${rot("?, ")}?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
    update: `UPDATE secrets SET latest = ?, deleted_at = NULL, description = coalesce(?, description),
           ${rot("rotation_s = coalesce(?, rotation_s), ")}updated_at = ?, updated_by = ? WHERE name = ?`,
  }).get(d)!;
}

/** Secrets whose names start with `prefix`, sorted by name: live ones, or with `deleted` all. */
export function* list(prefix: string, deleted = false): Op<SecretRow[]> {
  if (typeof prefix !== "string") throw new TypeError("list: prefix must be a string");
  const live = deleted ? "" : " AND deleted_at IS NULL";
  // A range on the primary key (code point order in both dialects): only names with the prefix.
  const end = prefixEnd(prefix);
  return end === null
    ? yield* all<SecretRow>(`SELECT * FROM secrets WHERE name >= ?${live} ORDER BY name`, prefix)
    : yield* all<SecretRow>(`SELECT * FROM secrets WHERE name >= ? AND name < ?${live} ORDER BY name`, prefix, end);
}

export function* versions(name: string): Op<StoredVersionInfo[] | undefined> {
  // One statement, so the secret's state and its versions come from one snapshot.
  const rows = yield* all<{ version: number; created_at: string; created_by: string; latest: number; deleted_at: string | null }>(
    `SELECT v.version, v.created_at, v.created_by, s.latest, s.deleted_at
     FROM secrets s JOIN versions v ON v.name = s.name WHERE s.name = ? ORDER BY v.version`, name,
  );
  return rows.length === 0 ? undefined : rows.map((r) => ({
    version: r.version, createdAt: r.created_at, createdBy: r.created_by, current: r.deleted_at === null && r.version === r.latest,
  }));
}

export function* remove(
  d: Dialect, name: string, actor: string, auditDetail: Record<string, unknown> | null, action = "secret.delete",
): Op<{ version: number } | undefined> {
  checkActor("remove", actor);
  const detail = normalizeDetail(auditDetail);
  const now = new Date().toISOString();
  const row = yield* get<{ latest: number }>(
    "UPDATE secrets SET deleted_at = ?, updated_at = ?, updated_by = ? WHERE name = ? AND deleted_at IS NULL RETURNING latest", now, now, actor, name,
  );
  if (row === undefined) return undefined;
  // Mark the newest version row too, so a read stays one row (see sqlite-schema.ts).
  yield* run("UPDATE versions SET removed_at = ? WHERE name = ? AND version = ?", now, name, row.latest);
  yield* appendAudit(d, [{ at: now, actor, action, name, version: row.latest, detail }]);
  return { version: row.latest };
}

/** @throws CofferError E_CONFLICT when the id or the hash is taken */
export function* createToken(d: Dialect, token: StoredToken, actor: string, auditDetail: Record<string, unknown> | null): Op<void> {
  checkToken(token);
  checkActor("createToken", actor);
  const detail = normalizeDetail({ ...auditDetail, id: token.id, name: token.name, roles: token.roles, expiresAt: token.expiresAt });
  // DO NOTHING covers both the id and the hash: no row means one was taken.
  const inserted = yield* run(
    `INSERT INTO tokens (${TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    token.id, token.name, token.hash, JSON.stringify(token.roles), token.createdAt, token.createdBy, token.expiresAt, token.revokedAt,
  );
  if (inserted === 0) throw new CofferError("E_CONFLICT", `a token with id ${token.id} or the same hash already exists; create a new token`);
  yield* appendAudit(d, [{ actor, action: "token.create", name: null, version: null, detail }]);
}

export function* findToken(by: { hash: Uint8Array } | { id: string }): Op<StoredToken | undefined> {
  if ("hash" in by && !(by.hash instanceof Uint8Array)) throw new TypeError("findToken: hash must be bytes");
  if ("id" in by && typeof by.id !== "string") throw new TypeError("findTokenById: id must be a string");
  const [column, value] = "hash" in by ? ["hash", by.hash] : ["id", by.id];
  const row = (yield { sql: `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE ${column} = ?`, params: [value], mode: "get", arrays: true }) as TokenRow | undefined;
  return row === undefined ? undefined : tokenFromRow(row);
}

export function* listTokens(d: Dialect): Op<StoredToken[]> {
  const rows = (yield { sql: `SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, ${d.tokenOrder} DESC`, params: [], mode: "all", arrays: true }) as TokenRow[];
  return rows.map(tokenFromRow);
}

export function* revokeToken(d: Dialect, id: string, actor: string, auditDetail: Record<string, unknown> | null): Op<boolean> {
  checkActor("revokeToken", actor);
  const detail = normalizeDetail({ ...auditDetail, id });
  const now = new Date().toISOString();
  if ((yield* run("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", now, id)) === 0) return false;
  yield* appendAudit(d, [{ at: now, actor, action: "token.revoke", name: null, version: null, detail }]);
  return true;
}

/**
 * The one audit append: records after the chain's tail, read inside the transaction (under
 * PostgreSQL's audit lock, held to the commit: appends from all instances are serialised, seqs
 * have no gaps, each record chains to the one before). Row locks come before the audit lock,
 * so the two never deadlock.
 */
export function* appendAudit(d: Dialect, entries: readonly AuditInput[]): Op<AuditRecord[]> {
  const now = new Date().toISOString();
  const checked = entries.map((e) => checkAuditInput(e, now, d.maxVersion));
  if (checked.length === 0) return [];
  if (d.auditLock !== null) yield* get(d.auditLock);
  const tail = yield* get<{ seq: number | string; hash: Uint8Array }>("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
  let seq = Number(tail?.seq ?? 0);
  let prev: Uint8Array = tail?.hash ?? GENESIS_HASH;
  const out: AuditRecord[] = [];
  for (let start = 0; start < checked.length; start += d.auditChunk) {
    const chunk = checked.slice(start, start + d.auditChunk);
    const values: unknown[] = [];
    for (const entry of chunk) {
      const record = { seq: ++seq, ...entry };
      const hash = chainHash(prev, record);
      prev = hash;
      values.push(record.seq, record.at, record.actor, record.action, record.name, record.version, record.detail === null ? null : JSON.stringify(record.detail), hash);
      out.push({ ...record, hash: hash.toString("hex") });
    }
    yield* run(auditInsert(chunk.length), ...values);
  }
  return out;
}

// The INSERT of n audit records, built once per n (n is at most a dialect's auditChunk).
const auditInserts: string[] = [];
function auditInsert(n: number): string {
  return (auditInserts[n] ??= `INSERT INTO audit (${AUDIT_COLUMNS}) VALUES ${Array(n).fill("(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`);
}

export function* auditLog(d: Dialect, options: { since?: Date; afterSeq?: number; limit?: number } = {}): Op<AuditRecord[]> {
  checkAuditLogOptions(options);
  const rows = yield* all<AuditRow>(
    `SELECT ${AUDIT_COLUMNS} FROM audit WHERE seq > ? AND at >= ? ORDER BY seq LIMIT ?`,
    options.afterSeq ?? 0, options.since?.toISOString() ?? "", options.limit ?? d.noLimit,
  );
  return rows.map((r) => recordFromRow({ ...r, seq: Number(r.seq) }));
}

// ---- runbook executions (issue 13) ----

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
  checkExecutionId("getExecution", id);
  return (yield* selectAll("id = ?", "ASC", id))[0];
}

/** {@link ServerStorage.listExecutions}: newest first, a page below `before`. */
export function* listExecutions(options: { runbook?: string; before?: string; limit: number }): Op<StoredExecution[]> {
  checkListExecutions(options);
  const where: string[] = [];
  const params: unknown[] = [];
  if (options.runbook !== undefined) where.push("runbook = ?"), params.push(options.runbook);
  if (options.before !== undefined) where.push("id < ?"), params.push(options.before);
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
  if (typeof now !== "string" || Number.isNaN(Date.parse(now))) throw new TypeError("expiredExecutions: now must be an ISO 8601 UTC time");
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
  checkExecutionId("updateExecution", id);
  checkExecutionChange(change);
  if (audit !== undefined) checkAuditInput(audit, new Date().toISOString(), d.maxVersion);
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
  checkExecutionId("approveExecution", id);
  checkActor("approveExecution", principal);
  const now = new Date().toISOString();
  const { at } = checkAuditInput(audit, now, d.maxVersion);
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
  checkReadOutput(id, afterSeq, limit);
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
