/**
 * Backups (docs/design.md §4): the whole store (every table: secrets, sharing records, wrapped
 * store keys, the audit chain) plus, unless left out, the identity file, in one ASCII-armored
 * age file (scrypt 2^18 or more, or to age recipients) that `age -d` opens, signed with the
 * identity's Ed25519 key. The format is in backup-format.ts, the snapshot in
 * backup-snapshot.ts, the restore in restore.ts.
 *
 * Nothing here prints or exits: failures are `CofferError`s with stable codes.
 */
import { mkdtempSync, realpathSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { CofferError } from "../errors.ts";
import { encryptToRecipients, isAgeFile } from "../crypto/age.ts";
import { sealStream, type OpenWith, type SealTo } from "../crypto/age-stream.ts";
import { parseCard } from "../identity/card.ts";
import { identityFrom, parseIdentityText, type Identity } from "../identity/identity.ts";
import { AGE_HEADER_PREFIX, BACKUP_FORMAT_V2, backupPlaintext, decryptBackup, isArmored, readAgeHeader } from "./backup-format.ts";
import { inspectSnapshot, type SnapshotSummary } from "./backup-snapshot.ts";
import { internalsOf } from "./internal.ts";
import { fileChunks, readFilePrefix, readPrivateFile, touchPrivateFile, writePrivateFileFrom } from "../core/fs-secure.ts";
import type { Store } from "./store.ts";

export * from "./backup-format.ts";
export * from "./restore.ts";

/** The shortest backup passphrase accepted without `weakPassphrase`, in characters. */
export const MIN_BACKUP_PASSPHRASE = 12;

/** The scrypt work factor (log2 N) of passphrase backups: age's default, 2^18. */
export const BACKUP_SCRYPT_LOG_N = 18;

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
  /** the identity the store was opened with: lets the check after writing decrypt a backup made to its own recipient */
  identity?: Identity;
  /** replace `out` if it exists (atomically) */
  force?: boolean;
  /** scrypt work factor, at least 18 (default 18) */
  logN?: number;
  /** accept a passphrase shorter than {@link MIN_BACKUP_PASSPHRASE} characters */
  weakPassphrase?: boolean;
  /** told before slow work (scrypt takes seconds) */
  progress?: (message: string) => void;
  /** where the private temp dir for the snapshot goes (default the OS temp dir); it needs room for one copy of the store */
  tmpDir?: string;
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
 *   recipient, weak work factor), E_CONFLICT (`out` exists, or is the store or
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

  const identityText = options.identityFile === null ? null : await readIdentityForBackup(options.identityFile, store.owner.recipient);

  store.appendAudit({
    action: "backup", name: null, version: null,
    detail: { to: hasPassphrase ? "passphrase" : "recipient", identity: identityText !== null },
  });
  const head = store.signHeadNow();
  const created = new Date().toISOString();
  const to: SealTo = hasPassphrase ? { passphrase: options.passphrase!, logN } : { recipients };
  // Everything streams through files in a private temp dir: the snapshot, and the copy the
  // check after writing decrypts into. Memory holds a chunk or two, whatever the store's size.
  const { driver } = internalsOf(store);
  const work = mkdtempSync(join(options.tmpDir ?? tmpdir(), "coffer-backup-"));
  let ownerCard = "";
  let summary: SnapshotSummary | undefined;
  let verified: BackupResult["verified"] = "header";
  try {
    const snapshot = join(work, "snapshot.db");
    touchPrivateFile(snapshot);
    driver.vacuumInto(snapshot);
    // PRAGMA user_version of the snapshot itself: bytes 60–63 of the SQLite header, big-endian.
    const first = readFilePrefix(snapshot, 100);
    const schema = first.length >= 100 ? first.readUInt32BE(60) : 0;
    const plain = backupPlaintext(
      { created, schema: Math.max(1, schema), recipient: store.owner.recipient, identity: identityText, head, storeBytes: statSync(snapshot).size },
      fileChunks(snapshot),
      (message) => {
        const signed = store.signAsOwner(message);
        ownerCard = signed.card;
        return signed;
      },
    );
    if (hasPassphrase) options.progress?.(`encrypting the backup with your passphrase (scrypt 2^${logN}, a few seconds)…`);
    await writePrivateFileFrom(out, await sealStream(plain, to), { replace: options.force === true });
    rmSync(snapshot, { force: true });

    // Read the file back and check it as a restore would.
    try {
      const header = await readAgeHeader(readFilePrefix(out, AGE_HEADER_PREFIX));
      let key: OpenWith | undefined;
      if (hasPassphrase) {
        if (header.kind !== "passphrase" || header.logN !== logN) throw new Error("the header is not the scrypt one written");
        options.progress?.("checking the backup: decrypting it again (scrypt, a few seconds)…");
        key = { passphrase: options.passphrase! };
      } else {
        if (header.kind !== "recipients" || header.stanzas.length < recipients.length) throw new Error("the header lacks a recipient");
        const own = options.identity;
        if (own !== undefined && recipients.includes(own.recipient)) key = { identity: own.secretKey };
      }
      if (key !== undefined) {
        const copy = join(work, "check.db");
        const { info, signer } = await decryptBackup(out, key, `the backup ${out}`, copy);
        if (signer?.card !== ownerCard) throw new Error("the signature is not the store owner's");
        if (info.format !== BACKUP_FORMAT_V2 || info.created !== created || info.identity !== identityText) {
          throw new Error("the content differs from what was written");
        }
        summary = inspectSnapshot(copy, info.schema);
        verified = "decrypted";
      }
    } catch (cause) {
      rmSync(out, { force: true });
      if (cause instanceof CofferError && cause.code !== "E_INTEGRITY" && cause.code !== "E_DECRYPT" && cause.code !== "E_SIGNATURE") throw cause;
      throw new CofferError("E_INTEGRITY", `the backup written to ${out} did not check out when read back, so it was removed: ${(cause as Error).message}`, { cause });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  // Not decrypted here: what the live store holds, counted as inspectSnapshot counts a snapshot.
  summary ??= {
    schema: driver.schemaVersion(), storeId: driver.meta().store_id ?? "", ...driver.counts(), keyRecipients: driver.keyRecipients(),
  };
  return {
    file: out,
    bytes: statSync(out).size,
    created,
    to: hasPassphrase ? "passphrase" : "recipient",
    ...(hasPassphrase ? { logN } : { recipients }),
    identity: identityText !== null,
    verified,
    ...summary,
  };
}

// ---------------------------------------------------------------------------------------------

/** `age1…` recipients as given, or the recipient of a coffer card; duplicates dropped. */
function normalizeRecipients(list: readonly string[]): string[] {
  const recipients = list.map((s) => {
    const r = s.trim();
    const recipient = r.startsWith("coffer-card:") ? parseCard(r).recipient : r;
    if (!recipient.startsWith("age1")) {
      throw new CofferError("E_INVALID_VALUE", `not an age recipient or coffer card: ${JSON.stringify(r.slice(0, 80))}`);
    }
    return recipient;
  });
  return [...new Set(recipients)];
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
  const stat = (p: string) => {
    try {
      return statSync(p);
    } catch {
      return undefined;
    }
  };
  if (stat(dirname(out))?.isDirectory() !== true) {
    throw new CofferError("E_NOT_FOUND", `cannot write ${out}: the directory ${dirname(out)} does not exist`);
  }
  const existing = stat(out);
  if (existing !== undefined && !existing.isFile()) throw new CofferError("E_CONFLICT", `${out} exists and is not a file; choose another --out`);
  if (options.force !== true && existing !== undefined) {
    throw new CofferError("E_CONFLICT", `${out} already exists; refusing to overwrite it (choose another --out, or --force to replace it)`);
  }
}

/** The identity file's text, checked to be the key the store was opened with when it is plain. */
async function readIdentityForBackup(path: string, ownerRecipient: string): Promise<string> {
  const missing = () => new CofferError("E_NOT_INITIALIZED", `no identity at ${path} to put in the backup; leave it out with --no-identity`);
  const raw = readPrivateFile(path, "identity file", missing);
  try {
    if (isAgeFile(raw)) {
      // A passphrase-protected identity goes in as it is (armored if it was binary): restoring
      // it needs its passphrase, as using it does.
      if (isArmored(raw)) return raw.toString("utf8");
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
