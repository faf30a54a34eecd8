/**
 * The PostgreSQL schema (docs/design.md §7): the SQLite schema's server tables (`sqlite-schema.ts`)
 * with a `coffer_` prefix, `coffer_schema(version)` for SQLite's `user_version`, and the one
 * migrate rule of PostgreSQL, run at open in one transaction under an advisory lock so several
 * instances may start together.
 */
import { createHash, randomBytes } from "node:crypto";
import { CofferError } from "../errors.ts";
import { refuseNewer } from "./checks.ts";
import { FORMAT, SCHEMA_VERSION } from "./sqlite-schema.ts";
import type { PgPool } from "./postgres-pool.ts";

/** The PostgreSQL schema (version 1): the SQLite schema's tables, prefixed `coffer_`. */
const POSTGRES_SCHEMA_SQL = `
CREATE TABLE coffer_meta (
  key   TEXT COLLATE "C" PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE coffer_secrets (
  name        TEXT COLLATE "C" PRIMARY KEY,
  latest      INTEGER NOT NULL CHECK (latest >= 1),
  deleted_at  TEXT COLLATE "C",
  description TEXT,
  created_at  TEXT COLLATE "C" NOT NULL,
  created_by  TEXT NOT NULL,
  updated_at  TEXT COLLATE "C" NOT NULL,
  updated_by  TEXT NOT NULL
);

CREATE TABLE coffer_versions (
  name       TEXT COLLATE "C" NOT NULL,
  version    INTEGER NOT NULL CHECK (version >= 1),
  nonce      BYTEA NOT NULL,
  ciphertext BYTEA NOT NULL,
  created_at TEXT COLLATE "C" NOT NULL,
  created_by TEXT NOT NULL,
  removed_at TEXT COLLATE "C",
  PRIMARY KEY (name, version)
);

CREATE TABLE coffer_audit (
  seq     BIGINT PRIMARY KEY CHECK (seq >= 1),
  at      TEXT COLLATE "C" NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  name    TEXT,
  version INTEGER,
  detail  TEXT,
  hash    BYTEA NOT NULL
);

CREATE TABLE coffer_tokens (
  ord        BIGINT GENERATED ALWAYS AS IDENTITY,
  id         TEXT COLLATE "C" PRIMARY KEY,
  name       TEXT NOT NULL,
  hash       BYTEA NOT NULL UNIQUE,
  roles      TEXT NOT NULL,
  created_at TEXT COLLATE "C" NOT NULL,
  created_by TEXT NOT NULL,
  expires_at TEXT COLLATE "C",
  revoked_at TEXT COLLATE "C"
);
CREATE INDEX coffer_tokens_by_created ON coffer_tokens (created_at, ord);
`;

/**
 * Each entry brings the PostgreSQL schema from version i+1 to i+2, as `sqlite-schema.ts` does for
 * SQLite; the two lists must stay the same length (checked when this module loads).
 */
const POSTGRES_MIGRATIONS: readonly string[] = [
  // 1 → 2: runbook executions (issue 13), as sqlite-schema.ts's EXECUTIONS. truncated and
  // cancel_requested are 0/1 integers, as in SQLite, so ops.ts binds and reads them alike.
  `
CREATE TABLE coffer_executions (
  id                 TEXT COLLATE "C" PRIMARY KEY,
  runbook            TEXT COLLATE "C" NOT NULL,
  status             TEXT NOT NULL,
  requested_by       TEXT NOT NULL,
  principal          TEXT NOT NULL,
  params             TEXT NOT NULL,
  approvals_required INTEGER NOT NULL CHECK (approvals_required >= 0),
  created_at         TEXT COLLATE "C" NOT NULL,
  started_at         TEXT COLLATE "C",
  finished_at        TEXT COLLATE "C",
  expires_at         TEXT COLLATE "C",
  exit_code          INTEGER,
  signal             TEXT,
  output_bytes       BIGINT NOT NULL DEFAULT 0 CHECK (output_bytes >= 0),
  truncated          SMALLINT NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
  instance           TEXT,
  cancel_requested   SMALLINT NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1))
);
CREATE INDEX coffer_executions_by_runbook ON coffer_executions (runbook, id);
CREATE INDEX coffer_executions_by_status ON coffer_executions (status, id);

CREATE TABLE coffer_execution_approvals (
  execution_id TEXT COLLATE "C" NOT NULL,
  principal    TEXT COLLATE "C" NOT NULL,
  at           TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (execution_id, principal)
);

CREATE TABLE coffer_execution_output (
  execution_id TEXT COLLATE "C" NOT NULL,
  seq          INTEGER NOT NULL CHECK (seq >= 0),
  data         BYTEA NOT NULL,
  PRIMARY KEY (execution_id, seq)
);

CREATE TABLE coffer_instances (
  id           TEXT COLLATE "C" PRIMARY KEY,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  started_at   TEXT COLLATE "C" NOT NULL,
  heartbeat_at TEXT COLLATE "C" NOT NULL
);
`,
  // 2 → 3: roles kept in the database (issue 14), as sqlite-schema.ts's ROLES.
  `
CREATE TABLE coffer_roles (
  name       TEXT COLLATE "C" PRIMARY KEY,
  rules      TEXT NOT NULL,
  version    INTEGER NOT NULL CHECK (version >= 1),
  updated_at TEXT COLLATE "C" NOT NULL,
  updated_by TEXT NOT NULL
);
`,
  // 3 → 4: rotation policies (issue 15), as sqlite-schema.ts's ROTATIONS.
  `
CREATE TABLE coffer_rotations (
  name                 TEXT COLLATE "C" PRIMARY KEY,
  every                TEXT,
  every_ms             BIGINT CHECK (every_ms IS NULL OR every_ms > 0),
  generate             TEXT NOT NULL,
  apply                TEXT,
  state                TEXT NOT NULL,
  next_at              TEXT COLLATE "C",
  last_rotated_at      TEXT COLLATE "C",
  last_error           TEXT,
  last_error_at        TEXT COLLATE "C",
  failures             INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
  updated_at           TEXT COLLATE "C" NOT NULL,
  updated_by           TEXT NOT NULL,
  lease_holder         TEXT COLLATE "C",
  lease_until          TEXT COLLATE "C",
  candidate_version    INTEGER,
  candidate_nonce      BYTEA,
  candidate_ciphertext BYTEA
);
`,
  // 4 → 5: per-version delete, undelete and destroy (issue 16), as sqlite-schema.ts's VERSION_MARKS.
  `
ALTER TABLE coffer_versions ADD COLUMN deleted_at TEXT COLLATE "C";
ALTER TABLE coffer_versions ADD COLUMN destroyed_at TEXT COLLATE "C";
`,
];

