/**
 * The SQLite driver's asynchronous face (docs/design.md §7): the storage seam the server uses,
 * a thin wrapper over the synchronous core (`sqlite.ts`). node:sqlite is synchronous, so every
 * method does its work before it returns and hands back a settled promise; within one process
 * calls never interleave. Other processes on the same file (a second `coffer serve`, `coffer
 * server` admin commands) are serialised by SQLite's write lock.
 *
 * Audit batches of reads and denials ({@link ServerStorage.appendAudit}) commit with
 * `synchronous = NORMAL`; every other write fsyncs (see `sqlite.ts`).
 */
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { CofferError } from "../errors.ts";
import { assertPrivate, shellQuote } from "../core/fs-secure.ts";
import type { AuditRecord, AuditVerification } from "../core/audit.ts";
import { SqliteDriver } from "./sqlite.ts";
import { mapSqliteError } from "./sqlite-errors.ts";
import { closedError, secretInfoFromRow, verifyAuditPages } from "./checks.ts";
import type {
  AuditInput, AuditVerifyOptions, ServerStorage, StoredSecretInfo, StoredToken, StoredVersion, StoredVersionInfo, WriteRequest,
} from "./types.ts";

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
  if (existsSync(path)) throw new CofferError("E_CONFLICT", `a server database already exists at ${path}; refusing to overwrite it`);
  SqliteDriver.create(path, "server");
}

/**
 * Opens the server's database at `path`, brings its schema up to date and returns the storage.
 * @throws CofferError E_NOT_INITIALIZED when there is no file, E_PERMISSIONS when it is
 *   readable by others, E_INTEGRITY when it is not a coffer server database (or a newer one's),
 *   E_BUSY when another process holds its lock too long
 */
export async function openSqliteStorage(path: string, options: SqliteStorageOptions = {}): Promise<ServerStorage> {
  const busyTimeoutMs = options.busyTimeoutMs ?? 15_000;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) throw new TypeError("busyTimeoutMs must be a whole number of milliseconds ≥ 0");
  try {
    assertPrivate(path, "server database");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new CofferError("E_NOT_INITIALIZED", `no server database at ${path}; run \`coffer server init --data ${shellQuote(dirname(path))}\``);
    }
    throw err;
  }
  return new SqliteStorage(SqliteDriver.open(path, "server", { busyTimeoutMs }));
}

const RESOLVED_UNDEFINED: Promise<undefined> = Promise.resolve(undefined);

/**
 * The seam over a synchronous core of either kind (a local store's serves the conformance suite;
 * it has no tokens table). Closing it closes the core.
 */
export class SqliteStorage implements ServerStorage {
  readonly driver = "sqlite" as const;
  readonly storeId: Buffer;
  readonly #core: SqliteDriver;
  #closed = false;

  constructor(core: SqliteDriver) {
    this.#core = core;
    this.storeId = core.storeId;
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.#run("reading meta", () => this.#core.meta()[key]);
  }

  setMetaIfAbsent(key: string, value: string): Promise<string> {
    return this.#run("writing meta", () => this.#core.setMeta(key, value, true));
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.#run("writing meta", () => void this.#core.setMeta(key, value));
  }

  // The read path: no closure, no extra promise (the server's hottest call).
  readCurrent(name: string): Promise<StoredVersion | undefined> {
    if (this.#closed) return Promise.reject(closedError());
    try {
      const v = this.#core.readCurrent(name);
      return v === undefined ? RESOLVED_UNDEFINED : Promise.resolve(v);
    } catch (err) {
      return Promise.reject(this.#map(err, "reading a secret"));
    }
  }

  readVersion(name: string, version: number): Promise<StoredVersion | undefined> {
    return this.#run("reading a secret", () => this.#core.readVersion(name, version));
  }

  state(name: string): Promise<{ latest: number; deletedAt: string | null } | undefined> {
    return this.#run("reading a secret", () => this.#core.state(name));
  }

  write(request: WriteRequest): Promise<{ version: number; audit: AuditRecord }> {
    return this.#run("writing a secret", () => this.#core.write(request));
  }

  list(prefix: string): Promise<StoredSecretInfo[]> {
    return this.#run("listing secrets", () => this.#core.list(prefix).map(secretInfoFromRow));
  }

  versions(name: string): Promise<StoredVersionInfo[] | undefined> {
    return this.#run("reading a secret's versions", () => this.#core.versions(name));
  }

  remove(name: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<{ version: number } | undefined> {
    return this.#run("deleting a secret", () => this.#core.remove(name, actor, auditDetail));
  }

  createToken(token: StoredToken, actor: string, auditDetail: Record<string, unknown> | null): Promise<void> {
    return this.#run("creating a token", () => this.#core.createToken(token, actor, auditDetail));
  }

  findToken(hash: Uint8Array): Promise<StoredToken | undefined> {
    return this.#run("reading a token", () => {
      if (!(hash instanceof Uint8Array)) throw new TypeError("findToken: hash must be bytes");
      return this.#core.findToken({ hash });
    });
  }

  findTokenById(id: string): Promise<StoredToken | undefined> {
    return this.#run("reading a token", () => {
      if (typeof id !== "string") throw new TypeError("findTokenById: id must be a string");
      return this.#core.findToken({ id });
    });
  }

  listTokens(): Promise<StoredToken[]> {
    return this.#run("listing tokens", () => this.#core.listTokens());
  }

  revokeToken(id: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<boolean> {
    return this.#run("revoking a token", () => this.#core.revokeToken(id, actor, auditDetail));
  }

  appendAudit(entries: readonly AuditInput[]): Promise<AuditRecord[]> {
    return this.#run("appending to the audit log", () => this.#core.appendAudit(entries, false));
  }

  auditLog(options: { since?: Date; afterSeq?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    return this.#run("reading the audit log", () => this.#core.auditLog(options));
  }

  verifyAudit(options: AuditVerifyOptions = {}): Promise<AuditVerification> {
    // A page per statement, yielding between pages: one long SELECT would hold the event loop.
    return verifyAuditPages((afterSeq, limit) => this.auditLog({ afterSeq, limit }), options);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return this.#run("closing", () => this.#core.close(), true);
  }

  // Runs a synchronous body and settles a promise with its outcome: a throw becomes a rejection.
  #run<T>(what: string, fn: () => T, closing = false): Promise<T> {
    if (this.#closed && !closing) return Promise.reject(closedError());
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(this.#map(err, what));
    }
  }

  #map(err: unknown, what: string): unknown {
    return err instanceof CofferError ? err : mapSqliteError(err, "server", this.#core.path, what);
  }
}
