/**
 * The store key and how it is wrapped to its owner's identity (docs/design.md §4): with age to the
 * identity's recipient (what other tools and a restore read), and locally with AES-256-GCM under a
 * key derived from the identity's secret (what every open reads: one HKDF and one AES-GCM open,
 * not an X25519 age decryption).
 */
import { CofferError, DecryptError } from "../errors.ts";
import { open, seal, valueAad } from "../crypto/seal.ts";
import { deriveStoreKeyWrapKey } from "../crypto/keys.ts";
import { decryptWithIdentity } from "../crypto/age.ts";
import type { Identity } from "../identity/identity.ts";
import type { SqliteDriver } from "../storage/sqlite.ts";

// The owner's local wrap: AES-256-GCM, key HKDF(identity secret, "coffer/v1/store-key"),
// aad = length-prefixed ("coffer/v1/store-key", store id). Stored as nonce ‖ ciphertext ‖ tag.
export function wrapLocal(identity: Identity, storeId: Uint8Array, storeKey: Uint8Array): Buffer {
  const key = deriveStoreKeyWrapKey(identity.secret);
  const sealed = seal(key, storeKey, valueAad(storeId, "coffer/v1/store-key", 0));
  key.fill(0);
  return Buffer.concat([sealed.nonce, sealed.ciphertext]);
}

function unwrapLocal(identity: Identity, storeId: Uint8Array, wrapped: Uint8Array): Buffer {
  const key = deriveStoreKeyWrapKey(identity.secret);
  try {
    const w = Buffer.from(wrapped);
    return open(key, { nonce: w.subarray(0, 12), ciphertext: w.subarray(12) }, valueAad(storeId, "coffer/v1/store-key", 0), "the store key");
  } finally {
    key.fill(0);
  }
}

/**
 * The store key of `db` for `identity`: its local wrap when it has one, else its age wrap.
 * @throws DecryptError when the store is not wrapped to the identity; CofferError E_INTEGRITY for a key of the wrong size
 */
export async function unwrapStoreKey(db: SqliteDriver, identity: Identity): Promise<Buffer> {
  const rows = db.storeKeys(identity.recipient);
  const local = rows.find((r) => r.kind === "local-v1");
  if (local !== undefined) return unwrapLocal(identity, db.storeId, local.wrapped);
  const aged = rows.find((r) => r.kind === "age");
  if (aged === undefined) {
    throw new DecryptError(`the store ${db.path} with identity ${identity.recipient}: the store is not wrapped to it (wrong identity?)`);
  }
  const storeKey = Buffer.from(await decryptWithIdentity(aged.wrapped, identity.secretKey, `the store key of ${db.path}`));
  if (storeKey.length !== 32) throw new CofferError("E_INTEGRITY", `the store key of ${db.path} is not 32 bytes`);
  return storeKey;
}
