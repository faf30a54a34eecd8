/**
 * The PostgreSQL driver's connections (docs/design.md §7): a `pg` pool per instance, a read or a
 * transaction on a pooled connection, the one retry on a connection found dead, and a close
 * that lets pending calls finish first.
 *
 * A broken connection is dropped from the pool (the pool's `error` events are handled: an idle
 * connection killed by a PostgreSQL restart is simply discarded) and later calls get fresh ones,
 * so the server survives a database restart without being restarted.
 */
import pg from "pg";
import { CofferError } from "../errors.ts";
import { closedError } from "./checks.ts";
import { hideUrlSecrets, isConnectionError, mapError, retryable } from "./postgres-errors.ts";

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
