/**
 * The PostgreSQL driver's connections (docs/design.md §7): a `pg` pool per instance, a read or a
 * transaction on a pooled connection, the one retry on a connection found dead, a close that
 * lets pending calls finish first, and the error map: which failures mean a lost connection
 * (retried once, or reported as E_UNAVAILABLE), which a timeout or lock wait (E_BUSY); messages
 * name the condition, never a value or the URL's password.
 *
 * A broken connection is dropped from the pool (the pool's `error` events are handled: an idle
 * connection killed by a PostgreSQL restart is simply discarded) and later calls get fresh ones,
 * so the server survives a database restart without being restarted.
 */
import pg from "pg";
import { CofferError } from "../errors.ts";
import { closedError } from "./checks.ts";
/** Options of a pool (`openPostgresStorage`). */
export interface PostgresStorageOptions {
  /** connections per instance (default 10) */
  poolSize?: number;
  /** the longest one statement may run or wait for a lock before E_BUSY (default 15 s) */
  statementTimeoutMs?: number;
  /** the longest to wait for a connection (new or from the pool) before E_UNAVAILABLE (default 5 s) */
  connectTimeoutMs?: number;
}

/** What a query runs on: a pooled connection. */
export type Queryable = Pick<pg.PoolClient, "query">;
type ClientFn<T> = (client: pg.PoolClient, markBroken: (err: unknown) => void) => Promise<T>;

/** One instance's connections to the database. */
export class PgPool {
  /** the URL without its password, for messages */
  readonly shown: string;
  readonly #pool: pg.Pool;
  /** the URL's password (and secret parameters), which a message must never show */
  readonly #secrets: readonly string[];
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(url: string, options: PostgresStorageOptions = {}) {
    const poolSize = options.poolSize ?? 10;
    const statementTimeoutMs = options.statementTimeoutMs ?? 15_000;
    const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    if (!Number.isSafeInteger(poolSize) || poolSize < 1) throw new TypeError("poolSize must be a whole number ≥ 1");
    if (!Number.isSafeInteger(statementTimeoutMs) || statementTimeoutMs < 1) throw new TypeError("statementTimeoutMs must be a whole number of milliseconds ≥ 1");
    if (!Number.isSafeInteger(connectTimeoutMs) || connectTimeoutMs < 1) throw new TypeError("connectTimeoutMs must be a whole number of milliseconds ≥ 1");
    const { shown, secrets } = hideUrlSecrets(String(url));
    if (typeof url !== "string" || !/^postgres(ql)?:\/\//.test(url)) {
      throw new CofferError("E_CONFIG", `database: ${shown} is not a postgres:// or postgresql:// URL`);
    }
    this.shown = shown;
    this.#secrets = secrets;
    this.#pool = new pg.Pool({
      connectionString: url,
      max: poolSize,
      connectionTimeoutMillis: connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      statement_timeout: statementTimeoutMs,
      // the client's own limit, for a server that stops answering without closing the connection
      query_timeout: statementTimeoutMs + 5_000,
      idle_in_transaction_session_timeout: statementTimeoutMs + 5_000,
      application_name: "coffer-server",
      keepAlive: true,
    });
    // An idle connection that dies (a restart, a network cut) is removed by the pool, which then
    // emits 'error'; unhandled, that event would end the process. Later calls get new connections.
    this.#pool.on("error", () => {});
  }

  /**
   * A read (or an idempotent write) on a pooled connection. A connection that turns out to be
   * dead (killed by a restart while idle) is dropped and the call tried once more on a new one.
   */
  read<T>(what: string, fn: (q: Queryable) => Promise<T>): Promise<T> {
    return this.#call(what, fn, () => true);
  }

  /**
   * One transaction. When the connection fails at BEGIN nothing was done, so it is retried once
   * on a new connection; a failure later is reported (the outcome of a COMMIT that lost its
   * connection is unknown: E_UNAVAILABLE, and the caller may retry).
   */
  tx<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let begun = false;
    return this.#call(what, async (c, markBroken) => {
      await c.query("BEGIN");
      begun = true;
      try {
        const result = await fn(c);
        await c.query("COMMIT");
        return result;
      } catch (err) {
        // A connection that cannot roll back is not returned to the pool.
        if (!isConnectionError(err)) await c.query("ROLLBACK").catch(markBroken);
        throw err;
      }
    }, () => !begun);
  }

  // Runs `fn` on a pooled connection, once more on a new one when the connection died and
  // `mayRetry()` says nothing was done; tracked so close() can wait for it.
  #call<T>(what: string, fn: ClientFn<T>, mayRetry: () => boolean): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    const p = (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.#withClient(what, fn);
        } catch (err) {
          if (attempt < 2 && mayRetry() && retryable(err) && !this.#closed) continue;
          throw mapError(err, what, this.#secrets);
        }
      }
    })();
    this.#inFlight.add(p);
    const done = (): void => void this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  /** Ends the pool once pending calls finished (their outcome is theirs to report). */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
      await this.#pool.end();
    })();
    return this.#closing;
  }

  // Checks out a client for `fn`, with an 'error' listener while it is out (a checked-out client
  // whose connection dies emits 'error'; without a listener that would end the process). A client
  // that failed is destroyed rather than returned to the pool.
  async #withClient<T>(what: string, fn: ClientFn<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw mapError(err, what, this.#secrets);
    }
    let broken: Error | undefined;
    const markBroken = (err: unknown): void => {
      broken ??= err instanceof Error ? err : new Error(String(err));
    };
    client.on("error", markBroken);
    try {
      return await fn(client, markBroken);
    } catch (err) {
      if (isConnectionError(err)) markBroken(err);
      throw err;
    } finally {
      client.removeListener("error", markBroken);
      client.release(broken ?? false);
    }
  }
}

