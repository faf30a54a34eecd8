/**
 * The SQLite snapshot a backup carries (taken with `VACUUM INTO`: consistent, every table
 * without naming them), checked without changing it before a restore trusts it.
 */
import { CofferError } from "../errors.ts";
import type { SignedHead } from "./head.ts";
import { verifyRows } from "../core/audit.ts";
import { SqliteDriver } from "../storage/sqlite.ts";
import { refuseNewer } from "../storage/checks.ts";
import { FORMAT, SCHEMA_VERSION } from "../storage/sqlite-schema.ts";

/** What a snapshot holds, as counted when it was checked. */
export interface SnapshotSummary {
  schema: number;
  storeId: string;
  /** live secrets (not removed) */
  secrets: number;
  /** every version of every secret */
  versions: number;
  auditRecords: number;
  /** the recipients the store key is wrapped to */
  keyRecipients: string[];
}

/**
 * Checks the SQLite snapshot in the file `path` (read only; SQLite may leave `-shm`/`-wal`
 * files beside it, the caller's to remove): `PRAGMA integrity_check`, the store format, the
 * schema version, and the audit chain; counts what it holds. SQLite reads it page by page.
 * @param schema - the schema version the backup says it has
 * @param head - a signed head (already verified) the chain must contain
 * @throws CofferError E_INTEGRITY
 */
export function inspectSnapshot(path: string, schema: number, head?: SignedHead): SnapshotSummary {
  const bad = (why: string, cause?: unknown) => new CofferError("E_INTEGRITY", `the store in the backup ${why}`, { cause });
  let db: SqliteDriver | undefined;
  try {
    let check: string[];
    try {
      db = SqliteDriver.openReadOnly(path, "store");
      check = db.integrityCheck();
    } catch (cause) {
      throw bad("is not a readable SQLite database", cause);
    }
    if (check.length !== 1 || check[0] !== "ok") throw bad(`fails SQLite's integrity check: ${String(check[0] ?? "").slice(0, 120)}`);
    const version = db.schemaVersion();
    if (version !== schema) throw bad(`has schema ${version}, not the ${schema} the backup states`);
    refuseNewer(version, SCHEMA_VERSION.store, "the backup");
    try {
      const { store_id: storeId, format } = db.meta();
      if (format !== FORMAT.store || storeId === undefined || !/^[0-9a-f]{32}$/.test(storeId)) {
        throw bad(`is not a coffer store of format ${FORMAT.store}`);
      }
      const keyRecipients = db.keyRecipients();
      const audit = verifyRows(db.auditRows());
      if (!audit.ok) throw bad(`has a broken audit chain at record ${audit.brokenAt}: ${audit.reason}`);
      if (head !== undefined && (head.store !== storeId || db.auditHashAt(head.count) !== head.hash)) {
        throw bad("does not contain the signed head the backup carries");
      }
      const { secrets, versions } = db.counts();
      return { schema: version, storeId, secrets, versions, auditRecords: audit.records, keyRecipients };
    } catch (cause) {
      if (cause instanceof CofferError) throw cause;
      throw bad(`is not a coffer store (${(cause as Error).message})`, cause);
    }
  } finally {
    db?.close();
  }
}
