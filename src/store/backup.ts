/**
 * Backups (docs/design.md §4): the whole store — secrets, versions, members, grants, trust, export and
 * import records, wrapped store keys and the audit chain — plus, unless left out, the identity
 * file, as one age-encrypted file; and the restore that gives them back on another machine.
 *
 * The plaintext inside age is two JSON lines: the container
 *
 *     { "format": "coffer-backup/v1", "created": ISO 8601, "schema": <PRAGMA user_version>,
 *       "recipient": "age1…" (the identity that made it), "store": <base64 of a SQLite snapshot>,
 *       "identity": <the identity file's text exactly as on disk> | null,
 *       "head": <the audit chain's signed head, src/store/head.ts> }
 *
 * and its signature, as bundles are signed (src/identity/bundle.ts):
 *
 *     { "format": "coffer-backup-signature/v1", "from": <the maker's card>,
 *       "signature": <Ed25519 over "coffer/v1/backup\n" ‖ the container line's bytes, base64url> }
 *
 * Encryption to a recipient proves nothing about who made a backup (anyone holding the public
 * card can encrypt to it), so restore checks the signature against the identity that decrypts
 * the backup, or against the fingerprint given with `--from`, never against a card inside the
 * backup alone. A backup from before signatures (one line) restores only with `--unsigned`.
 *
 * The snapshot is `VACUUM INTO` a private temp file, so it is consistent and carries every
 * table without naming them. A passphrase backup uses age's scrypt recipient with work factor
 * 2^18 and is ASCII-armored; a recipient backup is age X25519 (or any age recipient), armored too.
 * `age -d` (with `-i identity` or the passphrase) gives the JSON back.
 *
 * Nothing here prints or exits: failures are `CofferError`s with stable codes.
 */
