/**
 * `key:` on a `store` or `server` reference (docs/design.md §13): the secret's value read as a
 * map by core/kv-map.ts's rule (what a Vault client wrote through `coffer serve`'s Vault API),
 * and the value of one key delivered, as the `vault` provider does for Vault's maps.
 */
import { Secret } from "../core/secret.ts";
import { valueOfKey } from "../core/kv-map.ts";
import { describeRef, type SecretRef } from "./provider.ts";

/**
 * `secret` itself when `ref` names no key; else a Secret holding the key's value, named
 * `path#key` (the whole value is zeroed).
 * @throws CofferError E_NOT_FOUND when the map has no such key
 */
export function pickKey(secret: Secret, ref: SecretRef): Secret {
  if (ref.key === undefined) return secret;
  const bytes = secret.bytes();
  try {
    const value = valueOfKey(bytes, ref.key, describeRef(ref));
    return new Secret({ name: `${ref.path}#${ref.key}`, version: secret.version, updatedAt: secret.updatedAt }, value);
  } finally {
    bytes.fill(0);
    secret.dispose();
  }
}
