/**
 * Restoring a backup (docs/design.md §4); see {@link restoreBackup}. Encryption to a recipient
 * proves nothing about who made a backup (anyone holding the public card can encrypt to it), so
 * restore checks the signature against the identity that decrypts the backup, or against the
 * fingerprint given with `--from`, never against a card inside the backup alone. A backup from
 * before signatures (one line) restores only with `--unsigned`.
 *
 * Nothing here prints or exits: failures are `CofferError`s with stable codes.
 */
import { randomBytes } from "node:crypto";
import { closeSync, constants, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmdirSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { SqliteDriver } from "../storage/sqlite.ts";
import { CofferError } from "../errors.ts";
import { decryptWithPassphrase, isAgeFile } from "../crypto/age.ts";
import type { OpenWith } from "../crypto/age-stream.ts";
import {
  defaultIdentityName, identityFrom, loadIdentity, parseIdentityText, readPassphrase, signingKeyOf, type Identity, type PassphraseSource,
} from "../identity/identity.ts";
import { AGE_HEADER_PREFIX, decryptBackup, readAgeHeader, type BackupSigner } from "./backup-format.ts";
import { inspectSnapshot } from "./backup-snapshot.ts";
import { HeadFile, headsDirFor, verifyHead, type ChainHead } from "./head.ts";
import { createPrivateFile, ensurePrivateDir, fsyncDir, readFilePrefix } from "../core/fs-secure.ts";
import { homeOf, resolvePaths, type PathOptions } from "../core/paths.ts";
import { openStore } from "./store.ts";
import { internalsOf } from "./internal.ts";

/** Options of {@link restoreBackup}. */
export interface RestoreOptions extends PathOptions {
  file: string;
  /** the passphrase (or a function asking for it) of a passphrase backup */
  passphrase?: PassphraseSource;
  /**
   * an age identity file that opens a recipient backup (default: the identity at the target
   * path); when the backup holds no identity and none exists at the target, it is copied there
   */
  identityFile?: string;
  /** the passphrase (or a function asking for it) of a passphrase-protected identity file */
  identityPassphrase?: PassphraseSource;
  /**
   * the fingerprint of the card that must have signed the backup (default: the identity that
   * decrypts it; for a passphrase backup, the identity at the target when there is one)
   */
  from?: string;
  /** restore a backup that carries no signature (made before coffer signed backups) */
  allowUnsigned?: boolean;
  /** told what the user must know but that does not stop the restore */
  warn?: (message: string) => void;
  /**
   * consent to replace an existing store: true, or a function asked (with what would be
   * replaced) only when a store exists. Without consent an existing store is left alone.
   */
  replace?: boolean | ((info: ReplaceInfo) => Promise<boolean>);
  /** told before slow work */
  progress?: (message: string) => void;
  /** @deprecated ignored: the backup is decrypted into a temp file beside the store, then renamed into place */
  tmpDir?: string;
  /** how long to wait for another process's write lock on the store being replaced (default 15 s) */
  busyTimeoutMs?: number;
}

/** What a restore would replace; given to {@link RestoreOptions.replace}. */
export interface ReplaceInfo {
  store: string;
  /** live secrets in the existing store, or null when it cannot be read */
  existingSecrets: number | null;
  backupCreated: string;
  backupSecrets: number;
}

/** What {@link restoreBackup} did. */
export interface RestoreResult {
  file: string;
  store: string;
  identityPath: string;
  /** written from the backup, kept (the existing one), or adopted from `identityFile` */
  identityAction: "written" | "kept" | "adopted";
  backupHasIdentity: boolean;
  /** who signed the backup (checked as {@link RestoreOptions.from} says), or null for an unsigned one */
  signedBy: { name: string; fingerprint: string } | null;
  replaced: boolean;
  backupCreated: string;
  /** the backup's schema version (an older one is migrated) and the store's now */
  schemaFrom: number;
  schema: number;
  secrets: number;
  versions: number;
  /** records in the restored chain, the `restore` record included; the chain verifies */
  auditRecords: number;
}

/**
 * Restores a backup: decrypts it as it streams into a private temp file beside the target
 * (memory bounded by a chunk, whatever its size) and checks it completely (signature and
 * signer, snapshot integrity, audit chain, identity) before anything is swapped in or any
 * identity written; a refused backup leaves nothing behind. Then it migrates an older schema,
 * verifies the audit chain, appends a `restore` record, and writes the identity if needed and
 * the store atomically (an existing store only with consent).
 *
 * @throws CofferError E_DECRYPT (wrong passphrase/identity, damaged file: nothing written),
 *   E_INTEGRITY (not a coffer backup, failed integrity or audit check), E_CONFLICT (a different
 *   identity exists at the target), E_CANCELLED (a store exists and no consent),
 *   E_NOT_INITIALIZED (no identity to decrypt or to open the store with), E_USAGE
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const paths = resolvePaths(options);
  const file = resolve(options.file);
  let prefix: Buffer;
  try {
    prefix = readFilePrefix(file, AGE_HEADER_PREFIX);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new CofferError("E_NOT_FOUND", `no backup file ${file}`);
    throw err;
  }
  // Identity files are opened with identityPassphrase (options.passphrase is the backup's), once each.
  const { passphrase: _backup, identityPassphrase, ...rest } = options;
  const idOptions = identityPassphrase === undefined ? rest : { ...rest, passphrase: identityPassphrase };
  const loaded = new Map<string, Identity>();
  const load = async (path: string): Promise<Identity> => {
    const id = loaded.get(path) ?? (await loadIdentity(path, idOptions));
    loaded.set(path, id);
    return id;
  };

  // 1. The key that opens the age file, as its header says.
  const header = await readAgeHeader(prefix);
  let key: OpenWith;
  let what: string;
  let decryptedWith: Identity | undefined;
  if (header.kind === "passphrase") {
    const source = options.passphrase;
    if (source === undefined) throw new CofferError("E_USAGE", `${file} is a passphrase backup: give its passphrase`);
    const passphrase = typeof source === "string" ? source : await source();
    if (passphrase.length === 0) throw new CofferError("E_INVALID_VALUE", "the backup passphrase is empty");
    options.progress?.(`decrypting ${basename(file)} (scrypt 2^${header.logN}, a few seconds)…`);
    key = { passphrase };
    what = `the backup ${file} (wrong passphrase?)`;
  } else {
    if (typeof options.passphrase === "string") {
      throw new CofferError("E_USAGE", `${file} is encrypted to age recipients, not a passphrase: open it with its identity (--identity FILE)`);
    }
    const keyFile = options.identityFile ?? paths.identity;
    if (options.identityFile === undefined && !existsSync(keyFile)) {
      throw new CofferError(
        "E_NOT_INITIALIZED",
        `${file} is encrypted to an age recipient and there is no identity at ${keyFile} to open it; give the identity file that opens it (--identity FILE)`,
      );
    }
    const id = await load(keyFile);
    key = { identity: id.secretKey };
    what = `the backup ${file} with the identity ${keyFile} (not one of its recipients?)`;
    decryptedWith = id;
  }

  // 2. Decrypt (a wrong passphrase or key stops here) into a private temp file beside the
  //    target as the backup streams by, hashing it as it goes; then check the signature over that hash and its signer, the snapshot and the
  //    audit chain, before anything is swapped in. On any failure the temp file (and any
  //    directory made for it) goes, so nothing is left of a refused backup.
  const dir = dirname(paths.store);
  let madeDir: string | undefined;
  const tmp = join(dir, `.${basename(paths.store)}.${randomBytes(6).toString("hex")}.restore`);
  const scratchHeads = `${tmp}.heads`;
  let restoredHead: ChainHead | undefined;
  let identityWritten = false;
  let done = false;
  try {
    madeDir = ensurePrivateDir(dir);
    const { info: container, signer } = await decryptBackup(file, key, what, tmp);
    // The signer is checked before anything in the backup is looked at.
    const expected = decryptedWith ?? (existsSync(paths.identity) ? await load(paths.identity) : undefined);
    checkSigner(file, signer, options, expected);
    const head = container.head === undefined || signer === undefined
      ? undefined
      : verifyHead(container.head, String((container.head as { store?: unknown }).store), { publicKey: signer.signingKey }, "in the backup");
    const summary = inspectSnapshot(tmp, container.schema, head);
    removeSidecars(tmp);

    // 3. The identity that will open the store. One in the backup is checked now if plain; a
    //    passphrase-protected one is opened only when it is to be written.
    const inBackup = container.identity;
    const plainInBackup = inBackup === null || isAgeFile(Buffer.from(inBackup.slice(0, 64), "latin1"))
      ? undefined
      : backupIdentityFrom(inBackup, container.recipient, false);
    let identity: Identity;
    let identityAction: RestoreResult["identityAction"];
    let identityBytes: string | Buffer | undefined;
    if (existsSync(paths.identity)) {
      identity = await load(paths.identity);
      identityAction = "kept";
      if (inBackup !== null && container.recipient !== identity.recipient) {
        throw new CofferError(
          "E_CONFLICT",
          `the identity at ${paths.identity} (${identity.recipient}) is not the one in the backup (${container.recipient}); ` +
            "refusing to replace a key: move it away first, or restore elsewhere with COFFER_HOME",
        );
      }
    } else if (inBackup !== null) {
      identity = plainInBackup ?? (await unlockBackupIdentity(inBackup, container.recipient, options));
      identityAction = "written";
      identityBytes = inBackup;
    } else if (options.identityFile !== undefined) {
      identity = await load(options.identityFile);
      identityAction = "adopted";
      identityBytes = readFileSync(options.identityFile);
    } else {
      throw new CofferError(
        "E_NOT_INITIALIZED",
        `the backup holds no identity and there is none at ${paths.identity}; give the identity file of the store's owner (--identity FILE)`,
      );
    }
    if (!summary.keyRecipients.includes(identity.recipient)) {
      throw new CofferError(
        identityAction === "written" ? "E_INTEGRITY" : "E_DECRYPT",
        `the identity ${identity.recipient} cannot open the store in this backup (its key is wrapped to ${summary.keyRecipients.join(", ")})`,
      );
    }

    // 4. Consent to replace an existing store.
    const existing = existsSync(paths.store);
    if (existing) {
      const consent = options.replace;
      const info: ReplaceInfo = {
        store: paths.store, existingSecrets: SqliteDriver.countLive(paths.store),
        backupCreated: container.created, backupSecrets: summary.secrets,
      };
      if (!(typeof consent === "function" ? await consent(info) : consent === true)) {
        throw new CofferError(
          "E_CANCELLED",
          consent === undefined || consent === false
            ? `a store already exists at ${paths.store}; restoring would replace it, so it needs consent (--yes)`
            : "restore cancelled; nothing was changed",
        );
      }
    }

    // 5. Open the new store where it is (migrating an older schema), verify and record the
    //    restore, then move it into place.
    SqliteDriver.useWal(tmp);
    removeSidecars(tmp);
    let result: Pick<RestoreResult, "schema" | "secrets" | "versions" | "auditRecords">;
    // A restore is a rollback taken knowingly: the chain it brings back need not contain the
    // head signed for the store it replaces. Its heads go to a scratch dir while it is not in
    // place yet; the real head is signed only once the new file has replaced the old one, so a
    // restore that fails half-way leaves the old store opening as before.
    const store = await openStore({
      ...(options.env !== undefined && { env: options.env }),
      store: tmp, identity: paths.identity, identityObject: identity, acceptHead: true, headsDir: scratchHeads,
    });
    try {
      const verification = store.verifyAudit();
      if (!verification.ok) {
        throw new CofferError("E_INTEGRITY", `the restored audit chain is broken at record ${verification.brokenAt}: ${verification.reason}`);
      }
      const counts = internalsOf(store).driver.counts();
      const record = store.appendAudit({
        action: "restore", name: null, version: null,
        detail: { backup_created: container.created, replaced: existing, schema: summary.schema, secrets: counts.secrets },
      });
      restoredHead = { count: record.seq, hash: record.hash };
      result = { ...counts, auditRecords: record.seq, schema: internalsOf(store).driver.schemaVersion() };
    } finally {
      store.close();
    }
    removeSidecars(tmp);
    fsyncFile(tmp);

    if (identityBytes !== undefined) {
      ensurePrivateDir(dirname(paths.identity));
      createPrivateFile(paths.identity, identityBytes);
      identityWritten = true;
    }
    // The old store's WAL and shared-memory files must not outlive it: a stale WAL would be
    // replayed into the new file. Checkpoint it first (so a live writer's commits are in the
    // old file, not lost half-way), then hold its write lock while both are removed and the
    // new file is renamed over, so that no other process commits into the old file meanwhile
    // (a write waiting for the lock finds the file replaced and refuses: E_REPLACED).
    const lock = existing ? lockForSwap(paths.store, options.busyTimeoutMs ?? 15_000) : undefined;
    try {
      if (existing) removeSidecars(paths.store);
      renameSync(tmp, paths.store);
      fsyncDir(dir);
    } finally {
      lock?.();
    }
    new HeadFile(headsDirFor(paths.identity), summary.storeId, signingKeyOf(identity), homeOf(options.env)).write(restoredHead!);
    done = true;
    return {
      file,
      store: paths.store,
      identityPath: paths.identity,
      identityAction,
      backupHasIdentity: container.identity !== null,
      signedBy: signer === undefined ? null : { name: signer.name, fingerprint: signer.fingerprint },
      replaced: existing,
      backupCreated: container.created,
      schemaFrom: summary.schema,
      ...result,
    };
  } catch (err) {
    if (identityWritten) rmSync(paths.identity, { force: true });
    throw err;
  } finally {
    rmSync(tmp, { force: true });
    rmSync(scratchHeads, { recursive: true, force: true });
    removeSidecars(tmp);
    if (!done && madeDir !== undefined) removeMadeDirs(dir, madeDir);
  }
}

// The directories ensurePrivateDir made for a restore that failed, deepest first, as long as
// they are empty (rmdir removes nothing else).
function removeMadeDirs(dir: string, top: string): void {
  for (let d = dir; d.length >= top.length; d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
    if (d === top) return;
  }
}

// Who must have signed: the card with the --from fingerprint, else the identity that decrypts
// the backup (or, for a passphrase backup, the identity already at the target). A passphrase
// backup restored where there is no identity yet and no --from is vouched for by its passphrase
// alone: only someone who knows it can make one.
function checkSigner(file: string, signer: BackupSigner | undefined, options: RestoreOptions, expected: Identity | undefined): void {
  if (signer === undefined) {
    if (options.allowUnsigned !== true) {
      throw new CofferError(
        "E_SIGNATURE",
        `the backup ${file} is not signed: it was made before coffer signed backups, or forged (anyone with your public card ` +
          "can encrypt one to you); restore it only if you made it yourself, with --unsigned",
      );
    }
    options.warn?.(`the backup ${file} is not signed, so nothing shows who made it; restoring it because --unsigned was given`);
    return;
  }
  const say = `the backup is signed by "${signer.name}" (fingerprint ${signer.fingerprint})`;
  if (options.from !== undefined) {
    if (signer.fingerprint !== options.from.trim().toUpperCase()) {
      throw new CofferError("E_UNTRUSTED", `${say}, not by the card with fingerprint ${options.from.trim().toUpperCase()} given with --from`);
    }
    return;
  }
  if (expected !== undefined && signer.signingKey !== signingKeyOf(expected).publicKey) {
    throw new CofferError(
      "E_UNTRUSTED",
      `${say}, not by your identity ${expected.recipient}; if you know that fingerprint to be the maker's, run again with --from ${signer.fingerprint}`,
    );
  }
}

/** Opens the passphrase-protected identity a backup carries, in memory. */
async function unlockBackupIdentity(text: string, recipient: string, options: RestoreOptions): Promise<Identity> {
  const passphrase = await readPassphrase(
    { ...(options.identityPassphrase !== undefined && { passphrase: options.identityPassphrase }), ...(options.env !== undefined && { env: options.env }) },
    "the identity in the backup",
  );
  options.progress?.("unlocking the identity in the backup (scrypt, a few seconds)…");
  const plain = Buffer.from(await decryptWithPassphrase(Buffer.from(text, "utf8"), passphrase, "the identity in the backup (wrong passphrase?)"));
  try {
    return backupIdentityFrom(plain.toString("utf8"), recipient, true);
  } finally {
    plain.fill(0);
  }
}

// An identity file's plain text from a backup, checked to be the identity that made the backup.
function backupIdentityFrom(text: string, recipient: string, encrypted: boolean): Identity {
  let identity: Identity;
  try {
    const parsed = parseIdentityText(text);
    identity = identityFrom(parsed.secretKey, parsed.name ?? defaultIdentityName(), encrypted);
  } catch (cause) {
    if (cause instanceof CofferError && cause.code === "E_IDENTITY") {
      throw new CofferError("E_INTEGRITY", `the identity in the backup is not a usable age identity: ${cause.message}`, { cause });
    }
    throw cause;
  }
  if (identity.recipient !== recipient) {
    throw new CofferError("E_INTEGRITY", "the identity in the backup is not the one that made it (recipients differ)");
  }
  return identity;
}

// The old store, checkpointed and with its write lock held (the lock's release); undefined when
// it cannot be read (an unreadable old store is what a restore is for: it is replaced as it is).
function lockForSwap(path: string, busyTimeoutMs: number): (() => void) | undefined {
  try {
    return SqliteDriver.lockForSwap(path, busyTimeoutMs);
  } catch (err) {
    if (((err as { errcode?: number }).errcode ?? 0) % 256 === 5) {
      throw new CofferError("E_BUSY", `another coffer process kept the store ${path} locked; stop it, then restore again (nothing was replaced)`, { cause: err });
    }
    return undefined;
  }
}

function fsyncFile(path: string): void {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function removeSidecars(dbPath: string): void {
  for (const suffix of ["-wal", "-shm", "-journal"]) rmSync(`${dbPath}${suffix}`, { force: true });
}
