/**
 * The server's PostgreSQL storage driver (docs/design.md §7): several `coffer serve` instances on one
 * database, through a `pg` pool per instance.
 *
 * Tables: the SQLite driver's (`sqlite-schema.ts`) with a `coffer_` prefix (`postgres-schema.ts`), in the connection's default
 * schema (the first of its `search_path`; choose another with
 * `?options=-c%20search_path%3Dmyschema` in the URL): `coffer_meta`, `coffer_secrets`,
 * `coffer_versions`, `coffer_audit`, `coffer_tokens`, plus `coffer_schema(version)`, the schema
 * version (SQLite's `user_version`). Names and times are `TEXT COLLATE "C"` (code point order,
 * as SQLite's BINARY, so `list` sorts and ranges alike); times are ISO 8601 text exactly as the
 * SQLite driver writes them and audit `detail` is the JSON text that was hashed, so records and
 * chain hashes are byte-for-byte those of the SQLite driver; bytes are BYTEA.
 *
 * Concurrency across instances:
 * - Migrations run at open in one transaction holding `pg_advisory_xact_lock(MIGRATION_LOCK)`,
 *   so instances may start together; the first creates the tables and the store id, the others
 *   wait and then find them.
 * - A write locks its `coffer_secrets` row (`SELECT … FOR UPDATE`); the first writer of a new
 *   name claims it with `INSERT … ON CONFLICT DO NOTHING` (a concurrent claimer waits for it,
 *   then finds the row and locks it), so of two writers with the same `ifVersion` one wins and
 *   the other gets E_CONFLICT, and versions have no gaps.
 * - Every transaction that appends to the audit chain takes `pg_advisory_xact_lock(AUDIT_LOCK)`
 *   just before it reads the chain's tail, and holds it to its commit: appends from all
 *   instances are serialised, seqs have no gaps, each record chains to the one before. Row locks
 *   are always taken before the audit lock, so the two never deadlock.
 *
 * Failures: a lost or refused connection, a server shutting down or starting, a pool that
 * cannot hand out a connection in time → E_UNAVAILABLE ("… retry"); a statement timeout or lock
 * wait → E_BUSY. A broken connection is dropped from the pool (the pool's `error` events are
 * handled: an idle connection killed by a PostgreSQL restart is simply discarded) and later
 * calls get fresh ones, so the server survives a database restart without being restarted.
 * Messages never carry a value or the URL's password.
 */
import { CofferError } from "../errors.ts";
import { assertVersion } from "../core/names.ts";
import { chainHash, GENESIS_HASH, recordFromRow, type AuditRecord, type AuditRow, type AuditVerification } from "../core/audit.ts";
import { AUDIT_LOCK, migrate } from "./postgres-schema.ts";
import { PgPool, type PostgresStorageOptions, type Queryable } from "./postgres-pool.ts";
import {
  AUDIT_COLUMNS, checkActor, checkAuditInput, checkAuditLogOptions, checkSealed, checkToken, checkWriteRequest, closedError,
  normalizeDetail, prefixEnd, SECRET_INFO_COLUMNS, secretInfoFromRow, TOKEN_COLUMNS, tokenFromRow, verifyAuditPages, versionInfoFromRow,
  type SecretInfoRow, type VersionInfoRow,
} from "./checks.ts";
import type {
  AuditInput, AuditVerifyOptions, ServerStorage, StoredSecretInfo, StoredToken, StoredVersion, StoredVersionInfo, WriteRequest,
} from "./types.ts";

export type { PostgresStorageOptions } from "./postgres-pool.ts";
export { redactUrl } from "./postgres-errors.ts";

/**
 * Opens the PostgreSQL database at `url`, creates or migrates its tables (under an advisory
 * lock, so several instances may open it at once) and returns the storage.
 *
 * @example
 * const storage = await openPostgresStorage("postgres://coffer@db.internal/coffer");
 *
 * @throws CofferError E_UNAVAILABLE when the database cannot be reached, E_INTEGRITY when it
 *   holds another kind of `coffer_meta` or a newer coffer's schema
 */