/**
 * `url` as a message may show it (its password and secret parameters as `***`), and those
 * secrets (encoded and decoded), which a message must never show.
 */
function hideUrlSecrets(url: string): { shown: string; secrets: string[] } {
  try {
    const u = new URL(url);
    const secrets: string[] = [];
    if (u.password !== "") {
      secrets.push(u.password);
      try {
        secrets.push(decodeURIComponent(u.password));
      } catch {
        // keep the encoded form only
      }
      u.password = "***";
    }
    for (const [key, value] of [...u.searchParams]) {
      if (!/pass|secret|key/i.test(key)) continue;
      if (value !== "") secrets.push(value);
      u.searchParams.set(key, "***");
    }
    return { shown: u.toString(), secrets };
  } catch {
    return { shown: "(an unparsable database URL)", secrets: [] };
  }
}

// Node's socket error codes that mean the connection was lost or never made.
const NET_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN",
  "EHOSTDOWN", "ENOTFOUND", "EAI_AGAIN", "EADDRNOTAVAIL", "ENOENT",
]);
// pg's and pg-pool's own messages for a lost, refused or timed-out connection.
const CONNECTION_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Client has encountered a connection error and is not queryable/,
  /^Client was closed and is not queryable/,
  /^Query read timeout/,
  /^Cannot use a pool after calling end on the pool/,
  /^connection timeout/i,
];

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

// Whether a call that failed with `err` before doing anything may be tried again on a new
// connection: the connection died (not a refused connect, not a timeout, not ours).
function retryable(err: unknown): boolean {
  if (err instanceof CofferError || !isConnectionError(err)) return false;
  const message = String((err as { message?: unknown }).message ?? "");
  return !/^Query read timeout/.test(message);
}

// Whether `err` means the connection is gone (or never came): the client must not be reused.
function isConnectionError(err: unknown): boolean {
  if (err === null || typeof err !== "object") return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    if (NET_CODES.has(code)) return true;
    const state = sqlState(err);
    // 08: connection exception; 57P01-57P05: admin/crash shutdown, cannot connect now, idle timeouts
    if (state !== undefined) return state.startsWith("08") || /^57P0[1-5]$/.test(state);
  }
  const message = (err as { message?: unknown }).message;
  return typeof message === "string" && CONNECTION_MESSAGES.some((re) => re.test(message));
}

// The names PostgreSQL gives the conditions a message may mention (never a bound value).
const STATE_NAMES: Record<string, string> = {
  "57P01": "the database server is shutting down (admin shutdown)",
  "57P02": "the database server crashed (crash shutdown)",
  "57P03": "the database server is not accepting connections now",
  "57P04": "the database was dropped",
  "57P05": "the connection was idle too long",
  "53300": "too many connections",
  "53100": "the database server's disk is full",
  "53200": "the database server is out of memory",
  "3D000": "the database does not exist",
  "28P01": "authentication failed",
  "28000": "the connection was not authorised",
  "25P03": "a transaction stayed idle too long",
  "22021": "a name or text is not valid UTF-8 (NUL characters are refused)",
  "42P01": "a coffer table is missing",
};

// The database's failures become CofferErrors: statement timeouts and lock waits → E_BUSY,
// anything else → E_UNAVAILABLE, with the cause attached. The message names the condition (the
// SQLSTATE and its meaning, or the socket error), never a value, and never the URL's password.
function mapError(err: unknown, what: string, secrets: readonly string[]): unknown {
  if (err === null || typeof err !== "object") return err;
  if (err instanceof CofferError || err instanceof TypeError || err instanceof RangeError) return err;
  const state = sqlState(err);
  if (state === "57014" || state === "55P03" || state === "40P01" || state === "40001") {
    return new CofferError("E_BUSY", `the server's database did not finish in time while ${what} (PostgreSQL ${state}: a slow query or a lock held elsewhere); try again`, { cause: err });
  }
  const message = String((err as { message?: unknown }).message ?? "");
  let reason: string;
  if (state !== undefined && err instanceof pg.DatabaseError) {
    reason = `PostgreSQL ${state}: ${STATE_NAMES[state] ?? (state.startsWith("08") ? "the connection failed" : "see the server's log")}`;
  } else if (isConnectionError(err)) {
    reason = message !== "" ? message : String((err as { code?: unknown }).code);
  } else if (err instanceof Error && /^(SASL|SCRAM|client password|Password)/.test(message)) {
    reason = "authentication failed";
  } else {
    // not the database's failure (a bug, or an error from seal()): pass it on as it is
    return err;
  }
  for (const s of secrets) reason = reason.split(s).join("***");
  return new CofferError("E_UNAVAILABLE", `the server's database failed: ${reason} (while ${what}); retry`, { cause: err });
}