import { createPublicKey, randomBytes, verify } from "node:crypto";
import {
  closeSync, constants, existsSync, fsyncSync, mkdtempSync, openSync, readFileSync,
  realpathSync, renameSync, rmSync, statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { CofferError } from "../errors.ts";
import { decryptWithIdentity, decryptWithPassphrase, encryptToRecipients, encryptWithPassphrase, isAgeFile } from "../crypto/age.ts";
import { cardFingerprint, parseCard } from "../identity/card.ts";
import {
  defaultIdentityName, identityFrom, loadIdentity, parseIdentityText, readPassphraseFile, signingKeyOf, type Identity, type PassphraseSource,
} from "../identity/identity.ts";
import { HeadFile, headsDirFor, verifyHead, type ChainHead, type SignedHead } from "./head.ts";
import { verifyRows, type AuditRow, type AuditVerification } from "./audit.ts";
import { createPrivateFile, ensurePrivateDir, fsyncDir, readPrivateFile, replacePrivateFile, touchPrivateFile } from "./fs-secure.ts";
import { SCHEMA_VERSION } from "./migrations.ts";
import { homeOf, resolvePaths, type PathOptions } from "./paths.ts";
import { STORE_FORMAT } from "./schema.ts";
import { openStore, type Store } from "./store.ts";

/** The `format` of the JSON inside a backup file. */
export const BACKUP_FORMAT = "coffer-backup/v1";

/** The `format` of a backup's signature line. */
export const BACKUP_SIGNATURE_FORMAT = "coffer-backup-signature/v1";
const SIGNATURE_CONTEXT = "coffer/v1/backup\n";

/** The shortest backup passphrase accepted without `weakPassphrase`, in characters. */
export const MIN_BACKUP_PASSPHRASE = 12;

/** The scrypt work factor (log2 N) of passphrase backups: age's default, 2^18. */
export const BACKUP_SCRYPT_LOG_N = 18;

/**
 * The largest store a v1 backup holds: its base64 must fit in one JavaScript string
 * (V8 allows about 2^29 characters).
 */
export const MAX_BACKUP_STORE_BYTES = 384 * 1024 * 1024;

/** The JSON document inside the age encryption. */
export interface BackupContainer {
  format: typeof BACKUP_FORMAT;
  /** when the snapshot was taken, ISO 8601 UTC */
  created: string;
  /** the snapshot's schema version (`PRAGMA user_version`) */
  schema: number;
  /** the age recipient of the identity that made the backup (public) */
  recipient: string;
  /** the SQLite snapshot, base64 */
  store: string;
  /** the identity file's text exactly as on disk (plain or passphrase-encrypted), or null */
  identity: string | null;
  /** the audit chain's head signed when the backup was made (absent in older backups) */
  head?: SignedHead;
}

/** Who signed a backup, once the signature has verified. */
export interface BackupSigner {
  name: string;
  card: string;
  fingerprint: string;
  /** the Ed25519 public key, base64url */
  signingKey: string;
}

/** Options of {@link backupStore}. */
export interface BackupOptions {
  /** the file to write (0600); refused if it exists unless `force` */
  out: string;
  /** encrypt with this passphrase (age scrypt, work factor 2^18) … */
  passphrase?: string;
  /** … or to these age recipients (`age1…`) or coffer cards */
  recipients?: readonly string[];
  /**
   * the identity file to put in the backup (its text as on disk), or null to leave it out;
   * normally the file the store was opened with
   */
  identityFile: string | null;
  /**
   * the identity the store was opened with: lets the check after writing decrypt a backup
   * made to its own recipient
   */
  identity?: Identity;
  /** replace `out` if it exists (atomically) */
  force?: boolean;
  /** scrypt work factor, at least 18 (default 18) */
  logN?: number;
  /** accept a passphrase shorter than {@link MIN_BACKUP_PASSPHRASE} characters */
  weakPassphrase?: boolean;
  /** told before slow work (scrypt takes seconds) */
  progress?: (message: string) => void;
  /** where the private temp dir for the snapshot goes (default the OS temp dir) */
  tmpDir?: string;
}

/** What a snapshot holds, as counted when it was checked. */
export interface SnapshotSummary {
  schema: number;
  storeId: string;
  /** live secrets (not removed) */
  secrets: number;
  /** every version of every secret */
  versions: number;
  auditRecords: number;
  /** the recipients the store key is wrapped to */
  keyRecipients: string[];
}

/** What {@link backupStore} did. */
export interface BackupResult extends SnapshotSummary {
  file: string;
  /** bytes written */
  bytes: number;
  created: string;
  to: "passphrase" | "recipient";
  /** the recipients it is encrypted to (recipient backups) */
  recipients?: string[];
  /** scrypt work factor (passphrase backups) */
  logN?: number;
  /** true when the identity is in the backup */
  identity: boolean;
  /**
   * "decrypted": read back, decrypted, snapshot and audit chain checked;
   * "header": encrypted to someone else, so only the age header could be checked here
   */
  verified: "decrypted" | "header";
}

/**
 * Writes a backup of `store` to `options.out`, then reads it back to check it (see
 * {@link BackupResult.verified}). Appends a `backup` audit record first, so the backup's
 * chain ends with its own record.
 *
 * @example
 * const store = await openStore();
 * await backupStore(store, { out: "coffer.backup", recipients: [store.owner.recipient], identityFile: null });
 *
 * @throws CofferError E_USAGE (no or both of passphrase/recipients), E_INVALID_VALUE (bad
 *   recipient, weak work factor, store too large), E_CONFLICT (`out` exists, or is the store or
 *   identity), E_NOT_FOUND (no such directory), E_INTEGRITY (the file written does not check out:
 *   it is removed)
 */
export async function backupStore(store: Store, options: BackupOptions): Promise<BackupResult> {
  const hasPassphrase = options.passphrase !== undefined;
  const hasRecipients = options.recipients !== undefined && options.recipients.length > 0;
  if (hasPassphrase === hasRecipients) {
    throw new CofferError("E_USAGE", "a backup needs either a passphrase or recipients (not both)");
  }
  if (hasPassphrase && options.passphrase!.length === 0) throw new CofferError("E_INVALID_VALUE", "the backup passphrase is empty");
  const logN = options.logN ?? BACKUP_SCRYPT_LOG_N;
  if (!Number.isSafeInteger(logN) || logN < BACKUP_SCRYPT_LOG_N || logN > 22) {
    throw new CofferError("E_INVALID_VALUE", `invalid scrypt work factor ${logN}: backups use 18 to 22 (2^18 or more)`);
  }
  if (hasPassphrase && [...options.passphrase!].length < MIN_BACKUP_PASSPHRASE && options.weakPassphrase !== true) {
    throw new CofferError(
      "E_INVALID_VALUE",
      `the backup passphrase is shorter than ${MIN_BACKUP_PASSPHRASE} characters: a stolen backup could be guessed offline; ` +
        "choose a longer one (a few random words), or pass --weak-passphrase to use it anyway",
    );
  }
  const recipients = hasRecipients ? normalizeRecipients(options.recipients!) : [];
  // Refuse a bad recipient before anything is recorded or written.
  if (hasRecipients) await encryptToRecipients(new Uint8Array(0), recipients);

  const out = resolve(options.out);
  checkOutPath(out, store, options);

  let identityText: string | null = null;
  if (options.identityFile !== null) {
    identityText = await readIdentityForBackup(options.identityFile, store.owner.recipient);
  }

  store.appendAudit({
    action: "backup", name: null, version: null,
    detail: { to: hasPassphrase ? "passphrase" : "recipient", identity: identityText !== null },
  });
  const head = store.signHeadNow();
  const snapshot = snapshotDatabase(store, options.tmpDir);
  let sealed: string;
  let ownerCard = "";
  const created = new Date().toISOString();
  // PRAGMA user_version of the snapshot itself: bytes 60–63 of the SQLite header, big-endian.
  const schema = snapshot.length >= 100 ? snapshot.readUInt32BE(60) : 0;
  {
    const container: BackupContainer = {
      format: BACKUP_FORMAT,
      created,
      schema: Math.max(1, schema),
      recipient: store.owner.recipient,
      store: snapshot.toString("base64"),
      identity: identityText,
      head,
    };
    snapshot.fill(0);
    const body = Buffer.from(JSON.stringify(container), "utf8");
    const signed = store.signAsOwner(Buffer.concat([Buffer.from(SIGNATURE_CONTEXT), body]));
    ownerCard = signed.card;
    const signatureLine = JSON.stringify({ format: BACKUP_SIGNATURE_FORMAT, from: signed.card, signature: signed.signature.toString("base64url") });
    const plain = Buffer.concat([body, Buffer.from(`\n${signatureLine}\n`, "utf8")]);
    body.fill(0);
    try {
      if (hasPassphrase) {
        options.progress?.(`encrypting the backup with your passphrase (scrypt 2^${logN}, a few seconds)…`);
        sealed = await encryptWithPassphrase(plain, options.passphrase!, logN);
      } else {
        const age = await import("age-encryption");
        sealed = age.armor.encode(await encryptToRecipients(plain, recipients));
      }
    } finally {
      plain.fill(0);
    }
  }

  if (options.force === true) replacePrivateFile(out, sealed);
  else createPrivateFile(out, sealed);

  // Read the file back and check it as a restore would.
  let summary: SnapshotSummary | undefined;
  let verified: BackupResult["verified"];
  try {
    const file = readFileSync(out);
    const header = await readAgeHeader(file);
    let plain: Uint8Array | undefined;
    if (hasPassphrase) {
      if (header.kind !== "passphrase" || header.logN !== logN) throw new Error("the header is not the scrypt one written");
      options.progress?.("checking the backup: decrypting it again (scrypt, a few seconds)…");
      plain = await decryptWithPassphrase(file, options.passphrase!, `the backup ${out}`);
    } else {
      if (header.kind !== "recipients" || header.stanzas.length < recipients.length) throw new Error("the header lacks a recipient");
      const own = options.identity;
      if (own !== undefined && recipients.includes(own.recipient)) {
        plain = await decryptWithIdentity(file, own.secretKey, `the backup ${out}`);
      }
    }
    if (plain !== undefined) {
      const { container, signer } = openBackupPlaintext(plain);
      Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).fill(0);
      if (signer?.card !== ownerCard) throw new Error("the signature is not the store owner's");
      if (container.created !== created || container.identity !== identityText) throw new Error("the content differs from what was written");
      summary = inspectSnapshot(Buffer.from(container.store, "base64"), container.schema, options.tmpDir);
      verified = "decrypted";
    } else {
      verified = "header";
    }
  } catch (cause) {
    rmSync(out, { force: true });
    if (cause instanceof CofferError && cause.code !== "E_INTEGRITY" && cause.code !== "E_DECRYPT") throw cause;
    throw new CofferError("E_INTEGRITY", `the backup written to ${out} did not check out when read back, so it was removed: ${(cause as Error).message}`, { cause });
  }
  summary ??= summarizeLive(store);
  return {
    file: out,
    bytes: Buffer.byteLength(sealed),
    created,
    to: hasPassphrase ? "passphrase" : "recipient",
    ...(hasPassphrase ? { logN } : { recipients }),
    identity: identityText !== null,
    verified,
    ...summary,
  };
}

