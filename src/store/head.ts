/**
 * The signed head of a store's audit chain: (record count, hash of that record), signed with
 * the identity's Ed25519 key and kept beside the identity, not the store
 * (`<identity dir>/heads/<store id>`), so that whoever can write the store's directory cannot
 * also move the head. A store whose chain does not contain the signed head (shorter, or a
 * different record at that position) is an older copy put back, and is refused.
 *
 * Only writes re-sign the head; a read's audit record (`coffer get`) does not. The rule checked
 * on open is "the chain contains the signed head as a prefix", which holds after reads too, and
 * still catches every rollback of a secret: a write after the old copy was taken signed a
 * record that the old copy does not have, and the chain's SHA-256 links make a matching record
 * unforgeable. What reads leave unsigned is only their own trail: records appended after the
 * last write could be cut off without detection. Signing on reads would cost every `coffer get`
 * a file write and an fsync.
 *
 * The file: one JSON line {format, store, count, hash, signer, at, signature}; the signature
 * is Ed25519 over "coffer/v1/head\n" followed by the canonical JSON of the other fields.
 */
import { createPublicKey, sign, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { CofferError } from "../errors.ts";
import { verifyEd25519, type SigningKey } from "../crypto/keys.ts";
import { canonicalJson } from "../core/audit.ts";
import { assertSecureParents, ensurePrivateDir, replacePrivateFile } from "../core/fs-secure.ts";

export const HEAD_FORMAT = "coffer-head/v1";
const CONTEXT = "coffer/v1/head\n";

/** The position of the chain a head names. */
export interface ChainHead {
  /** records in the chain (the seq of the last one) */
  count: number;
  /** that record's chain hash, hex */
  hash: string;
}

/** A head as signed. */
export interface SignedHead extends ChainHead {
  format: typeof HEAD_FORMAT;
  /** the store id, hex */
  store: string;
  /** the signer's Ed25519 public key, base64url */
  signer: string;
  at: string;
  signature: string;
}

/** Where the heads of `identityPath`'s stores are kept: `heads/` beside the identity file. */
export function headsDirFor(identityPath: string): string {
  return join(dirname(identityPath), "heads");
}

// What a head's signature covers: the context, then the canonical JSON of every other field.
function signedBytes(h: Omit<SignedHead, "signature">): Buffer {
  const body = { format: h.format, store: h.store, count: h.count, hash: h.hash, signer: h.signer, at: h.at };
  return Buffer.from(CONTEXT + canonicalJson(body), "utf8");
}

/**
 * Parses and verifies a signed head.
 * @param signer - the key that must have signed it (the opening identity's)
 * @throws CofferError E_INTEGRITY when it is malformed, for another store, or not signed by `signer`
 */
export function verifyHead(value: unknown, storeId: string, signer: { publicKey: string; verifyKey?: KeyObject }, where: string): SignedHead {
  const h = value as Partial<SignedHead> | null;
  const bad = (why: string) => new CofferError("E_INTEGRITY", `the signed head ${where} ${why}; it was tampered with or is not coffer's`);
  const ok =
    h !== null && typeof h === "object" && h.format === HEAD_FORMAT && typeof h.store === "string" && Number.isSafeInteger(h.count) &&
    (h.count ?? 0) >= 1 && typeof h.hash === "string" && /^[0-9a-f]{64}$/.test(h.hash) && typeof h.signer === "string" &&
    typeof h.at === "string" && typeof h.signature === "string";
  if (!ok) throw bad("is malformed");
  const head = h as SignedHead;
  if (head.store !== storeId) throw bad("is for another store");
  if (head.signer !== signer.publicKey) throw bad("was signed by another identity");
  if (!verifyEd25519(signer.verifyKey ?? signer.publicKey, signedBytes(head), Buffer.from(head.signature, "base64url"))) {
    throw bad("has a signature that does not verify");
  }
  return head;
}

/** Keeps one store's signed head in the heads directory of an identity. */
export class HeadFile {
  readonly path: string;
  /** the identity's signing key, which signs the heads (and backups of the store) */
  readonly key: SigningKey;
  readonly #verifyKey: KeyObject;
  readonly #storeId: string;
  readonly #home: string | undefined;

  constructor(dir: string, storeId: string, key: SigningKey, home?: string) {
    this.path = join(dir, storeId);
    this.key = key;
    this.#verifyKey = createPublicKey(key.privateKey);
    this.#storeId = storeId;
    this.#home = home;
  }

  /**
   * The last signed head, or undefined when none was ever signed (a store from before heads).
   * @throws CofferError E_INTEGRITY (bad file), E_PERMISSIONS (unsafe directory)
   */
  read(): SignedHead | undefined {
    assertSecureParents(this.path, "signed head", this.#home);
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new CofferError("E_PERMISSIONS", `cannot read the audit chain's signed head ${this.path} (${(err as NodeJS.ErrnoException).code ?? "error"})`, { cause: err });
    }
    let value: unknown;
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      value = null;
    }
    return verifyHead(value, this.#storeId, { publicKey: this.key.publicKey, verifyKey: this.#verifyKey }, this.path);
  }

  /**
   * Signs `head` and replaces the file atomically (0600, in a 0700 directory).
   * @throws CofferError E_PERMISSIONS when the file cannot be written
   */
  write(head: ChainHead): SignedHead {
    const at = new Date().toISOString();
    const body = { format: HEAD_FORMAT, store: this.#storeId, count: head.count, hash: head.hash, signer: this.key.publicKey, at } as const;
    const signed = { ...body, signature: sign(null, signedBytes(body), this.key.privateKey).toString("base64url") };
    try {
      ensurePrivateDir(dirname(this.path));
      replacePrivateFile(this.path, `${JSON.stringify(signed)}\n`);
    } catch (err) {
      throw new CofferError(
        "E_PERMISSIONS",
        `cannot write the audit chain's signed head ${this.path} (${(err as NodeJS.ErrnoException).code ?? "error"}); ` +
          `make ${dirname(this.path)} yours and writable (\`chmod 700\`); a change already committed stays`,
        { cause: err },
      );
    }
    return signed;
  }
}

/** How the store's audit chain compared with its last signed head when it was opened. */
export type HeadStatus =
  | { state: "ok"; signed: ChainHead }
  /** no head had been signed (a store from before signed heads): one was signed on open */
  | { state: "new"; signed: ChainHead }
  /** the chain does not contain the signed head; opened only because `acceptHead` was set */
  | { state: "diverged"; signed: ChainHead & { at: string }; found: ChainHead };
