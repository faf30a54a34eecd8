/**
 * The one map from SQLite's failures to CofferErrors, for both kinds of file (docs/design.md §7).
 * A message carries SQLite's generic text for the code (errstr), never a bound value.
 */
import { CofferError } from "../errors.ts";
import type { SqliteKind } from "./sqlite-schema.ts";

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;

/**
 * `err` as a CofferError: BUSY/LOCKED → E_BUSY; a file that is not SQLite or is corrupt →
 * E_INTEGRITY (a store always, a server database when opening it); any other failure of a
 * server's database → E_UNAVAILABLE (the server reports it and goes on). Anything else is
 * returned as it is.
 * @param what - what the server was doing ("writing a secret"), for its messages
 */
export function mapSqliteError(err: unknown, kind: SqliteKind, path: string, what?: string): unknown {
  const e = err as { code?: unknown; errcode?: unknown } | null;
  if (e === null || typeof e !== "object" || e.code !== "ERR_SQLITE_ERROR" || typeof e.errcode !== "number") return err;
  const primary = e.errcode & 0xff;
  const server = kind === "server";
  if (primary === SQLITE_BUSY || primary === SQLITE_LOCKED) {
    const message = server
      ? `the server's database stayed locked by another process while ${what ?? `opening ${path}`}; try again`
      : `the store ${path} stayed locked by another process; try again`;
    return new CofferError("E_BUSY", message, { cause: err });
  }
  if ((primary === SQLITE_NOTADB || primary === SQLITE_CORRUPT) && (!server || what === undefined)) {
    const noun = server ? "coffer server database" : "coffer store";
    return new CofferError("E_INTEGRITY", `${path} is not a readable ${noun} (corrupt or not SQLite); restore a backup`, { cause: err });
  }
  if (!server) return err;
  const errstr = (err as { errstr?: unknown }).errstr;
  return new CofferError(
    "E_UNAVAILABLE",
    `the server's database failed: ${typeof errstr === "string" ? errstr : "SQLite error"} (while ${what ?? `opening ${path}`}); see the server's log`,
    { cause: err },
  );
}