/** What a backup file's age header says, read without decrypting. */
export type BackupHeader =
  | { kind: "passphrase"; logN: number }
  | { kind: "recipients"; stanzas: string[] };

/**
 * Reads the age header of a backup (armored or binary): a passphrase file has exactly one
 * `-> scrypt` stanza; anything else is encrypted to recipients (stanza types listed).
 * @throws CofferError E_DECRYPT when it is not a well-formed age file
 */
export async function readAgeHeader(file: Uint8Array): Promise<BackupHeader> {
  const bad = (why: string) => new CofferError("E_DECRYPT", `not a readable age file (${why}): damaged, or not a coffer backup`);
  if (!isAgeFile(file)) throw bad("no age header");
  let binary: Uint8Array = file;
  const head = Buffer.from(file.subarray(0, 64)).toString("latin1").trimStart();
  if (head.startsWith("-----BEGIN")) {
    const age = await import("age-encryption");
    try {
      binary = age.armor.decode(Buffer.from(file).toString("utf8"));
    } catch {
      throw bad("broken ASCII armor");
    }
  }
  const text = Buffer.from(binary.subarray(0, Math.min(binary.length, 64 * 1024))).toString("latin1");
  const lines = text.split("\n");
  if (lines[0] !== "age-encryption.org/v1") throw bad("unknown version line");
  const stanzas: { type: string; args: string[] }[] = [];
  let ended = false;
  for (const line of lines.slice(1)) {
    if (line.startsWith("---")) {
      ended = true;
      break;
    }
    if (line.startsWith("-> ")) {
      const [type, ...args] = line.slice(3).split(" ");
      stanzas.push({ type: type ?? "", args });
    } else if (stanzas.length === 0) {
      throw bad("a body line before any stanza");
    }
  }
  if (!ended || stanzas.length === 0) throw bad("no complete header");
  const scrypt = stanzas.filter((s) => s.type === "scrypt");
  if (scrypt.length > 0) {
    const logN = Number(scrypt[0]!.args[1]);
    if (stanzas.length !== 1 || !Number.isSafeInteger(logN)) throw bad("a scrypt stanza must be the only one");
    return { kind: "passphrase", logN };
  }
  return { kind: "recipients", stanzas: stanzas.map((s) => s.type) };
}

