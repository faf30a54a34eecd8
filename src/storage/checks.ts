/**
 * What the two storage drivers (`sqlite.ts`, `postgres.ts`) share besides `ops.ts`: the checks of
 * what a caller hands in, the migrate rule's refusal, a listed secret's row and the audit chain's
 * paged verification. None of it touches a database, so both drivers refuse the same inputs with
 * the same messages.
 */
import { CofferError } from "../errors.ts";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { ChainVerifier, type AuditRecord, type AuditVerification } from "../core/audit.ts";
import { assertVersion } from "../core/names.ts";
import {
  AUDIT_VERIFY_PAGE, type AuditInput, type AuditVerifyOptions, type ExecutionChange, type ExecutionStatus, type InstanceBeat, type NewExecution,
  type SealedValue, type StoredSecretInfo, type StoredToken, type WriteRequest,
} from "./types.ts";

/**
 * The migrate rule's one refusal, for every dialect (and a backup's snapshot): a database
 * written by a newer coffer is refused rather than misread.
 * @param what - the database, as a message names it (a path, a redacted URL, "the backup")
 * @throws CofferError E_INTEGRITY
 */
export function refuseNewer(found: number, known: number, what: string): void {
  if (found > known) {
    throw new CofferError("E_INTEGRITY", `${what} was written by a newer coffer (schema ${found}, this one knows ${known}); upgrade coffer`);
  }
}

/** The audit table's columns, in the order both drivers select and insert them. */
export const AUDIT_COLUMNS = "seq, at, actor, action, name, version, detail, hash";

/** A `secrets` row (`rotation_s` and `generator` only in a local store). */
export interface SecretRow {
  name: string;
  latest: number;
  deleted_at: string | null;
  description: string | null;
  rotation_s?: number | null;
  /** the JSON of the generator that made the value (`{charset, length}`), or null */
  generator?: string | null;
  created_at: string;
  created_by: string;
  updated_at: string;
  updated_by: string;
}

/** The error of any call on a closed storage. */
export function closedError(): CofferError {
  return new CofferError("E_UNAVAILABLE", "the server's database failed: the storage is closed (the server is shutting down)");
}

/** Throws a TypeError unless `actor` is a non-empty string; `op` names the call in the message. */
export function checkActor(op: string, actor: unknown): asserts actor is string {
  if (typeof actor !== "string" || actor === "") throw new TypeError(`${op}: actor must be a non-empty string`);
}

/**
 * Checks a `write` request (name, actor, ifVersion, audit detail) and gives what the driver
 * uses of it: the description null when absent, the detail normalised.
 */
export function checkWriteRequest(request: WriteRequest) {
  const { name, actor, ifVersion } = request;
  if (typeof name !== "string" || name === "") throw new TypeError("write: name must be a non-empty string");
  checkActor("write", actor);
  if (ifVersion !== undefined) assertVersion(ifVersion, 0);
  return { name, actor, ifVersion, description: request.description ?? null, detail: normalizeDetail(request.auditDetail) };
}

/** What `seal()` returned, checked: a 12-byte nonce and a ciphertext with its 16-byte tag. */
export function checkSealed(sealed: SealedValue): SealedValue {
  if (
    sealed === null || typeof sealed !== "object" ||
    !(sealed.nonce instanceof Uint8Array) || sealed.nonce.length !== 12 ||
    !(sealed.ciphertext instanceof Uint8Array) || sealed.ciphertext.length < 16
  ) {
    throw new TypeError("write: seal() must return a 12-byte nonce and a ciphertext with its 16-byte tag");
  }
  return sealed;
}

/** Whether `s` is an ISO 8601 UTC time exactly as `Date.prototype.toISOString()` writes it. */
function isIsoUtc(s: unknown): s is string {
  if (typeof s !== "string" || s.length !== 24) return false;
  const t = Date.parse(s);
  return !Number.isNaN(t) && new Date(t).toISOString() === s;
}

/**
 * The detail as it will read back from the database: JSON's view of it (a Date becomes a
 * string, undefined disappears), so the hash computed now is the hash verified later.
 */
export function normalizeDetail(detail: Record<string, unknown> | null | undefined): Record<string, unknown> | null {
  if (detail === null || detail === undefined) return null;
  if (typeof detail !== "object" || Array.isArray(detail)) throw new TypeError("an audit detail must be an object or null");
  return JSON.parse(JSON.stringify(detail)) as Record<string, unknown>;
}

