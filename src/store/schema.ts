/**
 * The SQLite schema of a local store (format 1). Tables are STRICT. A version's value is
 * never changed in place, only added (and deleted by purge).
 *
 * `get` is one B-tree search: the newest row of `versions` for the name. So `rm` marks that
 * row (`removed_at`) as well as the `secrets` row; any later write adds a new, unmarked row.
 */
export const STORE_FORMAT = 1;

/**
 * The tables a local store and a server database (`src/server/storage/schema.ts`) share, each one
 * `CREATE TABLE` statement. Part of both schemas' text: changing one changes what new stores and
 * new server databases are created with.
 */
export const META_TABLE_SQL = `CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;`;

/** A secret's versions, never changed in place; `removed_at` marks the newest row of a deleted secret. */
export const VERSIONS_TABLE_SQL = `CREATE TABLE versions (
  name       TEXT NOT NULL,
  version    INTEGER NOT NULL CHECK (version >= 1),
  nonce      BLOB NOT NULL,
  ciphertext BLOB NOT NULL,
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  removed_at TEXT,
  PRIMARY KEY (name, version)
) STRICT, WITHOUT ROWID;`;

/** The audit chain (`src/core/audit.ts`): `hash` chains each record to the one before. */
export const AUDIT_TABLE_SQL = `CREATE TABLE audit (
  seq     INTEGER PRIMARY KEY,
  at      TEXT NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  name    TEXT,
  version INTEGER,
  detail  TEXT,
  hash    BLOB NOT NULL
) STRICT;`;

export const SCHEMA_SQL = `
${META_TABLE_SQL}

-- The store key, wrapped: 'age' = an age file to the recipient (readable by the age CLI);
-- 'local-v1' = AES-256-GCM under HKDF(identity secret, "coffer/v1/store-key") for a fast open.
CREATE TABLE store_keys (
  recipient TEXT NOT NULL,
  kind      TEXT NOT NULL CHECK (kind IN ('age', 'local-v1')),
  wrapped   BLOB NOT NULL,
  PRIMARY KEY (recipient, kind)
) STRICT;

CREATE TABLE secrets (
  name        TEXT PRIMARY KEY,
  latest      INTEGER NOT NULL CHECK (latest >= 1),
  deleted_at  TEXT,
  description TEXT,
  rotation_s  INTEGER CHECK (rotation_s IS NULL OR rotation_s > 0),
  created_at  TEXT NOT NULL,
  created_by  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  updated_by  TEXT NOT NULL
) STRICT;

${VERSIONS_TABLE_SQL}

${AUDIT_TABLE_SQL}
`;
