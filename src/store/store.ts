/**
 * The encrypted local store (docs/design.md §3–5, §7): the store key, sealing and the public
 * API, over the SQLite driver's synchronous core (`src/storage/sqlite.ts`: tables, transactions,
 * the audit append). A read is one indexed row and one AES-GCM open; every write is one
 * transaction that also signs the chain's new head. How the store key is wrapped to its owner is
 * store-key.ts's; the check of the store against its signed head at open, head-check.ts's.
 */
import { randomBytes, sign } from "node:crypto";
import { statSync } from "node:fs";
import { dirname } from "node:path";
import type { KeyObject } from "node:crypto";
import { CofferError } from "../errors.ts";
import { aadPrefix, deriveValueKey, importKey, open, seal, valueAadWith } from "../crypto/seal.ts";
import { checkGenerator, generateValue, type GeneratorSettings } from "../crypto/generate.ts";
import { encryptToRecipients } from "../crypto/age.ts";
import { loadIdentity, signingKeyOf, type Identity, type PassphraseSource } from "../identity/identity.ts";
import { assertPrivate, assertSecureParents, ensurePrivateDir } from "../core/fs-secure.ts";
import { HeadFile, headsDirFor, type HeadStatus, type SignedHead } from "./head.ts";
import { checkHead, signTail } from "./head-check.ts";
import { unwrapStoreKey, wrapLocal } from "./store-key.ts";
import { formatCard } from "../identity/card.ts";
import { assertSecretName, assertValue, assertVersion, DEFAULT_MAX_VALUE_BYTES, isSecretName } from "../core/names.ts";
import { verifyRows, type AuditEntry, type AuditRecord, type AuditVerification } from "../core/audit.ts";
import { homeOf, resolvePaths, type PathOptions } from "../core/paths.ts";
import { SqliteDriver } from "../storage/sqlite.ts";
import { mapSqliteError } from "../storage/sqlite-errors.ts";
import { secretInfoFromRow } from "../storage/checks.ts";
import { registerInternals } from "./internal.ts";
import { goneVersionError, Secret, type SecretListing, type VersionInfo, type VersionState } from "../core/secret.ts";

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
  /** where the signed heads of the audit chain are kept (default `heads/` beside the identity file; see src/store/head.ts) */
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

/** Options of {@link Store.set}. */
export interface SetOptions {
  /** a human description, kept across versions until changed */
  description?: string;
  /** check-and-set: refuse unless the latest version is this (0: the name must be new) */
  ifVersion?: number;
  /** how often this secret should be rotated, in seconds */
  rotationSeconds?: number;
  /**
   * the generator that made `value` (`coffer set --generate`), remembered so {@link Store.rotate}
   * can make the next one; null forgets it (a value set by hand); absent keeps it as it is
   */
  generator?: GeneratorSettings | null;
}

/** What {@link Store.rotate} did: the new version, and the generator that made its value. */
export interface RotateResult extends WriteResult {
  generator: GeneratorSettings;
}

/** What a write returns. */
export interface WriteResult {
  name: string;
  version: number;
}

/** Metadata of a secret, as listed. Never a value. */
export interface SecretInfo extends SecretListing {
  /** rotation period in seconds, if set */
  rotationSeconds: number | null;
  /** true when a rotation period is set and has passed since the last write */
  rotationDue: boolean;
  /** the generator remembered with the value (`set --generate`), which {@link Store.rotate} uses; null for a value set by hand */
  generator: GeneratorSettings | null;
  /** when `rm` hid it (history kept), else null */
  deletedAt: string | null;
}

export type { VersionInfo, VersionState } from "../core/secret.ts";
export type { HeadStatus } from "./head.ts";

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
  const identity = options.identityObject ?? (await loadIdentity(paths.identity, options));
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
  const storeKey = randomBytes(32);
  let first: AuditRecord | undefined;
  let storeId = "";
  try {
    const ageWrapped = await encryptToRecipients(storeKey, [identity.recipient]);
    SqliteDriver.create(path, "store", (d) => {
      d.setMeta("owner", identity.recipient);
      d.addStoreKey(identity.recipient, "age", ageWrapped);
      d.addStoreKey(identity.recipient, "local-v1", wrapLocal(identity, d.storeId, storeKey));
      [first] = d.appendAudit([{ actor: identity.name, action: "init", name: null, version: null, detail: { format: 1 } }]);
      storeId = d.storeId.toString("hex");
    });
  } finally {
    storeKey.fill(0);
  }
  const headsDir = options.headsDir ?? headsDirFor(resolvePaths(options.env === undefined ? {} : { env: options.env }).identity);
  new HeadFile(headsDir, storeId, signingKeyOf(identity), homeOf(options.env)).write({ count: 1, hash: first!.hash });
}

