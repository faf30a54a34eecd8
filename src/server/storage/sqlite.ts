/**
 * The server's embedded storage driver (docs/design.md §7): one SQLite file in the data dir, opened with
 * node:sqlite — WAL, a busy timeout, secure_delete, and every change one `BEGIN IMMEDIATE`
 * transaction that carries its own audit record, as the local store does (`src/store/store.ts`).
 *
 * node:sqlite is synchronous, so every method does its work before it returns and hands back a
 * settled promise; within one process calls never interleave. Other processes on the same file
 * (a second `coffer serve`, `coffer server` admin commands) are serialised by SQLite's write
 * lock, which is why the audit chain's tail is read inside each write transaction rather than
 * kept in memory.
 *
 * Durability: writes of secrets, tokens and meta commit with `synchronous = FULL` (fsync on
 * every commit). {@link ServerStorage.appendAudit} batches (records of reads and denials)
 * commit with `synchronous = NORMAL`: in WAL mode such a commit survives a crash of the process
 * and the chain stays whole; only a power cut could drop the newest of those records.
 */
import { randomBytes } from "node:crypto";
import { existsSync, linkSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { CofferError } from "../../errors.ts";
import { assertVersion } from "../../core/names.ts";
import { assertPrivate, fsyncDir, shellQuote, touchPrivateFile } from "../../core/fs-secure.ts";
import {
  chainHash, GENESIS_HASH, recordFromRow, type AuditRecord, type AuditRow, type AuditVerification,
} from "../../core/audit.ts";
import { SERVER_FORMAT, SERVER_MIGRATIONS, SERVER_SCHEMA_SQL, SERVER_SCHEMA_VERSION } from "./schema.ts";
import {
  AUDIT_COLUMNS, checkActor, checkAuditInput, checkAuditLogOptions, checkSealed, checkToken, checkWriteRequest, closedError,
  normalizeDetail, prefixEnd, SECRET_INFO_COLUMNS, secretInfoFromRow, TOKEN_COLUMNS, tokenFromRow, verifyAuditPages, versionInfoFromRow,
  type SecretInfoRow, type TokenRow, type VersionInfoRow,
} from "./common.ts";
import type {
  AuditInput, AuditVerifyOptions, ServerStorage, StoredSecretInfo, StoredToken, StoredVersion, StoredVersionInfo, WriteRequest,
} from "./storage.ts";

/** Options of {@link openSqliteStorage}. */
export interface SqliteStorageOptions {
  /** how long a write waits for another process's lock before E_BUSY (default 15 s) */
  busyTimeoutMs?: number;
}

/**
 * Creates the server's database file at `path`: mode 0600 whatever the umask, the schema, and a
 * fresh random 16-byte store id in `meta`. The file appears complete or not at all.
 *
 * @example
 * await createSqliteStorage("/var/lib/coffer/server.db");
 * const storage = await openSqliteStorage("/var/lib/coffer/server.db");
 *
 * @param path - the database file; its directory must exist and be private (0700, yours)
 * @throws CofferError E_CONFLICT when a file exists at `path`, E_USAGE when the directory is
 *   missing, E_PERMISSIONS when it is not private
 */
export async function createSqliteStorage(path: string): Promise<void> {
  const dir = dirname(path);
  try {
    assertPrivate(dir, "data directory");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new CofferError("E_USAGE", `the data directory ${dir} does not exist; create it with \`mkdir -m 700 ${shellQuote(dir)}\``);
    }
    throw err;
  }
  const conflict = (): CofferError => new CofferError("E_CONFLICT", `a server database already exists at ${path}; refusing to overwrite it`);
  if (existsSync(path)) throw conflict();
  // Built beside the target and hard-linked into place: never a partial file, never a replaced one.
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  touchPrivateFile(tmp);
  try {
    const db = new DatabaseSync(tmp);
    try {
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;");
      db.exec("BEGIN IMMEDIATE");
      db.exec(SERVER_SCHEMA_SQL);
      for (const m of SERVER_MIGRATIONS) db.exec(m);
      db.exec(`PRAGMA user_version = ${SERVER_SCHEMA_VERSION}`);
      const meta = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
      meta.run("format", SERVER_FORMAT);
      meta.run("store_id", randomBytes(16).toString("hex"));
      meta.run("created_at", new Date().toISOString());
      db.exec("COMMIT");
    } finally {
      db.close();
    }
    linkSync(tmp, path);
    fsyncDir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") throw conflict();
    throw mapOpenError(err, path);
  } finally {
    for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`]) rmSync(f, { force: true });
  }
}

/**
 * Opens the server's database at `path`, brings its schema up to date and returns the storage.
 * @throws CofferError E_NOT_INITIALIZED when there is no file, E_PERMISSIONS when it is
 *   readable by others, E_INTEGRITY when it is not a coffer server database (or a newer one's),
 *   E_BUSY when another process holds its lock too long
 */
export async function openSqliteStorage(path: string, options: SqliteStorageOptions = {}): Promise<ServerStorage> {
  const busyTimeoutMs = options.busyTimeoutMs ?? 15_000;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new TypeError("busyTimeoutMs must be a whole number of milliseconds ≥ 0");
  }
  try {
    assertPrivate(path, "server database");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new CofferError("E_NOT_INITIALIZED", `no server database at ${path}; run \`coffer server init --data ${shellQuote(dirname(path))}\``);
    }
    throw err;
  }
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path);
    db.exec(
      `PRAGMA busy_timeout = ${busyTimeoutMs};` +
        "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA trusted_schema = OFF;",
    );
    const meta = Object.create(null) as Record<string, string>;
    for (const row of db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]) {
      meta[row.key] = row.value;
    }
    if (meta.format !== SERVER_FORMAT || meta.store_id === undefined || !/^[0-9a-f]{32}$/.test(meta.store_id)) {
      throw new CofferError("E_INTEGRITY", `${path} is not a coffer server database of format ${SERVER_FORMAT}`);
    }
    migrate(db, path);
    return new SqliteStorage(db, Buffer.from(meta.store_id, "hex"));
  } catch (err) {
    db?.close();
    throw mapOpenError(err, path);
  }
}