/** Options of {@link restoreBackup}. */
export interface RestoreOptions extends PathOptions {
  /** the backup file */
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
  /** where the private temp dir for checking the snapshot goes (default the OS temp dir) */
  tmpDir?: string;
  /** how long to wait for another process's write lock on the store being replaced (default 15 s) */
  busyTimeoutMs?: number;
}

/** What a restore would replace; given to {@link RestoreOptions.replace}. */
export interface ReplaceInfo {
  store: string;
  /** live secrets in the existing store, or null when it cannot be read */
  existingSecrets: number | null;
  /** when the backup was taken */
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
  /** whether the backup carried an identity */
  backupHasIdentity: boolean;
  /** who signed the backup (checked as {@link RestoreOptions.from} says), or null for an unsigned one */
  signedBy: { name: string; fingerprint: string } | null;
  /** true when an existing store was replaced */
  replaced: boolean;
  /** when the backup was taken */
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
 * Restores a backup: decrypts and checks it completely (snapshot integrity, audit chain,
 * identity) before anything is written; then writes the identity if needed and the store
 * atomically (an existing store only with consent), migrates an older schema, verifies the
 * audit chain and appends a `restore` record.
 *
 * @throws CofferError E_DECRYPT (wrong passphrase/identity, damaged file: nothing written),
 *   E_INTEGRITY (not a coffer backup, failed integrity or audit check), E_CONFLICT (a different
 *   identity exists at the target), E_CANCELLED (a store exists and no consent),
 *   E_NOT_INITIALIZED (no identity to decrypt or to open the store with), E_USAGE
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const paths = resolvePaths(options);
  const file = resolve(options.file);
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CofferError("E_NOT_FOUND", `no backup file ${file}`);
    throw err;
  }
  const loaded = new Map<string, Identity>();
  const load = async (path: string): Promise<Identity> => {
    let id = loaded.get(path);
    if (id === undefined) {
      id = await loadIdentity(path, {
        ...(options.identityPassphrase !== undefined && { passphrase: options.identityPassphrase }),
        ...(options.env !== undefined && { env: options.env }),
        ...(options.progress !== undefined && { progress: options.progress }),
      });
      loaded.set(path, id);
    }
    return id;
  };

  // 1. Decrypt. Nothing is written before the backup has checked out completely.
  const header = await readAgeHeader(raw);
  let plain: Uint8Array;
  let decryptedWith: Identity | undefined;
  if (header.kind === "passphrase") {
    const source = options.passphrase;
    if (source === undefined) throw new CofferError("E_USAGE", `${file} is a passphrase backup: give its passphrase`);
    const passphrase = typeof source === "string" ? source : await source();
    if (passphrase.length === 0) throw new CofferError("E_INVALID_VALUE", "the backup passphrase is empty");
    options.progress?.(`decrypting ${basename(file)} (scrypt 2^${header.logN}, a few seconds)…`);
    plain = await decryptWithPassphrase(raw, passphrase, `the backup ${file} (wrong passphrase?)`);
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
    plain = await decryptWithIdentity(raw, id.secretKey, `the backup ${file} with the identity ${keyFile} (not one of its recipients?)`);
    decryptedWith = id;
  }
  let opened: { container: BackupContainer; signer: BackupSigner | undefined };
  try {
    opened = openBackupPlaintext(plain);
  } finally {
    Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).fill(0);
  }
  const { container, signer } = opened;
  // The signer is checked before anything in the container is looked at.
  const expected = decryptedWith ?? (existsSync(paths.identity) ? await load(paths.identity) : undefined);
  checkSigner(file, signer, options, expected);
  const head = container.head === undefined || signer === undefined
    ? undefined
    : verifyHead(container.head, String((container.head as { store?: unknown }).store), { publicKey: signer.signingKey }, "in the backup");
  const snapshot = Buffer.from(container.store, "base64");
  const summary = inspectSnapshot(snapshot, container.schema, options.tmpDir, head);

  // 2. The identity that will open the store.
  const backupIdentity = container.identity === null ? undefined : identityInBackup(container);
  let identity: Identity;
  let identityAction: RestoreResult["identityAction"];
  let identityBytes: string | Buffer | undefined;
  if (existsSync(paths.identity)) {
    identity = await load(paths.identity);
    identityAction = "kept";
    if (backupIdentity !== undefined && backupIdentity.recipient !== identity.recipient) {
      throw new CofferError(
        "E_CONFLICT",
        `the identity at ${paths.identity} (${identity.recipient}) is not the one in the backup (${backupIdentity.recipient}); ` +
          "refusing to replace a key: move it away first, or restore elsewhere with COFFER_HOME",
      );
    }
  } else if (backupIdentity !== undefined) {
    identity = backupIdentity.plain ?? (await unlockBackupIdentity(container.identity!, container.recipient, options));
    identityAction = "written";
    identityBytes = container.identity!;
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
      backupIdentity !== undefined && identityAction === "written" ? "E_INTEGRITY" : "E_DECRYPT",
      `the identity ${identity.recipient} cannot open the store in this backup (its key is wrapped to ${summary.keyRecipients.join(", ")})`,
    );
  }

  // 3. Consent to replace an existing store.
  const existing = existsSync(paths.store);
  if (existing) {
    const consent = options.replace;
    const info: ReplaceInfo = {
      store: paths.store, existingSecrets: countLiveSecrets(paths.store),
      backupCreated: container.created, backupSecrets: summary.secrets,
    };
    const yes = typeof consent === "function" ? await consent(info) : consent === true;
    if (!yes) {
      throw new CofferError(
        "E_CANCELLED",
        consent === undefined || consent === false
          ? `a store already exists at ${paths.store}; restoring would replace it, so it needs consent (--yes)`
          : "restore cancelled; nothing was changed",
      );
    }
  }

  // 4. Write the new store next to the target, open it there (migrating an older schema),
  //    verify and record the restore, then move it into place.
  const dir = dirname(paths.store);
  ensurePrivateDir(dir);
  const tmp = join(dir, `.${basename(paths.store)}.${randomBytes(6).toString("hex")}.restore`);
  const scratchHeads = `${tmp}.heads`;
  let restoredHead: ChainHead | undefined;
  let identityWritten = false;
  try {
    createPrivateFile(tmp, snapshot);
    snapshot.fill(0);
    const db = new DatabaseSync(tmp);
    try {
      db.exec("PRAGMA journal_mode = WAL");
    } finally {
      db.close();
    }
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
      const counts = countRows(store);
      const record = store.appendAudit({
        action: "restore", name: null, version: null,
        detail: { backup_created: container.created, replaced: existing, schema: summary.schema, secrets: counts.secrets },
      });
      restoredHead = { count: record.seq, hash: record.hash };
      result = { ...counts, auditRecords: record.seq, schema: (store.sql("PRAGMA user_version").get() as { user_version: number }).user_version };
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
      if (lock !== undefined) {
        lock.exec("ROLLBACK");
        lock.close();
      }
    }
    new HeadFile(headsDirFor(paths.identity), summary.storeId, signingKeyOf(identity), homeOf(options.env)).write(restoredHead!);
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
    snapshot.fill(0);
    rmSync(tmp, { force: true });
    rmSync(scratchHeads, { recursive: true, force: true });
    removeSidecars(tmp);
  }
}

