/**
 * Helpers for tests that need a PostgreSQL or Redis server. Such a test never skips: when the
 * service cannot be reached it fails, naming the environment variable that points at it and how
 * to start one.
 *
 * - PostgreSQL: `COFFER_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`,
 *   a superuser or a role that may CREATE DATABASE).
 * - Redis: `COFFER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).
 */
import { randomBytes } from "node:crypto";
import type { TestContext } from "node:test";
import pg from "pg";

/** The PostgreSQL server the tests use (an admin URL: it creates and drops databases). */
export function postgresUrl(): string {
  return process.env.COFFER_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
}

/** The Redis server the tests use. */
export function redisUrl(): string {
  return process.env.COFFER_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
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
  "set COFFER_TEST_POSTGRES_URL to a PostgreSQL server's URL (a role that may CREATE DATABASE), or start one: " +
  "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` on Debian, or " +
  "`docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`";

/**
 * Runs `sql` on the admin database, with a few tries while the server is (re)starting.
 * @throws Error naming COFFER_TEST_POSTGRES_URL and how to start PostgreSQL when it stays unreachable
 */
export async function adminQuery(sql: string, options: { tries?: number } = {}): Promise<pg.QueryResult> {
  const url = postgresUrl();
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
 * Creates an empty database `coffer_test_<random hex>` on {@link postgresUrl}'s server, dropped
 * (WITH (FORCE): open connections are cut) after the test.
 * @returns its URL
 */
export async function freshDatabase(t: TestContext): Promise<string> {
  const name = `coffer_test_${randomBytes(6).toString("hex")}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  t.after(async () => {
    // a few tries: a test may have just restarted the server
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, { tries: 20 });
  });
  return withDatabase(postgresUrl(), name);
}
