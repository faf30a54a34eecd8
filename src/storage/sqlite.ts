/**
 * The SQLite driver (docs/design.md §7): one synchronous core under both the local store
 * (`src/store/store.ts`, whose `get` must stay synchronous) and the server's SQLite storage (the
 * async face in `sqlite-async.ts`). One file opened with node:sqlite — WAL, a busy timeout,
 * secure_delete — and every change one `BEGIN IMMEDIATE` transaction that carries its own audit
 * record, so a change and its record land together or not at all, concurrent processes
 * serialise cleanly and a killed writer leaves either the whole write or none of it. The audit
 * chain's tail is read inside each write transaction: another process may have appended.
 *
 * Durability: writes commit with `synchronous = FULL` (fsync on every commit); an audit append
 * may ask for `NORMAL` (in WAL mode such a commit survives a crash of the process and the chain
 * stays whole; only a power cut could drop the newest of those records).
 *
 * The driver only ever sees ciphertext, names, versions, token hashes and audit records; it
 * checks what it is handed (`checks.ts`) but maps no error (`sqlite-errors.ts` does, above it).
 * The local store's sharing tables are typed statements in `sqlite-sharing.ts`.
 */
import { randomBytes } from "node:crypto";
import { linkSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { CofferError } from "../errors.ts";
import { assertVersion } from "../core/names.ts";
import { fsyncDir, touchPrivateFile } from "../core/fs-secure.ts";
import { chainHash, GENESIS_HASH, recordFromRow, type AuditRecord, type AuditRow } from "../core/audit.ts";
import { FORMAT, SCHEMA, SCHEMA_VERSION, type SqliteKind } from "./sqlite-schema.ts";
import { mapSqliteError, sqlitePrimaryCode, SQLITE_CONSTRAINT } from "./sqlite-errors.ts";
import { SharingTables } from "./sqlite-sharing.ts";
import {
  AUDIT_COLUMNS, checkActor, checkAuditInput, checkAuditLogOptions, checkSealed, checkToken, checkWriteRequest, normalizeDetail,
  prefixEnd, refuseNewer, TOKEN_COLUMNS, tokenFromRow, versionInfoFromRow, type TokenRow, type VersionInfoRow,
} from "./checks.ts";
import type { AuditInput, StoredToken, StoredVersion, StoredVersionInfo, WriteRequest } from "./types.ts";

/** A write of the SQLite driver: the seam's, plus what only a local store records. */
export interface SqliteWriteRequest extends WriteRequest {
  /** rotation period in seconds (a local store's `secrets.rotation_s`) */
  rotationSeconds?: number;
  /** the audit action (default `secret.write`; a local store writes `set`, `rollback`) */
  action?: string;
}

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

/** The chain's newest record: how many records, and its hash in hex. */
export interface ChainTail {
  count: number;
  hash: string;
}

// Rows as arrays on the hot paths (node:sqlite's row objects are slow dictionaries).
// [version, nonce, ciphertext, created_at, created_by, removed_at]
type CurrentRow = [number, Uint8Array, Uint8Array, string, string, string | null];
// [nonce, ciphertext, created_at, created_by]
type VersionRow = [Uint8Array, Uint8Array, string, string];

const PRAGMAS = "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA trusted_schema = OFF;";
const NOUN: Record<SqliteKind, string> = { store: "store", server: "server database" };

/** One open SQLite file of either kind. Synchronous; not safe to share across worker threads. */
export class SqliteDriver {
  readonly kind: SqliteKind;
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #sharing: SharingTables | undefined;
  #storeId: Buffer | undefined;

  private constructor(db: DatabaseSync, kind: SqliteKind, path: string) {
    this.#db = db;
    this.kind = kind;
    this.path = path;
  }

  /**
   * Creates a database of `kind` at `path` (which must not exist): mode 0600 whatever the umask,
   * the schema, and `meta` with a fresh random 16-byte store id; `fill` adds the rest in the same
   * transaction. Built beside the target and hard-linked into place: never a partial file,
   * never a replaced one.
   * @throws CofferError E_CONFLICT when a file exists at `path`
   */
  static create(path: string, kind: SqliteKind, fill: (driver: SqliteDriver) => void = () => {}): void {
    const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
    touchPrivateFile(tmp);
    try {
      const db = new DatabaseSync(tmp);
      const driver = new SqliteDriver(db, kind, tmp);
      try {
        db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;");
        driver.transaction(() => {
          for (const statements of SCHEMA[kind]) for (const sql of statements) db.exec(sql);
          db.exec(`PRAGMA user_version = ${SCHEMA_VERSION[kind]}`);
          const meta = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
          meta.run("format", FORMAT[kind]);
          meta.run("store_id", randomBytes(16).toString("hex"));
          meta.run("created_at", new Date().toISOString());
          fill(driver);
        });
      } finally {
        driver.close();
      }
      linkSync(tmp, path);
      fsyncDir(dirname(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new CofferError("E_CONFLICT", `a ${NOUN[kind]} already exists at ${path}; refusing to overwrite it`);
      }
      throw mapSqliteError(err, kind, path);
    } finally {
      for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`]) rmSync(f, { force: true });
    }
  }

  /**
   * Opens the database of `kind` at `path` and brings its schema up to date (the caller checked
   * the file's permissions).
   * @throws CofferError E_INTEGRITY when it is not such a database, or a newer coffer's;
   *   E_BUSY when another process holds its lock too long
   */
  static open(path: string, kind: SqliteKind, options: { busyTimeoutMs?: number } = {}): SqliteDriver {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path);
      db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 15_000)}; ${PRAGMAS}`);
      const driver = new SqliteDriver(db, kind, path);
      const meta = driver.meta();
      if (meta.format !== FORMAT[kind] || meta.store_id === undefined || !/^[0-9a-f]{32}$/.test(meta.store_id)) {
        throw new CofferError("E_INTEGRITY", `${path} is not a coffer ${NOUN[kind]} of format ${FORMAT[kind]}`);
      }
      driver.#migrate();
      return driver;
    } catch (err) {
      db?.close();
      throw mapSqliteError(err, kind, path);
    }
  }

  /** Opens a database file read only, as it is (no migration, no check): to inspect a snapshot. */
  static openReadOnly(path: string, kind: SqliteKind): SqliteDriver {
    const db = new DatabaseSync(path, { readOnly: true });
    db.exec("PRAGMA trusted_schema = OFF");
    return new SqliteDriver(db, kind, path);
  }

  // The one migrate rule of SQLite: a newer coffer's file is refused; an older one is brought
  // up to date in one transaction (the version read again under the lock: another process may
  // have migrated it meanwhile).
  #migrate(): void {
    const known = SCHEMA_VERSION[this.kind];
    refuseNewer(this.schemaVersion(), known, this.path);
    if (this.schemaVersion() === known) return;
    this.transaction(() => {
      const current = this.schemaVersion();
      for (let v = current; v < known; v++) for (const sql of SCHEMA[this.kind][v]!) this.#db.exec(sql);
      this.#db.exec(`PRAGMA user_version = ${known}`);
    });
  }

  /** The schema version recorded in the file (`user_version`, 0 counting as 1). */
  schemaVersion(): number {
    return Math.max(1, (this.stmt("PRAGMA user_version").get() as { user_version: number }).user_version);
  }

  /** The 16 random bytes chosen when the database was created; part of every value's AAD. */
  get storeId(): Buffer {
    this.#storeId ??= Buffer.from(this.meta().store_id ?? "", "hex");
    return this.#storeId;
  }

  /** A prepared statement, cached per connection. For this folder's typed statements only. */
  stmt(sql: string, arrays = false): StatementSync {
    const key = arrays ? `[] ${sql}` : sql;
    let st = this.#statements.get(key);
    if (st === undefined) {
      st = this.#db.prepare(sql);
      if (arrays) st.setReturnArrays(true);
      this.#statements.set(key, st);
    }
    return st;
  }

  /**
   * Runs `fn` in one write transaction (or inside the one already open): all of its changes,
   * audit records included, land together or not at all. `afterCommit` runs once it committed.
   * @param durable - false commits with `synchronous = NORMAL` (see the file's doc)
   */
  transaction<T>(fn: () => T, durable = true, afterCommit?: () => void): T {
    const db = this.#db;
    if (db.isTransaction) return fn();
    if (!durable) db.exec("PRAGMA synchronous = NORMAL");
    try {
      db.exec("BEGIN IMMEDIATE");
      try {
        const result = fn();
        db.exec("COMMIT");
        afterCommit?.();
        return result;
      } catch (err) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw err;
      }
    } finally {
      if (!durable) db.exec("PRAGMA synchronous = FULL");
    }
  }

  /** The `meta` table. */
  meta(): Record<string, string> {
    const meta = Object.create(null) as Record<string, string>;
    for (const row of this.stmt("SELECT key, value FROM meta").all() as { key: string; value: string }[]) meta[row.key] = row.value;
    return meta;
  }

  /** Sets `key` to `value`; with `ifAbsent`, only when it is not set. Returns the value now stored. */
  setMeta(key: string, value: string, ifAbsent = false): string {
    if (typeof key !== "string" || typeof value !== "string") throw new TypeError("meta keys and values are strings");
    return this.transaction(() => {
      const action = ifAbsent ? "NOTHING" : "UPDATE SET value = excluded.value";
      this.stmt(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO ${action}`).run(key, value);
      return (this.stmt("SELECT value FROM meta WHERE key = ?").get(key) as { value: string }).value;
    });
  }

  /** The newest version of `name`, or undefined when there is none or the secret is deleted. One B-tree search. */
  readCurrent(name: string): StoredVersion | undefined {
    const row = this.stmt(
      "SELECT version, nonce, ciphertext, created_at, created_by, removed_at FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1", true,
    ).get(name) as CurrentRow | undefined;
    if (row === undefined || row[5] !== null) return undefined;
    return { name, version: row[0], nonce: row[1], ciphertext: row[2], createdAt: row[3], createdBy: row[4] };
  }

  /** Version `version` of `name` (also of a deleted secret), or undefined. */
  readVersion(name: string, version: number): StoredVersion | undefined {
    assertVersion(version);
    const row = this.stmt("SELECT nonce, ciphertext, created_at, created_by FROM versions WHERE name = ? AND version = ?", true)
      .get(name, version) as VersionRow | undefined;
    return row === undefined ? undefined : { name, version, nonce: row[0], ciphertext: row[1], createdAt: row[2], createdBy: row[3] };
  }

  /** Whether `name` exists: its latest version and deletion time, or undefined. */
  state(name: string): { latest: number; deletedAt: string | null } | undefined {
    const row = this.stmt("SELECT latest, deleted_at FROM secrets WHERE name = ?").get(name) as { latest: number; deleted_at: string | null } | undefined;
    return row === undefined ? undefined : { latest: row.latest, deletedAt: row.deleted_at };
  }

  /**
   * Writes the next version of a secret (the first creates it; a deleted one comes back) and its
   * audit record, in one transaction.
   * @throws CofferError E_CONFLICT when `ifVersion` does not match
   */
  write(request: SqliteWriteRequest): { version: number; audit: AuditRecord } {
    const { name, actor, ifVersion, description, detail } = checkWriteRequest(request);
    const rotation = this.kind === "store";
    return this.transaction(() => {
      const latest = this.state(name)?.latest ?? 0;
      if (ifVersion !== undefined && ifVersion !== latest) {
        throw new CofferError("E_CONFLICT", `secret "${name}" is at version ${latest}, not ${ifVersion}: someone else wrote it; read it again and retry`);
      }
      const version = latest + 1;
      const sealed = checkSealed(request.seal(version));
      const now = new Date().toISOString();
      this.stmt("INSERT INTO versions (name, version, nonce, ciphertext, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)")
        .run(name, version, sealed.nonce, sealed.ciphertext, now, actor);
      this.stmt(
        `INSERT INTO secrets (name, latest, deleted_at, description, ${rotation ? "rotation_s, " : ""}created_at, created_by, updated_at, updated_by)
         VALUES (?, ?, NULL, ?, ${rotation ? "?, " : ""}?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET latest = excluded.latest, deleted_at = NULL,
           description = coalesce(excluded.description, secrets.description),${rotation ? "\n           rotation_s = coalesce(excluded.rotation_s, secrets.rotation_s)," : ""}
           updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      ).run(name, version, description, ...(rotation ? [request.rotationSeconds ?? null] : []), now, actor, now, actor);
      const [audit] = this.appendAudit([{ at: now, actor, action: request.action ?? "secret.write", name, version, detail }]);
      return { version, audit: audit! };
    });
  }

  /** Secrets whose names start with `prefix`, sorted by name: live ones, or with `deleted` all. */
  list(prefix: string, options: { deleted?: boolean } = {}): SecretRow[] {
    if (typeof prefix !== "string") throw new TypeError("list: prefix must be a string");
    const live = options.deleted === true ? "" : " AND deleted_at IS NULL";
    // A range on the primary key: only the names with the prefix are visited.
    const end = prefixEnd(prefix);
    return (end === null
      ? this.stmt(`SELECT * FROM secrets WHERE name >= ?${live} ORDER BY name`).all(prefix)
      : this.stmt(`SELECT * FROM secrets WHERE name >= ? AND name < ?${live} ORDER BY name`).all(prefix, end)) as unknown as SecretRow[];
  }

  /** Every version of `name`, oldest first, or undefined when the name was never written (or was purged). */
  versions(name: string): StoredVersionInfo[] | undefined {
    // One statement, so the secret's state and its versions come from one snapshot.
    const rows = this.stmt(
      `SELECT v.version, v.created_at, v.created_by, s.latest, s.deleted_at
       FROM secrets s JOIN versions v ON v.name = s.name WHERE s.name = ? ORDER BY v.version`,
    ).all(name) as unknown as VersionInfoRow[];
    return rows.length === 0 ? undefined : rows.map(versionInfoFromRow);
  }

  /**
   * Soft-deletes a live secret (its versions stay) with an audit record `action`.
   * @returns the latest version, or undefined when there is no live secret of that name
   */
  remove(name: string, actor: string, auditDetail: Record<string, unknown> | null, action = "secret.delete"): { version: number } | undefined {
    checkActor("remove", actor);
    const detail = normalizeDetail(auditDetail);
    return this.transaction(() => {
      const now = new Date().toISOString();
      const row = this.stmt(
        "UPDATE secrets SET deleted_at = ?, updated_at = ?, updated_by = ? WHERE name = ? AND deleted_at IS NULL RETURNING latest",
      ).get(now, now, actor, name) as { latest: number } | undefined;
      if (row === undefined) return undefined;
      // Mark the newest version row too, so a read stays one row (see sqlite-schema.ts).
      this.stmt("UPDATE versions SET removed_at = ? WHERE name = ? AND version = ?").run(now, name, row.latest);
      this.appendAudit([{ at: now, actor, action, name, version: row.latest, detail }]);
      return { version: row.latest };
    });
  }

  /**
   * Destroys every version of a secret (secure_delete zeroes the freed pages), with audit record
   * `purge`. Then call {@link SqliteDriver.checkpoint}, outside the transaction.
   * @returns how many versions were destroyed, or undefined when the name is unknown
   */
  purge(name: string, actor: string): number | undefined {
    return this.transaction(() => {
      const versions = Number(this.stmt("DELETE FROM versions WHERE name = ?").run(name).changes);
      if (Number(this.stmt("DELETE FROM secrets WHERE name = ?").run(name).changes) === 0) return undefined;
      this.appendAudit([{ actor, action: "purge", name, version: null, detail: { versions } }]);
      return versions;
    });
  }

  /** Moves the WAL into the file and empties it (after a purge: no old ciphertext lingers there). */
  checkpoint(): void {
    this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  /** Stores a new token with audit record `token.create` (detail gets id, name, roles, expiry). */
  createToken(token: StoredToken, actor: string, auditDetail: Record<string, unknown> | null): void {
    checkToken(token);
    checkActor("createToken", actor);
    const detail = normalizeDetail({ ...auditDetail, id: token.id, name: token.name, roles: token.roles, expiresAt: token.expiresAt });
    this.transaction(() => {
      try {
        this.stmt(`INSERT INTO tokens (${TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
          token.id, token.name, token.hash, JSON.stringify(token.roles), token.createdAt, token.createdBy, token.expiresAt, token.revokedAt,
        );
      } catch (err) {
        if (sqlitePrimaryCode(err) !== SQLITE_CONSTRAINT) throw err;
        throw new CofferError("E_CONFLICT", `a token with id ${token.id} or the same hash already exists; create a new token`, { cause: err });
      }
      this.appendAudit([{ actor, action: "token.create", name: null, version: null, detail }]);
    });
  }

  /** The token whose hash is `hash`, or with `id` (revoked and expired ones too: the caller decides). */
  findToken(by: { hash: Uint8Array } | { id: string }): StoredToken | undefined {
    const row = ("hash" in by
      ? this.stmt(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = ?`, true).get(by.hash)
      : this.stmt(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = ?`, true).get(by.id)) as TokenRow | undefined;
    return row === undefined ? undefined : tokenFromRow(row);
  }

  /** Every token, newest first. */
  listTokens(): StoredToken[] {
    return (this.stmt(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, rowid DESC`, true).all() as unknown as TokenRow[]).map(tokenFromRow);
  }

  /** Revokes a token, with audit record `token.revoke`; false when no unrevoked token has that id. */
  revokeToken(id: string, actor: string, auditDetail: Record<string, unknown> | null): boolean {
    checkActor("revokeToken", actor);
    const detail = normalizeDetail({ ...auditDetail, id });
    return this.transaction(() => {
      const now = new Date().toISOString();
      if (Number(this.stmt("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(now, id).changes) === 0) return false;
      this.appendAudit([{ at: now, actor, action: "token.revoke", name: null, version: null, detail }]);
      return true;
    });
  }

  /**
   * Appends records to the audit chain in one transaction (or the one open), in order: the one
   * audit append of SQLite. The tail is read once, inside the write lock.
   */
  appendAudit(entries: readonly AuditInput[], durable = true): AuditRecord[] {
    if (entries.length === 0) return [];
    const now = new Date().toISOString();
    const checked = entries.map((e) => checkAuditInput(e, now));
    return this.transaction(() => {
      const tail = this.stmt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", true).get() as [number, Uint8Array] | undefined;
      let seq = tail?.[0] ?? 0;
      let prev: Uint8Array = tail?.[1] ?? GENESIS_HASH;
      const insert = this.stmt(`INSERT INTO audit (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
      return checked.map((e) => {
        const record = { seq: ++seq, ...e };
        const hash = chainHash(prev, record);
        prev = hash;
        insert.run(record.seq, record.at, record.actor, record.action, record.name, record.version, record.detail === null ? null : JSON.stringify(record.detail), hash);
        return { ...record, hash: hash.toString("hex") };
      });
    }, durable);
  }

  /** Audit records oldest first: at or after `since`, with seq above `afterSeq`, at most `limit`. */
  auditLog(options: { since?: Date; afterSeq?: number; limit?: number } = {}): AuditRecord[] {
    checkAuditLogOptions(options);
    const since = options.since?.toISOString() ?? "";
    return (this.stmt(`SELECT ${AUDIT_COLUMNS} FROM audit WHERE seq > ? AND at >= ? ORDER BY seq LIMIT ?`)
      .all(options.afterSeq ?? 0, since, options.limit ?? -1) as unknown as AuditRow[]).map(recordFromRow);
  }

  /** Every audit row, oldest first, read as they are needed (for `verifyRows`). */
  auditRows(): Iterable<AuditRow> {
    return this.stmt(`SELECT ${AUDIT_COLUMNS} FROM audit ORDER BY seq`).iterate() as Iterable<AuditRow>;
  }

  /** The chain's newest record, or undefined when it has none. */
  tail(): ChainTail | undefined {
    const row = this.stmt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: Uint8Array } | undefined;
    return row === undefined ? undefined : { count: Number(row.seq), hash: Buffer.from(row.hash).toString("hex") };
  }

  /** The hex hash of audit record `seq`, or undefined when there is none. */
  auditHashAt(seq: number): string | undefined {
    const row = this.stmt("SELECT hash FROM audit WHERE seq = ?").get(seq) as { hash: Uint8Array } | undefined;
    return row === undefined ? undefined : Buffer.from(row.hash).toString("hex");
  }

  /** The store key as wrapped to `recipient`, by kind ('age', 'local-v1'). */
  storeKeys(recipient: string): { kind: string; wrapped: Uint8Array }[] {
    return this.stmt("SELECT kind, wrapped FROM store_keys WHERE recipient = ?").all(recipient) as { kind: string; wrapped: Uint8Array }[];
  }

  /** Adds a wrapping of the store key. */
  addStoreKey(recipient: string, kind: "age" | "local-v1", wrapped: Uint8Array): void {
    this.transaction(() => this.stmt("INSERT INTO store_keys (recipient, kind, wrapped) VALUES (?, ?, ?)").run(recipient, kind, wrapped));
  }

  /** The recipients the store key is wrapped to, sorted. */
  keyRecipients(): string[] {
    return (this.stmt("SELECT DISTINCT recipient FROM store_keys ORDER BY recipient").all() as { recipient: string }[]).map((r) => r.recipient);
  }

  /** Live secrets, all versions and audit records. */
  counts(): { secrets: number; versions: number; auditRecords: number } {
    const n = (sql: string) => Number((this.stmt(sql).get() as { n: number | bigint }).n);
    return {
      secrets: n("SELECT count(*) AS n FROM secrets WHERE deleted_at IS NULL"),
      versions: n("SELECT count(*) AS n FROM versions"),
      auditRecords: n("SELECT count(*) AS n FROM audit"),
    };
  }

  /** SQLite's `integrity_check`: ["ok"] when the file is whole. */
  integrityCheck(): string[] {
    return (this.#db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[]).map((r) => r.integrity_check);
  }

  /** Writes a consistent copy of the database to the existing empty file `path` (`VACUUM INTO`), page by page. */
  vacuumInto(path: string): void {
    this.#db.prepare("VACUUM INTO ?").run(path);
  }

  /** The local store's sharing tables (members, grants, trusted senders, exports, imports). */
  get sharing(): SharingTables {
    this.#sharing ??= new SharingTables(this);
    return this.#sharing;
  }

  /** Whether {@link SqliteDriver.close} was called. */
  get closed(): boolean {
    return !this.#db.isOpen;
  }

  /** Closes the database. */
  close(): void {
    this.#statements.clear();
    if (this.#db.isOpen) this.#db.close();
  }
}
