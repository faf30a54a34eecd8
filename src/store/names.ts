/**
 * The names of a local store's secrets, read without the identity: names are not encrypted
 * (docs/design.md §7), so shell completion can offer them without a passphrase and without
 * loading any cryptography. The file is opened read only: nothing is migrated, written or
 * audited, and no value is read.
 */
import { assertPrivate } from "../core/fs-secure.ts";
import { SqliteDriver } from "../storage/sqlite.ts";

/**
 * The live secrets' names in the store file at `path` that start with `prefix`, sorted.
 * @throws PermissionsError when the file is accessible to others or someone else's (as opening
 *   the store would); SQLite's error when it is not a store
 */
export function storeSecretNames(path: string, prefix = ""): string[] {
  assertPrivate(path, "store");
  const db = SqliteDriver.openReadOnly(path, "store");
  try {
    return db.list(prefix).map((r) => r.name);
  } finally {
    db.close();
  }
}
