/**
 * The SQLite snapshot a backup carries: taken with `VACUUM INTO` (consistent, every table
 * without naming them), and checked without changing it before a restore trusts it.
 */
import { DatabaseSync } from "node:sqlite";
import { CofferError } from "../errors.ts";
import type { SignedHead } from "./head.ts";
import { verifyRows, type AuditRow, type AuditVerification } from "../core/audit.ts";
import { touchPrivateFile } from "../core/fs-secure.ts";
import { SCHEMA_VERSION } from "./migrations.ts";
import { STORE_FORMAT } from "./schema.ts";
import type { Store } from "./store.ts";

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
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { readOnly: true });
  } catch (cause) {
    throw new CofferError("E_INTEGRITY", "the store in the backup is not a readable SQLite database", { cause });
  }
  try {
    const bad = (why: string) => new CofferError("E_INTEGRITY", `the store in the backup ${why}`);
    let check: { integrity_check: string }[];
    try {
      db.exec("PRAGMA trusted_schema = OFF");
      check = db.prepare("PRAGMA integrity_check").all() as unknown as { integrity_check: string }[];
    } catch (cause) {
      throw new CofferError("E_INTEGRITY", "the store in the backup is not a readable SQLite database", { cause });
    }
    if (check.length !== 1 || check[0]?.integrity_check !== "ok") {
      throw bad(`fails SQLite's integrity check: ${String(check[0]?.integrity_check ?? "").slice(0, 120)}`);
    }
    const version = Math.max(1, (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
    if (version !== schema) throw bad(`has schema ${version}, not the ${schema} the backup states`);
    if (version > SCHEMA_VERSION) {
      throw new CofferError("E_INTEGRITY", `the backup was written by a newer coffer (schema ${version}, this one knows ${SCHEMA_VERSION}); upgrade coffer`);
    }
    try {
      const meta = new Map((db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [r.key, r.value]));
      const storeId = meta.get("store_id");
      if (meta.get("format") !== String(STORE_FORMAT) || storeId === undefined || !/^[0-9a-f]{32}$/.test(storeId)) {
        throw bad(`is not a coffer store of format ${STORE_FORMAT}`);
      }
      const keyRecipients = (db.prepare("SELECT DISTINCT recipient FROM store_keys ORDER BY recipient").all() as { recipient: string }[])
        .map((r) => r.recipient);
      const one = (sql: string) => Number((db.prepare(sql).get() as { n: number | bigint }).n);
      const audit: AuditVerification = verifyRows(db.prepare("SELECT * FROM audit ORDER BY seq").iterate() as Iterable<AuditRow>);
      if (!audit.ok) {
        throw bad(`has a broken audit chain at record ${audit.brokenAt}: ${audit.reason}`);
      }
      if (head !== undefined) {
        const at = db.prepare("SELECT hash FROM audit WHERE seq = ?").get(head.count) as { hash: Uint8Array } | undefined;
        if (head.store !== storeId || at === undefined || Buffer.from(at.hash).toString("hex") !== head.hash) {
          throw bad("does not contain the signed head the backup carries");
        }
      }
      return {
        schema: version,
        storeId,
        secrets: one("SELECT count(*) AS n FROM secrets WHERE deleted_at IS NULL"),
        versions: one("SELECT count(*) AS n FROM versions"),
        auditRecords: audit.records,
        keyRecipients,
      };
    } catch (cause) {
      if (cause instanceof CofferError) throw cause;
      throw new CofferError("E_INTEGRITY", `the store in the backup is not a coffer store (${(cause as Error).message})`, { cause });
    }
  } finally {
    db.close();
  }
}

/**
 * Writes a consistent copy of the store's database to the new file `path` (0600) with
 * `VACUUM INTO`: SQLite copies it page by page, whatever its size.
 */
export function snapshotDatabase(store: Store, path: string): void {
  touchPrivateFile(path);
  store.sql("VACUUM INTO ?").run(path);
}

/** Live secrets and all versions in `store`. */
export function countRows(store: Store): { secrets: number; versions: number } {
  const n = (sql: string) => Number((store.sql(sql).get() as { n: number | bigint }).n);
  return {
    secrets: n("SELECT count(*) AS n FROM secrets WHERE deleted_at IS NULL"),
    versions: n("SELECT count(*) AS n FROM versions"),
  };
}

/** What the live store holds, counted as {@link inspectSnapshot} counts a snapshot. */
export function summarizeLive(store: Store): SnapshotSummary {
  const meta = store.sql("SELECT value FROM meta WHERE key = 'store_id'").get() as { value: string } | undefined;
  return {
    schema: (store.sql("PRAGMA user_version").get() as { user_version: number }).user_version,
    storeId: meta?.value ?? "",
    ...countRows(store),
    auditRecords: Number((store.sql("SELECT count(*) AS n FROM audit").get() as { n: number }).n),
    keyRecipients: (store.sql("SELECT DISTINCT recipient FROM store_keys ORDER BY recipient").all() as { recipient: string }[]).map((r) => r.recipient),
  };
}