/** An open local store. Not safe to share across worker threads; open one per thread. */
export class Store {
  readonly path: string;
  /** who writes: the identity's name, recorded as the actor */
  readonly actor: string;
  readonly #db: SqliteDriver;
  readonly #aadPrefix: Buffer;
  readonly #recipient: string;
  /** undefined once closed */
  #valueKey: KeyObject | undefined;
  readonly #maxValueBytes: number;
  readonly #head: HeadFile;
  readonly #headStatus: HeadStatus;
  // The file's identity when opened: a restore renames a new file over the path, and this
  // connection would otherwise go on reading (and writing) the old, unlinked one.
  readonly #file: { dev: number; ino: number };
  #checkedAt = Date.now();
  #replacedSeen = false;

  private constructor(
    db: SqliteDriver, identity: Identity, valueKey: KeyObject, maxValueBytes: number,
    head: HeadFile, headStatus: HeadStatus, file: { dev: number; ino: number },
  ) {
    this.path = db.path;
    this.#head = head;
    this.#headStatus = headStatus;
    this.#file = file;
    this.#recipient = identity.recipient;
    this.actor = identity.name;
    this.#db = db;
    this.#aadPrefix = aadPrefix(db.storeId);
    this.#valueKey = valueKey;
    this.#maxValueBytes = maxValueBytes;
    registerInternals(this, { driver: db, write: (fn) => this.#write(fn) });
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
    const db = SqliteDriver.open(path, "store", options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs });
    try {
      const st = statSync(path);
      const storeKey = await unwrapStoreKey(db, identity);
      const valueKey = importKey(deriveValueKey(storeKey));
      storeKey.fill(0);
      const headsDir = options.headsDir ?? headsDirFor(resolvePaths(options.env === undefined ? {} : { env: options.env }).identity);
      const head = new HeadFile(headsDir, db.storeId.toString("hex"), signingKeyOf(identity), home);
      const status = checkHead(db, head, options);
      return new Store(db, identity, valueKey, options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES, head, status, { dev: st.dev, ino: st.ino });
    } catch (err) {
      db.close();
      throw mapSqliteError(err, "store", path);
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
    const row = version === undefined ? this.#db.readCurrent(name) : this.#db.readVersion(name, assertVersion(version));
    if (row === undefined) throw this.#notFound(name, version);
    const v = row.version;
    const value = open(key, row, valueAadWith(this.#aadPrefix, name, v), () => `secret "${name}" v${v}`);
    return new Secret({ name, version: v, updatedAt: row.createdAt }, value);
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
      if (e.generator !== undefined && e.generator !== null) checkGenerator(e.generator);
      if (e.description !== undefined && e.description.length > 1024) {
        throw new CofferError("E_INVALID_VALUE", "invalid description: longer than 1024 characters");
      }
      return { ...e, bytes };
    });
    return this.#write(() => prepared.map((e) => this.#seal(e.name, e.bytes, "set", null, e)));
  }

  // Writes the next version of `name` holding `bytes`, sealed for that version (part of the AAD).
  #seal(name: string, bytes: Uint8Array, action: string, detail: Record<string, unknown> | null, options: SetOptions = {}): WriteResult {
    const { version } = this.#db.write({
      name, actor: this.actor, action, auditDetail: detail,
      ...(options.description !== undefined && { description: options.description }),
      ...(options.ifVersion !== undefined && { ifVersion: options.ifVersion }),
      ...(options.rotationSeconds !== undefined && { rotationSeconds: options.rotationSeconds }),
      ...(options.generator !== undefined && { generator: options.generator === null ? null : JSON.stringify({ charset: options.generator.charset, length: options.generator.length }) }),
      seal: (v) => seal(this.#key(), bytes, valueAadWith(this.#aadPrefix, name, v)),
    });
    return { name, version };
  }

