/**
 * The tests' own PostgreSQL and Redis (test/services.ts, test/throwaway.ts): a test process that
 * is given no server starts throw-away ones, never uses the machine's, and removes them on exit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createConnection } from "node:net";
import { fileURLToPath } from "node:url";

const SERVICES = fileURLToPath(new URL("./services.ts", import.meta.url));

/** `script` (an ES module) in a fresh node, with none of the variables that name test servers. */
function runChild(script: string, extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string | undefined> = { ...process.env, ...extraEnv };
  for (const name of ["COFFER_TEST_POSTGRES_URL", "COFFER_TEST_REDIS_URL", "COFFER_TEST_POSTGRES_DATA", "PGPASSWORD", "PGHOST", "PGPORT", "PGUSER"]) {
    if (!(name in extraEnv)) delete env[name];
  }
  return new Promise((resolve) => {
    execFile(process.execPath, ["--input-type=module", "-e", script], { env, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr });
    });
  });
}

/** Whether something still listens on `port` once a stopped server had 10 s to go (a killed process closes its sockets a moment later). */
async function stillListening(port: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (!(await listening(port))) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

test("tests given no server use throw-away PostgreSQL and Redis, never the machine's, and remove them on exit", { timeout: 180_000 }, async () => {
  const script = `
    import pg from "pg";
    import { adminQuery, postgresUrl, redisUrl } from ${JSON.stringify(SERVICES)};
    const url = new URL(await postgresUrl());
    const redis = new URL(await redisUrl());
    const dataDir = (await adminQuery("SHOW data_directory")).rows[0].data_directory;
    // host connections need the cluster's password (scram-sha-256)
    const noPassword = new URL(url); noPassword.password = "";
    const c = new pg.Client({ connectionString: noPassword.toString(), password: "wrong" });
    c.on("error", () => {});
    const refused = await c.connect().then(() => false, () => true);
    await c.end().catch(() => {});
    console.log(JSON.stringify({ pgPort: Number(url.port), redisPort: Number(redis.port), dataDir, refused }));
  `;
  const r = await runChild(script);
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { pgPort: number; redisPort: number; dataDir: string; refused: boolean };
  assert.notEqual(got.pgPort, 5432, "not the machine's PostgreSQL");
  assert.notEqual(got.redisPort, 6379, "not the machine's Redis");
  assert.match(got.dataDir, /coffer-test-pg-/, "a throw-away cluster in a temp dir");
  assert.equal(got.refused, true, "a connection without the cluster's password is refused");
  assert.equal(existsSync(got.dataDir), false, "the cluster's dir is removed when the process exits");
  assert.equal(await stillListening(got.pgPort), false, "the throw-away PostgreSQL is stopped");
  assert.equal(await stillListening(got.redisPort), false, "the throw-away Redis is stopped");
});

test("a test given an unreachable PostgreSQL fails (never skips), naming the variable without its password", async () => {
  const script = `
    import { adminQuery } from ${JSON.stringify(SERVICES)};
    await adminQuery("SELECT 1");
  `;
  const r = await runChild(script, { COFFER_TEST_POSTGRES_URL: "postgres://postgres:pw@127.0.0.1:1/postgres" });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot reach PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/postgres/);
  assert.match(r.stderr, /COFFER_TEST_POSTGRES_URL/);
  assert.doesNotMatch(r.stderr, /pw@/, "the password is not shown");
});

test("a test process ended by SIGTERM stops its throw-away servers and removes their dirs", { timeout: 180_000 }, async () => {
  const script = `
    import { adminQuery, postgresUrl, redisUrl } from ${JSON.stringify(SERVICES)};
    const pg = new URL(await postgresUrl());
    const redis = new URL(await redisUrl());
    const dataDir = (await adminQuery("SHOW data_directory")).rows[0].data_directory;
    console.log(JSON.stringify({ pgPort: Number(pg.port), redisPort: Number(redis.port), dataDir }));
    setInterval(() => {}, 1000);
  `;
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of ["COFFER_TEST_POSTGRES_URL", "COFFER_TEST_REDIS_URL", "COFFER_TEST_POSTGRES_DATA"]) delete env[name];
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { env, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve(out.trim());
    });
    child.once("exit", (code) => reject(new Error(`the child exited (${code}) before its servers were up`)));
  });
  const got = JSON.parse(line) as { pgPort: number; redisPort: number; dataDir: string };
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
  child.kill("SIGTERM");
  assert.equal(await exited, "SIGTERM", "the process still ends by the signal");
  assert.equal(existsSync(got.dataDir), false, "the cluster's dir is removed");
  assert.equal(await stillListening(got.pgPort), false, "the throw-away PostgreSQL is stopped");
  assert.equal(await stillListening(got.redisPort), false, "the throw-away Redis is stopped");
});