/**
 * Splits a backup's plaintext into its container and its signature line, and verifies the
 * signature against the card in that line (who that card must be is the caller's check).
 * @returns the signer, or undefined for a backup from before signatures (one line)
 * @throws CofferError E_SIGNATURE (bad signature line or signature), E_INTEGRITY (container)
 */
export function openBackupPlaintext(plain: Uint8Array): { container: BackupContainer; signer: BackupSigner | undefined } {
  const buf = Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  // JSON.stringify never writes a raw newline, so the first one ends the container line.
  const nl = buf.indexOf(0x0a);
  if (nl === -1) return { container: parseContainer(buf), signer: undefined };
  const body = buf.subarray(0, nl);
  const forged = (why: string) => new CofferError("E_SIGNATURE", `the backup's signature ${why}: forged or tampered backup`);
  let line: Record<string, unknown>;
  try {
    line = JSON.parse(buf.subarray(nl + 1).toString("utf8")) as Record<string, unknown>;
  } catch {
    throw forged("line is not JSON");
  }
  if (line === null || typeof line !== "object" || line.format !== BACKUP_SIGNATURE_FORMAT || typeof line.from !== "string" || typeof line.signature !== "string") {
    throw forged(`line is not a ${BACKUP_SIGNATURE_FORMAT}`);
  }
  let card;
  try {
    card = parseCard(line.from);
  } catch {
    throw forged("names a malformed card");
  }
  const signature = Buffer.from(line.signature, "base64url");
  let good = false;
  try {
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: card.signingKey }, format: "jwk" });
    good = signature.length === 64 && verify(null, Buffer.concat([Buffer.from(SIGNATURE_CONTEXT), body]), key, signature);
  } catch {
    good = false;
  }
  if (!good) throw forged(`does not verify against its signer card "${card.name}"`);
  return {
    container: parseContainer(body),
    signer: { name: card.name, card: line.from, fingerprint: cardFingerprint(line.from), signingKey: card.signingKey },
  };
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

