/**
 * The storage operations of rotation policies (issue 15, docs/design.md §12), written once for
 * both dialects as `ops.ts`'s are. A secret's rotation row holds its policy, where it stands, the
 * lease of the one instance rotating it (claimed with a conditional UPDATE: of several instances
 * on one PostgreSQL database, exactly one gets it; never an in-memory lock) and the candidate,
 * sealed for the version it will become before it is applied anywhere. While the lease is held or
 * a candidate waits, `ops.write`, `remove` and `purge` refuse the secret (`refuseDuringRotation`).
 */
import { CofferError } from "../errors.ts";
import type { AuditRecord } from "../core/audit.ts";
import { checkActor, checkSealed, normalizeDetail } from "./checks.ts";
import { all, appendAudit, get, refuseDuringRotation, run, write, type Dialect, type Op } from "./ops.ts";
import type { RotationFailure, RotationPolicyInput, SealedValue, StoredRotation, StoredRotationState } from "./types.ts";

const COLUMNS = `name, every, every_ms, generate, apply, state, next_at, last_rotated_at, last_error, last_error_at, failures,
  updated_at, updated_by, lease_holder, lease_until, candidate_version, candidate_nonce, candidate_ciphertext`;

interface RotationRow {
  name: string;
  every: string | null;
  every_ms: number | string | null;
  generate: string;
  apply: string | null;
  state: string;
  next_at: string | null;
  last_rotated_at: string | null;
  last_error: string | null;
  last_error_at: string | null;
  failures: number | string;
  updated_at: string;
  updated_by: string;
  lease_holder: string | null;
  lease_until: string | null;
  candidate_version: number | null;
  candidate_nonce: Uint8Array | null;
  candidate_ciphertext: Uint8Array | null;
}

function fromRow(r: RotationRow): StoredRotation {
  return {
    name: r.name,
    every: r.every,
    everyMs: r.every_ms === null ? null : Number(r.every_ms),
    generate: JSON.parse(r.generate) as StoredRotation["generate"],
    apply: r.apply === null ? null : JSON.parse(r.apply),
    state: r.state as StoredRotationState,
    nextAt: r.next_at,
    lastRotatedAt: r.last_rotated_at,
    lastError: r.last_error,
    lastErrorAt: r.last_error_at,
    failures: Number(r.failures),
    updatedAt: r.updated_at,
    updatedBy: r.updated_by,
    leaseHolder: r.lease_holder,
    leaseUntil: r.lease_until,
    candidate: r.candidate_version === null || r.candidate_nonce === null || r.candidate_ciphertext === null
      ? null
      : { version: Number(r.candidate_version), nonce: r.candidate_nonce, ciphertext: r.candidate_ciphertext },
  };
}

function checkName(op: string, name: unknown): asserts name is string {
  if (typeof name !== "string" || name === "") throw new TypeError(`${op}: name must be a non-empty string`);
}

/** `at` + `ms` as ISO 8601 UTC. */
function plus(at: string, ms: number): string {
  return new Date(Date.parse(at) + ms).toISOString();
}

/** {@link ServerStorage.getRotation} */
export function* getRotation(name: string): Op<StoredRotation | undefined> {
  checkName("getRotation", name);
  const row = yield* get<RotationRow>(`SELECT ${COLUMNS} FROM rotations WHERE name = ?`, name);
  return row === undefined ? undefined : fromRow(row);
}

/** {@link ServerStorage.listRotations} */
export function* listRotations(): Op<StoredRotation[]> {
  return (yield* all<RotationRow>(`SELECT ${COLUMNS} FROM rotations ORDER BY name`)).map(fromRow);
}