// Brings the schema to SERVER_SCHEMA_VERSION in one transaction; refuses a newer database.
function migrate(db: DatabaseSync, path: string): void {
  const current = Math.max(1, (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
  if (current > SERVER_SCHEMA_VERSION) {
    throw new CofferError(
      "E_INTEGRITY",
      `${path} was written by a newer coffer (schema ${current}, this one knows ${SERVER_SCHEMA_VERSION}); upgrade coffer`,
    );
  }
  if (current === SERVER_SCHEMA_VERSION) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    for (let v = current; v < SERVER_SCHEMA_VERSION; v++) db.exec(SERVER_MIGRATIONS[v - 1]!);
    db.exec(`PRAGMA user_version = ${SERVER_SCHEMA_VERSION}`);
    db.exec("COMMIT");
  } catch (err) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw err;
  }
}

// Rows as arrays on the hot paths (node:sqlite's row objects are slow dictionaries).
// [version, nonce, ciphertext, created_at, created_by, removed_at]
type CurrentRow = [number, Uint8Array, Uint8Array, string, string, string | null];
// [nonce, ciphertext, created_at, created_by]
type VersionRow = [Uint8Array, Uint8Array, string, string];
// Token rows come as arrays too (common.ts's TokenRow, in TOKEN_COLUMNS order).

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;
const SQLITE_CONSTRAINT = 19;

const RESOLVED_UNDEFINED: Promise<undefined> = Promise.resolve(undefined);

class SqliteStorage implements ServerStorage {
  readonly driver = "sqlite" as const;
  readonly storeId: Buffer;
  readonly #db: DatabaseSync;
  #closed = false;
  readonly #statements = new Map<string, StatementSync>();
  readonly #getCurrent: StatementSync;
  readonly #getVersion: StatementSync;
  readonly #auditTail: StatementSync;
  readonly #insertAudit: StatementSync;

