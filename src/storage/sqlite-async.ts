/**
 * The SQLite driver's asynchronous face (docs/design.md §7): the storage seam the server uses over
 * the synchronous core (`sqlite.ts`). Every method does its work before it returns a settled
 * promise, so within one process calls never interleave; other processes on the same file (a
 * second `coffer serve`, `coffer server` admin commands) are serialised by SQLite's write lock.
 */
import { dirname } from "node:path";
import { CofferError } from "../errors.ts";
import { assertPrivate, shellQuote } from "../core/fs-secure.ts";
import { SqliteDriver } from "./sqlite.ts";
import { mapSqliteError } from "./sqlite-errors.ts";
import { closedError } from "./checks.ts";
import { storageOver } from "./seam.ts";
import type { ServerStorage } from "./types.ts";

/**
 * Creates the server's database file at `path`: mode 0600 whatever the umask, the schema, and a
 * fresh random 16-byte store id in `meta`. The file appears complete or not at all.
 *
 * @example
 * await createSqliteStorage("/var/lib/coffer/server.db");
 * const storage = await openSqliteStorage("/var/lib/coffer/server.db");
 *
 * @param path - the database file; its directory must exist and be private (0700, yours)
 * @throws CofferError E_CONFLICT when a file exists at `path`, E_USAGE when the directory is
 *   missing, E_PERMISSIONS when it is not private
 */
export async function createSqliteStorage(path: string): Promise<void> {
  const dir = dirname(path);
  assertPrivateOr(dir, "data directory", () =>
    new CofferError("E_USAGE", `the data directory ${dir} does not exist; create it with \`mkdir -m 700 ${shellQuote(dir)}\``));
  SqliteDriver.create(path, "server");
}

/**
 * Opens the server's database at `path`, brings its schema up to date and returns the storage.
 * @param options.busyTimeoutMs - how long a write waits for another process's lock before E_BUSY (default 15 s)
 * @throws CofferError E_NOT_INITIALIZED when there is no file, E_PERMISSIONS when it is
 *   readable by others, E_INTEGRITY when it is not a coffer server database (or a newer one's),
 *   E_BUSY when another process holds its lock too long
 */
export async function openSqliteStorage(path: string, options: { busyTimeoutMs?: number } = {}): Promise<ServerStorage> {
  const busyTimeoutMs = options.busyTimeoutMs ?? 15_000;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) throw new TypeError("busyTimeoutMs must be a whole number of milliseconds ≥ 0");
  assertPrivateOr(path, "server database", () =>
    new CofferError("E_NOT_INITIALIZED", `no server database at ${path}; run \`coffer server init --data ${shellQuote(dirname(path))}\``));
  return sqliteStorage(SqliteDriver.open(path, "server", { busyTimeoutMs }));
}

// assertPrivate, with `missing()` thrown when there is nothing at `path`.
function assertPrivateOr(path: string, what: string, missing: () => CofferError): void {
  try {
    assertPrivate(path, what);
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code === "ENOENT" ? missing() : err;
  }
}

const RESOLVED_UNDEFINED: Promise<undefined> = Promise.resolve(undefined);

/**
 * The seam over a synchronous core of either kind (a local store's serves the conformance suite;
 * it has no tokens or execution tables): each call runs to its end before it returns a settled promise.
 * Closing it closes the core.
 */
export function sqliteStorage(core: SqliteDriver): ServerStorage {
  let closed = false;
  const fail = (err: unknown, what: string): Promise<never> =>
    Promise.reject(err instanceof CofferError ? err : mapSqliteError(err, "server", core.path, what));
  const run = <T>(what: string, fn: () => T): Promise<T> => {
    if (closed) return Promise.reject(closedError());
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return fail(err, what);
    }
  };
  const storage = storageOver("sqlite", core.storeId, core.dialect, {
    read: (what, op) => run(what, () => core.run(op())),
    tx: (what, op, durable) => run(what, () => core.transaction(() => core.run(op()), durable)),
    close: async () => {
      closed = true;
      core.close();
    },
    afterPurge: () => run("checkpointing after a purge", () => core.checkpoint()),
  });
  // The read path: the core's own statement, no closure, no extra promise (the server's hottest call).
  storage.readCurrent = (name) => {
    if (closed) return Promise.reject(closedError());
    try {
      const v = core.readCurrent(name);
      return v === undefined ? RESOLVED_UNDEFINED : Promise.resolve(v);
    } catch (err) {
      return fail(err, "reading a secret");
    }
  };
  return storage;
}
