/**
 * The SQLite driver (docs/design.md §7): one synchronous core under both the local store (whose
 * `get` must stay synchronous) and the server's SQLite storage (`sqlite-async.ts`). One file
 * opened with node:sqlite — WAL, a busy timeout, secure_delete — and every change one `BEGIN
 * IMMEDIATE` transaction that carries its own audit record, so concurrent processes serialise
 * cleanly and a killed writer leaves either the whole write or none of it. The audit chain's
 * tail is read inside each write transaction: another process may have appended.
 *
 * Durability: writes commit with `synchronous = FULL` (fsync on every commit); an audit append
 * may ask for `NORMAL` (in WAL mode such a commit survives a crash of the process and the chain
 * stays whole; only a power cut could drop the newest of those records).
 *
 * The operations of `ops.ts` run here synchronously ({@link SqliteDriver.run}); the methods below
 * that only run one are documented on {@link ServerStorage}. This maps no error
 * (`sqlite-errors.ts` does, above it).
 */
import { randomBytes } from "node:crypto";
import { linkSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { CofferError } from "../errors.ts";
import { fsyncDir, touchPrivateFile } from "../core/fs-secure.ts";
import type { AuditRecord, AuditRow } from "../core/audit.ts";
import { FORMAT, SCHEMA, SCHEMA_VERSION, type SqliteKind } from "./sqlite-schema.ts";
import { mapSqliteError } from "./sqlite-errors.ts";
import { SharingTables } from "./sqlite-sharing.ts";
import { AUDIT_COLUMNS, refuseNewer, type SecretRow } from "./checks.ts";
import * as ops from "./ops.ts";
import { changeVersions } from "./ops-versions.ts";
import type { AuditInput, AuditLogOptions, ServerStorage, StoredVersion, StoredVersionInfo, VersionChangeKind, VersionsChange } from "./types.ts";

// Rows as arrays on the hot paths (node:sqlite's row objects are slow dictionaries).
// [version, nonce, ciphertext, created_at, created_by, removed_at, deleted_at, destroyed_at]
type CurrentRow = [number, Uint8Array, Uint8Array, string, string, string | null, string | null, string | null];

const DIALECT: Record<SqliteKind, ops.Dialect> = Object.fromEntries((["store", "server"] as const).map((kind) => [kind, {
  rotation: kind === "store", rotationLocks: kind === "server", forUpdate: "", auditLock: null, runbookLock: null, auditChunk: 1, tokenOrder: "rowid", noLimit: -1, maxVersion: Number.MAX_SAFE_INTEGER,
}])) as Record<SqliteKind, ops.Dialect>;

const PRAGMAS = "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA trusted_schema = OFF;";
const NOUN: Record<SqliteKind, string> = { store: "store", server: "server database" };

/** One open SQLite file of either kind. Synchronous; not safe to share across worker threads. */
export class SqliteDriver {
  readonly kind: SqliteKind;
  readonly path: string;
  /** what this file's dialect is, for ops.ts */
  readonly dialect: ops.Dialect;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #sharing: SharingTables | undefined;
  #current: StatementSync | undefined;
  #storeId: Buffer | undefined;

  private constructor(db: DatabaseSync, kind: SqliteKind, path: string) {
    this.#db = db;
    this.kind = kind;
    this.path = path;
    this.dialect = DIALECT[kind];
  }

  /** Runs an operation of ops.ts: each statement it yields, on this connection, synchronously. */
  run<T>(op: ops.Op<T>): T {
    let step = op.next();
    while (!step.done) {
      const q = step.value;
      const st = this.stmt(q.sql, q.arrays);
      const params = q.params as SQLInputValue[];
      step = op.next(q.mode === "get" ? st.get(...params) : q.mode === "all" ? st.all(...params) : st.run(...params).changes);
    }
    return step.value;
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

  /** Switches the file at `path` to WAL (a snapshot made by `VACUUM INTO` is not). */
  static useWal(path: string): void {
    withFile(path, (db) => db.exec("PRAGMA journal_mode = WAL"));
  }

  /** Live secrets in the file at `path` (only read), or null when it cannot be read. */
  static countLive(path: string): number | null {
    try {
      return withFile(path, (db) => {
        db.exec("PRAGMA busy_timeout = 2000");
        return Number((db.prepare("SELECT count(*) AS n FROM secrets WHERE deleted_at IS NULL").get() as { n: number }).n);
      });
    } catch {
      return null;
    }
  }

  /**
   * Checkpoints the file at `path` and takes its write lock, for a restore to swap the file
   * while no other process can commit into it; returns the lock's release.
   * @throws SQLite's error when it cannot (SQLITE_BUSY: another process kept it locked)
   */
  static lockForSwap(path: string, busyTimeoutMs: number): () => void {
    const db = new DatabaseSync(path);
    try {
      db.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}; PRAGMA wal_checkpoint(TRUNCATE)`);
      db.exec("BEGIN IMMEDIATE");
    } catch (err) {
      db.close();
      throw err;
    }
    return () => {
      db.exec("ROLLBACK");
      db.close();
    };
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
    return this.transaction(() => this.run(ops.setMeta(key, value, ifAbsent)));
  }

  /** {@link ServerStorage.readCurrent}: one B-tree search. */
  readCurrent(name: string): StoredVersion | undefined {
    // The hot path: its statement kept in a field, not looked up by its text.
    this.#current ??= this.stmt(
      "SELECT version, nonce, ciphertext, created_at, created_by, removed_at, deleted_at, destroyed_at FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1", true,
    );
    const row = this.#current.get(name) as CurrentRow | undefined;
    if (row === undefined || row[5] !== null || row[6] !== null || row[7] !== null) return undefined;
    return { name, version: row[0], nonce: row[1], ciphertext: row[2], createdAt: row[3], createdBy: row[4] };
  }

  readVersion(name: string, version: number): StoredVersion | undefined {
    return this.run(ops.readVersion(this.dialect, name, version));
  }

  state(name: string): { latest: number; deletedAt: string | null } | undefined {
    return this.run(ops.state(name));
  }

  /** @throws CofferError E_CONFLICT when `ifVersion` does not match */
  write(request: ops.OpWriteRequest): { version: number; audit: AuditRecord } {
    return this.transaction(() => this.run(ops.write(this.dialect, request)));
  }

  /** Secrets whose names start with `prefix`, sorted by name: live ones, or with `deleted` all. */
  list(prefix: string, options: { deleted?: boolean } = {}): SecretRow[] {
    return this.run(ops.list(prefix, options.deleted === true));
  }

  versions(name: string): StoredVersionInfo[] | undefined {
    return this.run(ops.versions(name));
  }

  /** {@link ServerStorage.remove}, with audit record `action`. */
  remove(name: string, actor: string, auditDetail: Record<string, unknown> | null, action?: string): { version: number } | undefined {
    return this.transaction(() => this.run(ops.remove(this.dialect, name, actor, auditDetail, action)));
  }

  /**
   * A local store's purge: ops.ts `purge` (secure_delete zeroes the freed pages) with audit record
   * `purge`. Then call {@link SqliteDriver.checkpoint}, outside the transaction.
   * @returns how many versions were destroyed, or undefined when the name is unknown
   */
  purge(name: string, actor: string): number | undefined {
    return this.transaction(() => this.run(ops.purge(this.dialect, name, actor, null, "purge")))?.versions;
  }

  /**
   * Deletes, undeletes or destroys versions (`ops-versions.ts`) with audit record `action` per
   * version. After a destroy, call {@link SqliteDriver.checkpoint}, outside the transaction.
   */
  changeVersions(kind: VersionChangeKind, name: string, versions: readonly number[], actor: string, auditDetail: Record<string, unknown> | null, action: string): VersionsChange | undefined {
    return this.transaction(() => this.run(changeVersions(this.dialect, kind, name, versions, actor, auditDetail, action)));
  }

  /**
   * Moves the WAL into the file and empties it (after a purge: no old ciphertext lingers there).
   * Outside a transaction; a reader in another process may keep part of the WAL until it is done.
   */
  checkpoint(): void {
    this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  /** {@link ServerStorage.appendAudit}, in the transaction open if there is one. */
  appendAudit(entries: readonly AuditInput[], durable = true): AuditRecord[] {
    return entries.length === 0 ? [] : this.transaction(() => this.run(ops.appendAudit(this.dialect, entries)), durable);
  }

  auditLog(options: AuditLogOptions = {}): AuditRecord[] {
    return this.run(ops.auditLog(this.dialect, options));
  }

  /** Every audit row, oldest first, read as they are needed (for `verifyRows`). */
  auditRows(): Iterable<AuditRow> {
    return this.stmt(`SELECT ${AUDIT_COLUMNS} FROM audit ORDER BY seq`).iterate() as Iterable<AuditRow>;
  }

  /** The chain's newest record (how many records, and its hash in hex), or undefined when it has none. */
  tail(): { count: number; hash: string } | undefined {
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
    this.#current = undefined;
    if (this.#db.isOpen) this.#db.close();
  }
}

// Opens the file at `path` for `fn` alone.
function withFile<T>(path: string, fn: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(path);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
