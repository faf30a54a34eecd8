/**
 * The one SQLite schema (docs/design.md §7): every table of a local store and of a server
 * database, each one `CREATE TABLE` statement, and which of them each kind of file holds. Tables
 * are STRICT. A version's value is never changed in place, only added (and deleted by purge, or
 * overwritten with empty bytes by destroy).
 *
 * `get` is one B-tree search: the newest row of `versions` for the name. So deleting a secret
 * marks that row (`removed_at`) as well as the `secrets` row; any later write adds a new,
 * unmarked row. A version deleted or destroyed on its own carries `deleted_at`/`destroyed_at`. The audit chain is `src/core/audit.ts`'s: `hash` = SHA-256(previous hash ‖
 * canonical JSON of the record), `detail` is JSON text.
 *
 * The statements' text is what SQLite keeps in `sqlite_master`: changing one changes what new
 * files are created with (test/storage/compat.test.ts compares it with files of older coffers).
 */

/** Which file a SQLite database is: the user's local store, or the team server's database. */
export type SqliteKind = "store" | "server";

/** `meta.format` of each kind (a local store holds "1"). */
export const FORMAT: Record<SqliteKind, string> = { store: "1", server: "coffer-server-1" };

const META = `CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT`;

// The store key, wrapped: 'age' = an age file to the recipient (readable by the age CLI);
// 'local-v1' = AES-256-GCM under HKDF(identity secret, "coffer/v1/store-key") for a fast open.
const STORE_KEYS = `CREATE TABLE store_keys (
  recipient TEXT NOT NULL,
  kind      TEXT NOT NULL CHECK (kind IN ('age', 'local-v1')),
  wrapped   BLOB NOT NULL,
  PRIMARY KEY (recipient, kind)
) STRICT`;

// A local store's secrets carry a rotation period (and, from schema 3, a generator); a server's do not.
const secretsTable = (rotation: boolean): string => `CREATE TABLE secrets (
  name        TEXT PRIMARY KEY,
  latest      INTEGER NOT NULL CHECK (latest >= 1),
  deleted_at  TEXT,
  description TEXT,${rotation ? "\n  rotation_s  INTEGER CHECK (rotation_s IS NULL OR rotation_s > 0)," : ""}
  created_at  TEXT NOT NULL,
  created_by  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  updated_by  TEXT NOT NULL
) STRICT`;

const VERSIONS = `CREATE TABLE versions (
  name       TEXT NOT NULL,
  version    INTEGER NOT NULL CHECK (version >= 1),
  nonce      BLOB NOT NULL,
  ciphertext BLOB NOT NULL,
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  removed_at TEXT,
  PRIMARY KEY (name, version)
) STRICT, WITHOUT ROWID`;

// No index on at: a server's callers may give a record's time, so at is not ordered by seq and
// a since query walks seq order anyway; an index would only slow every append.
const AUDIT = `CREATE TABLE audit (
  seq     INTEGER PRIMARY KEY,
  at      TEXT NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  name    TEXT,
  version INTEGER,
  detail  TEXT,
  hash    BLOB NOT NULL
) STRICT`;

// An API token as stored: the SHA-256 of the token text, never the token. roles: JSON array.
const TOKENS = [
  `CREATE TABLE tokens (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  hash       BLOB NOT NULL UNIQUE,
  roles      TEXT NOT NULL,
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT
) STRICT`,
  // listTokens(), newest first
  "CREATE INDEX tokens_by_created ON tokens (created_at)",
];

// Sharing (issue 3): members, their grants, trusted senders, the record of every export, and
// where an imported secret came from (refuses a replayed older bundle: no silent rollback).
const SHARING = [
  `CREATE TABLE members (
    name        TEXT PRIMARY KEY,
    card        TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    signing_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    added_at    TEXT NOT NULL,
    added_by    TEXT NOT NULL,
    revoked_at  TEXT
  ) STRICT`,
  `CREATE TABLE grants (
    member     TEXT NOT NULL REFERENCES members (name),
    pattern    TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (member, pattern)
  ) STRICT, WITHOUT ROWID`,
  `CREATE TABLE trusted (
    fingerprint TEXT PRIMARY KEY,
    card        TEXT NOT NULL,
    trusted_at  TEXT NOT NULL
  ) STRICT`,
  `CREATE TABLE exports (
    id          INTEGER PRIMARY KEY,
    bundle_id   TEXT NOT NULL,
    member      TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    exported_at TEXT NOT NULL,
    exported_by TEXT NOT NULL
  ) STRICT`,
  "CREATE INDEX exports_by_member ON exports (member, name)",
  `CREATE TABLE imports (
    name           TEXT PRIMARY KEY,
    source         TEXT NOT NULL,
    source_version INTEGER NOT NULL,
    bundle_id      TEXT NOT NULL,
    imported_at    TEXT NOT NULL
  ) STRICT`,
];