/**
 * Checks one entry of an `appendAudit` batch and gives the record to append (without seq and
 * hash): `at` defaults to `now`, the detail is normalised.
 * @param maxVersion - the largest version the driver's column holds
 */
export function checkAuditInput(e: AuditInput, now: string, maxVersion = Number.MAX_SAFE_INTEGER): Omit<AuditRecord, "seq" | "hash"> {
  if (e === null || typeof e !== "object") throw new TypeError("appendAudit: each entry must be an object");
  if (typeof e.actor !== "string" || e.actor === "") throw new TypeError("appendAudit: actor must be a non-empty string");
  if (typeof e.action !== "string" || e.action === "") throw new TypeError("appendAudit: action must be a non-empty string");
  if (e.name !== null && typeof e.name !== "string") throw new TypeError("appendAudit: name must be a string or null");
  if (e.version !== null && !(Number.isSafeInteger(e.version) && e.version >= 0 && e.version <= maxVersion)) {
    throw new TypeError("appendAudit: version must be a whole number ≥ 0 or null");
  }
  if (e.at !== undefined && !isIsoUtc(e.at)) throw new TypeError("appendAudit: at must be an ISO 8601 UTC time as toISOString() writes it");
  return { at: e.at ?? now, actor: e.actor, action: e.action, name: e.name, version: e.version, detail: normalizeDetail(e.detail) };
}

/**
 * Checks the options of `auditLog` (afterSeq, then limit, then since when given).
 * @throws CofferError E_INVALID_VALUE
 */
export function checkAuditLogOptions(options: { since?: Date; afterSeq?: number; beforeSeq?: number; limit?: number; actor?: string; action?: string; namePrefix?: string }): void {
  for (const k of ["actor", "action", "namePrefix"] as const) {
    if (options[k] !== undefined && typeof options[k] !== "string") throw new CofferError("E_INVALID_VALUE", `invalid ${k}: must be a string`);
  }
  const afterSeq = options.afterSeq ?? 0;
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new CofferError("E_INVALID_VALUE", "invalid afterSeq: must be a whole number ≥ 0");
  const beforeSeq = options.beforeSeq ?? 1;
  if (!Number.isSafeInteger(beforeSeq) || beforeSeq < 1) throw new CofferError("E_INVALID_VALUE", "invalid beforeSeq: must be a whole number ≥ 1");
  if (options.limit !== undefined && !(Number.isSafeInteger(options.limit) && options.limit >= 0)) {
    throw new CofferError("E_INVALID_VALUE", "invalid limit: must be a whole number ≥ 0");
  }
  const since = options.since;
  if (since !== undefined && (!(since instanceof Date) || Number.isNaN(since.getTime()))) {
    throw new CofferError("E_INVALID_VALUE", "invalid since: not a valid time");
  }
}

/** Checks a token before it is stored (`createToken`). */
export function checkToken(t: StoredToken): void {
  if (t === null || typeof t !== "object") throw new TypeError("createToken: token must be an object");
  if (typeof t.id !== "string" || !/^[0-9a-f]{16}$/.test(t.id)) throw new TypeError("createToken: id must be 16 lowercase hex characters");
  if (typeof t.name !== "string" || t.name === "") throw new TypeError("createToken: name must be a non-empty string");
  if (!(t.hash instanceof Uint8Array) || t.hash.length !== 32) throw new TypeError("createToken: hash must be 32 bytes (SHA-256)");
  if (!Array.isArray(t.roles) || !t.roles.every((r) => typeof r === "string")) throw new TypeError("createToken: roles must be an array of strings");
  if (!isIsoUtc(t.createdAt)) throw new TypeError("createToken: createdAt must be an ISO 8601 UTC time");
  if (typeof t.createdBy !== "string" || t.createdBy === "") throw new TypeError("createToken: createdBy must be a non-empty string");
  if (t.expiresAt !== null && !isIsoUtc(t.expiresAt)) throw new TypeError("createToken: expiresAt must be an ISO 8601 UTC time or null");
  if (t.revokedAt !== null && !isIsoUtc(t.revokedAt)) throw new TypeError("createToken: revokedAt must be an ISO 8601 UTC time or null");
}

/** A listed secret's row as a {@link StoredSecretInfo}. */
export function secretInfoFromRow(r: SecretRow): StoredSecretInfo {
  const { name, latest: version, description } = r;
  return { name, version, description, createdAt: r.created_at, createdBy: r.created_by, updatedAt: r.updated_at, updatedBy: r.updated_by };
}

