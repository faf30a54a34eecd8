/**
 * Sealing of secret values (docs/design.md §4): AES-256-GCM with a fresh 96-bit random nonce per
 * version, under a key derived from the store key, with associated data that binds the
 * ciphertext to (store id, name, version). No I/O here.
 */
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes, type KeyObject } from "node:crypto";
import { DecryptError } from "../errors.ts";

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** HKDF info strings. Changing one changes every byte on disk: known-answer tests guard them. */
export const INFO_VALUE_KEY = "coffer/v1/value";

/** A sealed value as stored: the nonce and the ciphertext with its 16-byte GCM tag appended. */
export interface Sealed {
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** An AES-256 key: raw bytes, or a KeyObject imported once (faster for repeated use). */
export type AeadKey = Uint8Array | KeyObject;

/**
 * Derives the value-sealing key from the 32-byte store key.
 * @param storeKey - the unwrapped store key
 * @returns 32 bytes: HKDF-SHA256(storeKey, salt = "", info = "coffer/v1/value")
 */
export function deriveValueKey(storeKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync("sha256", storeKey, new Uint8Array(0), INFO_VALUE_KEY, 32));
}

/**
 * Imports a raw key once as a KeyObject, so each open does not import it again. The bytes
 * live in OpenSSL's memory, which Node clears when the object is collected; `raw` is zeroed.
 */
export function importKey(raw: Buffer): KeyObject {
  const key = createSecretKey(raw);
  raw.fill(0);
  return key;
}

/**
 * The associated data of a sealed value: each field as a 4-byte big-endian length then its
 * bytes, so no two (store id, name, version) triples share an encoding.
 * @param storeId - the store's 16 random id bytes
 * @param name - the secret name (UTF-8)
 * @param version - the version number, encoded as 8 bytes big-endian
 */
export function valueAad(storeId: Uint8Array, name: string, version: number): Buffer {
  return valueAadWith(aadPrefix(storeId), name, version);
}

/** The constant first field of a store's AADs (length + store id), computed once per store. */
export function aadPrefix(storeId: Uint8Array): Buffer {
  const prefix = Buffer.allocUnsafe(4 + storeId.length);
  prefix.writeUInt32BE(storeId.length, 0);
  prefix.set(storeId, 4);
  return prefix;
}

/** {@link valueAad} with the store's prefix already encoded (the read path's form). */
export function valueAadWith(prefix: Buffer, name: string, version: number): Buffer {
  const nameLen = Buffer.byteLength(name, "utf8");
  const out = Buffer.allocUnsafe(prefix.length + 4 + nameLen + 4 + 8);
  let o = prefix.copy(out, 0);
  o = out.writeUInt32BE(nameLen, o);
  o += out.write(name, o, "utf8");
  o = out.writeUInt32BE(8, o);
  o = out.writeUInt32BE(Math.floor(version / 0x1_0000_0000), o);
  out.writeUInt32BE(version >>> 0, o);
  return out;
}

/**
 * Encrypts `plaintext` under `key` with a fresh random nonce.
 * @param key - 32-byte AES key
 * @param plaintext - the value bytes
 * @param aad - associated data (see {@link valueAad})
 */
export function seal(key: AeadKey, plaintext: Uint8Array, aad: Uint8Array): Sealed {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const final = cipher.final();
  return { nonce, ciphertext: Buffer.concat([body, final, cipher.getAuthTag()]) };
}

/**
 * Decrypts and authenticates a sealed value.
 * @param what - how to name the thing in the error (e.g. `secret "db/password" v3`), or a function
 *   that builds it only on failure; never a value
 * @throws DecryptError (E_DECRYPT) on any mismatch of key, nonce, ciphertext, tag or aad
 */
export function open(key: AeadKey, sealed: Sealed, aad: Uint8Array, what: string | (() => string)): Buffer {
  const { nonce, ciphertext } = sealed;
  const name = () => (typeof what === "string" ? what : what());
  if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) throw new DecryptError(name());
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
    const body = decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES));
    const final = decipher.final(); // GCM has no buffered block: empty, but it checks the tag
    return final.length === 0 ? body : Buffer.concat([body, final]);
  } catch (cause) {
    throw new DecryptError(name(), { cause });
  }
}
