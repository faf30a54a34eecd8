/**
 * The storage operations, written once for both dialects (docs/design.md §7): each is a generator
 * that yields its SQL statements (in SQLite's form: `?` placeholders, table names unprefixed) and
 * receives their results, so the SQLite driver runs it synchronously (`sqlite.ts`, under the
 * local store's synchronous `get`) and the PostgreSQL driver asynchronously (`postgres.ts`, which
 * numbers the placeholders and prefixes the tables `coffer_`). The caller runs an operation that
 * changes something inside one transaction, so a change and its audit record land together.
 *
 * What differs between the dialects is in {@link Dialect}; everything else — the checks, the
 * version rule, the one audit append — is here once. The operations of runbook executions are
 * written the same way, in `ops-executions.ts`.
 */
import { CofferError } from "../errors.ts";
import { assertVersion } from "../core/names.ts";
import { chainHash, GENESIS_HASH, recordFromRow, type AuditRecord, type AuditRow } from "../core/audit.ts";
import {
  AUDIT_COLUMNS, checkActor, checkAuditInput, checkAuditLogOptions, checkSealed, checkToken, checkWriteRequest, normalizeDetail,
  type SecretRow,
} from "./checks.ts";
import type { AuditInput, AuditLogOptions, SealedValue, ServerStorage, StoredToken, StoredVersion, StoredVersionInfo, WriteRequest } from "./types.ts";

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
  /** a local store's `secrets` has `rotation_s` and `generator` */
  rotation: boolean;
  /**
   * the database has `rotations` (a server's, issue 15): a write, delete or purge of a secret, or a
   * delete, undelete or destroy of its versions (ops-versions.ts), whose rotation lease is held (or
   * whose sealed candidate waits) is refused in its transaction
   */
  rotationLocks: boolean;
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
  /**
   * a local store's `secrets.generator`: the JSON text of the generator that made this value, null
   * to forget it (a value set by hand), absent to keep it as it is
   */
  generator?: string | null;
  /** the audit action (default `secret.write`; a local store writes `set`, `rollback`) */
  action?: string;
}