/**
 * Verifies the audit chain a page at a time, yielding to the event loop between pages, so a
 * long chain never holds up other requests (both drivers' `verifyAudit`). With `from`, the
 * record at the checkpoint must still carry the checkpoint's hash (else the chain was cut or
 * rewritten below it), and only the records after it are recomputed.
 * @param readPage - records with seq above `afterSeq`, oldest first, at most `limit`
 */
export async function verifyAuditPages(
  readPage: (afterSeq: number, limit: number) => Promise<AuditRecord[]>,
  options: AuditVerifyOptions = {},
): Promise<AuditVerification> {
  const size = options.pageSize ?? AUDIT_VERIFY_PAGE;
  if (!Number.isSafeInteger(size) || size < 1) throw new TypeError("verifyAudit: pageSize must be a positive whole number");
  const from = options.from !== undefined && options.from.records > 0 ? options.from : undefined;
  let after = 0;
  if (from !== undefined) {
    if (!Number.isSafeInteger(from.records) || !/^[0-9a-f]{64}$/.test(from.hash)) throw new TypeError("verifyAudit: from needs a record count and a 64-hex-digit hash");
    const [at] = await readPage(from.records - 1, 1);
    if (at === undefined || at.seq !== from.records) {
      return { ok: false, records: 0, brokenAt: from.records, reason: `record ${from.records}, verified before, is missing: the chain was cut` };
    }
    if (at.hash !== from.hash) {
      return { ok: false, records: 0, brokenAt: from.records, reason: `record ${from.records} is not the one verified before: the chain was rewritten` };
    }
    after = from.records;
  }
  const verifier = new ChainVerifier(from);
  for (;;) {
    const page = await readPage(after, size);
    for (const r of page) {
      const failure = verifier.add(r);
      if (failure !== undefined) return failure;
      after = r.seq;
    }
    if (page.length < size) return verifier.ok;
    await options.onPage?.(verifier.ok.records);
    await yieldToLoop();
  }
}

/** Every {@link ExecutionStatus}. */
const EXECUTION_STATUSES: ReadonlySet<string> = new Set<ExecutionStatus>([
  "pending-approval", "running", "succeeded", "failed", "timed-out", "cancelled", "rejected", "interrupted", "expired",
]);
/** An execution id: a UUID in lower case (ids sort as text: a UUIDv7's order is its time's). */
const EXECUTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Whether `id` is an execution id (a lower-case UUID); a TypeError when it is not a string. A
 * look-up by any other string finds nothing without asking the database (PostgreSQL would refuse
 * a NUL in it).
 */
export function isExecutionId(op: string, id: unknown): boolean {
  if (typeof id !== "string") throw new TypeError(`${op}: id must be a string`);
  return EXECUTION_ID.test(id);
}

/** Throws a TypeError unless `id` is an execution id (a lower-case UUID): for one being stored. */
export function checkExecutionId(op: string, id: unknown): asserts id is string {
  if (!isExecutionId(op, id)) throw new TypeError(`${op}: id must be a UUID in lower case`);
}

function checkStatus(op: string, status: unknown): asserts status is ExecutionStatus {
  if (typeof status !== "string" || !EXECUTION_STATUSES.has(status)) throw new TypeError(`${op}: ${String(status)} is not an execution status`);
}

function checkText(op: string, field: string, v: unknown): void {
  if (typeof v !== "string" || v === "") throw new TypeError(`${op}: ${field} must be a non-empty string`);
}

/** Throws a TypeError unless `v` is an ISO 8601 UTC time as `toISOString()` writes it (or, when `nullable`, null). */
export function checkTime(op: string, field: string, v: unknown, nullable = false): void {
  if (!(nullable && v === null) && !isIsoUtc(v)) throw new TypeError(`${op}: ${field} must be an ISO 8601 UTC time${nullable ? " or null" : ""}`);
}

// PostgreSQL's INTEGER columns (exit_code, pid, seq, approvals_required) hold 32 bits.
const INT32_MAX = 0x7fffffff;

function checkCount(op: string, field: string, v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) throw new TypeError(`${op}: ${field} must be a whole number from ${min} to ${max}`);
}