export async function openPostgresStorage(url: string, options: PostgresStorageOptions = {}): Promise<ServerStorage> {
  const pool = new PgPool(url, options);
  try {
    return new PostgresStorage(pool, await migrate(pool, pool.shown));
  } catch (err) {
    await pool.close().catch(() => {});
    if (err instanceof CofferError && err.code === "E_UNAVAILABLE") {
      const hint = "check that PostgreSQL is running and the URL is right, then retry";
      throw new CofferError("E_UNAVAILABLE", err.message.replace(/; retry$/, `; ${hint}`), { cause: err.cause });
    }
    throw err;
  }
}

// [version, nonce, ciphertext, created_at, created_by, removed_at]
type CurrentRow = [number, Buffer, Buffer, string, string, string | null];
// [nonce, ciphertext, created_at, created_by]
type VersionRow = [Buffer, Buffer, string, string];
// [id, name, hash, roles, created_at, created_by, expires_at, revoked_at] (TOKEN_COLUMNS)
type TokenRow = [string, string, Buffer, string, string, string, string | null, string | null];
// [seq (int8 as text), at, actor, action, name, version, detail, hash]
type AuditArrayRow = [string, string, string, string, string | null, number | null, string | null, Buffer];

/** Rows per INSERT when appending a batch (8 parameters each, well under PostgreSQL's 65535). */
const AUDIT_INSERT_CHUNK = 500;

const Q_CURRENT = {
  name: "coffer_current",
  text: "SELECT version, nonce, ciphertext, created_at, created_by, removed_at FROM coffer_versions WHERE name = $1 ORDER BY version DESC LIMIT 1",
  rowMode: "array" as const,
};
const Q_VERSION = {
  name: "coffer_version",
  text: "SELECT nonce, ciphertext, created_at, created_by FROM coffer_versions WHERE name = $1 AND version = $2",
  rowMode: "array" as const,
};
const Q_TAIL = { name: "coffer_audit_tail", text: "SELECT seq, hash FROM coffer_audit ORDER BY seq DESC LIMIT 1", rowMode: "array" as const };

class PostgresStorage implements ServerStorage {
  readonly driver = "postgres" as const;
  readonly storeId: Buffer;
  readonly #pool: PgPool;