if (1 + POSTGRES_MIGRATIONS.length !== SCHEMA_VERSION.server) {
  throw new Error(`postgres.ts knows schema ${1 + POSTGRES_MIGRATIONS.length} but sqlite-schema.ts is at ${SCHEMA_VERSION.server}: add the PostgreSQL migration`);
}

// Advisory lock keys: the first 8 bytes of SHA-256 of a fixed label, as a signed 64-bit integer.
function lockKey(label: string): string {
  return createHash("sha256").update(label, "utf8").digest().readBigInt64BE(0).toString();
}
/** The advisory lock held while migrating. */
const MIGRATION_LOCK = lockKey("coffer/migrations");
/** The advisory lock held by each transaction that appends to the audit chain. */
export const AUDIT_LOCK = lockKey("coffer/audit");
/**
 * The first key of the per-runbook advisory lock (the second is `hashtext(name)`): 32-bit pairs
 * are a key space of their own, apart from the 64-bit keys above.
 */
export const RUNBOOK_LOCK_CLASS = createHash("sha256").update("coffer/runbook", "utf8").digest().readInt32BE(0);

/**
 * Creates or migrates the tables and returns the store id, in one transaction under the
 * migration lock (the first of several instances starting together creates them, the others wait).
 * @param shown - the database's URL without its password, for messages
 * @throws CofferError E_INTEGRITY when it holds another kind of `coffer_meta` or a newer
 *   coffer's schema
 */
export async function migrate(pool: PgPool, shown: string): Promise<Buffer> {
  const known = SCHEMA_VERSION.server;
  return pool.tx(`opening ${shown}`, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [MIGRATION_LOCK]);
    await client.query("CREATE TABLE IF NOT EXISTS coffer_schema (version INTEGER NOT NULL)");
    const rows = (await client.query<{ version: number }>("SELECT version FROM coffer_schema")).rows;
    let current = rows.length === 0 ? 0 : Math.max(...rows.map((r) => r.version));
    refuseNewer(current, known, shown);
    if (current === 0) {
      const existing = await client.query("SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = 'coffer_meta' AND schemaname = ANY (current_schemas(false))");
      if (existing.rowCount !== 0) {
        throw new CofferError("E_INTEGRITY", `${shown} holds coffer_meta but no coffer_schema: not a coffer server database of format ${FORMAT.server}`);
      }
      await client.query(POSTGRES_SCHEMA_SQL);
      current = 1;
    }
    for (let v = current; v < known; v++) await client.query(POSTGRES_MIGRATIONS[v - 1]!);
    await client.query("DELETE FROM coffer_schema");
    await client.query("INSERT INTO coffer_schema (version) VALUES ($1)", [known]);
    await client.query(
      "INSERT INTO coffer_meta (key, value) VALUES ('format', $1), ('store_id', $2), ('created_at', $3) ON CONFLICT (key) DO NOTHING",
      [FORMAT.server, randomBytes(16).toString("hex"), new Date().toISOString()],
    );
    const found = await client.query<{ key: string; value: string }>("SELECT key, value FROM coffer_meta WHERE key IN ('format', 'store_id')");
    const meta = Object.fromEntries(found.rows.map((r) => [r.key, r.value])) as { format?: string; store_id?: string };
    if (meta.format !== FORMAT.server || meta.store_id === undefined || !/^[0-9a-f]{32}$/.test(meta.store_id)) {
      throw new CofferError("E_INTEGRITY", `${shown} is not a coffer server database of format ${FORMAT.server}`);
    }
    return Buffer.from(meta.store_id, "hex");
  });
}