/** {@link ServerStorage.putRotation} */
export function* putRotation(d: Dialect, p: RotationPolicyInput, actor: string, auditDetail: Record<string, unknown> | null): Op<StoredRotation> {
  checkName("putRotation", p.name);
  checkActor("putRotation", actor);
  if (p.everyMs !== null && !(Number.isSafeInteger(p.everyMs) && p.everyMs > 0)) throw new TypeError("putRotation: everyMs must be a positive integer or null");
  const now = new Date().toISOString();
  const before = yield* get<{ last_rotated_at: string | null }>("SELECT last_rotated_at FROM rotations WHERE name = ?", p.name);
  const nextAt = p.everyMs === null ? null : plus(before?.last_rotated_at ?? now, p.everyMs);
  const generate = JSON.stringify({ charset: p.generate.charset, length: p.generate.length });
  const apply = p.apply === null || p.apply === undefined ? null : JSON.stringify(p.apply);
  yield* run(
    `INSERT INTO rotations AS r (name, every, every_ms, generate, apply, state, next_at, failures, updated_at, updated_by)
     VALUES (?, ?, ?, ?, ?, 'ok', ?, 0, ?, ?)
     ON CONFLICT (name) DO UPDATE SET every = excluded.every, every_ms = excluded.every_ms, generate = excluded.generate,
       apply = excluded.apply, next_at = excluded.next_at, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
    p.name, p.every, p.everyMs, generate, apply, nextAt, now, actor,
  );
  const detail = normalizeDetail({ ...auditDetail, every: p.every, generate: JSON.parse(generate), apply: p.apply ?? null });
  yield* appendAudit(d, [{ at: now, actor, action: "rotation.set", name: p.name, version: null, detail }]);
  return (yield* getRotation(p.name))!;
}

/** {@link ServerStorage.deleteRotation} */
export function* deleteRotation(d: Dialect, name: string, actor: string, auditDetail: Record<string, unknown> | null): Op<boolean> {
  checkName("deleteRotation", name);
  checkActor("deleteRotation", actor);
  yield* refuseDuringRotation(d, name);
  if ((yield* run("DELETE FROM rotations WHERE name = ?", name)) === 0) return false;
  yield* appendAudit(d, [{ actor, action: "rotation.delete", name, version: null, detail: normalizeDetail(auditDetail) }]);
  return true;
}

/** {@link ServerStorage.claimRotation}: one conditional UPDATE, so of racing claimers one wins. */
export function* claimRotation(name: string, holder: string, until: string, mode: "now" | "due" | "recover"): Op<StoredRotation | undefined> {
  checkName("claimRotation", name);
  const now = new Date().toISOString();
  const free = "(lease_holder IS NULL OR lease_until IS NULL OR lease_until < ?)";
  const extra = mode === "recover" ? " AND candidate_version IS NOT NULL"
    : mode === "due" ? " AND candidate_version IS NULL AND next_at IS NOT NULL AND next_at <= ?"
    : " AND candidate_version IS NULL";
  const params = mode === "due" ? [holder, until, name, now, now] : [holder, until, name, now];
  const changed = yield* run(
    `UPDATE rotations SET lease_holder = ?, lease_until = ?, state = CASE WHEN candidate_version IS NULL THEN 'rotating' ELSE state END
     WHERE name = ? AND ${free}${extra}`,
    ...params,
  );
  return changed === 0 ? undefined : yield* getRotation(name);
}

/** {@link ServerStorage.renewRotation} */
export function* renewRotation(name: string, holder: string, until: string): Op<boolean> {
  return (yield* run("UPDATE rotations SET lease_until = ? WHERE name = ? AND lease_holder = ?", until, name, holder)) > 0;
}

function* requireLease(d: Dialect, name: string, holder: string): Op<RotationRow> {
  const row = yield* get<RotationRow>(`SELECT ${COLUMNS} FROM rotations WHERE name = ?${d.forUpdate}`, name);
  if (row === undefined || row.lease_holder !== holder) {
    throw new CofferError("E_CONFLICT", `secret ${name}: this rotation lost its lease (it ran too long, or its policy was removed); nothing was stored`);
  }
  return row;
}

/** {@link ServerStorage.storeRotationCandidate} */
export function* storeRotationCandidate(d: Dialect, name: string, holder: string, seal: (version: number) => SealedValue): Op<number> {
  yield* requireLease(d, name, holder);
  const secret = yield* get<{ latest: number }>(`SELECT latest FROM secrets WHERE name = ?${d.forUpdate}`, name);
  const version = (secret?.latest ?? 0) + 1;
  const sealed = checkSealed(seal(version));
  yield* run(
    "UPDATE rotations SET candidate_version = ?, candidate_nonce = ?, candidate_ciphertext = ?, state = 'rotating' WHERE name = ? AND lease_holder = ?",
    version, sealed.nonce, sealed.ciphertext, name, holder,
  );
  return version;
}

/** {@link ServerStorage.finishRotation} */
export function* finishRotation(
  d: Dialect, name: string, holder: string, actor: string, auditDetail: Record<string, unknown> | null,
): Op<{ version: number; rotatedAt: string; audit: AuditRecord }> {
  const row = fromRow(yield* requireLease(d, name, holder));
  const candidate = row.candidate;
  if (candidate === null) throw new CofferError("E_CONFLICT", `secret ${name}: no rotation candidate is waiting; nothing was stored`);
  const { version, audit } = yield* write(d, {
    name, actor, ifVersion: candidate.version - 1, action: "secret.rotate", rotationHolder: holder, auditDetail,
    seal: (v) => {
      if (v !== candidate.version) throw new CofferError("E_CONFLICT", `secret ${name} moved to version ${v - 1} during its rotation; nothing was stored`);
      return { nonce: candidate.nonce, ciphertext: candidate.ciphertext };
    },
  });
  const now = audit.at;
  yield* run(
    `UPDATE rotations SET state = 'ok', next_at = ?, last_rotated_at = ?, last_error = NULL, last_error_at = NULL, failures = 0,
       lease_holder = NULL, lease_until = NULL, candidate_version = NULL, candidate_nonce = NULL, candidate_ciphertext = NULL
     WHERE name = ?`,
    row.everyMs === null ? null : plus(now, row.everyMs), now, name,
  );
  return { version, rotatedAt: now, audit };
}

/** {@link ServerStorage.failRotation} */
export function* failRotation(d: Dialect, name: string, holder: string, f: RotationFailure): Op<boolean> {
  checkActor("failRotation", f.audit.actor);
  const now = new Date().toISOString();
  const error = f.error.replace(/\s+/g, " ").slice(0, 500);
  const changed = yield* run(
    `UPDATE rotations SET state = ?, next_at = ?, last_error = ?, last_error_at = ?, failures = failures + 1,
       lease_holder = NULL, lease_until = NULL, candidate_version = NULL, candidate_nonce = NULL, candidate_ciphertext = NULL
     WHERE name = ? AND lease_holder = ?`,
    f.state, f.nextAt, error, now, name, holder,
  );
  if (changed === 0) return false;
  const detail = normalizeDetail({ ...f.audit.detail, result: f.state === "unknown" ? "unknown" : "failed", error });
  yield* appendAudit(d, [{ at: now, actor: f.audit.actor, action: "secret.rotate", name, version: null, detail }]);
  return true;
}