  /**
   * Lists secrets (metadata only), sorted by name.
   * @param prefix - only names starting with this string
   * @param options.deleted - include secrets hidden by `remove`
   * @param options.due - only secrets whose rotation period has passed since their last write
   */
  list(prefix = "", options: { deleted?: boolean; due?: boolean } = {}): SecretInfo[] {
    this.#key();
    const now = Date.now();
    const rows = this.#db.list(prefix, { deleted: options.deleted === true }).map((r): SecretInfo => ({
      ...secretInfoFromRow(r),
      rotationSeconds: r.rotation_s ?? null,
      rotationDue: r.rotation_s != null && Date.parse(r.updated_at) + r.rotation_s * 1000 < now,
      generator: storedGenerator(r.name, r.generator ?? null),
      deletedAt: r.deleted_at,
    }));
    return options.due === true ? rows.filter((r) => r.rotationDue) : rows;
  }

  /**
   * Rotates a secret: a new version holding a fresh value from the generator remembered with it
   * (`set --generate`), audited as `rotate` (the generator's settings, never the value). Like any
   * write it restarts the rotation period. The local store has no apply target: whatever uses the
   * secret reads the new version.
   * @throws CofferError E_NOT_FOUND (no such secret, or removed); E_INVALID_VALUE when the secret
   *   has no generator (it was set by hand); E_CONFLICT when it was written while the value was made
   */
  async rotate(name: string): Promise<RotateResult> {
    assertSecretName(name);
    this.#key();
    const row = this.#db.list(name).find((r) => r.name === name);
    if (row === undefined || row.deleted_at !== null) throw this.#notFound(name, undefined);
    const generator = storedGenerator(name, row.generator ?? null);
    if (generator === null) {
      throw new CofferError(
        "E_INVALID_VALUE",
        `secret "${name}" has no generator to rotate with (its value was set by hand): set it with --generate first, ` +
          `e.g. \`coffer set ${name} --generate --length 32\`, or rotate it by hand with \`coffer set ${name}\``,
      );
    }
    const value = Buffer.from(await generateValue(generator.charset, generator.length), "utf8");
    try {
      const written = this.#write(() => {
        // Checked again under the lock: removed, or set another way, while the value was made.
        const now = this.#db.list(name).find((r) => r.name === name);
        if (now === undefined || now.deleted_at !== null) throw this.#notFound(name, undefined);
        if ((now.generator ?? null) !== (row.generator ?? null)) throw new CofferError("E_CONFLICT", "generator changed");
        return this.#seal(name, value, "rotate", { ...generator }, { ifVersion: row.latest });
      });
      return { ...written, generator };
    } catch (err) {
      if (err instanceof CofferError && err.code === "E_CONFLICT") {
        throw new CofferError("E_CONFLICT", `secret "${name}" was written by someone else while its new value was made; nothing was written: rotate it again`);
      }
      throw err;
    } finally {
      value.fill(0);
    }
  }

  /**
   * Every version of a secret, oldest first (metadata only).
   * @throws CofferError E_NOT_FOUND
   */
  history(name: string): VersionInfo[] {
    assertSecretName(name);
    this.#key();
    return this.#db.versions(name) ?? this.#throw(this.#notFound(name, undefined));
  }

  /**
   * Hides a secret: `get` no longer finds it, every version stays (see {@link Store.rollback}).
   * @throws CofferError E_NOT_FOUND
   */
  remove(name: string): WriteResult {
    assertSecretName(name);
    return this.#write(() => {
      const removed = this.#db.remove(name, this.actor, null, "rm") ?? this.#throw(this.#notFound(name, undefined));
      return { name, version: removed.version };
    });
  }

  /**
   * Destroys every version of a secret (SQLite secure_delete zeroes the freed pages).
   * @returns how many versions were destroyed
   * @throws CofferError E_NOT_FOUND
   */
  purge(name: string): { name: string; versions: number } {
    assertSecretName(name);
    const versions = this.#write(() => this.#db.purge(name, this.actor) ?? this.#throw(this.#notFound(name, undefined)));
    // Move the freed pages out of the WAL too, so no old ciphertext lingers there.
    this.#db.checkpoint();
    return { name, versions };
  }

  /**
   * Soft-deletes versions of a secret (audit `delete-version`, one record per version): reads of
   * them are refused until {@link Store.undeleteVersions}; their sealed values stay. Deleting the
   * current version makes a plain `get` refuse too, until it is undeleted or a new version written.
   * A version already deleted or destroyed is left as it is (no error).
   * @param versions - 1 to 100 version numbers
   * @throws CofferError E_NOT_FOUND (no such secret); E_INVALID_VALUE naming versions that do not exist
   */
  deleteVersions(name: string, versions: readonly number[]): { name: string; versions: VersionState[] } {
    return this.#changeVersions("delete", name, versions, "delete-version");
  }

  /**
   * Undeletes versions (audit `undelete`), as {@link Store.deleteVersions}. A destroyed version
   * stays destroyed: undeleting it changes nothing (no error, as Vault); the answer says `destroyed`.
   */
  undeleteVersions(name: string, versions: readonly number[]): { name: string; versions: VersionState[] } {
    return this.#changeVersions("undelete", name, versions, "undelete");
  }

  /**
   * Destroys versions (audit `destroy`): their sealed values are overwritten and zeroed for good
   * (secure_delete, then the WAL checkpointed, as {@link Store.purge}); their rows stay in the
   * history, marked destroyed.
   */
  destroyVersions(name: string, versions: readonly number[]): { name: string; versions: VersionState[] } {
    const done = this.#changeVersions("destroy", name, versions, "destroy");
    this.#db.checkpoint();
    return done;
  }

  #changeVersions(kind: "delete" | "undelete" | "destroy", name: string, versions: readonly number[], action: string): { name: string; versions: VersionState[] } {
    assertSecretName(name);
    const done = this.#write(() => this.#db.changeVersions(kind, name, versions, this.actor, null, action) ?? this.#throw(this.#notFound(name, undefined)));
    return { name, versions: done.versions };
  }

  /**
   * Writes a new version holding the value of version `to` (and undoes a `remove`).
   * @throws CofferError E_NOT_FOUND when that version does not exist, or was deleted or destroyed
   */
  rollback(name: string, to: number): WriteResult {
    assertSecretName(name);
    assertVersion(to);
    return this.#write(() => {
      const old = this.get(name, { version: to });
      try {
        return this.#seal(name, old.bytes(), "rollback", { from: to });
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
    const durable = options.durable ?? true;
    return this.#write(() => this.#db.appendAudit([{ ...entry, actor: this.actor }], durable)[0]!, durable);
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
    this.#replacedSeen = st === undefined || st.ino !== this.#file.ino || st.dev !== this.#file.dev;
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
    this.#key();
    return this.#db.auditLog(options.since === undefined ? {} : { since: options.since });
  }

  /** Recomputes the whole audit chain. */
  verifyAudit(): AuditVerification {
    this.#key();
    return verifyRows(this.#db.auditRows());
  }

  /** Closes the database. The store cannot be used afterwards. */
  close(): void {
    if (this.#valueKey === undefined) return;
    this.#valueKey = undefined;
    this.#db.close();
  }

  #key(): KeyObject {
    if (this.#valueKey === undefined) throw new CofferError("E_USAGE", "the store is closed; open it again with openStore()");
    return this.#valueKey;
  }

  /**
   * Signs the chain's current tail as the head (beside the identity) and returns it, for a
   * backup to carry. For coffer's own modules.
   * @internal
   */
  signHeadNow(): SignedHead {
    this.#key();
    const tail = this.#db.tail();
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

  // One write transaction (or the one open), checked with the lock held: a restore swaps the
  // file while holding it, so a write that waited for it would otherwise commit into the old,
  // unlinked file and be lost. The head is signed after the commit, never before: a head naming
  // a record that then failed to commit would make the store refuse to open. Two writers racing
  // may leave the older of their heads in the file; that is still a prefix of the chain.
  #write<T>(fn: () => T, durable = true): T {
    this.#key();
    try {
      return this.#db.transaction(() => {
        this.#assertSameFile();
        return fn();
      }, durable, durable ? () => signTail(this.#db, this.#head) : undefined);
    } catch (err) {
      throw mapSqliteError(err, "store", this.path);
    }
  }

  #throw(err: Error): never {
    throw err;
  }

  #notFound(name: string, version: number | undefined): CofferError {
    const row = this.#db.state(name);
    if (row === undefined) return new CofferError("E_NOT_FOUND", `no secret "${name}"; \`coffer list\` shows what there is`);
    // A version deleted or destroyed on its own: the asked one, or the current one of a live secret.
    const wanted = version ?? (row.deletedAt === null ? row.latest : undefined);
    const gone = wanted === undefined ? undefined : goneVersionError(name, this.#db.versions(name)?.find((v) => v.version === wanted));
    if (gone !== undefined) return gone;
    if (version !== undefined) {
      return new CofferError("E_NOT_FOUND", `secret "${name}" has no version ${version} (versions 1–${row.latest} were written; purged ones are gone)`);
    }
    return new CofferError("E_NOT_FOUND", `secret "${name}" was removed; \`coffer rollback ${name} --to ${row.latest}\` restores it`);
  }
}

// A secret's remembered generator, from its `secrets.generator` column (JSON, written only by set).
function storedGenerator(name: string, text: string | null): GeneratorSettings | null {
  if (text === null) return null;
  try {
    return checkGenerator(JSON.parse(text) as { charset: unknown; length: unknown });
  } catch {
    throw new CofferError("E_INTEGRITY", `the generator stored with secret "${name}" is not one this coffer reads; set it again with --generate`);
  }
}