/**
 * Parses and checks the JSON inside a backup.
 * @throws CofferError E_INTEGRITY when it is not a coffer backup of a known format
 */
export function parseContainer(plain: Uint8Array): BackupContainer {
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).toString("utf8")) as Record<string, unknown>;
  } catch {
    throw new CofferError("E_INTEGRITY", "the backup decrypted but holds no coffer backup (not JSON)");
  }
  if (c === null || typeof c !== "object" || Array.isArray(c)) {
    throw new CofferError("E_INTEGRITY", "the backup decrypted but holds no coffer backup");
  }
  if (c.format !== BACKUP_FORMAT) {
    throw new CofferError(
      "E_INTEGRITY",
      typeof c.format === "string" && c.format.startsWith("coffer-backup/")
        ? `the backup's format ${JSON.stringify(c.format.slice(0, 40))} is newer than this coffer knows (${BACKUP_FORMAT}); upgrade coffer`
        : "the backup decrypted but is not a coffer backup (no coffer-backup/v1 format)",
    );
  }
  const field = (ok: boolean, name: string) => {
    if (!ok) throw new CofferError("E_INTEGRITY", `the backup's "${name}" field is missing or malformed`);
  };
  field(typeof c.created === "string" && !Number.isNaN(Date.parse(c.created)), "created");
  field(Number.isSafeInteger(c.schema) && (c.schema as number) >= 1, "schema");
  field(typeof c.recipient === "string" && c.recipient.startsWith("age1"), "recipient");
  field(typeof c.store === "string" && c.store.length > 0 && c.store.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(c.store), "store");
  field(c.identity === null || (typeof c.identity === "string" && c.identity.length > 0), "identity");
  field(c.head === undefined || (typeof c.head === "object" && c.head !== null), "head");
  return c as unknown as BackupContainer;
}

/**
 * Checks a SQLite snapshot without changing it: `PRAGMA integrity_check`, the store format,
 * the schema version, and the audit chain; counts what it holds.
 * @param schema - the schema version the backup says it has
 * @param head - a signed head (already verified) the chain must contain
 * @throws CofferError E_INTEGRITY
 */
