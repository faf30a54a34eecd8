/**
 * Schema migrations, tracked in SQLite's `user_version`. A store made by an older coffer is
 * brought up to date when it is opened, in one transaction; a store from a newer coffer is
 * refused rather than misread.
 */
import type { DatabaseSync } from "node:sqlite";
import { CofferError } from "../errors.ts";

/** Each entry brings the schema from version i+1 to i+2 (version 1 is SCHEMA_SQL). */
const MIGRATIONS: readonly string[] = [
  // 2: sharing (issue 3): members, their grants, trusted senders, the record of every export.
  `
  CREATE TABLE members (
    name        TEXT PRIMARY KEY,
    card        TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    signing_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    added_at    TEXT NOT NULL,
    added_by    TEXT NOT NULL,
    revoked_at  TEXT
  ) STRICT;
  CREATE TABLE grants (
    member     TEXT NOT NULL REFERENCES members (name),
    pattern    TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (member, pattern)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE trusted (
    fingerprint TEXT PRIMARY KEY,
    card        TEXT NOT NULL,
    trusted_at  TEXT NOT NULL
  ) STRICT;
  CREATE TABLE exports (
    id          INTEGER PRIMARY KEY,
    bundle_id   TEXT NOT NULL,
    member      TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    exported_at TEXT NOT NULL,
    exported_by TEXT NOT NULL
  ) STRICT;
  CREATE INDEX exports_by_member ON exports (member, name);
  -- Where an imported secret came from: refuses a replayed older bundle (no silent rollback).
  CREATE TABLE imports (
    name           TEXT PRIMARY KEY,
    source         TEXT NOT NULL,
    source_version INTEGER NOT NULL,
    bundle_id      TEXT NOT NULL,
    imported_at    TEXT NOT NULL
  ) STRICT;
  `,
];

/** The schema version this coffer writes. */
export const SCHEMA_VERSION = 1 + MIGRATIONS.length;

/**
 * Brings `db` up to {@link SCHEMA_VERSION}. Must run inside a write transaction.
 * @throws CofferError E_INTEGRITY when the store is newer than this coffer
 */
export function migrate(db: DatabaseSync, path: string): void {
  const row = db.prepare("PRAGMA user_version").get() as { user_version: number };
  const current = Math.max(1, row.user_version);
  if (current > SCHEMA_VERSION) {
    throw new CofferError("E_INTEGRITY", `${path} was written by a newer coffer (schema ${current}, this one knows ${SCHEMA_VERSION}); upgrade coffer`);
  }
  for (let v = current; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v - 1]!);
  if (current !== row.user_version || current < SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
}

/** The schema version recorded in `db`. */
export function schemaVersion(db: DatabaseSync): number {
  return Math.max(1, (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
}
