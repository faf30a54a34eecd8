/**
 * The team server's SQL schema (format 1). Written for SQLite (STRICT tables); the PostgreSQL
 * driver keeps the same tables (prefixed coffer_), columns and meanings, with BYTEA for bytes and the same ISO 8601 text for times, so audit records hash identically.
 *
 * `secrets`, `versions` and `audit` have the local store's shape (`src/store/schema.ts`):
 * reading a secret is one B-tree search for the newest `versions` row of its name, so deleting
 * a secret marks that row (`removed_at`) as well as the `secrets` row, and the next write adds
 * a new, unmarked row. Version rows are only ever added.
 *
 * The audit chain is the local store's (`src/core/audit.ts`): `hash` is
 * SHA-256(previous hash ‖ canonical JSON of the record), `detail` is JSON text.
 */
import { AUDIT_TABLE_SQL, META_TABLE_SQL, VERSIONS_TABLE_SQL } from "../../store/schema.ts";

/** The value of `meta.format` in a server database (a local store holds "1"). */
export const SERVER_FORMAT = "coffer-server-1";

/** Schema version 1: the tables a new server database starts with. */
export const SERVER_SCHEMA_SQL = `
${META_TABLE_SQL}

CREATE TABLE secrets (
  name        TEXT PRIMARY KEY,
  latest      INTEGER NOT NULL CHECK (latest >= 1),
  deleted_at  TEXT,
  description TEXT,
  created_at  TEXT NOT NULL,
  created_by  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  updated_by  TEXT NOT NULL
) STRICT;

${VERSIONS_TABLE_SQL}

${AUDIT_TABLE_SQL}
-- No index on at: callers may give a record's time, so at is not ordered by seq and a
-- since query walks seq order anyway; an index would only slow every append.

-- An API token as stored: the SHA-256 of the token text, never the token. roles: JSON array.
CREATE TABLE tokens (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  hash       BLOB NOT NULL UNIQUE,
  roles      TEXT NOT NULL,
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT
) STRICT;
-- listTokens(), newest first
CREATE INDEX tokens_by_created ON tokens (created_at);
`;

/**
 * Each entry brings the schema from version i+1 to i+2 (version 1 is {@link SERVER_SCHEMA_SQL}).
 * SQLite records the version in `user_version`.
 */
export const SERVER_MIGRATIONS: readonly string[] = [];

/** The schema version this coffer writes. */
export const SERVER_SCHEMA_VERSION = 1 + SERVER_MIGRATIONS.length;
