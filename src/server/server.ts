/**
 * The team server's life: `coffer server init` (data dir, master key, database, root token)
 * and `coffer serve` (check the config for production, open the storage, check the master key
 * against it, listen, stop gracefully on SIGTERM/SIGINT).
 *
 * Data dir layout (0700): `master.key` (0600, the key every value is sealed under) and, with
 * the SQLite driver, `coffer.db` (0600). Lose `master.key` and the values are gone: back it up
 * apart from the database.
 */
import { existsSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { pino, type Logger } from "pino";
import { CofferError, problemList } from "../errors.ts";
import { assertPrivate, createPrivateFile, ensurePrivateDir } from "../core/fs-secure.ts";
import { buildServer, type RotationOptions } from "./app.ts";
import { createChangeBus, type ChangeBus } from "./changes.ts";
import { loadTlsOptions, reloadOnSighup } from "./tls.ts";
import { connectLimitRedis } from "./rate-limit-store.ts";
import type { Redis } from "ioredis";
import type { Server as TlsServer } from "node:tls";
import { productionProblems, tempdirRefusal, type ServerConfig } from "./config.ts";
import { keyCheck, keyCheckMatches, newMasterKeyText, readMasterKey, storeNewToken } from "./keys.ts";
import { ROOT_ROLE } from "./policy.ts";
import { createSqliteStorage, openSqliteStorage } from "../storage/sqlite-async.ts";
import type { ServerStorage } from "../storage/types.ts";
import { RunbookCatalog, type CatalogLogLine } from "../runbooks/catalog.ts";
import { resetSandboxProbe, sandboxProblem } from "../runbooks/sandbox.ts";
import { sweepExecutionDirs } from "../runbooks/workdir.ts";

/** The master key file in the data dir. */
export const MASTER_KEY_FILE = "master.key";
/** The SQLite database file in the data dir. */
export const SQLITE_FILE = "coffer.db";
const ROOT_TOKEN = { name: "root", roles: [ROOT_ROLE], expiresAt: null };
/** coffer's version, as the server reports it. */
export const SERVER_VERSION = "0.1.0";

/**
 * Creates the data dir (0700), a random master key (0600), the database and a root token (shown
 * once: only its hash is stored).
 * @throws CofferError E_CONFLICT when the data dir already holds a master key or database
 */
export async function initServer(dataDir: string, config: ServerConfig) {
  ensurePrivateDir(dataDir);
  assertPrivate(dataDir, "server data dir");
  const keyPath = join(dataDir, MASTER_KEY_FILE);
  if (config.database === undefined) await createSqliteStorage(join(dataDir, SQLITE_FILE));
  createPrivateFile(keyPath, newMasterKeyText());
  const masterKey = readMasterKey(keyPath);
  const storage = await openStorage(dataDir, config);
  try {
    const check = await storage.setMetaIfAbsent("key_check", keyCheck(masterKey, storage.storeId));
    if (!keyCheckMatches(check, masterKey, storage.storeId)) {
      throw new CofferError("E_CONFLICT", "the database was already initialised with another master key; use that data dir's master.key");
    }
    const t = await storeNewToken(storage, "server-init", ROOT_TOKEN, { result: "ok", via: "coffer server init" });
    return { dataDir, rootToken: t.token, rootTokenId: t.id, storage: storage.driver };
  } finally {
    masterKey.fill(0);
    await storage.close();
  }
}

/**
 * Makes a new root token and revokes every other unrevoked root token, with both on the audit
 * chain (actor `server-root-token`): the way back when the root token is lost or leaked. Needs
 * the data dir's master key, so only someone on the server's host can do it; it opens the
 * storage directly and does not need the server running. The new token is shown once.
 * @throws CofferError E_NOT_INITIALIZED without a data dir or master key, E_DECRYPT when the
 *   master key is not the database's
 */
export async function replaceRootToken(dataDir: string, config: ServerConfig) {
  assertDataDir(dataDir);
  const keyPath = join(dataDir, MASTER_KEY_FILE);
  const masterKey = readMasterKey(keyPath);
  const storage = await openStorage(dataDir, config);
  try {
    await assertKeyMatches(storage, masterKey, keyPath);
    const actor = "server-root-token";
    const detail = { result: "ok", via: "coffer server root-token" };
    // The new token first: a failure half-way leaves an extra root token, never none.
    const t = await storeNewToken(storage, actor, ROOT_TOKEN, detail);
    const old = (await storage.listTokens()).filter((x) => x.id !== t.id && x.revokedAt === null && x.roles.includes(ROOT_ROLE));
    const revoked: string[] = [];
    for (const o of old) if (await storage.revokeToken(o.id, actor, detail)) revoked.push(o.id);
    return { rootToken: t.token, rootTokenId: t.id, revoked, storage: storage.driver };
  } finally {
    masterKey.fill(0);
    await storage.close();
  }
}

/** @throws CofferError E_DECRYPT when `masterKey` (read from `keyPath`) is not the database's */
async function assertKeyMatches(storage: ServerStorage, masterKey: Uint8Array, keyPath: string): Promise<void> {
  const check = await storage.getMeta("key_check");
  if (check === undefined || !keyCheckMatches(check, masterKey, storage.storeId)) {
    throw new CofferError("E_DECRYPT", `${keyPath} is not the master key of this database; use the master.key made with it`);
  }
}

/**
 * Refuses a data dir that does not exist, is not a directory (saying how to make one) or is not private.
 * @throws CofferError E_NOT_INITIALIZED, PermissionsError E_PERMISSIONS
 */
export function assertDataDir(dataDir: string): void {
  if (!existsSync(dataDir)) {
    throw new CofferError("E_NOT_INITIALIZED", `no data dir at ${dataDir}: run \`coffer server init --data ${dataDir}\` first, or give the right --data`);
  }
  if (!statSync(dataDir).isDirectory()) {
    throw new CofferError("E_NOT_INITIALIZED", `${dataDir} is not a directory: give the server's data dir (made by \`coffer server init --data DIR\`) with --data`);
  }
  assertPrivate(dataDir, "server data dir");
}

/**
 * Opens the configured storage: PostgreSQL when `database:` is set (migrations run at open,
 * under an advisory lock, so instances may start together), else SQLite in the data dir.
 */
export async function openStorage(dataDir: string, config: ServerConfig): Promise<ServerStorage> {
  if (config.database !== undefined) {
    const { openPostgresStorage } = await import("../storage/postgres.ts");
    return openPostgresStorage(config.database);
  }
  return openSqliteStorage(join(dataDir, SQLITE_FILE));
}

/** A running server. */
export interface RunningServer {
  app: FastifyInstance;
  /** e.g. `http://127.0.0.1:8200` */
  url: string;
  /** stops accepting, finishes in-flight requests, closes the storage */
  close(): Promise<void>;
}

/** Options of {@link startServer}. */
export interface StartOptions {
  dataDir: string;
  config: ServerConfig;
  /** a logger; default: JSON lines on stderr at `config.log.level`, redacting credentials */
  logger?: Logger | false;
  /** with tls: re-read the certificate files on SIGHUP (the CLI sets it; one per process) */
  reloadOnSighup?: boolean;
  /** rotation's apply targets (and, in tests, shorter leases and polls) */
  rotation?: RotationOptions;
}

/**
 * Checks the config (refusing production mistakes), opens the storage, checks the master key,
 * and listens.
 * @throws CofferError E_CONFIG naming each production problem, E_DECRYPT for a wrong master key
 */
export async function startServer(options: StartOptions): Promise<RunningServer> {
  const { config, dataDir } = options;
  const problems = config.production ? productionProblems(config) : [];
  if (problems.length > 0) {
    const head = "refusing to start in production";
    throw new CofferError("E_CONFIG", problems.length === 1 ? `${head}: ${problems[0]}` : problemList(head, problems));
  }
  assertDataDir(dataDir);
  const keyPath = join(dataDir, MASTER_KEY_FILE);
  const masterKey = readMasterKey(keyPath);
  const storage = await openStorage(dataDir, config);
  let app: FastifyInstance | undefined;
  let changes: ChangeBus | undefined;
  let redis: Redis | undefined;
  let stopRunbookReload = (): void => {};
  try {
    await assertKeyMatches(storage, masterKey, keyPath);
    const logger = options.logger ?? serverLogger(config.log.level);
    const log = logger === false ? undefined : logger;
    const scope = storage.storeId.toString("hex");
    changes = await createChangeBus(config, { scope, onError: (e) => log?.warn({ err: e.message }, "change bus") });
    const https = config.tls === undefined ? undefined : loadTlsOptions(config.tls);
    if (config.redis !== undefined) {
      const why = "Redis unreachable: rate limits are per instance until it is back";
      redis = await connectLimitRedis(config.redis, (e) => log?.warn({ err: e.message }, why));
    }
    const runbooks = config.runbooks === undefined ? undefined : await loadRunbooks(config, dataDir, log, options.reloadOnSighup === true);
    stopRunbookReload = runbooks?.stopReload ?? stopRunbookReload;
    app = await buildServer({
      config, storage, masterKey, logger, version: SERVER_VERSION, changes,
      ...(https !== undefined && { https }), ...(redis !== undefined && { redis }), ...(runbooks !== undefined && { runbooks }),
      ...(options.rotation !== undefined && { rotation: options.rotation }),
    });
    masterKey.fill(0);
    if (config.devLogin) log?.warn("devLogin is on: POST /dev-login gives tokens without credentials; never use it in production");
    const { host, port } = config.listen;
    await app.listen({ host, port }).catch((err: unknown) => Promise.reject(listenError(err, host, port) ?? err));
    const url = boundUrl(app, config.tls !== undefined);
    const [server, bus] = [app, changes];
    let stopReload = (): void => {};
    if (config.tls !== undefined && options.reloadOnSighup === true) {
      stopReload = reloadOnSighup(app.server as unknown as TlsServer, config.tls, (ok, err) => {
        if (ok) log?.info("TLS certificates reloaded (SIGHUP)");
        else log?.error({ err: err?.message }, "TLS reload failed; the previous certificates stay in use");
      });
    }
    let closing: Promise<void> | undefined;
    return {
      app,
      url,
      close: () => (closing ??= server.close().finally(async () => {
        stopReload();
        stopRunbookReload();
        redis?.disconnect();
        await bus.close();
        await storage.close();
      })),
    };
  } catch (err) {
    masterKey.fill(0);
    stopRunbookReload();
    await app?.close().catch(() => {});
    await changes?.close().catch(() => {});
    redis?.disconnect();
    await storage.close();
    throw err;
  }
}

/**
 * The runbooks of `runbooks.dir`, loaded (each invalid one logged with its problems, each tempdir
 * one with a warning that it runs with the server's privileges), re-read on SIGHUP when
 * `reloadOnSighup`; executions get their directories under a private dir of the system's temp
 * dir, and a sandbox never sees the data dir.
 */
async function loadRunbooks(config: ServerConfig, dataDir: string, log: Logger | undefined, reloadOnSighup: boolean) {
  const rb = config.runbooks!;
  const uid = process.getuid?.() ?? 0;
  if (rb.runAs !== undefined && uid !== 0) {
    throw new CofferError("E_CONFIG", `runbooks.runAs (${rb.runAs.user}) needs the server to run as root, to start scripts as that user; leave runAs out, or run the server as ${rb.runAs.user}`);
  }
  const runAs = rb.runAs === undefined ? undefined : { uid: rb.runAs.uid, gid: rb.runAs.gid };
  let problem = await sandboxProblem(runAs);
  const refuseTempdir = tempdirRefusal(config);
  const catalog = new RunbookCatalog({
    dir: rb.dir,
    sandboxProblem: () => problem,
    ...(refuseTempdir !== undefined && { refuseTempdir }),
    ...(rb.runAs !== undefined && { runAs: rb.runAs.user }),
  });
  const report = (lines: readonly CatalogLogLine[]): void => {
    for (const line of lines) log?.[line.level](line.message);
  };
  report(catalog.load());
  let stopReload = (): void => {};
  if (reloadOnSighup) {
    const onHup = (): void => {
      void (async () => {
        resetSandboxProbe();
        problem = await sandboxProblem(runAs);
        const { reloaded, log: lines } = catalog.reload();
        if (reloaded) log?.info({ runbooks: catalog.list().length }, "runbooks reloaded (SIGHUP)");
        report(lines);
      })();
    };
    process.on("SIGHUP", onHup);
    stopReload = () => void process.off("SIGHUP", onHup);
  }
  // Outside the data dir (a sandbox sees only its own dir); what servers that died left is removed now.
  const baseDir = join(tmpdir(), `coffer-runbooks-${uid}`);
  const swept = await sweepExecutionDirs(baseDir);
  if (swept.length > 0) log?.warn({ removed: swept.length }, "removed the execution dirs a stopped server left behind");
  const hide = [resolve(dataDir), ...[config.file, config.tls?.key, config.tls?.cert].filter((p): p is string => p !== undefined).map((p) => resolve(p))];
  return { catalog, baseDir, hide, stopReload };
}

/** The URL of the address the server is bound to (the port 0 chose, the interface a name resolved to). */
function boundUrl(app: FastifyInstance, https: boolean): string {
  const a = app.server.address() as AddressInfo | null;
  if (a === null || typeof a !== "object") throw new CofferError("E_INTERNAL", "the server is not bound to an address after listening");
  const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
  return `${https ? "https" : "http"}://${host}:${a.port}`;
}

/**
 * The E_LISTEN error for a failed listen on `host:port` (in use, no permission, no such
 * address), saying what to do; undefined for any other failure.
 */
export function listenError(err: unknown, host: string, port: number): CofferError | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const where = `port ${port} on ${host}`;
  if (code === "EADDRINUSE") {
    return new CofferError("E_LISTEN", `${where} is in use: stop the other process or choose another address with --listen HOST:PORT`, { cause: err });
  }
  if (code === "EACCES" || code === "EPERM") {
    const low = port < 1024 ? ": ports below 1024 need privileges (CAP_NET_BIND_SERVICE)" : "";
    const example = `${host.includes(":") ? `[${host}]` : host}:8200`;
    return new CofferError("E_LISTEN", `no permission to listen on ${where}${low}; choose a port from 1024 up with --listen, e.g. --listen ${example}`, { cause: err });
  }
  if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return new CofferError("E_LISTEN", `cannot listen on ${where}: no such address on this machine; choose one of its addresses with --listen HOST:PORT`, { cause: err });
  }
  return undefined;
}

/**
 * JSON log lines on stderr (or `destination`); credentials and values redacted wherever they
 * could appear.
 */
export function serverLogger(level = "info", destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          "req.headers.authorization", "req.headers.cookie", "req.headers[\"x-vault-token\"]",
          "headers.authorization", "authorization", "token", "*.token", "value", "*.value", "valueBase64", "*.valueBase64",
          "body", "req.body", "jwt", "*.jwt", "secret", "*.secret",
        ],
        censor: "[redacted]",
      },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}