  constructor(db: DatabaseSync, storeId: Buffer) {
    this.#db = db;
    this.storeId = storeId;
    // One B-tree search: the newest version row of the name (see schema.ts).
    this.#getCurrent = db.prepare(
      "SELECT version, nonce, ciphertext, created_at, created_by, removed_at FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1",
    );
    this.#getCurrent.setReturnArrays(true);
    this.#getVersion = db.prepare("SELECT nonce, ciphertext, created_at, created_by FROM versions WHERE name = ? AND version = ?");
    this.#getVersion.setReturnArrays(true);
    this.#auditTail = db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    this.#auditTail.setReturnArrays(true);
    this.#insertAudit = db.prepare(`INSERT INTO audit (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.#run("reading meta", () => {
      const row = this.#stmt("SELECT value FROM meta WHERE key = ?").get(key) as { value: string } | undefined;
      return row?.value;
    });
  }

  setMetaIfAbsent(key: string, value: string): Promise<string> {
    return this.#run("writing meta", () => {
      if (typeof key !== "string" || typeof value !== "string") throw new TypeError("meta keys and values are strings");
      return this.#write(() => {
        this.#stmt("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING").run(key, value);
        return (this.#stmt("SELECT value FROM meta WHERE key = ?").get(key) as { value: string }).value;
      });
    });
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.#run("writing meta", () => {
      if (typeof key !== "string" || typeof value !== "string") throw new TypeError("meta keys and values are strings");
      this.#write(() => {
        this.#stmt("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(key, value);
      });
    });
  }

  readCurrent(name: string): Promise<StoredVersion | undefined> {
    if (this.#closed) return Promise.reject(closedError());
    try {
      const row = this.#getCurrent.get(name) as CurrentRow | undefined;
      if (row === undefined || row[5] !== null) return RESOLVED_UNDEFINED;
      return Promise.resolve({ name, version: row[0], nonce: row[1], ciphertext: row[2], createdAt: row[3], createdBy: row[4] });
    } catch (err) {
      return Promise.reject(mapError(err, "reading a secret"));
    }
  }

  readVersion(name: string, version: number): Promise<StoredVersion | undefined> {
    if (this.#closed) return Promise.reject(closedError());
    try {
      assertVersion(version);
      const row = this.#getVersion.get(name, version) as VersionRow | undefined;
      if (row === undefined) return RESOLVED_UNDEFINED;
      return Promise.resolve({ name, version, nonce: row[0], ciphertext: row[1], createdAt: row[2], createdBy: row[3] });
    } catch (err) {
      return Promise.reject(mapError(err, "reading a secret"));
    }
  }

  state(name: string): Promise<{ latest: number; deletedAt: string | null } | undefined> {
    return this.#run("reading a secret", () => {
      const row = this.#stmt("SELECT latest, deleted_at FROM secrets WHERE name = ?").get(name) as
        | { latest: number; deleted_at: string | null }
        | undefined;
      return row === undefined ? undefined : { latest: row.latest, deletedAt: row.deleted_at };
    });
  }

  write(request: WriteRequest): Promise<{ version: number; audit: AuditRecord }> {
    return this.#run("writing a secret", () => {
      const { name, actor, ifVersion, description, detail } = checkWriteRequest(request);
      return this.#write(() => {
        const row = this.#stmt("SELECT latest FROM secrets WHERE name = ?").get(name) as { latest: number } | undefined;
        const latest = row?.latest ?? 0;
        if (ifVersion !== undefined && ifVersion !== latest) {
          throw new CofferError(
            "E_CONFLICT",
            `secret "${name}" is at version ${latest}, not ${ifVersion}: someone else wrote it; read it again and retry`,
          );
        }
        const version = latest + 1;
        const sealed = checkSealed(request.seal(version));
        const now = new Date().toISOString();
        this.#stmt("INSERT INTO versions (name, version, nonce, ciphertext, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)")
          .run(name, version, sealed.nonce, sealed.ciphertext, now, actor);
        this.#stmt(
          `INSERT INTO secrets (name, latest, deleted_at, description, created_at, created_by, updated_at, updated_by)
           VALUES (?, ?, NULL, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET latest = excluded.latest, deleted_at = NULL,
             description = coalesce(excluded.description, secrets.description),
             updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
        ).run(name, version, description, now, actor, now, actor);
        const audit = this.#append({ at: now, actor, action: "secret.write", name, version, detail });
        return { version, audit };
      });
    });
  }

  list(prefix: string): Promise<StoredSecretInfo[]> {
    return this.#run("listing secrets", () => {
      if (typeof prefix !== "string") throw new TypeError("list: prefix must be a string");
      const cols = `SELECT ${SECRET_INFO_COLUMNS} FROM secrets`;
      // A range on the primary key: only the names with the prefix are visited.
      const end = prefixEnd(prefix);
      const rows = (
        end === null
          ? this.#stmt(`${cols} WHERE name >= ? AND deleted_at IS NULL ORDER BY name`).all(prefix)
          : this.#stmt(`${cols} WHERE name >= ? AND name < ? AND deleted_at IS NULL ORDER BY name`).all(prefix, end)
      ) as unknown as SecretInfoRow[];
      return rows.map(secretInfoFromRow);
    });
  }

  versions(name: string): Promise<StoredVersionInfo[] | undefined> {
    return this.#run("reading a secret's versions", () => {
      // One statement, so the secret's state and its versions come from one snapshot.
      const rows = this.#stmt(
        `SELECT v.version, v.created_at, v.created_by, s.latest, s.deleted_at
         FROM secrets s JOIN versions v ON v.name = s.name WHERE s.name = ? ORDER BY v.version`,
      ).all(name) as unknown as VersionInfoRow[];
      if (rows.length === 0) return undefined;
      return rows.map(versionInfoFromRow);
    });
  }

  remove(name: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<{ version: number } | undefined> {
    return this.#run("deleting a secret", () => {
      checkActor("remove", actor);
      const detail = normalizeDetail(auditDetail);
      return this.#write(() => {
        const now = new Date().toISOString();
        const row = this.#stmt(
          "UPDATE secrets SET deleted_at = ?, updated_at = ?, updated_by = ? WHERE name = ? AND deleted_at IS NULL RETURNING latest",
        ).get(now, now, actor, name) as { latest: number } | undefined;
        if (row === undefined) return undefined;
        // Mark the newest version row too, so a read stays one row (see schema.ts).
        this.#stmt("UPDATE versions SET removed_at = ? WHERE name = ? AND version = ?").run(now, name, row.latest);
        this.#append({ at: now, actor, action: "secret.delete", name, version: row.latest, detail });
        return { version: row.latest };
      });
    });
  }

  createToken(token: StoredToken, actor: string, auditDetail: Record<string, unknown> | null): Promise<void> {
    return this.#run("creating a token", () => {
      checkToken(token);
      checkActor("createToken", actor);
      const detail = normalizeDetail({ ...auditDetail, id: token.id, name: token.name, roles: token.roles, expiresAt: token.expiresAt });
      this.#write(() => {
        try {
          this.#stmt(`INSERT INTO tokens (${TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
            token.id, token.name, token.hash, JSON.stringify(token.roles), token.createdAt, token.createdBy,
            token.expiresAt, token.revokedAt,
          );
        } catch (err) {
          if (sqlitePrimaryCode(err) === SQLITE_CONSTRAINT) {
            throw new CofferError("E_CONFLICT", `a token with id ${token.id} or the same hash already exists; create a new token`, { cause: err });
          }
          throw err;
        }
        this.#append({ at: new Date().toISOString(), actor, action: "token.create", name: null, version: null, detail });
      });
    });
  }

  findToken(hash: Uint8Array): Promise<StoredToken | undefined> {
    return this.#run("reading a token", () => {
      if (!(hash instanceof Uint8Array)) throw new TypeError("findToken: hash must be bytes");
      const st = this.#stmt(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = ?`, true);
      const row = st.get(hash) as TokenRow | undefined;
      return row === undefined ? undefined : tokenFromRow(row);
    });
  }

  findTokenById(id: string): Promise<StoredToken | undefined> {
    return this.#run("reading a token", () => {
      if (typeof id !== "string") throw new TypeError("findTokenById: id must be a string");
      const row = this.#stmt(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = ?`, true).get(id) as TokenRow | undefined;
      return row === undefined ? undefined : tokenFromRow(row);
    });
  }

  listTokens(): Promise<StoredToken[]> {
    return this.#run("listing tokens", () => {
      const st = this.#stmt(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, rowid DESC`, true);
      return (st.all() as unknown as TokenRow[]).map(tokenFromRow);
    });
  }

  revokeToken(id: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<boolean> {
    return this.#run("revoking a token", () => {
      checkActor("revokeToken", actor);
      const detail = normalizeDetail({ ...auditDetail, id });
      return this.#write(() => {
        const now = new Date().toISOString();
        const changed = this.#stmt("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(now, id).changes;
        if (Number(changed) === 0) return false;
        this.#append({ at: now, actor, action: "token.revoke", name: null, version: null, detail });
        return true;
      });
    });
  }

  appendAudit(entries: readonly AuditInput[]): Promise<AuditRecord[]> {
    return this.#run("appending to the audit log", () => {
      if (entries.length === 0) return [];
      const now = new Date().toISOString();
      const checked = entries.map((e) => checkAuditInput(e, now));
      return this.#write(() => {
        // The tail is read once per batch, inside the write lock; each record chains on the last.
        let tail = this.#auditTail.get() as [number, Uint8Array] | undefined;
        return checked.map((e) => {
          const record = this.#append(e, tail);
          tail = [record.seq, Buffer.from(record.hash, "hex")];
          return record;
        });
      }, false);
    });
  }

  auditLog(options: { since?: Date; afterSeq?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    return this.#run("reading the audit log", () => {
      checkAuditLogOptions(options);
      const afterSeq = options.afterSeq ?? 0;
      const limit = options.limit ?? -1;
      let rows: AuditRow[];
      if (options.since === undefined) {
        rows = this.#stmt(`SELECT ${AUDIT_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`).all(afterSeq, limit) as unknown as AuditRow[];
      } else {
        const since = options.since;
        rows = this.#stmt(`SELECT ${AUDIT_COLUMNS} FROM audit WHERE seq > ? AND at >= ? ORDER BY seq LIMIT ?`)
          .all(afterSeq, since.toISOString(), limit) as unknown as AuditRow[];
      }
      return rows.map(recordFromRow);
    });
  }

  verifyAudit(options: AuditVerifyOptions = {}): Promise<AuditVerification> {
    // A page per statement, yielding between pages: one long SELECT would hold the event loop.
    return verifyAuditPages((afterSeq, limit) => this.auditLog({ afterSeq, limit }), options);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#statements.clear();
    try {
      this.#db.close();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(mapError(err, "closing"));
    }
  }

  // Runs a synchronous body and settles a promise with its outcome: a throw becomes a rejection.
  #run<T>(what: string, fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(mapError(err, what));
    }
  }

  #stmt(sql: string, arrays = false): StatementSync {
    let st = this.#statements.get(sql);
    if (st === undefined) {
      st = this.#db.prepare(sql);
      if (arrays) st.setReturnArrays(true);
      this.#statements.set(sql, st);
    }
    return st;
  }

  // One write transaction. durable=false commits with synchronous=NORMAL (see the file's doc).
  #write<T>(fn: () => T, durable = true): T {
    const db = this.#db;
    if (!durable) db.exec("PRAGMA synchronous = NORMAL");
    try {
      db.exec("BEGIN IMMEDIATE");
      try {
        const result = fn();
        db.exec("COMMIT");
        return result;
      } catch (err) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw err;
      }
    } finally {
      if (!durable) db.exec("PRAGMA synchronous = FULL");
    }
  }

  // Appends one record after the chain's tail, read inside the open transaction: another process
  // may have appended since this one last did.
  #append(entry: Omit<AuditRecord, "seq" | "hash">, known?: [number, Uint8Array]): AuditRecord {
    const tail = known ?? (this.#auditTail.get() as [number, Uint8Array] | undefined);
    const record = { seq: (tail?.[0] ?? 0) + 1, ...entry };
    const hash = chainHash(tail?.[1] ?? GENESIS_HASH, record);
    this.#insertAudit.run(
      record.seq, record.at, record.actor, record.action, record.name, record.version,
      record.detail === null ? null : JSON.stringify(record.detail), hash,
    );
    return { ...record, hash: hash.toString("hex") };
  }
}

function sqlitePrimaryCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; errcode?: unknown } | null;
  if (e === null || typeof e !== "object" || e.code !== "ERR_SQLITE_ERROR" || typeof e.errcode !== "number") return undefined;
  return e.errcode & 0xff;
}

// SQLite's failures become CofferErrors: BUSY/LOCKED → E_BUSY, anything else → E_UNAVAILABLE.
// The message carries SQLite's generic text for the code (errstr), never a bound value.
function mapError(err: unknown, what: string): unknown {
  const primary = sqlitePrimaryCode(err);
  if (primary === undefined) return err;
  if (primary === SQLITE_BUSY || primary === SQLITE_LOCKED) {
    return new CofferError("E_BUSY", `the server's database stayed locked by another process while ${what}; try again`, { cause: err });
  }
  const errstr = (err as { errstr?: unknown }).errstr;
  return new CofferError(
    "E_UNAVAILABLE",
    `the server's database failed: ${typeof errstr === "string" ? errstr : "SQLite error"} (while ${what}); see the server's log`,
    { cause: err },
  );
}

function mapOpenError(err: unknown, path: string): unknown {
  const primary = sqlitePrimaryCode(err);
  if (primary === SQLITE_NOTADB || primary === SQLITE_CORRUPT) {
    return new CofferError("E_INTEGRITY", `${path} is not a readable coffer server database (corrupt or not SQLite); restore a backup`, { cause: err });
  }
  return mapError(err, `opening ${path}`);
}
