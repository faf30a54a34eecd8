/**
 * The server's PostgreSQL storage driver (docs/design.md §7): several `coffer serve` instances on
 * one database, through a `pg` pool per instance (`postgres-pool.ts`), running the operations of
 * `ops.ts`. How writes and audit appends stay race-free across instances is said there; the
 * schema and its migrate rule are in `postgres-schema.ts`.
 *
 * The tables live in the connection's default schema (the first of its `search_path`; choose
 * another with `?options=-c%20search_path%3Dmyschema` in the URL). Names and times are
 * `TEXT COLLATE "C"` (code point order, as SQLite's BINARY, so `list` sorts and ranges alike);
 * times are ISO 8601 text exactly as the SQLite driver writes them and audit `detail` is the JSON
 * text that was hashed, so records and chain hashes are byte-for-byte those of the SQLite driver.
 */
import { CofferError } from "../errors.ts";
import { AUDIT_LOCK, RUNBOOK_LOCK_CLASS, migrate } from "./postgres-schema.ts";
import { PgPool, type PostgresStorageOptions, type Queryable } from "./postgres-pool.ts";
import * as ops from "./ops.ts";
import { storageOver } from "./seam.ts";
import type { ServerStorage } from "./types.ts";

/**
 * Opens the PostgreSQL database at `url`, creates or migrates its tables (under an advisory
 * lock, so several instances may open it at once) and returns the storage.
 *
 * @example
 * const storage = await openPostgresStorage("postgres://coffer@db.internal/coffer");
 *
 * @throws CofferError E_UNAVAILABLE when the database cannot be reached, E_INTEGRITY when it
 *   holds another kind of `coffer_meta` or a newer coffer's schema
 */
export async function openPostgresStorage(url: string, options: PostgresStorageOptions = {}): Promise<ServerStorage> {
  const pool = new PgPool(url, options);
  try {
    const storeId = await migrate(pool, pool.shown);
    return storageOver("postgres", storeId, D, {
      read: (what, op) => pool.read(what, (c) => run(c, op())),
      tx: (what, op) => pool.tx(what, (c) => run(c, op())),
      close: () => pool.close(),
    });
  } catch (err) {
    await pool.close().catch(() => {});
    if (err instanceof CofferError && err.code === "E_UNAVAILABLE") {
      const hint = "check that PostgreSQL is running and the URL is right, then retry";
      throw new CofferError("E_UNAVAILABLE", err.message.replace(/; retry$/, `; ${hint}`), { cause: err.cause });
    }
    throw err;
  }
}

const D: ops.Dialect = {
  rotation: false,
  rotationLocks: true,
  forUpdate: " FOR UPDATE",
  auditLock: `SELECT pg_advisory_xact_lock(${AUDIT_LOCK}::bigint)`,
  runbookLock: `SELECT pg_advisory_xact_lock(${RUNBOOK_LOCK_CLASS}, hashtext(?))`,
  // rows per INSERT when appending a batch (8 parameters each, well under PostgreSQL's 65535)
  auditChunk: 500,
  tokenOrder: "ord",
  noLimit: null,
  // version is an INTEGER column (32-bit) in PostgreSQL
  maxVersion: 0x7fffffff,
};

// ops.ts's statements in PostgreSQL's form: numbered placeholders, tables prefixed coffer_. Reads
// become named (prepared once per connection); writes, whose text varies with a batch, do not.
const translated = new Map<string, { text: string; name?: string }>();
function translate(sql: string, named: boolean): { text: string; name?: string } {
  let t = translated.get(sql);
  if (t === undefined) {
    let n = 0;
    const text = sql.replace(/\?/g, () => `$${++n}`).replace(/\b(FROM|INTO|UPDATE|JOIN)\s+(meta|secrets|versions|audit|tokens|executions|execution_approvals|execution_output|instances|roles|rotations)\b/g, "$1 coffer_$2");
    t = named ? { text, name: `coffer_q${translated.size}` } : { text };
    translated.set(sql, t);
  }
  return t;
}

// Runs an operation of ops.ts on one connection, statement by statement.
async function run<T>(c: Queryable, op: ops.Op<T>): Promise<T> {
  let step = op.next();
  while (!step.done) {
    const q = step.value;
    const values = q.params.map((v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
    const r = await c.query({ ...translate(q.sql, q.mode !== "run"), values, ...(q.arrays === true && { rowMode: "array" as const }) });
    step = op.next(q.mode === "get" ? r.rows[0] : q.mode === "all" ? r.rows : (r.rowCount ?? 0));
  }
  return step.value;
}