/** One statement: its first row. */
export function* get<R>(sql: string, ...params: unknown[]): Op<R | undefined> {
  return (yield { sql, params, mode: "get" }) as R | undefined;
}
/** One statement: every row. */
export function* all<R>(sql: string, ...params: unknown[]): Op<R[]> {
  return (yield { sql, params, mode: "all" }) as R[];
}
/** One statement that changes rows: how many. */
export function* run(sql: string, ...params: unknown[]): Op<number> {
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

type VersionRow = SealedValue & {
  version: number; created_at: string; created_by: string; removed_at: string | null; deleted_at: string | null; destroyed_at: string | null;
};
const VERSION = "SELECT version, nonce, ciphertext, created_at, created_by, removed_at, deleted_at, destroyed_at FROM versions WHERE name = ?";
// A version deleted or destroyed on its own (ops-versions.ts) is never returned: a read finds nothing.
function stored(name: string, r: VersionRow | undefined): StoredVersion | undefined {
  return r && r.deleted_at === null && r.destroyed_at === null
    ? { name, version: r.version, nonce: r.nonce, ciphertext: r.ciphertext, createdAt: r.created_at, createdBy: r.created_by }
    : undefined;
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
  // generator's parameter: '' clears the column (nullif), NULL keeps it (coalesce), text sets it.
  if (request.generator === "") throw new TypeError("write: generator must not be empty");
  const generator = request.generator === undefined ? null : request.generator ?? "";
  const rotation = d.rotation ? [request.rotationSeconds ?? null, generator] : [];
  const sql = writeSql(d);
  for (;;) {
    const row = yield* get<{ latest: number }>(sql.read, name);
    yield* refuseDuringRotation(d, name, request.rotationHolder);
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

/**
 * Refuses (E_CONFLICT) a change of `name` while a rotation holds its lease or its sealed candidate
 * waits to be stored (docs/design.md §12), unless the change is that rotation's own write
 * (`holder`). Run inside the change's transaction: PostgreSQL locks the rotation's row to the
 * commit, so a claim (a conditional UPDATE of that row) waits for it, and a change waits for a
 * claim; an applied value is never overwritten.
 */
export function* refuseDuringRotation(d: Dialect, name: string, holder?: string): Op<void> {
  if (!d.rotationLocks) return;
  const r = yield* get<{ lease_holder: string | null; lease_until: string | null; candidate_version: number | null }>(
    `SELECT lease_holder, lease_until, candidate_version FROM rotations WHERE name = ?${d.forUpdate}`, name,
  );
  if (r === undefined || (holder !== undefined && r.lease_holder === holder)) return;
  const leased = r.lease_holder !== null && r.lease_until !== null && r.lease_until > new Date().toISOString();
  if (leased || r.candidate_version !== null) {
    throw new CofferError("E_CONFLICT", `secret ${name}: rotation in progress; retry when it ends`);
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
    claim: `INSERT INTO secrets (name, latest, deleted_at, description, ${rot("rotation_s, generator, ")}created_at, created_by, updated_at, updated_by)
       VALUES (?, 1, NULL, ?, ${rot("?, nullif(?, ''), ")}?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
    update: `UPDATE secrets SET latest = ?, deleted_at = NULL, description = coalesce(?, description),
           ${rot("rotation_s = coalesce(?, rotation_s), generator = nullif(coalesce(?, generator), ''), ")}updated_at = ?, updated_by = ? WHERE name = ?`,
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
  const rows = yield* all<{
    version: number; created_at: string; created_by: string; latest: number; deleted_at: string | null; v_deleted_at: string | null; destroyed_at: string | null;
  }>(
    `SELECT v.version, v.created_at, v.created_by, s.latest, s.deleted_at, v.deleted_at AS v_deleted_at, v.destroyed_at
     FROM secrets s JOIN versions v ON v.name = s.name WHERE s.name = ? ORDER BY v.version`, name,
  );
  return rows.length === 0 ? undefined : rows.map((r) => ({
    version: r.version, createdAt: r.created_at, createdBy: r.created_by, current: r.deleted_at === null && r.version === r.latest,
    deletedAt: r.v_deleted_at, destroyed: r.destroyed_at !== null,
  }));
}

export function* remove(
  d: Dialect, name: string, actor: string, auditDetail: Record<string, unknown> | null, action = "secret.delete",
): Op<{ version: number } | undefined> {
  checkActor("remove", actor);
  const detail = normalizeDetail(auditDetail);
  yield* refuseDuringRotation(d, name);
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

/**
 * {@link ServerStorage.purge}: deletes the secret's row and every version of it, and appends audit
 * record `action` (detail: how many versions, never a value). The row goes first: in PostgreSQL
 * that waits for a write holding it, so the versions are deleted once that write committed and
 * none is left behind without its row.
 */
export function* purge(
  d: Dialect, name: string, actor: string, auditDetail: Record<string, unknown> | null, action = "secret.purge",
): Op<{ versions: number; version: number } | undefined> {
  checkActor("purge", actor);
  yield* refuseDuringRotation(d, name);
  const row = yield* get<{ latest: number }>("DELETE FROM secrets WHERE name = ? RETURNING latest", name);
  if (row === undefined) return undefined;
  const versions = yield* run("DELETE FROM versions WHERE name = ?", name);
  // its rotation policy goes too: a purged name is unknown, and no schedule may bring it back
  if (d.rotationLocks) yield* run("DELETE FROM rotations WHERE name = ?", name);
  yield* appendAudit(d, [{ actor, action, name, version: null, detail: normalizeDetail({ versions, ...auditDetail }) }]);
  return { versions, version: row.latest };
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

export function* auditLog(d: Dialect, options: AuditLogOptions = {}): Op<AuditRecord[]> {
  checkAuditLogOptions(options);
  // Filters are added only when given, so the plain query stays the one it was; the prefix is
  // compared with substr (a literal code point count) rather than LIKE, whose wildcards a name may hold.
  const where: string[] = [];
  const params: unknown[] = [];
  if (options.actor !== undefined) { where.push(" AND actor = ?"); params.push(options.actor); }
  if (options.action !== undefined) { where.push(" AND action = ?"); params.push(options.action); }
  if (options.namePrefix !== undefined && options.namePrefix !== "") {
    where.push(` AND substr(name, 1, ${Array.from(options.namePrefix).length}) = ?`);
    params.push(options.namePrefix);
  }
  if (options.beforeSeq !== undefined) { where.push(" AND seq < ?"); params.push(options.beforeSeq); }
  const order = options.beforeSeq !== undefined ? "seq DESC" : "seq";
  const rows = yield* all<AuditRow>(
    `SELECT ${AUDIT_COLUMNS} FROM audit WHERE seq > ? AND at >= ?${where.join("")} ORDER BY ${order} LIMIT ?`,
    options.afterSeq ?? 0, options.since?.toISOString() ?? "", ...params, options.limit ?? d.noLimit,
  );
  return rows.map((r) => recordFromRow({ ...r, seq: Number(r.seq) }));
}