  constructor(pool: PgPool, storeId: Buffer) {
    this.#pool = pool;
    this.storeId = storeId;
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.#pool.read("reading meta", async (q) => {
      const r = await q.query<{ value: string }>("SELECT value FROM coffer_meta WHERE key = $1", [key]);
      return r.rows[0]?.value;
    });
  }

  setMetaIfAbsent(key: string, value: string): Promise<string> {
    return this.#pool.read("writing meta", async (q) => {
      if (typeof key !== "string" || typeof value !== "string") throw new TypeError("meta keys and values are strings");
      // Two statements: after waiting for a concurrent insert of the same key, the SELECT (a new
      // snapshot) sees the value that won. Idempotent, so a retry on a lost connection is safe.
      const ins = await q.query<{ value: string }>(
        "INSERT INTO coffer_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING value", [key, value],
      );
      if (ins.rows[0] !== undefined) return ins.rows[0].value;
      return (await q.query<{ value: string }>("SELECT value FROM coffer_meta WHERE key = $1", [key])).rows[0]!.value;
    });
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.#pool.read("writing meta", async (q) => {
      if (typeof key !== "string" || typeof value !== "string") throw new TypeError("meta keys and values are strings");
      await q.query("INSERT INTO coffer_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", [key, value]);
    });
  }

  readCurrent(name: string): Promise<StoredVersion | undefined> {
    return this.#pool.read("reading a secret", async (q) => {
      const row = (await q.query<CurrentRow>({ ...Q_CURRENT, values: [name] })).rows[0];
      if (row === undefined || row[5] !== null) return undefined;
      return { name, version: row[0], nonce: row[1], ciphertext: row[2], createdAt: row[3], createdBy: row[4] };
    });
  }

  readVersion(name: string, version: number): Promise<StoredVersion | undefined> {
    return this.#pool.read("reading a secret", async (q) => {
      assertVersion(version);
      if (version > 0x7fffffff) return undefined;
      const row = (await q.query<VersionRow>({ ...Q_VERSION, values: [name, version] })).rows[0];
      if (row === undefined) return undefined;
      return { name, version, nonce: row[0], ciphertext: row[1], createdAt: row[2], createdBy: row[3] };
    });
  }

  state(name: string): Promise<{ latest: number; deletedAt: string | null } | undefined> {
    return this.#pool.read("reading a secret", async (q) => {
      const row = (await q.query<{ latest: number; deleted_at: string | null }>(
        "SELECT latest, deleted_at FROM coffer_secrets WHERE name = $1", [name],
      )).rows[0];
      return row === undefined ? undefined : { latest: row.latest, deletedAt: row.deleted_at };
    });
  }

  write(request: WriteRequest): Promise<{ version: number; audit: AuditRecord }> {
    return this.#pool.tx("writing a secret", async (c) => {
      const { name, actor, ifVersion, description, detail } = checkWriteRequest(request);
      const conflict = (latest: number): CofferError => new CofferError(
        "E_CONFLICT",
        `secret "${name}" is at version ${latest}, not ${ifVersion}: someone else wrote it; read it again and retry`,
      );
      for (;;) {
        const row = (await c.query<{ latest: number }>("SELECT latest FROM coffer_secrets WHERE name = $1 FOR UPDATE", [name])).rows[0];
        const latest = row?.latest ?? 0;
        if (ifVersion !== undefined && ifVersion !== latest) throw conflict(latest);
        const version = latest + 1;
        const now = new Date().toISOString();
        if (row === undefined) {
          // A new name: claim it. A concurrent first writer makes this wait for its commit and
          // then do nothing; go round again and lock the row it made.
          const claimed = await c.query(
            `INSERT INTO coffer_secrets (name, latest, deleted_at, description, created_at, created_by, updated_at, updated_by)
             VALUES ($1, 1, NULL, $2, $3, $4, $3, $4) ON CONFLICT (name) DO NOTHING`,
            [name, description, now, actor],
          );
          if (claimed.rowCount === 0) continue;
        }
        const sealed = checkSealed(request.seal(version));
        await c.query(
          "INSERT INTO coffer_versions (name, version, nonce, ciphertext, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
          [name, version, bytes(sealed.nonce), bytes(sealed.ciphertext), now, actor],
        );
        if (row !== undefined) {
          await c.query(
            `UPDATE coffer_secrets SET latest = $2, deleted_at = NULL, description = coalesce($3, description),
               updated_at = $4, updated_by = $5 WHERE name = $1`,
            [name, version, description, now, actor],
          );
        }
        const [audit] = await appendRecords(c, [{ at: now, actor, action: "secret.write", name, version, detail }]);
        return { version, audit: audit! };
      }
    });
  }

  list(prefix: string): Promise<StoredSecretInfo[]> {
    return this.#pool.read("listing secrets", async (q) => {
      if (typeof prefix !== "string") throw new TypeError("list: prefix must be a string");
      const cols = `SELECT ${SECRET_INFO_COLUMNS} FROM coffer_secrets`;
      // A range on the primary key (COLLATE "C": code point order): only names with the prefix.
      const end = prefixEnd(prefix);
      const rows = (
        end === null
          ? await q.query<SecretInfoRow>(`${cols} WHERE name >= $1 AND deleted_at IS NULL ORDER BY name`, [prefix])
          : await q.query<SecretInfoRow>(`${cols} WHERE name >= $1 AND name < $2 AND deleted_at IS NULL ORDER BY name`, [prefix, end])
      ).rows;
      return rows.map(secretInfoFromRow);
    });
  }

  versions(name: string): Promise<StoredVersionInfo[] | undefined> {
    return this.#pool.read("reading a secret's versions", async (q) => {
      // One statement, so the secret's state and its versions come from one snapshot.
      const rows = (await q.query<VersionInfoRow>(
        `SELECT v.version, v.created_at, v.created_by, s.latest, s.deleted_at
         FROM coffer_secrets s JOIN coffer_versions v ON v.name = s.name WHERE s.name = $1 ORDER BY v.version`,
        [name],
      )).rows;
      if (rows.length === 0) return undefined;
      return rows.map(versionInfoFromRow);
    });
  }

  remove(name: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<{ version: number } | undefined> {
    return this.#pool.tx("deleting a secret", async (c) => {
      checkActor("remove", actor);
      const detail = normalizeDetail(auditDetail);
      const now = new Date().toISOString();
      const row = (await c.query<{ latest: number }>(
        "UPDATE coffer_secrets SET deleted_at = $1, updated_at = $1, updated_by = $2 WHERE name = $3 AND deleted_at IS NULL RETURNING latest",
        [now, actor, name],
      )).rows[0];
      if (row === undefined) return undefined;
      // Mark the newest version row too, so a read stays one row (see schema.ts).
      await c.query("UPDATE coffer_versions SET removed_at = $1 WHERE name = $2 AND version = $3", [now, name, row.latest]);
      await appendRecords(c, [{ at: now, actor, action: "secret.delete", name, version: row.latest, detail }]);
      return { version: row.latest };
    });
  }

  createToken(token: StoredToken, actor: string, auditDetail: Record<string, unknown> | null): Promise<void> {
    return this.#pool.tx("creating a token", async (c) => {
      checkToken(token);
      checkActor("createToken", actor);
      const detail = normalizeDetail({ ...auditDetail, id: token.id, name: token.name, roles: token.roles, expiresAt: token.expiresAt });
      // ON CONFLICT DO NOTHING covers both the id and the hash: no row means one was taken.
      const inserted = await c.query(
        `INSERT INTO coffer_tokens (${TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
        [token.id, token.name, bytes(token.hash), JSON.stringify(token.roles), token.createdAt, token.createdBy, token.expiresAt, token.revokedAt],
      );
      if (inserted.rowCount === 0) {
        throw new CofferError("E_CONFLICT", `a token with id ${token.id} or the same hash already exists; create a new token`);
      }
      await appendRecords(c, [{ at: new Date().toISOString(), actor, action: "token.create", name: null, version: null, detail }]);
    });
  }

  findToken(hash: Uint8Array): Promise<StoredToken | undefined> {
    return this.#pool.read("reading a token", async (q) => {
      if (!(hash instanceof Uint8Array)) throw new TypeError("findToken: hash must be bytes");
      const row = (await q.query<TokenRow>({
        name: "coffer_find_token", text: `SELECT ${TOKEN_COLUMNS} FROM coffer_tokens WHERE hash = $1`, values: [bytes(hash)], rowMode: "array",
      })).rows[0];
      return row === undefined ? undefined : tokenFromRow(row);
    });
  }

  findTokenById(id: string): Promise<StoredToken | undefined> {
    return this.#pool.read("reading a token", async (q) => {
      if (typeof id !== "string") throw new TypeError("findTokenById: id must be a string");
      const row = (await q.query<TokenRow>({ text: `SELECT ${TOKEN_COLUMNS} FROM coffer_tokens WHERE id = $1`, values: [id], rowMode: "array" })).rows[0];
      return row === undefined ? undefined : tokenFromRow(row);
    });
  }

  listTokens(): Promise<StoredToken[]> {
    return this.#pool.read("listing tokens", async (q) => {
      const rows = (await q.query<TokenRow>({
        text: `SELECT ${TOKEN_COLUMNS} FROM coffer_tokens ORDER BY created_at DESC, ord DESC`, rowMode: "array",
      })).rows;
      return rows.map(tokenFromRow);
    });
  }

  revokeToken(id: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<boolean> {
    return this.#pool.tx("revoking a token", async (c) => {
      checkActor("revokeToken", actor);
      const detail = normalizeDetail({ ...auditDetail, id });
      const now = new Date().toISOString();
      const changed = await c.query("UPDATE coffer_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", [now, id]);
      if (changed.rowCount === 0) return false;
      await appendRecords(c, [{ at: now, actor, action: "token.revoke", name: null, version: null, detail }]);
      return true;
    });
  }

  appendAudit(entries: readonly AuditInput[]): Promise<AuditRecord[]> {
    if (this.#pool.closed) return Promise.reject(closedError());
    let checked: Omit<AuditRecord, "seq" | "hash">[];
    try {
      const now = new Date().toISOString();
      // version is an INTEGER column (32-bit) in PostgreSQL
      checked = entries.map((e) => checkAuditInput(e, now, 0x7fffffff));
    } catch (err) {
      return Promise.reject(err);
    }
    if (checked.length === 0) return Promise.resolve([]);
    return this.#pool.tx("appending to the audit log", (c) => appendRecords(c, checked));
  }

  auditLog(options: { since?: Date; afterSeq?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    return this.#pool.read("reading the audit log", async (q) => {
      checkAuditLogOptions(options);
      const afterSeq = options.afterSeq ?? 0;
      const limit = options.limit ?? null;
      let rows: AuditArrayRow[];
      if (options.since === undefined) {
        rows = (await q.query<AuditArrayRow>({
          text: `SELECT ${AUDIT_COLUMNS} FROM coffer_audit WHERE seq > $1 ORDER BY seq LIMIT $2`, values: [afterSeq, limit], rowMode: "array",
        })).rows;
      } else {
        const since = options.since;
        rows = (await q.query<AuditArrayRow>({
          text: `SELECT ${AUDIT_COLUMNS} FROM coffer_audit WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3`,
          values: [afterSeq, since.toISOString(), limit],
          rowMode: "array",
        })).rows;
      }
      return rows.map((r) => recordFromRow(auditRow(r)));
    });
  }

  verifyAudit(options: AuditVerifyOptions = {}): Promise<AuditVerification> {
    // A page per query (a pooled connection each), checked as it comes and yielding between
    // pages: a long chain is never in memory at once. Appends after a page only add at the end.
    return verifyAuditPages((afterSeq, limit) => this.auditLog({ afterSeq, limit }), options);
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

// Appends records after the chain's tail under the audit lock (held to the commit), in one
// INSERT per chunk. Runs inside an open transaction.
async function appendRecords(c: Queryable, entries: readonly Omit<AuditRecord, "seq" | "hash">[]): Promise<AuditRecord[]> {
  await c.query({ name: "coffer_audit_lock", text: "SELECT pg_advisory_xact_lock($1::bigint)", values: [AUDIT_LOCK] });
  const tail = (await c.query<[string, Buffer]>(Q_TAIL)).rows[0];
  let seq = tail === undefined ? 0 : Number(tail[0]);
  let prev: Uint8Array = tail?.[1] ?? GENESIS_HASH;
  const out: AuditRecord[] = [];
  for (let start = 0; start < entries.length; start += AUDIT_INSERT_CHUNK) {
    const chunk = entries.slice(start, start + AUDIT_INSERT_CHUNK);
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (const entry of chunk) {
      const record = { seq: ++seq, ...entry };
      const hash = chainHash(prev, record);
      prev = hash;
      const p = values.length;
      tuples.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5}, $${p + 6}, $${p + 7}, $${p + 8})`);
      values.push(
        record.seq, record.at, record.actor, record.action, record.name, record.version,
        record.detail === null ? null : JSON.stringify(record.detail), hash,
      );
      out.push({ ...record, hash: hash.toString("hex") });
    }
    await c.query(`INSERT INTO coffer_audit (${AUDIT_COLUMNS}) VALUES ${tuples.join(", ")}`, values);
  }
  return out;
}

function auditRow(r: AuditArrayRow): AuditRow {
  return { seq: Number(r[0]), at: r[1], actor: r[2], action: r[3], name: r[4], version: r[5], detail: r[6], hash: r[7] };
}

function bytes(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
