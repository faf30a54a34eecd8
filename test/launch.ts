/**
 * `npm test`'s runner: starts one throw-away PostgreSQL and one Redis (test/throwaway.ts) for the
 * whole run, hands them to every test process in COFFER_TEST_POSTGRES_URL / COFFER_TEST_REDIS_URL,
 * runs the tests, and stops both at the end, whether the tests pass, fail or are interrupted. A
 * variable already set names a server of the user's choosing: then none is started for it.
 *
 * Usage: `node test/launch.ts` runs every *.test.ts (two files at a time), then, when they all
 * passed, the *.fault.ts files alone and one at a time (the PostgreSQL fault test restarts the throw-away cluster
 * under the server it tests). `node test/launch.ts FILE…` runs just those files.
 */
import { spawn } from "node:child_process";
import { POSTGRES_DATA_ENV } from "./services.ts";
import { startPostgres, startRedis, stopAllThrowaway, type ThrowawayPostgres, type ThrowawayRedis } from "./throwaway.ts";

const env = { ...process.env };
let pg: ThrowawayPostgres | undefined;
let redis: ThrowawayRedis | undefined;
let child: ReturnType<typeof spawn> | undefined;

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    child?.kill(signal);
    stopAllThrowaway(); // also what is still starting
    process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[signal]);
  });
}

/** Runs `node --test ARGS` with the services' environment; resolves with its exit code. */
function nodeTest(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    child = spawn(process.execPath, ["--test", ...args], { env, stdio: "inherit" });
    child.once("error", (err) => {
      console.error(`cannot run node --test: ${err.message}`);
      resolve(1);
    });
    child.once("exit", (code, signal) => resolve(code ?? (signal !== null ? 1 : 0)));
  });
}

let status = 1;
try {
  const started = Date.now();
  if (!env.COFFER_TEST_POSTGRES_URL) {
    pg = await startPostgres();
    env.COFFER_TEST_POSTGRES_URL = pg.url;
    env[POSTGRES_DATA_ENV] = pg.dataDir;
  } else {
    delete env[POSTGRES_DATA_ENV];
  }
  if (!env.COFFER_TEST_REDIS_URL) {
    redis = await startRedis();
    env.COFFER_TEST_REDIS_URL = redis.url;
  }
  const where = (url: string | undefined): string => (url === undefined ? "?" : new URL(url).host);
  console.error(
    `test services: PostgreSQL ${where(env.COFFER_TEST_POSTGRES_URL)}${pg ? " (throw-away)" : ""}, ` +
      `Redis ${where(env.COFFER_TEST_REDIS_URL)}${redis ? " (throw-away)" : ""}; ready in ${Date.now() - started} ms`,
  );
  const files = process.argv.slice(2);
  if (files.length > 0) {
    status = await nodeTest(files);
  } else {
    status = await nodeTest(["--test-concurrency=2", "test/**/*.test.ts"]);
    // One at a time: the PostgreSQL restart must not cut another fault test's connections.
    if (status === 0) status = await nodeTest(["--test-concurrency=1", "test/**/*.fault.ts"]);
  }
} catch (err) {
  console.error(`cannot start the test services: ${(err as Error).message}`);
  status = 1;
} finally {
  stopAllThrowaway();
}
process.exit(status);
