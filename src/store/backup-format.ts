/**
 * The backup file format (docs/design.md §4): what is inside the age encryption, how its
 * signature is checked, and the age header read without decrypting.
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
 * A backup from before signatures is the container line alone.
 */
import { createPublicKey, verify } from "node:crypto";
import { CofferError } from "../errors.ts";
import { isAgeFile } from "../crypto/age.ts";
import { cardFingerprint, parseCard } from "../identity/card.ts";
import type { SignedHead } from "./head.ts";

/** The `format` of the JSON inside a backup file. */
export const BACKUP_FORMAT = "coffer-backup/v1";

/** The `format` of a backup's signature line. */
export const BACKUP_SIGNATURE_FORMAT = "coffer-backup-signature/v1";
/** What a v1 signature signs before the container line's bytes. */
export const SIGNATURE_CONTEXT = "coffer/v1/backup\n";


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