/** Checks a new execution (`createExecution`) and the concurrency it must fit in. */
export function checkNewExecution(e: NewExecution, concurrency: number | undefined): void {
  const op = "createExecution";
  if (e === null || typeof e !== "object") throw new TypeError(`${op}: execution must be an object`);
  checkExecutionId(op, e.id);
  checkText(op, "runbook", e.runbook);
  if (e.status !== "running" && e.status !== "pending-approval") throw new TypeError(`${op}: status must be running or pending-approval`);
  checkText(op, "requestedBy", e.requestedBy);
  checkText(op, "principal", e.principal);
  if (e.params === null || typeof e.params !== "object" || Array.isArray(e.params) || !Object.values(e.params).every((v) => typeof v === "string")) {
    throw new TypeError(`${op}: params must be an object of strings`);
  }
  checkCount(op, "approvalsRequired", e.approvalsRequired, 0, INT32_MAX);
  checkTime(op, "createdAt", e.createdAt);
  checkTime(op, "expiresAt", e.expiresAt, true);
  if (e.instance !== null) checkText(op, "instance", e.instance);
  if (concurrency !== undefined) checkCount(op, "concurrency", concurrency, 1);
}

/** Checks a change of an execution (`updateExecution`). */
export function checkExecutionChange(c: ExecutionChange): void {
  const op = "updateExecution";
  if (c === null || typeof c !== "object") throw new TypeError(`${op}: change must be an object`);
  if (!Array.isArray(c.from) || c.from.length === 0) throw new TypeError(`${op}: from must list at least one status`);
  for (const s of c.from) checkStatus(op, s);
  if (c.status !== undefined) checkStatus(op, c.status);
  if (c.startedAt !== undefined) checkTime(op, "startedAt", c.startedAt);
  if (c.finishedAt !== undefined) checkTime(op, "finishedAt", c.finishedAt);
  if (c.exitCode !== undefined && c.exitCode !== null) checkCount(op, "exitCode", c.exitCode, -INT32_MAX, INT32_MAX);
  if (c.signal !== undefined && c.signal !== null) checkText(op, "signal", c.signal);
  if (c.outputBytes !== undefined) checkCount(op, "outputBytes", c.outputBytes);
  if (c.truncated !== undefined && typeof c.truncated !== "boolean") throw new TypeError(`${op}: truncated must be a boolean`);
  if (c.instance !== undefined) checkText(op, "instance", c.instance);
  if (c.cancelRequested !== undefined && typeof c.cancelRequested !== "boolean") throw new TypeError(`${op}: cancelRequested must be a boolean`);
  if (c.concurrency !== undefined) checkCount(op, "concurrency", c.concurrency, 1);
}

/** Checks a chunk of output (`appendOutput`). */
export function checkOutputChunk(id: string, seq: number, data: Uint8Array, outputBytes: number, truncated: boolean): void {
  const op = "appendOutput";
  checkExecutionId(op, id);
  checkCount(op, "seq", seq, 0, INT32_MAX);
  if (!(data instanceof Uint8Array)) throw new TypeError(`${op}: data must be bytes`);
  checkCount(op, "outputBytes", outputBytes);
  if (typeof truncated !== "boolean") throw new TypeError(`${op}: truncated must be a boolean`);
}

/** Checks an instance's heartbeat (`heartbeat`). */
export function checkBeat(b: InstanceBeat): void {
  const op = "heartbeat";
  if (b === null || typeof b !== "object") throw new TypeError(`${op}: beat must be an object`);
  checkText(op, "id", b.id);
  if (typeof b.host !== "string") throw new TypeError(`${op}: host must be a string`);
  checkCount(op, "pid", b.pid, 0, INT32_MAX);
  checkTime(op, "startedAt", b.startedAt);
  checkTime(op, "heartbeatAt", b.heartbeatAt);
}

/** Checks the options of `listExecutions`. */
export function checkListExecutions(o: { runbook?: string; before?: string; limit: number }): void {
  const op = "listExecutions";
  if (o === null || typeof o !== "object") throw new TypeError(`${op}: options must be an object`);
  if (o.runbook !== undefined && typeof o.runbook !== "string") throw new TypeError(`${op}: runbook must be a string`);
  // any id-like text pages (a UUID need not be stored to page below it), but never a NUL
  if (o.before !== undefined && (typeof o.before !== "string" || o.before.includes("\0"))) throw new TypeError(`${op}: before must be a string without NUL`);
  if (o.runbook !== undefined && o.runbook.includes("\0")) throw new TypeError(`${op}: runbook must not hold a NUL`);
  checkCount(op, "limit", o.limit);
}

/** Checks the arguments of `readOutput`. */
export function checkReadOutput(afterSeq: number, limit: number | undefined): void {
  const op = "readOutput";
  checkCount(op, "afterSeq", afterSeq, -1, INT32_MAX);
  if (limit !== undefined) checkCount(op, "limit", limit);
}
