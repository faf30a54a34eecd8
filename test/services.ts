/**
 * Helpers for tests that need a PostgreSQL or Redis server. Such a test never skips: when the
 * service cannot be had it fails, saying why and what to do.
 *
 * - `COFFER_TEST_POSTGRES_URL` (a superuser or a role that may CREATE DATABASE) and
 *   `COFFER_TEST_REDIS_URL` point the tests at servers of your choosing.
 * - Unset, the tests use throw-away servers (test/throwaway.ts): `npm test` starts one of each for
 *   the whole run (test/launch.ts) and passes them down in those two variables; a test file run on
 *   its own (`node --test test/server/x.test.ts`) starts its own, stopped when it exits.
 * The machine's own PostgreSQL and Redis are never used unless a variable names them.
 */
import { randomBytes } from "node:crypto";
import type { TestContext } from "node:test";
import pg from "pg";
import { startPostgres, startRedis, stopAllThrowaway, type ThrowawayPostgres } from "./throwaway.ts";

/**
 * Set by test/launch.ts beside COFFER_TEST_POSTGRES_URL when that URL is its throw-away cluster:
 * the cluster's data dir, which the fault test may restart.
 */
export const POSTGRES_DATA_ENV = "COFFER_TEST_POSTGRES_DATA";

let ownPostgres: Promise<ThrowawayPostgres> | undefined;
let ownRedis: Promise<string> | undefined;

let stopsInstalled = false;

/**
 * Stops what this process started when it exits, or when a signal ends it (then the signal is
 * raised again, so the process still ends as it would have).
 */
function stopAtExit(): void {
  if (stopsInstalled) return;
  stopsInstalled = true;
  process.once("exit", stopAllThrowaway);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      stopAllThrowaway();
      process.kill(process.pid, signal);
    });
  }
}

/** This process's own throw-away PostgreSQL, started on first use. */
export function ownThrowawayPostgres(): Promise<ThrowawayPostgres> {
  if (ownPostgres === undefined) {
    stopAtExit();
    ownPostgres = startPostgres();
  }
  return ownPostgres;
}

/** The PostgreSQL server the tests use (an admin URL: it creates and drops databases). */
export async function postgresUrl(): Promise<string> {
  const given = process.env.COFFER_TEST_POSTGRES_URL;
  if (given !== undefined && given !== "") return given;
  return (await ownThrowawayPostgres()).url;
}

/**
 * A PostgreSQL server this test run started and may restart: the launcher's throw-away cluster,
 * else this process's own. A server the user named in COFFER_TEST_POSTGRES_URL is never
 * restarted: then a throw-away one is started for the caller.
 */
export async function restartablePostgres(): Promise<ThrowawayPostgres> {
  const url = process.env.COFFER_TEST_POSTGRES_URL;
  const dataDir = process.env[POSTGRES_DATA_ENV];
  if (url !== undefined && url !== "" && dataDir !== undefined && dataDir !== "") return { url, dataDir };
  return ownThrowawayPostgres();
}

/** The Redis server the tests use. */
export async function redisUrl(): Promise<string> {
  const given = process.env.COFFER_TEST_REDIS_URL;
  if (given !== undefined && given !== "") return given;
  if (ownRedis === undefined) {
    stopAtExit();
    ownRedis = startRedis().then((instance) => instance.url);
  }
  return ownRedis;
}

/** `url` without its password, for messages. */
export function showUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/** `url` (a postgres:// URL) pointing at database `name` instead. */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

const POSTGRES_HELP =
  "check that it runs, or unset COFFER_TEST_POSTGRES_URL to let the tests start a throw-away PostgreSQL";

/**
 * Runs `sql` on the admin database (of `options.url`, else {@link postgresUrl}'s server), with a
 * few tries while the server is (re)starting.
 * @throws Error naming the server and what to do when it stays unreachable
 */
export async function adminQuery(sql: string, options: { tries?: number; url?: string } = {}): Promise<pg.QueryResult> {
  const url = options.url ?? (await postgresUrl());
  const tries = options.tries ?? 1;
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 500));
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (err) {
      last = err;
      await client.end().catch(() => {});
      continue;
    }
    try {
      return await client.query(sql);
    } finally {
      await client.end().catch(() => {});
    }
  }
  throw new Error(`cannot reach PostgreSQL at ${showUrl(url)} (${(last as Error)?.message ?? last}): ${POSTGRES_HELP}`, { cause: last });
}

/**
 * Creates an empty database `coffer_test_<random hex>` on `url`'s server (default
 * {@link postgresUrl}'s), dropped (WITH (FORCE): open connections are cut) after the test.
 * @returns its URL
 */
export async function freshDatabase(t: TestContext, url?: string): Promise<string> {
  const admin = url ?? (await postgresUrl());
  const name = `coffer_test_${randomBytes(6).toString("hex")}`;
  await adminQuery(`CREATE DATABASE ${name}`, { url: admin });
  t.after(async () => {
    // a few tries: a test may have just restarted the server
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, { tries: 20, url: admin });
  });
  return withDatabase(admin, name);
}

/**
 * Logs in to the test setup's PostgreSQL as `role` with `password` over TCP and runs `SELECT 1`.
 * @returns "ok", or the SQLSTATE of the refusal (28P01: wrong password)
 */
export async function pgLogin(role: string, password: string): Promise<string> {
  const u = new URL(await postgresUrl());
  u.username = encodeURIComponent(role);
  u.password = encodeURIComponent(password);
  const c = new pg.Client({ connectionString: u.href, connectionTimeoutMillis: 10_000 });
  c.on("error", () => {});
  try {
    await c.connect();
    await c.query("SELECT 1");
    return "ok";
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}
