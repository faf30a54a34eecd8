/**
 * Key material derived from an age X25519 identity (docs/design.md §4): the age recipient, the
 * Ed25519 signing key and the local store-key wrap key, with node:crypto only (no age import, so
 * the CLI's hot path stays fast). No I/O here.
 */
import { createPrivateKey, createPublicKey, hkdfSync, verify, type KeyObject } from "node:crypto";
import { bech32Decode, bech32Encode } from "./bech32.ts";
import { CofferError } from "../errors.ts";

export const INFO_ED25519 = "coffer/v1/ed25519";
export const INFO_STORE_KEY_WRAP = "coffer/v1/store-key";

// PKCS#8 DER prefixes for a raw 32-byte X25519 / Ed25519 private key (RFC 8410).
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");

const SECRET_KEY_RE = /^AGE-SECRET-KEY-1[023456789ACDEFGHJKLMNPQRSTUVWXYZ]{58}$/;

/**
 * Decodes an `AGE-SECRET-KEY-1…` string to its 32-byte X25519 scalar.
 * @throws CofferError E_IDENTITY when the string is not a native X25519 age identity
 */
export function decodeAgeSecretKey(text: string): Uint8Array {
  if (!SECRET_KEY_RE.test(text)) {
    throw new CofferError(
      "E_IDENTITY",
      "not an age X25519 identity: expected one line `AGE-SECRET-KEY-1…` (58 bech32 characters after the prefix)",
    );
  }
  const decoded = bech32Decode(text);
  if (decoded === undefined || decoded.prefix !== "age-secret-key-" || decoded.bytes.length !== 32) {
    throw new CofferError("E_IDENTITY", "not an age X25519 identity: the bech32 checksum does not verify");
  }
  return decoded.bytes;
}

/** Encodes a 32-byte X25519 scalar as `AGE-SECRET-KEY-1…`. */
export function encodeAgeSecretKey(secret: Uint8Array): string {
  return bech32Encode("AGE-SECRET-KEY-", secret).toUpperCase();
}

/** The age recipient (`age1…`) of an X25519 secret scalar. */
export function recipientOf(secret: Uint8Array): string {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, secret]), format: "der", type: "pkcs8" });
  const jwk = createPublicKey(priv).export({ format: "jwk" });
  return bech32Encode("age", Buffer.from(String(jwk.x), "base64url"));
}

/** The Ed25519 signing key pair derived from an X25519 secret (docs/design.md §4). */
export interface SigningKey {
  privateKey: KeyObject;
  /** raw 32-byte public key, base64url without padding */
  publicKey: string;
}

/** Derives the Ed25519 signing key: seed = HKDF-SHA256(secret, salt "", info "coffer/v1/ed25519"). */
export function deriveSigningKey(secret: Uint8Array): SigningKey {
  const seed = Buffer.from(hkdfSync("sha256", secret, new Uint8Array(0), INFO_ED25519, 32));
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: "der", type: "pkcs8" });
  seed.fill(0);
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  return { privateKey, publicKey: String(jwk.x) };
}

/** The AES-256-GCM key that wraps the owner's local copy of the store key. */
export function deriveStoreKeyWrapKey(secret: Uint8Array): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, new Uint8Array(0), INFO_STORE_KEY_WRAP, 32));
}

/**
 * Whether `signature` is an Ed25519 signature of `message` by `publicKey` (the raw key as
 * base64url, as cards carry it, or a key already imported). Never throws: a malformed key or a
 * signature of the wrong length is simply not valid.
 */
export function verifyEd25519(publicKey: string | KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    const key = typeof publicKey === "string" ? createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey }, format: "jwk" }) : publicKey;
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
