/**
 * The server's PostgreSQL storage driver (docs/design.md §7): several `coffer serve` instances on one
 * database, through a `pg` pool per instance.
 *
 * Tables: the SQLite driver's (`schema.ts`) with a `coffer_` prefix, in the connection's default
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
import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { CofferError } from "../../errors.ts";
import { assertVersion } from "../../core/names.ts";
import {
  chainHash, GENESIS_HASH, recordFromRow, type AuditRecord, type AuditRow, type AuditVerification,
} from "../../core/audit.ts";
import { SERVER_FORMAT, SERVER_SCHEMA_VERSION } from "./schema.ts";
import {
  AUDIT_COLUMNS, checkActor, checkAuditInput, checkAuditLogOptions, checkSealed, checkToken, checkWriteRequest, closedError,
  normalizeDetail, prefixEnd, SECRET_INFO_COLUMNS, secretInfoFromRow, TOKEN_COLUMNS, tokenFromRow, verifyAuditPages, versionInfoFromRow,
  type SecretInfoRow, type VersionInfoRow,
} from "./common.ts";
import type {
  AuditInput, AuditVerifyOptions, ServerStorage, StoredSecretInfo, StoredToken, StoredVersion, StoredVersionInfo, WriteRequest,
} from "./storage.ts";

/** Options of {@link openPostgresStorage}. */
export interface PostgresStorageOptions {
  /** connections per instance (default 10) */
  poolSize?: number;
  /** the longest one statement may run or wait for a lock before E_BUSY (default 15 s) */
  statementTimeoutMs?: number;
  /** the longest to wait for a connection (new or from the pool) before E_UNAVAILABLE (default 5 s) */
  connectTimeoutMs?: number;
}

/** The PostgreSQL schema (version 1): the SQLite schema's tables, prefixed `coffer_`. */
export const POSTGRES_SCHEMA_SQL = `
CREATE TABLE coffer_meta (
  key   TEXT COLLATE "C" PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE coffer_secrets (
  name        TEXT COLLATE "C" PRIMARY KEY,
  latest      INTEGER NOT NULL CHECK (latest >= 1),
  deleted_at  TEXT COLLATE "C",
  description TEXT,
  created_at  TEXT COLLATE "C" NOT NULL,
  created_by  TEXT NOT NULL,
  updated_at  TEXT COLLATE "C" NOT NULL,
  updated_by  TEXT NOT NULL
);

CREATE TABLE coffer_versions (
  name       TEXT COLLATE "C" NOT NULL,
  version    INTEGER NOT NULL CHECK (version >= 1),
  nonce      BYTEA NOT NULL,
  ciphertext BYTEA NOT NULL,
  created_at TEXT COLLATE "C" NOT NULL,
  created_by TEXT NOT NULL,
  removed_at TEXT COLLATE "C",
  PRIMARY KEY (name, version)
);

CREATE TABLE coffer_audit (
  seq     BIGINT PRIMARY KEY CHECK (seq >= 1),
  at      TEXT COLLATE "C" NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  name    TEXT,
  version INTEGER,
  detail  TEXT,
  hash    BYTEA NOT NULL
);

CREATE TABLE coffer_tokens (
  ord        BIGINT GENERATED ALWAYS AS IDENTITY,
  id         TEXT COLLATE "C" PRIMARY KEY,
  name       TEXT NOT NULL,
  hash       BYTEA NOT NULL UNIQUE,
  roles      TEXT NOT NULL,
  created_at TEXT COLLATE "C" NOT NULL,
  created_by TEXT NOT NULL,
  expires_at TEXT COLLATE "C",
  revoked_at TEXT COLLATE "C"
);
CREATE INDEX coffer_tokens_by_created ON coffer_tokens (created_at, ord);
`;

/**
 * Each entry brings the PostgreSQL schema from version i+1 to i+2, as `SERVER_MIGRATIONS` does
 * for SQLite; the two lists must stay the same length (checked when this module loads).
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [];

if (1 + POSTGRES_MIGRATIONS.length !== SERVER_SCHEMA_VERSION) {
  throw new Error(`postgres.ts knows schema ${1 + POSTGRES_MIGRATIONS.length} but schema.ts is at ${SERVER_SCHEMA_VERSION}: add the PostgreSQL migration`);
}

// Advisory lock keys: the first 8 bytes of SHA-256 of a fixed label, as a signed 64-bit integer.
function lockKey(label: string): string {
  return createHash("sha256").update(label, "utf8").digest().readBigInt64BE(0).toString();
}
/** The advisory lock held while migrating. */
export const MIGRATION_LOCK = lockKey("coffer/migrations");
/** The advisory lock held by each transaction that appends to the audit chain. */
export const AUDIT_LOCK = lockKey("coffer/audit");

