/**
 * The encrypted local store (docs/design.md §3–5): one SQLite file (WAL, busy timeout, fsync on
 * commit), every version of every secret sealed with AES-256-GCM, a hash-chained audit log.
 *
 * Reads are synchronous and touch nothing but one indexed row and one AES-GCM open (and, at
 * most every 100 ms, a stat of the file, to notice that a restore replaced it); every
 * write is one `BEGIN IMMEDIATE` transaction, so concurrent processes serialise cleanly and a
 * killed writer leaves either the whole write or none of it.
 */
import { randomBytes, sign } from "node:crypto";
import { linkSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { KeyObject } from "node:crypto";
import { CofferError, DecryptError } from "../errors.ts";
import { aadPrefix, deriveValueKey, importKey, open, seal, valueAad, valueAadWith } from "../crypto/seal.ts";
import { deriveStoreKeyWrapKey } from "../crypto/keys.ts";
import { decryptWithIdentity, encryptToRecipients } from "../crypto/age.ts";
import { loadIdentity, signingKeyOf, type Identity, type PassphraseSource } from "../identity/identity.ts";
import { assertPrivate, assertSecureParents, ensurePrivateDir, fsyncDir, touchPrivateFile } from "../core/fs-secure.ts";
import { HeadFile, headsDirFor, type ChainHead, type SignedHead } from "./head.ts";
import { formatCard } from "../identity/card.ts";
import { assertSecretName, assertValue, assertVersion, DEFAULT_MAX_VALUE_BYTES, isSecretName } from "../core/names.ts";
import { chainHash, GENESIS_HASH, recordFromRow, verifyRows, type AuditEntry, type AuditRecord, type AuditRow, type AuditVerification } from "../core/audit.ts";
import { homeOf, resolvePaths, type PathOptions } from "../core/paths.ts";
import { SCHEMA_SQL, STORE_FORMAT } from "./schema.ts";
import { migrate, schemaVersion, SCHEMA_VERSION } from "./migrations.ts";
import { Secret } from "../core/secret.ts";

/** Options of {@link openStore}. */
export interface OpenStoreOptions extends PathOptions {
  /** passphrase (or a function asking for it) when the identity file is encrypted */
  passphrase?: PassphraseSource;
  /** told before slow work (unlocking a passphrase-protected identity) */
  progress?: (message: string) => void;
  /** an identity already loaded; skips reading the identity file */
  identityObject?: Identity;
  /** largest value accepted by set, in bytes (default 1 MiB) */
  maxValueBytes?: number;
  /** how long a write waits for another process's lock (default 15 s) */
  busyTimeoutMs?: number;
  /**
   * where the signed heads of the audit chain are kept (default `heads/` beside the identity
   * file; see src/store/head.ts)
   */
  headsDir?: string;
  /**
   * open a store whose audit chain does not contain its last signed head (an older copy put
   * back) instead of refusing it; {@link Store.headStatus} says what was found. For
   * `coffer audit accept` and restore, which record that they took it.
   */
  acceptHead?: boolean;
  /** told things the user should know that are not errors (a first signed head) */
  notice?: (message: string) => void;
}

/** How the store's audit chain compared with its last signed head when it was opened. */
export type HeadStatus =
  | { state: "ok"; signed: ChainHead }
  /** no head had been signed (a store from before signed heads): one was signed on open */
  | { state: "new"; signed: ChainHead }
  /** the chain does not contain the signed head; opened only because `acceptHead` was set */
  | { state: "diverged"; signed: ChainHead & { at: string }; found: ChainHead };

/** Options of {@link Store.set}. */
export interface SetOptions {
  /** a human description, kept across versions until changed */
  description?: string;
  /** check-and-set: refuse unless the latest version is this (0: the name must be new) */
  ifVersion?: number;
  /** how often this secret should be rotated, in seconds */
  rotationSeconds?: number;
}

/** What a write returns. */
export interface WriteResult {
  name: string;
  version: number;
}

/** Metadata of a secret, as listed. Never a value. */
export interface SecretInfo {
  name: string;
  /** latest version */
  version: number;
  description: string | null;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  updatedBy: string;
  /** rotation period in seconds, if set */
  rotationSeconds: number | null;
  /** true when a rotation period is set and has passed since the last write */
  rotationDue: boolean;
  /** when `rm` hid it (history kept), else null */
  deletedAt: string | null;
}

/** One version in a secret's history. Never a value. */
export interface VersionInfo {
  version: number;
  createdAt: string;
  createdBy: string;
  /** true for the version `get` returns */
  current: boolean;
}

// The read path's row, as an array (node:sqlite's row objects are slow dictionaries):
// [version, nonce, ciphertext, created_at, removed_at]
type SealedRow = [number, Uint8Array, Uint8Array, string, string | null];

interface SecretRow {
  name: string;
  latest: number;
  deleted_at: string | null;
  description: string | null;
  rotation_s: number | null;
  created_at: string;
  created_by: string;
  updated_at: string;
  updated_by: string;
}


const INSERT_VERSION = "INSERT INTO versions (name, version, nonce, ciphertext, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)";
const INSERT_AUDIT = "INSERT INTO audit (seq, at, actor, action, name, version, detail, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const SECRET_STATE = "SELECT latest, deleted_at FROM secrets WHERE name = ?";

const SQLITE_BUSY = 5;
const SQLITE_NOTADB = 26;
const SQLITE_CORRUPT = 11;

/**
 * Opens the user's store with their identity.
 *
 * @example
 * import { openStore } from "coffer";
 * const store = await openStore();
 * const password = store.get("db/prod/password");
 * connect({ password: password.reveal() });
 * store.close();
 *
 * @throws CofferError E_NOT_INITIALIZED, E_PERMISSIONS, E_DECRYPT, E_INTEGRITY
 */
export async function openStore(options: OpenStoreOptions = {}): Promise<Store> {
  const paths = resolvePaths(options);
  const identity =
    options.identityObject ??
    (await loadIdentity(paths.identity, {
      ...(options.passphrase !== undefined && { passphrase: options.passphrase }),
      ...(options.env !== undefined && { env: options.env }),
      ...(options.progress !== undefined && { progress: options.progress }),
    }));
  return Store.open(paths.store, identity, { ...options, headsDir: options.headsDir ?? headsDirFor(paths.identity) });
}

/**
 * Creates a new, empty store at `path` for `identity`: a fresh store id and store key, the
 * key wrapped with age to the identity's recipient (and locally, for a fast open).
 * The file appears complete or not at all.
 * @throws CofferError E_CONFLICT when a store already exists at `path`
 */
export async function createStore(
  path: string,
  identity: Identity,
  options: { env?: NodeJS.ProcessEnv; headsDir?: string } = {},
): Promise<void> {
  ensurePrivateDir(dirname(path));
  assertSecureParents(path, "store", homeOf(options.env));
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  touchPrivateFile(tmp);
  try {
    const storeId = randomBytes(16);
    const storeKey = randomBytes(32);
    let firstHash: Buffer;
    const ageWrapped = await encryptToRecipients(storeKey, [identity.recipient]);
    const db = new DatabaseSync(tmp);
    try {
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;");
      db.exec("BEGIN IMMEDIATE");
      db.exec(SCHEMA_SQL);
      migrate(db, path);
      const now = new Date().toISOString();
      const meta = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
      meta.run("format", String(STORE_FORMAT));
      meta.run("store_id", storeId.toString("hex"));
      meta.run("created_at", now);
      meta.run("owner", identity.recipient);
      const keys = db.prepare("INSERT INTO store_keys (recipient, kind, wrapped) VALUES (?, ?, ?)");
      keys.run(identity.recipient, "age", ageWrapped);
      keys.run(identity.recipient, "local-v1", wrapLocal(identity, storeId, storeKey));
      storeKey.fill(0);
      const first = { seq: 1, at: now, actor: identity.name, action: "init", name: null, version: null, detail: { format: STORE_FORMAT } };
      firstHash = chainHash(GENESIS_HASH, first);
      db.prepare(INSERT_AUDIT)
        .run(1, now, identity.name, "init", null, null, JSON.stringify(first.detail), firstHash);
      db.exec("COMMIT");
    } finally {
      db.close();
    }
    linkSync(tmp, path);
    fsyncDir(dirname(path));
    const headsDir = options.headsDir ?? headsDirFor(resolvePaths(options.env === undefined ? {} : { env: options.env }).identity);
    new HeadFile(headsDir, storeId.toString("hex"), signingKeyOf(identity), homeOf(options.env)).write({ count: 1, hash: firstHash.toString("hex") });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new CofferError("E_CONFLICT", `a store already exists at ${path}; refusing to overwrite it`);
    }
    throw err;
  } finally {
    for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`]) rmSync(f, { force: true });
  }
}

// The owner's local wrap: AES-256-GCM, key HKDF(identity secret, "coffer/v1/store-key"),
// aad = length-prefixed ("coffer/v1/store-key", store id). Stored as nonce ‖ ciphertext ‖ tag.
function wrapLocal(identity: Identity, storeId: Uint8Array, storeKey: Uint8Array): Buffer {
  const key = deriveStoreKeyWrapKey(identity.secret);
  const sealed = seal(key, storeKey, valueAad(storeId, "coffer/v1/store-key", 0));
  key.fill(0);
  return Buffer.concat([sealed.nonce, sealed.ciphertext]);
}

function unwrapLocal(identity: Identity, storeId: Uint8Array, wrapped: Uint8Array): Buffer {
  const key = deriveStoreKeyWrapKey(identity.secret);
  try {
    const w = Buffer.from(wrapped);
    return open(key, { nonce: w.subarray(0, 12), ciphertext: w.subarray(12) }, valueAad(storeId, "coffer/v1/store-key", 0), "the store key");
  } finally {
    key.fill(0);
  }
}

/** An open local store. Not safe to share across worker threads; open one per thread. */
export class Store {
  /** the path of the store file */
  readonly path: string;
  /** who writes: the identity's name, recorded as the actor */
  readonly actor: string;
  readonly #db: DatabaseSync;
  readonly #aadPrefix: Buffer;
  readonly #recipient: string;
  /** undefined once closed */
  #valueKey: KeyObject | undefined;
  readonly #maxValueBytes: number;
  readonly #getCurrent: StatementSync;
  readonly #getVersion: StatementSync;
  readonly #statements = new Map<string, StatementSync>();
  readonly #head: HeadFile;
  readonly #headStatus: HeadStatus;
  // The file's identity when opened: a restore renames a new file over the path, and this
  // connection would otherwise go on reading (and writing) the old, unlinked one.
  readonly #dev: number;
  readonly #ino: number;
  #checkedAt = Date.now();
  #replacedSeen = false;

  private constructor(
    path: string, db: DatabaseSync, actor: string, recipient: string, storeId: Buffer, valueKey: KeyObject, maxValueBytes: number,
    head: HeadFile, headStatus: HeadStatus, file: { dev: number; ino: number },
  ) {
    this.path = path;
    this.#head = head;
    this.#headStatus = headStatus;
    this.#dev = file.dev;
    this.#ino = file.ino;
    this.#recipient = recipient;
    this.actor = actor;
    this.#db = db;
    this.#aadPrefix = aadPrefix(storeId);
    this.#valueKey = valueKey;
    this.#maxValueBytes = maxValueBytes;
    // One B-tree search: the newest version row of the name (see schema.ts).
    this.#getCurrent = db.prepare(
      "SELECT version, nonce, ciphertext, created_at, removed_at FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1",
    );
    this.#getCurrent.setReturnArrays(true);
    this.#getVersion = db.prepare(
      "SELECT version, nonce, ciphertext, created_at, NULL FROM versions WHERE name = ? AND version = ?",
    );
    this.#getVersion.setReturnArrays(true);
  }

  /**
   * Opens the store file at `path` with `identity`.
   * @throws CofferError E_NOT_INITIALIZED, E_PERMISSIONS, E_DECRYPT, E_INTEGRITY
   */
  static async open(
    path: string,
    identity: Identity,
    options: Pick<OpenStoreOptions, "maxValueBytes" | "busyTimeoutMs" | "headsDir" | "acceptHead" | "notice" | "env"> = {},
  ): Promise<Store> {
    const home = homeOf(options.env);
    try {
      assertPrivate(path, "store");
      assertSecureParents(path, "store", home);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new CofferError("E_NOT_INITIALIZED", `no store at ${path}; run \`coffer init\` first`);
      }
      throw err;
    }
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path);
      db.exec(
        `PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 15_000)};` +
          "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA trusted_schema = OFF;",
      );
      const meta = Object.create(null) as Record<string, string>;
      for (const row of db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]) {
        meta[row.key] = row.value;
      }
      if (meta.format !== String(STORE_FORMAT) || meta.store_id === undefined || !/^[0-9a-f]{32}$/.test(meta.store_id)) {
        throw new CofferError("E_INTEGRITY", `${path} is not a coffer store of format ${STORE_FORMAT}`);
      }
      if (schemaVersion(db) !== SCHEMA_VERSION) {
        db.exec("BEGIN IMMEDIATE");
        try {
          migrate(db, path);
          db.exec("COMMIT");
        } catch (err) {
          db.exec("ROLLBACK");
          throw err;
        }
      }
      const st = statSync(path);
      const storeId = Buffer.from(meta.store_id, "hex");
      const storeKey = await unwrapStoreKey(db, path, identity, storeId);
      const valueKey = importKey(deriveValueKey(storeKey));
      storeKey.fill(0);
      const headsDir = options.headsDir ?? headsDirFor(resolvePaths(options.env === undefined ? {} : { env: options.env }).identity);
      const head = new HeadFile(headsDir, meta.store_id, signingKeyOf(identity), home);
      const status = checkHead(db, path, head, options);
      return new Store(
        path, db, identity.name, identity.recipient, storeId, valueKey, options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES,
        head, status, { dev: st.dev, ino: st.ino },
      );
    } catch (err) {
      db?.close();
      throw mapSqliteError(err, path);
    }
  }

  /**
   * Reads a secret: one indexed row and one AES-GCM open; at most every 100 ms also a stat of
   * the store file (E_REPLACED once a restore replaced it).
   * @param name - the secret's name
   * @param options.version - a specific version (default: the current one)
   * @throws CofferError E_INVALID_NAME, E_NOT_FOUND, E_DECRYPT, E_REPLACED
   */
  get(name: string, options: { version?: number } = {}): Secret {
    const key = this.#key();
    // A stat costs about a tenth of a get: look at most every 100 ms (a restore is noticed
    // within that), and once the file was found replaced, refuse every get.
    const now = Date.now();
    if (this.#replacedSeen || now - this.#checkedAt >= 100) {
      this.#checkedAt = now;
      this.#assertSameFile();
    }
    if (!isSecretName(name)) assertSecretName(name);
    const version = options.version;
    const row = (version === undefined ? this.#getCurrent.get(name) : this.#getVersion.get(name, assertVersion(version))) as
      | SealedRow
      | undefined;
    if (row === undefined || row[4] !== null) throw this.#notFound(name, version);
    const v = row[0];
    const value = open(key, { nonce: row[1], ciphertext: row[2] }, valueAadWith(this.#aadPrefix, name, v), () => `secret "${name}" v${v}`);
    return new Secret({ name, version: v, updatedAt: row[3] }, value);
  }

  /**
   * Writes a new version of a secret (the first one creates it).
   * @param value - UTF-8 text or bytes, 1 byte to `maxValueBytes`
   * @returns the name and the new version number
   * @throws CofferError E_INVALID_NAME, E_INVALID_VALUE, E_CONFLICT (ifVersion)
   */
  set(name: string, value: string | Uint8Array, options: SetOptions = {}): WriteResult {
    const [result] = this.setMany([{ name, value, ...options }]);
    return result!;
  }

  /**
   * Writes several secrets in one transaction: all of them or none.
   * @throws CofferError as {@link Store.set}; nothing is written when any entry is refused
   */
  setMany(entries: readonly ({ name: string; value: string | Uint8Array } & SetOptions)[]): WriteResult[] {
    const prepared = entries.map((e) => {
      assertSecretName(e.name);
      const bytes = typeof e.value === "string" ? Buffer.from(e.value, "utf8") : e.value;
      assertValue(bytes, this.#maxValueBytes);
      if (e.ifVersion !== undefined) assertVersion(e.ifVersion, 0);
      if (e.rotationSeconds !== undefined && !(Number.isSafeInteger(e.rotationSeconds) && e.rotationSeconds > 0)) {
        throw new CofferError("E_INVALID_VALUE", "invalid rotation period: must be a positive whole number of seconds");
      }
      if (e.description !== undefined && e.description.length > 1024) {
        throw new CofferError("E_INVALID_VALUE", "invalid description: longer than 1024 characters");
      }
      return { ...e, bytes };
    });
    return this.#write(() => {
      const read = this.#stmt("SELECT latest FROM secrets WHERE name = ?");
      const insertVersion = this.#stmt(INSERT_VERSION);
      const upsert = this.#stmt(
        `INSERT INTO secrets (name, latest, deleted_at, description, rotation_s, created_at, created_by, updated_at, updated_by)
         VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET latest = excluded.latest, deleted_at = NULL,
           description = coalesce(excluded.description, secrets.description),
           rotation_s = coalesce(excluded.rotation_s, secrets.rotation_s),
           updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      );
      const now = new Date().toISOString();
      return prepared.map((e) => {
        const current = (read.get(e.name) as { latest: number } | undefined)?.latest ?? 0;
        if (e.ifVersion !== undefined && e.ifVersion !== current) {
          throw new CofferError(
            "E_CONFLICT",
            `secret "${e.name}" is at version ${current}, not ${e.ifVersion}: someone else wrote it; read it again and retry`,
          );
        }
        const version = current + 1;
        const sealed = seal(this.#key(), e.bytes, valueAadWith(this.#aadPrefix, e.name, version));
        insertVersion.run(e.name, version, sealed.nonce, sealed.ciphertext, now, this.actor);
        upsert.run(e.name, version, e.description ?? null, e.rotationSeconds ?? null, now, this.actor, now, this.actor);
        this.#appendAudit({ action: "set", name: e.name, version, detail: null }, now);
        return { name: e.name, version };
      });
    });
  }

  /**
   * Lists secrets (metadata only), sorted by name.
   * @param prefix - only names starting with this string
   * @param options.deleted - include secrets hidden by `remove`
   */
  list(prefix = "", options: { deleted?: boolean } = {}): SecretInfo[] {
    const rows = this.#stmt(
      `SELECT * FROM secrets WHERE substr(name, 1, length(?1)) = ?1 ${options.deleted === true ? "" : "AND deleted_at IS NULL"} ORDER BY name`,
    ).all(prefix) as unknown as SecretRow[];
    const now = Date.now();
    return rows.map((r) => ({
      name: r.name,
      version: r.latest,
      description: r.description,
      createdAt: r.created_at,
      createdBy: r.created_by,
      updatedAt: r.updated_at,
      updatedBy: r.updated_by,
      rotationSeconds: r.rotation_s,
      rotationDue: r.rotation_s !== null && Date.parse(r.updated_at) + r.rotation_s * 1000 < now,
      deletedAt: r.deleted_at,
    }));
  }

  /**
   * Every version of a secret, oldest first (metadata only).
   * @throws CofferError E_NOT_FOUND
   */
  history(name: string): VersionInfo[] {
    assertSecretName(name);
    const info = this.#stmt(SECRET_STATE).get(name) as { latest: number; deleted_at: string | null } | undefined;
    if (info === undefined) throw this.#notFound(name, undefined);
    const rows = this.#stmt("SELECT version, created_at, created_by FROM versions WHERE name = ? ORDER BY version").all(name) as { version: number; created_at: string; created_by: string }[];
    return rows.map((r) => ({
      version: r.version,
      createdAt: r.created_at,
      createdBy: r.created_by,
      current: info.deleted_at === null && r.version === info.latest,
    }));
  }

  /**
   * Hides a secret: `get` no longer finds it, every version stays (see {@link Store.rollback}).
   * @throws CofferError E_NOT_FOUND
   */
  remove(name: string): WriteResult {
    assertSecretName(name);
    return this.#write(() => {
      const now = new Date().toISOString();
      const row = this.#stmt(
        "UPDATE secrets SET deleted_at = ?, updated_at = ?, updated_by = ? WHERE name = ? AND deleted_at IS NULL RETURNING latest",
      ).get(now, now, this.actor, name) as { latest: number } | undefined;
      if (row === undefined) throw this.#notFound(name, undefined);
      this.#stmt("UPDATE versions SET removed_at = ? WHERE name = ? AND version = ?").run(now, name, row.latest);
      this.#appendAudit({ action: "rm", name, version: row.latest, detail: null }, now);
      return { name, version: row.latest };
    });
  }

  /**
   * Destroys every version of a secret (SQLite secure_delete zeroes the freed pages).
   * @returns how many versions were destroyed
   * @throws CofferError E_NOT_FOUND
   */
  purge(name: string): { name: string; versions: number } {
    assertSecretName(name);
    const result = this.#write(() => {
      const versions = this.#stmt("DELETE FROM versions WHERE name = ?").run(name).changes;
      const gone = this.#stmt("DELETE FROM secrets WHERE name = ?").run(name).changes;
      if (gone === 0) throw this.#notFound(name, undefined);
      this.#appendAudit({ action: "purge", name, version: null, detail: { versions: Number(versions) } }, new Date().toISOString());
      return { name, versions: Number(versions) };
    });
    // Move the freed pages out of the WAL too, so no old ciphertext lingers there.
    this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    return result;
  }

  /**
   * Writes a new version holding the value of version `to` (and undoes a `remove`).
   * @throws CofferError E_NOT_FOUND when that version does not exist
   */
  rollback(name: string, to: number): WriteResult {
    assertSecretName(name);
    assertVersion(to);
    return this.#write(() => {
      const old = this.get(name, { version: to });
      try {
        const now = new Date().toISOString();
        const current = (this.#stmt(SECRET_STATE).get(name) as { latest: number }).latest;
        const version = current + 1;
        const sealed = seal(this.#key(), old.bytes(), valueAadWith(this.#aadPrefix, name, version));
        this.#stmt(INSERT_VERSION).run(name, version, sealed.nonce, sealed.ciphertext, now, this.actor);
        this.#stmt("UPDATE secrets SET latest = ?, deleted_at = NULL, updated_at = ?, updated_by = ? WHERE name = ?")
          .run(version, now, this.actor, name);
        this.#appendAudit({ action: "rollback", name, version, detail: { from: to } }, now);
        return { name, version };
      } finally {
        old.dispose();
      }
    });
  }

  /**
   * Appends a record to the audit chain (for events the store cannot see itself: a CLI read,
   * an export, a delivery). Never put a value in `entry`.
   * @param options.durable - fsync the commit (default true). A read's record may pass false:
   *   in WAL mode the commit still survives a crash of the process and the chain stays whole;
   *   only a power cut could drop the newest such records. Writes of secrets always fsync.
   */
  appendAudit(entry: AuditEntry, options: { durable?: boolean } = {}): AuditRecord {
    return this.#write(() => this.#appendAudit(entry, new Date().toISOString()), options.durable ?? true);
  }

  /** How the audit chain compared with its last signed head when the store was opened. */
  get headStatus(): HeadStatus {
    return this.#headStatus;
  }

  /**
   * True when the store file at {@link Store.path} is no longer the one this Store opened
   * (`coffer restore` put another in its place): open it again to see the restored values.
   */
  get replaced(): boolean {
    if (this.#replacedSeen) return true;
    const st = statSync(this.path, { throwIfNoEntry: false });
    this.#replacedSeen = st === undefined || st.ino !== this.#ino || st.dev !== this.#dev;
    return this.#replacedSeen;
  }

  #assertSameFile(): void {
    if (this.replaced) {
      throw new CofferError(
        "E_REPLACED",
        `the store ${this.path} was replaced (restored from a backup?) after this process opened it; open it again`,
      );
    }
  }

  /** The identity's recipient and name this store was opened with. */
  get owner(): { name: string; recipient: string } {
    return { name: this.actor, recipient: this.#recipient };
  }

  /**
   * Audit records, oldest first.
   * @param options.since - only records at or after this time
   */
  auditLog(options: { since?: Date } = {}): AuditRecord[] {
    const since = options.since?.toISOString() ?? "";
    return (this.#stmt("SELECT * FROM audit WHERE at >= ? ORDER BY seq").all(since) as unknown as AuditRow[]).map(recordFromRow);
  }

  /** Recomputes the whole audit chain. */
  verifyAudit(): AuditVerification {
    const rows = this.#stmt("SELECT * FROM audit ORDER BY seq").iterate() as Iterable<AuditRow>;
    return verifyRows(rows);
  }

  /** Closes the database. The store cannot be used afterwards. */
  close(): void {
    if (this.#valueKey === undefined) return;
    this.#valueKey = undefined;
    this.#statements.clear();
    this.#db.close();
  }

  #key(): KeyObject {
    if (this.#valueKey === undefined) throw new CofferError("E_USAGE", "the store is closed; open it again with openStore()");
    return this.#valueKey;
  }

  #stmt(sql: string): StatementSync {
    this.#key();
    let st = this.#statements.get(sql);
    if (st === undefined) {
      st = this.#db.prepare(sql);
      this.#statements.set(sql, st);
    }
    return st;
  }

  #appendAudit(entry: AuditEntry, at: string): AuditRecord {
    const last = this.#stmt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get() as
      | { seq: number; hash: Uint8Array }
      | undefined;
    const record = { seq: (last?.seq ?? 0) + 1, at, actor: this.actor, ...entry };
    const hash = chainHash(last?.hash ?? GENESIS_HASH, record);
    this.#stmt(INSERT_AUDIT)
      .run(record.seq, at, this.actor, entry.action, entry.name, entry.version, entry.detail === null ? null : JSON.stringify(entry.detail), hash);
    return { ...record, hash: hash.toString("hex") };
  }

  /**
   * Runs `fn` in one write transaction (or inside the one already open): all of its changes,
   * audit records included, land together or not at all. For coffer's own modules.
   * @internal
   */
  transaction<T>(fn: () => T): T {
    return this.#write(fn);
  }

  /**
   * Signs the chain's current tail as the head (beside the identity) and returns it, for a
   * backup to carry. For coffer's own modules.
   * @internal
   */
  signHeadNow(): SignedHead {
    this.#key();
    const tail = tailOf(this.#db);
    if (tail === undefined) throw new CofferError("E_INTEGRITY", `the store ${this.path} has no audit records`);
    return this.#head.write(tail);
  }

  /**
   * Signs `message` with the Ed25519 key of the identity the store was opened with, and gives
   * that identity's card. For coffer's own modules (a backup's signature).
   * @internal
   */
  signAsOwner(message: Uint8Array): { card: string; signature: Buffer } {
    this.#key();
    const key = this.#head.key;
    return {
      card: formatCard({ name: this.actor, recipient: this.#recipient, signingKey: key.publicKey }),
      signature: sign(null, message, key.privateKey),
    };
  }

  /**
   * A prepared statement on the store's database, cached per connection. For coffer's own
   * modules (sharing, backup), which keep their tables in the same file.
   * @internal
   */
  sql(statement: string): StatementSync {
    return this.#stmt(statement);
  }

  #write<T>(fn: () => T, durable = true): T {
    this.#key();
    if (this.#db.isTransaction) return fn();
    if (!durable) this.#db.exec("PRAGMA synchronous = NORMAL");
    try {
      this.#db.exec("BEGIN IMMEDIATE");
    } catch (err) {
      throw mapSqliteError(err, this.path);
    }
    try {
      // Checked with the lock held: a restore swaps the file while holding it, so a write that
      // waited for it would otherwise commit into the old, unlinked file and be lost.
      this.#assertSameFile();
      const result = fn();
      this.#db.exec("COMMIT");
      // After the commit, never before: a head naming a record that then failed to commit
      // would make the store refuse to open. Two writers racing may leave the older of their
      // heads in the file; that is still a prefix of the chain, so nothing is refused wrongly.
      if (durable) signTail(this.#db, this.#head);
      return result;
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw mapSqliteError(err, this.path);
    } finally {
      if (!durable) this.#db.exec("PRAGMA synchronous = FULL");
    }
  }

  #notFound(name: string, version: number | undefined): CofferError {
    const row = this.#stmt(SECRET_STATE).get(name) as
      | { latest: number; deleted_at: string | null }
      | undefined;
    if (row === undefined) return new CofferError("E_NOT_FOUND", `no secret "${name}"; \`coffer list\` shows what there is`);
    if (version !== undefined) {
      return new CofferError("E_NOT_FOUND", `secret "${name}" has no version ${version} (versions 1–${row.latest} were written; purged ones are gone)`);
    }
    return new CofferError(
      "E_NOT_FOUND",
      `secret "${name}" was removed; \`coffer rollback ${name} --to ${row.latest}\` restores it`,
    );
  }
}

function tailOf(db: DatabaseSync): ChainHead | undefined {
  const row = db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: Uint8Array } | undefined;
  return row === undefined ? undefined : { count: Number(row.seq), hash: Buffer.from(row.hash).toString("hex") };
}

function signTail(db: DatabaseSync, head: HeadFile): ChainHead | undefined {
  const tail = tailOf(db);
  if (tail !== undefined) head.write(tail);
  return tail;
}

// Cheap on purpose (every `coffer get` opens the store): one signature check and one indexed
// row, never a walk of the chain. `coffer audit verify` re-checks the chain itself.
function checkHead(db: DatabaseSync, path: string, head: HeadFile, options: Pick<OpenStoreOptions, "acceptHead" | "notice">): HeadStatus {
  const signed = head.read();
  if (signed === undefined) {
    const tail = signTail(db, head) ?? { count: 0, hash: "" };
    options.notice?.(
      `the store ${path} had no signed head (it was written before coffer signed its audit chain); ` +
        `signed one now at record ${tail.count}, kept in ${head.path}`,
    );
    return { state: "new", signed: tail };
  }
  const row = db.prepare("SELECT hash FROM audit WHERE seq = ?").get(signed.count) as { hash: Uint8Array } | undefined;
  if (row !== undefined && Buffer.from(row.hash).toString("hex") === signed.hash) {
    return { state: "ok", signed: { count: signed.count, hash: signed.hash } };
  }
  const found = tailOf(db) ?? { count: 0, hash: "" };
  if (options.acceptHead === true) {
    return { state: "diverged", signed: { count: signed.count, hash: signed.hash, at: signed.at }, found };
  }
  throw new CofferError(
    "E_INTEGRITY",
    `the store ${path} is not the one last written: ` +
      (row === undefined
        ? `its audit chain has ${found.count} records, fewer than the ${signed.count} signed on ${signed.at}`
        : `its audit record ${signed.count} differs from the one signed on ${signed.at}`) +
      "; an older copy of the store (or of its WAL) was put back, which would silently undo later changes. " +
      "If you put it back yourself, take it knowingly with `coffer audit accept`",
  );
}

async function unwrapStoreKey(db: DatabaseSync, path: string, identity: Identity, storeId: Buffer): Promise<Buffer> {
  const rows = db.prepare("SELECT kind, wrapped FROM store_keys WHERE recipient = ?").all(identity.recipient) as {
    kind: string;
    wrapped: Uint8Array;
  }[];
  const local = rows.find((r) => r.kind === "local-v1");
  if (local !== undefined) return unwrapLocal(identity, storeId, local.wrapped);
  const aged = rows.find((r) => r.kind === "age");
  if (aged === undefined) {
    throw new DecryptError(`the store ${path} with identity ${identity.recipient}: the store is not wrapped to it (wrong identity?)`);
  }
  const storeKey = Buffer.from(await decryptWithIdentity(aged.wrapped, identity.secretKey, `the store key of ${path}`));
  if (storeKey.length !== 32) throw new CofferError("E_INTEGRITY", `the store key of ${path} is not 32 bytes`);
  return storeKey;
}

function mapSqliteError(err: unknown, path: string): unknown {
  if (err instanceof CofferError) return err;
  const e = err as { code?: string; errcode?: number };
  if (e.code === "ERR_SQLITE_ERROR") {
    const primary = (e.errcode ?? 0) & 0xff;
    if (primary === SQLITE_BUSY) {
      return new CofferError("E_BUSY", `the store ${path} stayed locked by another process; try again`, { cause: err });
    }
    if (primary === SQLITE_NOTADB || primary === SQLITE_CORRUPT) {
      return new CofferError("E_INTEGRITY", `${path} is not a readable coffer store (corrupt or not SQLite); restore a backup`, { cause: err });
    }
  }
  return err;
}
