/**
 * Sealing of secret values (DESIGN §4): AES-256-GCM with a fresh 96-bit random nonce per
 * version, under a key derived from the store key, with associated data that binds the
 * ciphertext to (store id, name, version). No I/O here.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
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

/**
 * Derives the value-sealing key from the 32-byte store key.
 * @param storeKey - the unwrapped store key
 * @returns 32 bytes: HKDF-SHA256(storeKey, salt = "", info = "coffer/v1/value")
 */
export function deriveValueKey(storeKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync("sha256", storeKey, new Uint8Array(0), INFO_VALUE_KEY, 32));
}

/**
 * The associated data of a sealed value: each field as a 4-byte big-endian length then its
 * bytes, so no two (store id, name, version) triples share an encoding.
 * @param storeId - the store's 16 random id bytes
 * @param name - the secret name (UTF-8)
 * @param version - the version number, encoded as 8 bytes big-endian
 */
export function valueAad(storeId: Uint8Array, name: string, version: number): Buffer {
  const nameLen = Buffer.byteLength(name, "utf8");
  const out = Buffer.allocUnsafe(4 + storeId.length + 4 + nameLen + 4 + 8);
  let o = out.writeUInt32BE(storeId.length, 0);
  o += Buffer.from(storeId.buffer, storeId.byteOffset, storeId.length).copy(out, o);
  o = out.writeUInt32BE(nameLen, o);
  o += out.write(name, o, "utf8");
  o = out.writeUInt32BE(8, o);
  out.writeBigUInt64BE(BigInt(version), o);
  return out;
}

/**
 * Encrypts `plaintext` under `key` with a fresh random nonce.
 * @param key - 32-byte AES key
 * @param plaintext - the value bytes
 * @param aad - associated data (see {@link valueAad})
 */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Sealed {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const final = cipher.final();
  return { nonce, ciphertext: Buffer.concat([body, final, cipher.getAuthTag()]) };
}

/**
 * Decrypts and authenticates a sealed value.
 * @param what - how to name the thing in the error (e.g. `secret "db/password" v3`); never a value
 * @throws DecryptError (E_DECRYPT) on any mismatch of key, nonce, ciphertext, tag or aad
 */
export function open(key: Uint8Array, sealed: Sealed, aad: Uint8Array, what: string): Buffer {
  const { nonce, ciphertext } = sealed;
  if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) throw new DecryptError(what);
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
    const body = decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES));
    return Buffer.concat([body, decipher.final()]);
  } catch (cause) {
    throw new DecryptError(what, { cause });
  }
}