/** `url` with any password replaced by `***`, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    for (const key of [...u.searchParams.keys()]) {
      if (/pass|secret|key/i.test(key)) u.searchParams.set(key, "***");
    }
    return u.toString();
  } catch {
    return "(an unparsable database URL)";
  }
}

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
  const poolSize = options.poolSize ?? 10;
  const statementTimeoutMs = options.statementTimeoutMs ?? 15_000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) throw new TypeError("poolSize must be a whole number ≥ 1");
  if (!Number.isSafeInteger(statementTimeoutMs) || statementTimeoutMs < 1) throw new TypeError("statementTimeoutMs must be a whole number of milliseconds ≥ 1");
  if (!Number.isSafeInteger(connectTimeoutMs) || connectTimeoutMs < 1) throw new TypeError("connectTimeoutMs must be a whole number of milliseconds ≥ 1");
  if (typeof url !== "string" || !/^postgres(ql)?:\/\//.test(url)) {
    throw new CofferError("E_CONFIG", `database: ${redactUrl(String(url))} is not a postgres:// or postgresql:// URL`);
  }
  const secrets = urlSecrets(url);
  const shown = redactUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    statement_timeout: statementTimeoutMs,
    // the client's own limit, for a server that stops answering without closing the connection
    query_timeout: statementTimeoutMs + 5_000,
    idle_in_transaction_session_timeout: statementTimeoutMs + 5_000,
    application_name: "coffer-server",
    keepAlive: true,
  });
  // An idle connection that dies (a restart, a network cut) is removed by the pool, which then
  // emits 'error'; unhandled, that event would end the process. Later calls get new connections.
  pool.on("error", () => {});
  try {
    const storeId = await migrate(pool, shown, secrets);
    return new PostgresStorage(pool, storeId, secrets);
  } catch (err) {
    await pool.end().catch(() => {});
    if (err instanceof CofferError) {
      if (err.code === "E_UNAVAILABLE") {
        const hint = "check that PostgreSQL is running and the URL is right, then retry";
        throw new CofferError("E_UNAVAILABLE", err.message.replace(/; retry$/, `; ${hint}`), { cause: err.cause });
      }
      throw err;
    }
    throw mapError(err, `opening ${shown}`, secrets);
  }
}

// The password (and user) of a URL, which a message must never show.
function urlSecrets(url: string): string[] {
  const found: string[] = [];
  try {
    const u = new URL(url);
    if (u.password !== "") {
      found.push(u.password);
      try {
        found.push(decodeURIComponent(u.password));
      } catch {
        // keep the encoded form only
      }
    }
    for (const [key, value] of u.searchParams) if (/pass|secret|key/i.test(key) && value !== "") found.push(value);
  } catch {
    // config.ts validated the URL; nothing to hide if it does not parse
  }
  return found.filter((s) => s.length > 0);
}

// Creates or migrates the tables and returns the store id, in one transaction under the lock.
async function migrate(pool: pg.Pool, shown: string, secrets: readonly string[]): Promise<Buffer> {
  return withClient(pool, `opening ${shown}`, secrets, async (client) => {
    await client.query("BEGIN");
    try {
      await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [MIGRATION_LOCK]);
      await client.query("CREATE TABLE IF NOT EXISTS coffer_schema (version INTEGER NOT NULL)");
      const rows = (await client.query<{ version: number }>("SELECT version FROM coffer_schema")).rows;
      let current = rows.length === 0 ? 0 : Math.max(...rows.map((r) => r.version));
      if (current > SERVER_SCHEMA_VERSION) {
        throw new CofferError(
          "E_INTEGRITY",
          `${shown} was written by a newer coffer (schema ${current}, this one knows ${SERVER_SCHEMA_VERSION}); upgrade coffer`,
        );
      }
      if (current === 0) {
        const existing = await client.query("SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = 'coffer_meta' AND schemaname = ANY (current_schemas(false))");
        if (existing.rowCount !== 0) {
          throw new CofferError("E_INTEGRITY", `${shown} holds coffer_meta but no coffer_schema: not a coffer server database of format ${SERVER_FORMAT}`);
        }
        await client.query(POSTGRES_SCHEMA_SQL);
        current = 1;
      }
      for (let v = current; v < SERVER_SCHEMA_VERSION; v++) await client.query(POSTGRES_MIGRATIONS[v - 1]!);
      await client.query("DELETE FROM coffer_schema");
      await client.query("INSERT INTO coffer_schema (version) VALUES ($1)", [SERVER_SCHEMA_VERSION]);
      const insertMeta = "INSERT INTO coffer_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
      await client.query(insertMeta, ["format", SERVER_FORMAT]);
      await client.query(insertMeta, ["store_id", randomBytes(16).toString("hex")]);
      await client.query(insertMeta, ["created_at", new Date().toISOString()]);
      const meta = Object.create(null) as Record<string, string>;
      for (const r of (await client.query<{ key: string; value: string }>("SELECT key, value FROM coffer_meta WHERE key IN ('format', 'store_id')")).rows) {
        meta[r.key] = r.value;
      }
      if (meta.format !== SERVER_FORMAT || meta.store_id === undefined || !/^[0-9a-f]{32}$/.test(meta.store_id)) {
        throw new CofferError("E_INTEGRITY", `${shown} is not a coffer server database of format ${SERVER_FORMAT}`);
      }
      await client.query("COMMIT");
      return Buffer.from(meta.store_id, "hex");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    }
  });
}

// Checks out a client for `fn`, with an 'error' listener while it is out (a checked-out client
// whose connection dies emits 'error'; without a listener that would end the process). A client
// that failed is destroyed rather than returned to the pool.
async function withClient<T>(
  pool: pg.Pool, what: string, secrets: readonly string[],
  fn: (client: pg.PoolClient, markBroken: (err: unknown) => void) => Promise<T>,
): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw mapError(err, what, secrets);
  }
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken = err;
  };
  client.on("error", onError);
  const markBroken = (err: unknown): void => {
    broken ??= err instanceof Error ? err : new Error(String(err));
  };
  try {
    return await fn(client, markBroken);
  } catch (err) {
    if (broken === undefined && isConnectionError(err)) broken = err as Error;
    throw err;
  } finally {
    client.removeListener("error", onError);
    client.release(broken ?? false);
  }
}

type Queryable = Pick<pg.PoolClient, "query">;

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
  readonly #pool: pg.Pool;
  readonly #secrets: readonly string[];
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(pool: pg.Pool, storeId: Buffer, secrets: readonly string[]) {
    this.#pool = pool;
    this.storeId = storeId;
    this.#secrets = secrets;
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.#read("reading meta", async (q) => {
      const r = await q.query<{ value: string }>("SELECT value FROM coffer_meta WHERE key = $1", [key]);
      return r.rows[0]?.value;
    });
  }

  setMetaIfAbsent(key: string, value: string): Promise<string> {
    return this.#read("writing meta", async (q) => {
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
    return this.#read("writing meta", async (q) => {
      if (typeof key !== "string" || typeof value !== "string") throw new TypeError("meta keys and values are strings");
      await q.query("INSERT INTO coffer_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", [key, value]);
    });
  }

  readCurrent(name: string): Promise<StoredVersion | undefined> {
    return this.#read("reading a secret", async (q) => {
      const row = (await q.query<CurrentRow>({ ...Q_CURRENT, values: [name] })).rows[0];
      if (row === undefined || row[5] !== null) return undefined;
      return { name, version: row[0], nonce: row[1], ciphertext: row[2], createdAt: row[3], createdBy: row[4] };
    });
  }

  readVersion(name: string, version: number): Promise<StoredVersion | undefined> {
    return this.#read("reading a secret", async (q) => {
      assertVersion(version);
      if (version > 0x7fffffff) return undefined;
      const row = (await q.query<VersionRow>({ ...Q_VERSION, values: [name, version] })).rows[0];
      if (row === undefined) return undefined;
      return { name, version, nonce: row[0], ciphertext: row[1], createdAt: row[2], createdBy: row[3] };
    });
  }

  state(name: string): Promise<{ latest: number; deletedAt: string | null } | undefined> {
    return this.#read("reading a secret", async (q) => {
      const row = (await q.query<{ latest: number; deleted_at: string | null }>(
        "SELECT latest, deleted_at FROM coffer_secrets WHERE name = $1", [name],
      )).rows[0];
      return row === undefined ? undefined : { latest: row.latest, deletedAt: row.deleted_at };
    });
  }

  write(request: WriteRequest): Promise<{ version: number; audit: AuditRecord }> {
    return this.#tx("writing a secret", async (c) => {
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
    return this.#read("listing secrets", async (q) => {
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
    return this.#read("reading a secret's versions", async (q) => {
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
    return this.#tx("deleting a secret", async (c) => {
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
    return this.#tx("creating a token", async (c) => {
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
    return this.#read("reading a token", async (q) => {
      if (!(hash instanceof Uint8Array)) throw new TypeError("findToken: hash must be bytes");
      const row = (await q.query<TokenRow>({
        name: "coffer_find_token", text: `SELECT ${TOKEN_COLUMNS} FROM coffer_tokens WHERE hash = $1`, values: [bytes(hash)], rowMode: "array",
      })).rows[0];
      return row === undefined ? undefined : tokenFromRow(row);
    });
  }

  findTokenById(id: string): Promise<StoredToken | undefined> {
    return this.#read("reading a token", async (q) => {
      if (typeof id !== "string") throw new TypeError("findTokenById: id must be a string");
      const row = (await q.query<TokenRow>({ text: `SELECT ${TOKEN_COLUMNS} FROM coffer_tokens WHERE id = $1`, values: [id], rowMode: "array" })).rows[0];
      return row === undefined ? undefined : tokenFromRow(row);
    });
  }

  listTokens(): Promise<StoredToken[]> {
    return this.#read("listing tokens", async (q) => {
      const rows = (await q.query<TokenRow>({
        text: `SELECT ${TOKEN_COLUMNS} FROM coffer_tokens ORDER BY created_at DESC, ord DESC`, rowMode: "array",
      })).rows;
      return rows.map(tokenFromRow);
    });
  }

  revokeToken(id: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<boolean> {
    return this.#tx("revoking a token", async (c) => {
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
    if (this.#closed) return Promise.reject(closedError());
    let checked: Omit<AuditRecord, "seq" | "hash">[];
    try {
      const now = new Date().toISOString();
      // version is an INTEGER column (32-bit) in PostgreSQL
      checked = entries.map((e) => checkAuditInput(e, now, 0x7fffffff));
    } catch (err) {
      return Promise.reject(err);
    }
    if (checked.length === 0) return Promise.resolve([]);
    return this.#tx("appending to the audit log", (c) => appendRecords(c, checked));
  }

  auditLog(options: { since?: Date; afterSeq?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    return this.#read("reading the audit log", async (q) => {
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
    this.#closed = true;
    this.#closing ??= (async () => {
      // Pending calls finish first (their outcome is theirs to report), then the pool ends.
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
      await this.#pool.end();
    })();
    return this.#closing;
  }

  // Tracks a call so close() can wait for it.
  #track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p);
    const done = (): void => {
      this.#inFlight.delete(p);
    };
    p.then(done, done);
    return p;
  }

  // A read (or an idempotent write) on a pooled connection. A connection that turns out to be
  // dead (killed by a restart while idle) is dropped and the call tried once more on a new one.
  #read<T>(what: string, fn: (q: Queryable) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    return this.#track((async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await withClient(this.#pool, what, this.#secrets, fn);
        } catch (err) {
          if (attempt < 2 && retryable(err) && !this.#closed) continue;
          throw mapError(err, what, this.#secrets);
        }
      }
    })());
  }

  // One transaction. When the connection fails at BEGIN nothing was done, so it is retried once
  // on a new connection; a failure later is reported (the outcome of a COMMIT that lost its
  // connection is unknown: E_UNAVAILABLE, and the caller may retry).
  #tx<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    return this.#track((async () => {
      for (let attempt = 1; ; attempt++) {
        let begun = false;
        try {
          return await withClient(this.#pool, what, this.#secrets, async (c, markBroken) => {
            await c.query("BEGIN");
            begun = true;
            try {
              const result = await fn(c);
              await c.query("COMMIT");
              return result;
            } catch (err) {
              // A connection that cannot roll back is not returned to the pool.
              if (!isConnectionError(err)) await c.query("ROLLBACK").catch(markBroken);
              throw err;
            }
          });
        } catch (err) {
          if (attempt < 2 && !begun && retryable(err) && !this.#closed) continue;
          throw mapError(err, what, this.#secrets);
        }
      }
    })());
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

// Node's socket error codes that mean the connection was lost or never made.
const NET_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN",
  "EHOSTDOWN", "ENOTFOUND", "EAI_AGAIN", "EADDRNOTAVAIL", "ENOENT",
]);
// pg's and pg-pool's own messages for a lost, refused or timed-out connection.
const CONNECTION_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Client has encountered a connection error and is not queryable/,
  /^Client was closed and is not queryable/,
  /^Query read timeout/,
  /^Cannot use a pool after calling end on the pool/,
  /^connection timeout/i,
];

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

// Whether a call that failed with `err` before doing anything may be tried again on a new
// connection: the connection died (not a refused connect, not a timeout, not ours).
function retryable(err: unknown): boolean {
  if (err instanceof CofferError || !isConnectionError(err)) return false;
  const message = String((err as { message?: unknown }).message ?? "");
  return !/^Query read timeout/.test(message);
}

// Whether `err` means the connection is gone (or never came): the client must not be reused.
function isConnectionError(err: unknown): boolean {
  if (err === null || typeof err !== "object") return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    if (NET_CODES.has(code)) return true;
    const state = sqlState(err);
    // 08: connection exception; 57P01-57P05: admin/crash shutdown, cannot connect now, idle timeouts
    if (state !== undefined) return state.startsWith("08") || /^57P0[1-5]$/.test(state);
  }
  const message = (err as { message?: unknown }).message;
  return typeof message === "string" && CONNECTION_MESSAGES.some((re) => re.test(message));
}

// The names PostgreSQL gives the conditions a message may mention (never a bound value).
const STATE_NAMES: Record<string, string> = {
  "57P01": "the database server is shutting down (admin shutdown)",
  "57P02": "the database server crashed (crash shutdown)",
  "57P03": "the database server is not accepting connections now",
  "57P04": "the database was dropped",
  "57P05": "the connection was idle too long",
  "53300": "too many connections",
  "53100": "the database server's disk is full",
  "53200": "the database server is out of memory",
  "3D000": "the database does not exist",
  "28P01": "authentication failed",
  "28000": "the connection was not authorised",
  "25P03": "a transaction stayed idle too long",
  "22021": "a name or text is not valid UTF-8 (NUL characters are refused)",
  "42P01": "a coffer table is missing",
};

// The database's failures become CofferErrors: statement timeouts and lock waits → E_BUSY,
// anything else → E_UNAVAILABLE, with the cause attached. The message names the condition (the
// SQLSTATE and its meaning, or the socket error), never a value, and never the URL's password.
function mapError(err: unknown, what: string, secrets: readonly string[]): unknown {
  if (err instanceof CofferError || err instanceof TypeError || err instanceof RangeError) return err;
  if (err === null || typeof err !== "object") return err;
  const state = sqlState(err);
  if (state === "57014" || state === "55P03" || state === "40P01" || state === "40001") {
    return new CofferError("E_BUSY", `the server's database did not finish in time while ${what} (PostgreSQL ${state}: a slow query or a lock held elsewhere); try again`, { cause: err });
  }
  const message = String((err as { message?: unknown }).message ?? "");
  const code = (err as { code?: unknown }).code;
  let reason: string;
  if (state !== undefined && err instanceof pg.DatabaseError) {
    reason = `PostgreSQL ${state}: ${STATE_NAMES[state] ?? (state.startsWith("08") ? "the connection failed" : "see the server's log")}`;
  } else if (typeof code === "string" && NET_CODES.has(code)) {
    reason = message !== "" ? message : code;
  } else if (isConnectionError(err)) {
    reason = message;
  } else if (err instanceof Error && /password|SASL|SCRAM/i.test(message) && /^(SASL|SCRAM|client password|Password)/.test(message)) {
    reason = "authentication failed";
  } else {
    // not the database's failure (a bug, or an error from seal()): pass it on as it is
    return err;
  }
  for (const s of secrets) reason = reason.split(s).join("***");
  return new CofferError("E_UNAVAILABLE", `the server's database failed: ${reason} (while ${what}); retry`, { cause: err });
}

function bytes(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
