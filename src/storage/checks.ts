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
import { AUDIT_VERIFY_PAGE, type AuditInput, type AuditVerifyOptions, type SealedValue, type StoredSecretInfo, type StoredToken, type WriteRequest } from "./types.ts";

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

/** A `secrets` row (`rotation_s` only in a local store). */
export interface SecretRow {
  name: string;
  latest: number;
  deleted_at: string | null;
  description: string | null;
  rotation_s?: number | null;
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
export function checkAuditLogOptions(options: { since?: Date; afterSeq?: number; limit?: number }): void {
  const afterSeq = options.afterSeq ?? 0;
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new CofferError("E_INVALID_VALUE", "invalid afterSeq: must be a whole number ≥ 0");
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
