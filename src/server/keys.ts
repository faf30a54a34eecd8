/**
 * The team server's key material (docs/design.md §4): the master key file, the value key derived from
 * it, the key check that catches a wrong master key at start, and API tokens.
 *
 * - The master key is 32 random bytes, base64 on one line in `DATA/master.key` (0600). It plays
 *   the store key's part: values are sealed under HKDF-SHA256(master key, "coffer/v1/value")
 *   with the store id, name and version as associated data, exactly as in a local store.
 * - The key check is HMAC-SHA256(HKDF(master key, "coffer/v1/key-check"), store id), kept in
 *   the database's meta table: a server started with another data dir's key stops at once
 *   instead of failing on every read.
 * - The audit checkpoint (the chain head last verified) is MAC'd with HKDF(master key,
 *   "coffer/v1/audit-checkpoint"), so whoever can write the database cannot move it.
 * - API tokens are `cof_` + 32 random bytes in base64url (the prefix lets secret scanners find
 *   leaked ones). Only SHA-256 of the whole text is stored; the id is a separate random value,
 *   so a listed id says nothing about the token.
 */
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual, type KeyObject } from "node:crypto";
import { CofferError } from "../errors.ts";
import { aadPrefix, deriveValueKey, importKey, open, seal, valueAadWith } from "../crypto/seal.ts";
import { readPrivateFile } from "../core/fs-secure.ts";
import type { SealedValue, ServerStorage } from "../storage/types.ts";

/** The prefix of every API token. */
export const TOKEN_PREFIX = "cof_";
/** An API token: the prefix and 43 base64url characters (32 bytes). */
export const TOKEN_PATTERN = /^cof_[A-Za-z0-9_-]{43}$/;
const INFO_KEY_CHECK = "coffer/v1/key-check";
const INFO_AUDIT_CHECKPOINT = "coffer/v1/audit-checkpoint";

/** Reads and checks `DATA/master.key`. @throws CofferError E_NOT_INITIALIZED, E_PERMISSIONS, E_INTEGRITY */
export function readMasterKey(path: string): Buffer {
  const text = readPrivateFile(path, "master key", () =>
    new CofferError("E_NOT_INITIALIZED", `no master key at ${path}; run \`coffer server init --data DIR\` first`),
  ).toString("utf8");
  const key = Buffer.from(text.trim(), "base64");
  if (key.length !== 32 || key.toString("base64") !== text.trim()) {
    throw new CofferError("E_INTEGRITY", `${path} is not a coffer master key (one line of base64, 32 bytes); restore it from your backup`);
  }
  return key;
}

/** The key that MACs the audit checkpoint (see audit-verify.ts): HKDF(master key, "coffer/v1/audit-checkpoint"). */
export function auditCheckpointKey(masterKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), INFO_AUDIT_CHECKPOINT, 32));
}

/** A fresh master key file's text. */
export function newMasterKeyText(): string {
  return `${randomBytes(32).toString("base64")}\n`;
}

/** The key check of a master key for a store id (hex). */
export function keyCheck(masterKey: Uint8Array, storeId: Uint8Array): string {
  const k = Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), INFO_KEY_CHECK, 32));
  try {
    return createHmac("sha256", k).update(storeId).digest("hex");
  } finally {
    k.fill(0);
  }
}

/** True when `stored` (hex) is the key check of `masterKey` for `storeId`, compared in constant time. */
export function keyCheckMatches(stored: string, masterKey: Uint8Array, storeId: Uint8Array): boolean {
  const a = Buffer.from(stored, "hex");
  const b = Buffer.from(keyCheck(masterKey, storeId), "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Seals and opens values for one store id with the value key derived from the master key. */
export class ValueSealer {
  readonly #key: KeyObject;
  readonly #prefix: Buffer;

  constructor(masterKey: Uint8Array, storeId: Uint8Array) {
    const raw = deriveValueKey(masterKey);
    this.#key = importKey(raw);
    this.#prefix = aadPrefix(storeId);
  }

  seal(name: string, version: number, value: Uint8Array): SealedValue {
    return seal(this.#key, value, valueAadWith(this.#prefix, name, version));
  }

  /** @throws DecryptError when the ciphertext was moved, tampered with or sealed under another key */
  open(name: string, version: number, sealed: SealedValue): Buffer {
    return open(this.#key, sealed, valueAadWith(this.#prefix, name, version), () => `secret "${name}" v${version}`);
  }
}

/** A new API token and what is stored of it. */
export function newToken(): { token: string; id: string; hash: Buffer } {
  const token = `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
  return { token, id: randomBytes(8).toString("hex"), hash: hashToken(token) };
}

/** Makes an API token and stores it (only its hash) with its audit record by `actor`; the token text is returned once. */
export async function storeNewToken(
  storage: ServerStorage,
  actor: string,
  row: { name: string; roles: string[]; expiresAt: Date | null },
  detail: Record<string, unknown>,
): Promise<{ token: string; id: string }> {
  const t = newToken();
  const createdAt = new Date().toISOString();
  const expiresAt = row.expiresAt?.toISOString() ?? null;
  await storage.createToken({ ...row, id: t.id, hash: t.hash, createdAt, createdBy: actor, expiresAt, revokedAt: null }, actor, detail);
  return t;
}

/** SHA-256 of a token's whole text: what the database holds and looks tokens up by. */
export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** Compares two token hashes in constant time. */
export function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
