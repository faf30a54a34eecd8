/**
 * The team server under load: authenticated secret reads (`GET /v1/secrets/app/bench` with a
 * reader's API token) driven by autocannon (32 connections, pipelining 1), against two bare
 * fastify handlers in the same run, on SQLite and on PostgreSQL:
 *
 * - token: checks the bearer token (timingSafeEqual) and returns a constant JSON of the read's
 *   shape. The goal ratio on SQLite: coffer ≥ 0.35× of it (goal 0.5×), p99 < 10 ms.
 * - read: the same read (below). The goal ratio on PostgreSQL: coffer ≥ 0.5× of it.
 *
 * - coffer: the real server (startServer), in this process, logger off, a rate limit high
 *   enough never to refuse; every read authenticates the token (SHA-256 + token lookup), runs
 *   the per-IP and per-subject limiters and the policy, opens the value and waits for its audit
 *   record's (group) commit.
 * - baseline: a bare fastify app, one route at the same URL, no auth, no policy, no limits, no
 *   audit, no metrics, logger off: storage.readCurrent on its own ServerStorage over the same
 *   database + ValueSealer.open with the same master key + the same JSON shape (and the same
 *   response schema, so both serialize alike).
 *
 * autocannon runs in a child process (its own core), so the load generator does not share the
 * servers' event loop. Per driver: a warm-up of each side, then the timed rounds in the order
 * token, read, coffer, coffer, read, token (mirrored: a linear drift of the machine falls on
 * every side alike).
 * Every response must be a 200; anything else fails the benchmark.
 *
 * Run alone: `node bench/server.ts` (COFFER_BENCH_SECONDS: timed seconds per side and driver,
 * default 10; COFFER_BENCH_DRIVERS=sqlite or postgres for one driver; the PostgreSQL server is
 * COFFER_TEST_POSTGRES_URL's, else a throw-away one started for the run, as the tests do).
 */
import { spawn } from "node:child_process";
import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Result as AutocannonResult } from "autocannon";
import Fastify, { type FastifyInstance } from "fastify";
import pg from "pg";
import { SECRET_READ_SCHEMA } from "../src/server/schemas.ts";
import { parseServerConfig } from "../src/server/config.ts";
import { ValueSealer, readMasterKey } from "../src/server/keys.ts";
import { MASTER_KEY_FILE, SQLITE_FILE, initServer, startServer, type RunningServer } from "../src/server/server.ts";
import { openPostgresStorage } from "../src/storage/postgres.ts";
import { openSqliteStorage } from "../src/storage/sqlite-async.ts";
import type { ServerStorage, StorageDriverName } from "../src/storage/types.ts";
import { jsonValue } from "../src/core/secret.ts";
import { postgresUrl } from "../test/services.ts";
import { benchOptions, count, markdownTable, progress } from "./lib.ts";
import type { BenchOptions, Row } from "./lib.ts";

/** The least coffer's reads/s may be of the bare read handler's (the PostgreSQL target). */
export const SERVER_RATIO_TARGET = 0.5;
/** The least coffer's reads/s may be of the bare token-check handler's on SQLite (the goal is 0.5×), and its p99 bound. */
export const SERVER_TOKEN_RATIO_TARGET = 0.35;
export const SERVER_P99_TARGET_MS = 10;
const CONNECTIONS = 32;
const PIPELINING = 1;
const WARMUP_SECONDS = 2;
const SECRET = "app/bench";
const PATH = `/v1/secrets/${SECRET}`;
const VALUE_BYTES = 32;

const CONFIG_YAML = `
rateLimit: { requests: 100000000, window: 1m, ipRequests: 100000000 }
roles:
  reader: [ { path: "app/**", capabilities: [read] } ]
`;

/** What one side measured over its timed rounds. */
export interface SideResult {
  /** mean requests/s over the rounds (total requests ÷ total seconds) */
  rps: number;
  /** p99 latency, ms: the mean of the rounds' p99 */
  p99Ms: number;
  /** each round's requests/s and p99 */
  rounds: { rps: number; p99Ms: number }[];
  requests: number;
}

/** One driver's result. */
export interface ServerDriverResult {
  driver: StorageDriverName;
  coffer: SideResult;
  /** the bare handler doing the same read */
  baseline: SideResult;
  /** the bare handler that checks the bearer token and returns a constant JSON */
  token: SideResult;
}