export function inspectSnapshot(snapshot: Uint8Array, schema: number, tmpParent?: string, head?: SignedHead): SnapshotSummary {
  const dir = mkdtempSync(join(tmpParent ?? tmpdir(), "coffer-restore-"));
  try {
    const path = join(dir, "store.db");
    createPrivateFile(path, snapshot);
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path, { readOnly: true });
    } catch (cause) {
      throw new CofferError("E_INTEGRITY", "the store in the backup is not a readable SQLite database", { cause });
    }
    try {
      const bad = (why: string) => new CofferError("E_INTEGRITY", `the store in the backup ${why}`);
      let check: { integrity_check: string }[];
      try {
        db.exec("PRAGMA trusted_schema = OFF");
        check = db.prepare("PRAGMA integrity_check").all() as unknown as { integrity_check: string }[];
      } catch (cause) {
        throw new CofferError("E_INTEGRITY", "the store in the backup is not a readable SQLite database", { cause });
      }
      if (check.length !== 1 || check[0]?.integrity_check !== "ok") {
        throw bad(`fails SQLite's integrity check: ${String(check[0]?.integrity_check ?? "").slice(0, 120)}`);
      }
      const version = Math.max(1, (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
      if (version !== schema) throw bad(`has schema ${version}, not the ${schema} the backup states`);
      if (version > SCHEMA_VERSION) {
        throw new CofferError("E_INTEGRITY", `the backup was written by a newer coffer (schema ${version}, this one knows ${SCHEMA_VERSION}); upgrade coffer`);
      }
      try {
        const meta = new Map((db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [r.key, r.value]));
        const storeId = meta.get("store_id");
        if (meta.get("format") !== String(STORE_FORMAT) || storeId === undefined || !/^[0-9a-f]{32}$/.test(storeId)) {
          throw bad(`is not a coffer store of format ${STORE_FORMAT}`);
        }
        const keyRecipients = (db.prepare("SELECT DISTINCT recipient FROM store_keys ORDER BY recipient").all() as { recipient: string }[])
          .map((r) => r.recipient);
        const one = (sql: string) => Number((db.prepare(sql).get() as { n: number | bigint }).n);
        const audit: AuditVerification = verifyRows(db.prepare("SELECT * FROM audit ORDER BY seq").iterate() as Iterable<AuditRow>);
        if (!audit.ok) {
          throw bad(`has a broken audit chain at record ${audit.brokenAt}: ${audit.reason}`);
        }
        if (head !== undefined) {
          const at = db.prepare("SELECT hash FROM audit WHERE seq = ?").get(head.count) as { hash: Uint8Array } | undefined;
          if (head.store !== storeId || at === undefined || Buffer.from(at.hash).toString("hex") !== head.hash) {
            throw bad("does not contain the signed head the backup carries");
          }
        }
        return {
          schema: version,
          storeId,
          secrets: one("SELECT count(*) AS n FROM secrets WHERE deleted_at IS NULL"),
          versions: one("SELECT count(*) AS n FROM versions"),
          auditRecords: audit.records,
          keyRecipients,
        };
      } catch (cause) {
        if (cause instanceof CofferError) throw cause;
        throw new CofferError("E_INTEGRITY", `the store in the backup is not a coffer store (${(cause as Error).message})`, { cause });
      }
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

/** `age1…` recipients as given, or the recipient of a coffer card; duplicates dropped. */
function normalizeRecipients(list: readonly string[]): string[] {
  const out: string[] = [];
  for (const r of list.map((s) => s.trim())) {
    const recipient = r.startsWith("coffer-card:") ? parseCard(r).recipient : r;
    if (!recipient.startsWith("age1")) {
      throw new CofferError("E_INVALID_VALUE", `not an age recipient or coffer card: ${JSON.stringify(r.slice(0, 80))}`);
    }
    if (!out.includes(recipient)) out.push(recipient);
  }
  return out;
}

function realOrResolved(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    try {
      return join(realpathSync(dirname(p)), basename(p));
    } catch {
      return resolve(p);
    }
  }
}

function checkOutPath(out: string, store: Store, options: BackupOptions): void {
  const target = realOrResolved(out);
  const protectedPaths = [store.path, `${store.path}-wal`, `${store.path}-shm`, `${store.path}-journal`];
  if (options.identityFile !== null) protectedPaths.push(options.identityFile);
  for (const p of protectedPaths) {
    if (realOrResolved(resolve(p)) === target) {
      throw new CofferError("E_CONFLICT", `refusing to write the backup over ${p}: choose another --out`);
    }
  }
  let dirOk = false;
  try {
    dirOk = statSync(dirname(out)).isDirectory();
  } catch {
    dirOk = false;
  }
  if (!dirOk) throw new CofferError("E_NOT_FOUND", `cannot write ${out}: the directory ${dirname(out)} does not exist`);
  let existing: ReturnType<typeof statSync> | undefined;
  try {
    existing = statSync(out);
  } catch {
    existing = undefined;
  }
  if (existing !== undefined && !existing.isFile()) throw new CofferError("E_CONFLICT", `${out} exists and is not a file; choose another --out`);
  if (options.force !== true && existing !== undefined) {
    throw new CofferError("E_CONFLICT", `${out} already exists; refusing to overwrite it (choose another --out, or --force to replace it)`);
  }
}

/** The identity file's text, checked to be the key the store was opened with when it is plain. */
async function readIdentityForBackup(path: string, ownerRecipient: string): Promise<string> {
  const raw = readPrivateFile(
    path,
    "identity file",
    () => new CofferError("E_NOT_INITIALIZED", `no identity at ${path} to put in the backup; leave it out with --no-identity`),
  );
  try {
    if (isAgeFile(raw)) {
      // A passphrase-protected identity goes in as it is (armored if it was binary): restoring
      // it needs its passphrase, as using it does.
      const head = raw.subarray(0, 64).toString("latin1").trimStart();
      if (head.startsWith("-----BEGIN")) return raw.toString("utf8");
      const { armor } = await import("age-encryption");
      return armor.encode(raw);
    }
    const text = raw.toString("utf8");
    const parsed = parseIdentityText(text);
    const recipient = identityFrom(parsed.secretKey, parsed.name ?? "me", false).recipient;
    if (recipient !== ownerRecipient) {
      throw new CofferError(
        "E_CONFLICT",
        `the identity file ${path} (${recipient}) is not the identity the store was opened with (${ownerRecipient})`,
      );
    }
    return text;
  } finally {
    raw.fill(0);
  }
}

function identityInBackup(container: BackupContainer): { recipient: string; plain?: Identity } {
  const text = container.identity!;
  if (isAgeFile(Buffer.from(text.slice(0, 64), "latin1"))) return { recipient: container.recipient };
  let parsed;
  try {
    parsed = parseIdentityText(text);
  } catch (cause) {
    throw new CofferError("E_INTEGRITY", `the identity in the backup is not a usable age identity: ${(cause as Error).message}`, { cause });
  }
  const plain = identityFrom(parsed.secretKey, parsed.name ?? defaultIdentityName(), false);
  if (plain.recipient !== container.recipient) {
    throw new CofferError("E_INTEGRITY", "the identity in the backup is not the one that made it (recipients differ)");
  }
  return { recipient: plain.recipient, plain };
}

/** Opens the passphrase-protected identity a backup carries, in memory. */
async function unlockBackupIdentity(text: string, recipient: string, options: RestoreOptions): Promise<Identity> {
  const source = options.identityPassphrase;
  let passphrase: string | undefined = typeof source === "string" ? source : undefined;
  if (passphrase === undefined) {
    const file = (options.env ?? process.env).COFFER_PASSPHRASE_FILE;
    if (file !== undefined && file !== "") {
      passphrase = readPassphraseFile(file);
    } else if (typeof source === "function") {
      passphrase = await source();
    }
  }
  if (passphrase === undefined) {
    throw new CofferError("E_IDENTITY", "the identity in the backup is passphrase-protected and no passphrase was given for it");
  }
  options.progress?.("unlocking the identity in the backup (scrypt, a few seconds)…");
  const plain = Buffer.from(await decryptWithPassphrase(Buffer.from(text, "utf8"), passphrase, "the identity in the backup (wrong passphrase?)"));
  let identity: Identity;
  try {
    const parsed = parseIdentityText(plain.toString("utf8"));
    identity = identityFrom(parsed.secretKey, parsed.name ?? defaultIdentityName(), true);
  } catch (cause) {
    if (cause instanceof CofferError && cause.code === "E_IDENTITY") {
      throw new CofferError("E_INTEGRITY", `the identity in the backup is not a usable age identity: ${cause.message}`, { cause });
    }
    throw cause;
  } finally {
    plain.fill(0);
  }
  if (identity.recipient !== recipient) {
    throw new CofferError("E_INTEGRITY", "the identity in the backup is not the one that made it (recipients differ)");
  }
  return identity;
}

/** `VACUUM INTO` a 0600 file in a private temp dir; returns the bytes and removes the copy. */
function snapshotDatabase(store: Store, tmpParent?: string): Buffer {
  const dir = mkdtempSync(join(tmpParent ?? tmpdir(), "coffer-backup-"));
  try {
    const path = join(dir, "snapshot.db");
    touchPrivateFile(path);
    store.sql("VACUUM INTO ?").run(path);
    const bytes = readFileSync(path);
    if (bytes.length > MAX_BACKUP_STORE_BYTES) {
      bytes.fill(0);
      throw new CofferError(
        "E_INVALID_VALUE",
        `the store is ${Math.round(bytes.length / 2 ** 20)} MiB; a v1 backup holds at most ${MAX_BACKUP_STORE_BYTES / 2 ** 20} MiB`,
      );
    }
    return bytes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function countRows(store: Store): { secrets: number; versions: number } {
  const n = (sql: string) => Number((store.sql(sql).get() as { n: number | bigint }).n);
  return {
    secrets: n("SELECT count(*) AS n FROM secrets WHERE deleted_at IS NULL"),
    versions: n("SELECT count(*) AS n FROM versions"),
  };
}

function summarizeLive(store: Store): SnapshotSummary {
  const meta = store.sql("SELECT value FROM meta WHERE key = 'store_id'").get() as { value: string } | undefined;
  return {
    schema: (store.sql("PRAGMA user_version").get() as { user_version: number }).user_version,
    storeId: meta?.value ?? "",
    ...countRows(store),
    auditRecords: Number((store.sql("SELECT count(*) AS n FROM audit").get() as { n: number }).n),
    keyRecipients: (store.sql("SELECT DISTINCT recipient FROM store_keys ORDER BY recipient").all() as { recipient: string }[]).map((r) => r.recipient),
  };
}

/** Live secrets in the store at `path` (only read), or null when it cannot be read. */
function countLiveSecrets(path: string): number | null {
  try {
    const db = new DatabaseSync(path);
    try {
      db.exec("PRAGMA busy_timeout = 2000");
      return Number((db.prepare("SELECT count(*) AS n FROM secrets WHERE deleted_at IS NULL").get() as { n: number }).n);
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}

// The old store, checkpointed and with its write lock held; undefined when it cannot be read
// (an unreadable old store is what a restore is for: it is replaced as it is).
function lockForSwap(path: string, busyTimeoutMs: number): DatabaseSync | undefined {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path);
    db.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}; PRAGMA wal_checkpoint(TRUNCATE)`);
    db.exec("BEGIN IMMEDIATE");
    return db;
  } catch (err) {
    db?.close();
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