// Runbook executions (issue 13), a server database's from schema 2. An execution's id is a
// UUIDv7 (lexical order = time order: history pages by id); params is the JSON of the non-secret
// params; truncated and cancel_requested are 0/1. Approvals count once per principal; output is
// stored in chunks numbered from 0 as it arrives; instances holds each server instance's heartbeat.
const EXECUTIONS = [
  `CREATE TABLE executions (
  id                 TEXT PRIMARY KEY,
  runbook            TEXT NOT NULL,
  status             TEXT NOT NULL,
  requested_by       TEXT NOT NULL,
  principal          TEXT NOT NULL,
  params             TEXT NOT NULL,
  approvals_required INTEGER NOT NULL CHECK (approvals_required >= 0),
  created_at         TEXT NOT NULL,
  started_at         TEXT,
  finished_at        TEXT,
  expires_at         TEXT,
  exit_code          INTEGER,
  signal             TEXT,
  output_bytes       INTEGER NOT NULL DEFAULT 0 CHECK (output_bytes >= 0),
  truncated          INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
  instance           TEXT,
  cancel_requested   INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1))
) STRICT`,
  // a runbook's history, newest first
  "CREATE INDEX executions_by_runbook ON executions (runbook, id)",
  // what runs (and a runbook's concurrency count: the running are few), what waits for approval
  "CREATE INDEX executions_by_status ON executions (status, id)",
  `CREATE TABLE execution_approvals (
  execution_id TEXT NOT NULL,
  principal    TEXT NOT NULL,
  at           TEXT NOT NULL,
  PRIMARY KEY (execution_id, principal)
) STRICT, WITHOUT ROWID`,
  `CREATE TABLE execution_output (
  execution_id TEXT NOT NULL,
  seq          INTEGER NOT NULL CHECK (seq >= 0),
  data         BLOB NOT NULL,
  PRIMARY KEY (execution_id, seq)
) STRICT`,
  `CREATE TABLE instances (
  id           TEXT PRIMARY KEY,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  started_at   TEXT NOT NULL,
  heartbeat_at TEXT NOT NULL
) STRICT`,
];

// Roles kept in the database (issue 14), a server database's from schema 3: rules is the JSON of
// [{path, capabilities}], version counts the role's changes. Every change also bumps the meta key
// roles_version (ops-roles.ts), which each instance polls to rebuild its policy.
const ROLES = `CREATE TABLE roles (
  name       TEXT PRIMARY KEY,
  rules      TEXT NOT NULL,
  version    INTEGER NOT NULL CHECK (version >= 1),
  updated_at TEXT NOT NULL,
  updated_by TEXT NOT NULL
) STRICT`;

// Rotation policies of a server's secrets (issue 15), a server database's from schema 4, keyed
// by the secret's name: the period (as written, and in ms), the generator and the apply target
// (JSON), where it stands, the lease of the one instance rotating it now (holder and until,
// claimed with a conditional UPDATE), and the candidate sealed for the version it will become
// (kept before apply, so a crash between apply and write loses nothing: ops-rotations.ts).
const ROTATIONS = `CREATE TABLE rotations (
  name                 TEXT PRIMARY KEY,
  every                TEXT,
  every_ms             INTEGER CHECK (every_ms IS NULL OR every_ms > 0),
  generate             TEXT NOT NULL,
  apply                TEXT,
  state                TEXT NOT NULL,
  next_at              TEXT,
  last_rotated_at      TEXT,
  last_error           TEXT,
  last_error_at        TEXT,
  failures             INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
  updated_at           TEXT NOT NULL,
  updated_by           TEXT NOT NULL,
  lease_holder         TEXT,
  lease_until          TEXT,
  candidate_version    INTEGER,
  candidate_nonce      BLOB,
  candidate_ciphertext BLOB
) STRICT`;

// A local store's remembered generator (issue 15), from schema 3: the JSON of `{charset, length}`
// that `coffer set --generate` used, so `coffer rotate` can make the next value the same way;
// null for a value set by hand. Added to the end of `secrets` (ALTER TABLE), in new files too, so
// a migrated store's tables are the same text as a new one's.
const GENERATOR = "ALTER TABLE secrets ADD COLUMN generator TEXT";

// Per-version delete, undelete and destroy (issue 16), a local store's from schema 4 and a server
// database's from schema 5: `deleted_at` hides one version from reads until it is undeleted,
// `destroyed_at` marks one whose nonce and ciphertext were overwritten with empty bytes for good
// (ops-versions.ts). Added to the end of `versions` (ALTER TABLE), in new files too, as GENERATOR.
const VERSION_MARKS = ["ALTER TABLE versions ADD COLUMN deleted_at TEXT", "ALTER TABLE versions ADD COLUMN destroyed_at TEXT"];

/**
 * The schema of each kind, by version: entry 0 creates version 1, entry i brings version i to
 * i+1. SQLite records the version in `user_version` (0 counts as 1).
 */
export const SCHEMA: Record<SqliteKind, readonly (readonly string[])[]> = {
  store: [[META, STORE_KEYS, secretsTable(true), VERSIONS, AUDIT], SHARING, [GENERATOR], VERSION_MARKS],
  server: [[META, secretsTable(false), VERSIONS, AUDIT, ...TOKENS], EXECUTIONS, [ROLES], [ROTATIONS], VERSION_MARKS],
};

/** The schema version this coffer writes, per kind. */
export const SCHEMA_VERSION: Record<SqliteKind, number> = { store: SCHEMA.store.length, server: SCHEMA.server.length };