/** Timed seconds per side and driver: COFFER_BENCH_SECONDS, else 10 (4 quick). */
function timedSeconds(options: BenchOptions, env: NodeJS.ProcessEnv = process.env): number {
  const s = env.COFFER_BENCH_SECONDS;
  if (s !== undefined && s !== "") {
    const n = Number(s);
    if (!Number.isFinite(n) || n < 2) throw new Error(`COFFER_BENCH_SECONDS=${s}: must be a number of seconds ≥ 2`);
    return n;
  }
  return options.quick ? 4 : 10;
}

// The load generator, in a child process: autocannon's API, one JSON result on stdout.
const LOADGEN = `
const [path, optionsJson] = process.argv.slice(1);
const autocannon = require(path);
autocannon(JSON.parse(optionsJson), (err, result) => {
  if (err) { console.error(err && err.stack || String(err)); process.exit(1); }
  process.stdout.write(JSON.stringify(result));
});
`;
const AUTOCANNON = createRequire(import.meta.url).resolve("autocannon");

/** Runs autocannon against `url` for `seconds` in a child process. */
async function load(url: string, token: string | undefined, seconds: number): Promise<AutocannonResult> {
  const options = {
    url,
    connections: CONNECTIONS,
    pipelining: PIPELINING,
    duration: seconds,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  };
  const child = spawn(process.execPath, ["-e", LOADGEN, AUTOCANNON, JSON.stringify(options)], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  if (code !== 0) throw new Error(`autocannon exited with ${code}: ${err.slice(0, 2000)}`);
  return JSON.parse(out) as AutocannonResult;
}

/** One load run that must have answered 200 to every request. */
async function round(which: string, url: string, token: string | undefined, seconds: number): Promise<AutocannonResult> {
  const r = await load(url, token, seconds);
  const total = r["1xx"] + r["2xx"] + r["3xx"] + r["4xx"] + r["5xx"];
  if (r.non2xx !== 0 || r.errors !== 0 || r.timeouts !== 0 || r["2xx"] === 0) {
    throw new Error(
      `${which}: ${r.non2xx} non-2xx responses (4xx ${r["4xx"]}, 5xx ${r["5xx"]}), ${r.errors} errors, ${r.timeouts} timeouts ` +
        `of ${total} responses: every read must be a 200`,
    );
  }
  return r;
}

function side(results: readonly AutocannonResult[]): SideResult {
  const rounds = results.map((r) => ({ rps: r["2xx"] / r.duration, p99Ms: r.latency.p99 }));
  const requests = results.reduce((a, r) => a + r["2xx"], 0);
  const seconds = results.reduce((a, r) => a + r.duration, 0);
  return { rps: requests / seconds, p99Ms: rounds.reduce((a, r) => a + r.p99Ms, 0) / rounds.length, rounds, requests };
}

/** The bare baseline: one fastify route doing the read, nothing around it. */
async function bareServer(storage: ServerStorage, masterKey: Buffer): Promise<FastifyInstance> {
  const sealer = new ValueSealer(masterKey, storage.storeId);
  const app = Fastify({ logger: false });
  app.get(PATH, {
    schema: { response: { 200: SECRET_READ_SCHEMA } },
  }, async () => {
    const row = await storage.readCurrent(SECRET);
    if (row === undefined) throw new Error(`no secret ${SECRET}`); // a 500: the run fails
    const value = sealer.open(SECRET, row.version, row);
    try {
      return { name: SECRET, version: row.version, ...jsonValue(value), createdAt: row.createdAt, createdBy: row.createdBy, updatedAt: row.createdAt };
    } finally {
      value.fill(0);
    }
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  return app;
}

/** The goal baseline: one fastify route that checks the bearer token and answers a constant JSON of the read's shape. */
async function tokenServer(token: string, answer: Record<string, unknown>): Promise<FastifyInstance> {
  const expected = Buffer.from(`Bearer ${token}`);
  const app = Fastify({ logger: false });
  app.get(PATH, { schema: { response: { 200: SECRET_READ_SCHEMA } } }, async (req) => {
    const got = Buffer.from(req.headers.authorization ?? "");
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) throw Object.assign(new Error("unauthenticated"), { statusCode: 401 });
    return answer;
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  return app;
}

/** A scratch PostgreSQL database, and how to drop it. */
async function scratchDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin = await postgresUrl();
  const name = `coffer_bench_${randomBytes(6).toString("hex")}`;
  const query = async (sql: string) => {
    const c = new pg.Client({ connectionString: admin, connectionTimeoutMillis: 5_000 });
    c.on("error", () => {});
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end().catch(() => {});
    }
  };
  try {
    await query(`CREATE DATABASE ${name}`);
  } catch (err) {
    throw new Error(`cannot create a scratch database on ${admin.replace(/:[^:@/]*@/, ":***@")} (${(err as Error).message}); set COFFER_TEST_POSTGRES_URL`, { cause: err });
  }
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop: () => query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** Sets up coffer and the baseline on one driver, runs the rounds, tears everything down. */
export async function benchServerDriver(driver: StorageDriverName, seconds: number): Promise<ServerDriverResult> {
  const dir = mkdtempSync(join(tmpdir(), `coffer-bench-server-${driver}-`));
  const dataDir = join(dir, "data");
  let db: { url: string; drop: () => Promise<void> } | undefined;
  let server: RunningServer | undefined;
  let bareStorage: ServerStorage | undefined;
  let bare: FastifyInstance | undefined;
  let constant: FastifyInstance | undefined;
  try {
    if (driver === "postgres") db = await scratchDatabase();
    const yaml = CONFIG_YAML + (db === undefined ? "" : `database: ${JSON.stringify(db.url)}\n`);
    const config = parseServerConfig(yaml, "bench-server.yml", {}, { listen: "127.0.0.1:0" });
    const init = await initServer(dataDir, config);
    // The default logger, as a user gets it (log.level info: no line per request).
    server = await startServer({ dataDir, config });

    const value = randomBytes(VALUE_BYTES / 2).toString("hex"); // 32 bytes of text
    const call = async (method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(`${server!.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { "content-type": "application/json" }) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return JSON.parse(text) as Record<string, unknown>;
    };
    await call("PUT", PATH, init.rootToken, { value });
    const reader = (await call("POST", "/v1/tokens", init.rootToken, { name: "bench-reader", roles: ["reader"] })).token as string;

    const masterKey = readMasterKey(join(dataDir, MASTER_KEY_FILE));
    try {
      bareStorage = db === undefined ? await openSqliteStorage(join(dataDir, SQLITE_FILE)) : await openPostgresStorage(db.url);
      bare = await bareServer(bareStorage, masterKey);
    } finally {
      masterKey.fill(0);
    }
    const bareUrl = `http://127.0.0.1:${(bare.server.address() as { port: number }).port}${PATH}`;
    const cofferUrl = `${server.url}${PATH}`;

    // All three answer the same JSON before anything is timed.
    const viaCoffer = await call("GET", PATH, reader);
    const viaBare = (await (await fetch(bareUrl)).json()) as Record<string, unknown>;
    if (viaCoffer.value !== value || viaBare.value !== value || viaBare.version !== viaCoffer.version) {
      throw new Error(`the reads disagree: coffer ${JSON.stringify(viaCoffer)}, bare ${JSON.stringify(viaBare)}`);
    }
    constant = await tokenServer(reader, viaCoffer);
    const tokenUrl = `http://127.0.0.1:${(constant.server.address() as { port: number }).port}${PATH}`;
    const viaToken = await (await fetch(tokenUrl, { headers: { authorization: `Bearer ${reader}` } })).text();
    if (viaToken !== JSON.stringify(viaCoffer)) throw new Error(`the token baseline answers ${viaToken}, coffer ${JSON.stringify(viaCoffer)}`);

    const sides = {
      token: { url: tokenUrl, token: reader as string | undefined, runs: [] as AutocannonResult[] },
      baseline: { url: bareUrl, token: undefined, runs: [] as AutocannonResult[] },
      coffer: { url: cofferUrl, token: reader, runs: [] as AutocannonResult[] },
    };
    progress(`${driver}: warm-up (${WARMUP_SECONDS} s each side)…`);
    for (const [which, x] of Object.entries(sides)) await round(`${driver} ${which} warm-up`, x.url, x.token, WARMUP_SECONDS);

    // Mirrored order; each round half the timed seconds.
    const half = seconds / 2;
    for (const which of ["token", "baseline", "coffer", "coffer", "baseline", "token"] as const) {
      const x = sides[which];
      const r = await round(`${driver} ${which}`, x.url, x.token, half);
      x.runs.push(r);
      progress(`${driver} ${which}: ${count(r["2xx"] / r.duration)} req/s, p99 ${r.latency.p99} ms (${r["2xx"]} × 200)`);
    }
    const result = { driver, coffer: side(sides.coffer.runs), baseline: side(sides.baseline.runs), token: side(sides.token.runs) };
    const show = (x: SideResult) => `${x.rps.toFixed(0)} req/s p99 ${x.p99Ms.toFixed(1)} ms`;
    progress(
      `${driver}: coffer ${show(result.coffer)}; bare token check ${show(result.token)} (ratio ${(result.coffer.rps / result.token.rps).toFixed(2)}); ` +
        `bare read ${show(result.baseline)} (ratio ${(result.coffer.rps / result.baseline.rps).toFixed(2)})`,
    );
    return result;
  } finally {
    await constant?.close().catch(() => {});
    await bare?.close().catch(() => {});
    await bareStorage?.close().catch(() => {});
    await server?.close().catch(() => {});
    await db?.drop().catch((err: unknown) => progress(`could not drop the scratch database: ${(err as Error).message}`));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Drivers to run: COFFER_BENCH_DRIVERS (comma-separated), default both. */
function drivers(env: NodeJS.ProcessEnv = process.env): StorageDriverName[] {
  const s = env.COFFER_BENCH_DRIVERS;
  if (s === undefined || s === "") return ["sqlite", "postgres"];
  const list = s.split(",").map((x) => x.trim());
  for (const d of list) if (d !== "sqlite" && d !== "postgres") throw new Error(`COFFER_BENCH_DRIVERS: unknown driver ${JSON.stringify(d)}`);
  return list as StorageDriverName[];
}

/**
 * The server benchmark: two rows per driver, coffer against each baseline. The target is on
 * the token-check baseline for SQLite (with the p99 bound) and on the read baseline for
 * PostgreSQL; the other row is reported.
 */
export async function benchServer(options: BenchOptions): Promise<Row[]> {
  const seconds = timedSeconds(options);
  const rows: Row[] = [];
  for (const driver of drivers()) {
    const r = await benchServerDriver(driver, seconds);
    const what = `server GET /v1/secrets/NAME, ${driver === "sqlite" ? "SQLite" : "PostgreSQL"} (autocannon ${CONNECTIONS} conns, 2×${trimSeconds(seconds / 2)} s/side mirrored)`;
    const tokenRatio = r.coffer.rps / r.token.rps;
    const readRatio = r.coffer.rps / r.baseline.rps;
    const sqlite = driver === "sqlite";
    const tokenOk = tokenRatio >= SERVER_TOKEN_RATIO_TARGET && r.coffer.p99Ms < SERVER_P99_TARGET_MS;
    rows.push({
      benchmark: `${what} vs bare fastify, bearer check + constant JSON`,
      coffer: cell(r.coffer),
      baseline: cell(r.token),
      ratio: `${tokenRatio.toFixed(2)}×${sqlite ? ` ${tokenOk ? "✓" : "✗"}` : ""}`,
      target: sqlite ? `≥ ${SERVER_TOKEN_RATIO_TARGET}× req/s (goal 0.5×), p99 < ${SERVER_P99_TARGET_MS} ms` : "(reported)",
    });
    rows.push({
      benchmark: `${what} vs bare fastify, same read`,
      coffer: cell(r.coffer),
      baseline: cell(r.baseline),
      ratio: `${readRatio.toFixed(2)}×${sqlite ? "" : ` ${readRatio >= SERVER_RATIO_TARGET ? "✓" : "✗"}`}`,
      target: sqlite ? "(reported)" : `≥ ${SERVER_RATIO_TARGET}× req/s`,
    });
  }
  return rows;
}

function trimSeconds(s: number): string {
  return Number.isInteger(s) ? String(s) : s.toFixed(1);
}

function cell(s: SideResult): string {
  return `${count(s.rps)} req/s (p99 ${s.p99Ms.toFixed(1)} ms)`;
}

if (import.meta.main) {
  const rows = await benchServer(benchOptions());
  process.stdout.write(markdownTable(rows));
}
