/**
 * The team server's life: `coffer server init` (data dir, master key, database, root token)
 * and `coffer serve` (check the config for production, open the storage, check the master key
 * against it, listen, stop gracefully on SIGTERM/SIGINT).
 *
 * Data dir layout (0700): `master.key` (0600, the key every value is sealed under) and, with
 * the SQLite driver, `coffer.db` (0600). Lose `master.key` and the values are gone: back it up
 * apart from the database.
 */
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { pino, type Logger } from "pino";
import { CofferError, problemList } from "../errors.ts";
import { assertPrivate, createPrivateFile, ensurePrivateDir } from "../store/fs-secure.ts";
import { buildServer } from "./app.ts";
import { createChangeBus, type ChangeBus } from "./changes.ts";
import { loadTlsOptions, reloadOnSighup } from "./tls.ts";
import { connectLimitRedis } from "./rate-limit-store.ts";
import type { Redis } from "ioredis";
import type { Server as TlsServer } from "node:tls";
import { productionProblems, type ServerConfig } from "./config.ts";
import { keyCheck, keyCheckMatches, newMasterKeyText, newToken, readMasterKey } from "./keys.ts";
import { ROOT_ROLE } from "./policy.ts";
import { createSqliteStorage, openSqliteStorage } from "./storage/sqlite.ts";
import type { ServerStorage } from "./storage/storage.ts";

/** The master key file in the data dir. */
export const MASTER_KEY_FILE = "master.key";
/** The SQLite database file in the data dir. */
export const SQLITE_FILE = "coffer.db";
/** coffer's version, as the server reports it. */
export const SERVER_VERSION = "0.1.0";

/** What `coffer server init` made. */
export interface InitResult {
  dataDir: string;
  /** the root token, shown once; only its hash is stored */
  rootToken: string;
  rootTokenId: string;
  storage: ServerStorage["driver"];
}

/**
 * Creates the data dir (0700), a random master key (0600), the database and a root token.
 * @throws CofferError E_CONFLICT when the data dir already holds a master key or database
 */
export async function initServer(dataDir: string, config: ServerConfig): Promise<InitResult> {
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
    const t = newToken();
    const now = new Date().toISOString();
    await storage.createToken(
      { id: t.id, name: "root", hash: t.hash, roles: [ROOT_ROLE], createdAt: now, createdBy: "server-init", expiresAt: null, revokedAt: null },
      "server-init",
      { result: "ok", via: "coffer server init" },
    );
    return { dataDir, rootToken: t.token, rootTokenId: t.id, storage: storage.driver };
  } finally {
    masterKey.fill(0);
    await storage.close();
  }
}

/**
 * Opens the configured storage: PostgreSQL when `database:` is set (migrations run at open,
 * under an advisory lock, so instances may start together), else SQLite in the data dir.
 */
export async function openStorage(dataDir: string, config: ServerConfig): Promise<ServerStorage> {
  if (config.database !== undefined) {
    const { openPostgresStorage } = await import("./storage/postgres.ts");
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
  /** a logger; default: JSON lines on stderr, redacting credentials */
  logger?: Logger | false;
  /** with tls: re-read the certificate files on SIGHUP (the CLI sets it; one per process) */
  reloadOnSighup?: boolean;
}

/**
 * Checks the config (refusing production mistakes), opens the storage, checks the master key,
 * and listens.
 * @throws CofferError E_CONFIG naming each production problem, E_DECRYPT for a wrong master key
 */
export async function startServer(options: StartOptions): Promise<RunningServer> {
  const { config, dataDir } = options;
  if (config.production) {
    const problems = productionProblems(config);
    if (problems.length > 0) {
      throw new CofferError("E_CONFIG", problems.length === 1 ? `refusing to start in production: ${problems[0]}` : problemList("refusing to start in production", problems));
    }
  }
  assertPrivate(dataDir, "server data dir");
  const masterKey = readMasterKey(join(dataDir, MASTER_KEY_FILE));
  const storage = await openStorage(dataDir, config);
  let app: FastifyInstance | undefined;
  let changes: ChangeBus | undefined;
  let redis: Redis | undefined;
  try {
    const check = await storage.getMeta("key_check");
    if (check === undefined || !keyCheckMatches(check, masterKey, storage.storeId)) {
      throw new CofferError("E_DECRYPT", `${join(dataDir, MASTER_KEY_FILE)} is not the master key of this database; use the master.key made with it`);
    }
    const logger = options.logger ?? serverLogger();
    changes = await createChangeBus(config, {
      scope: storage.storeId.toString("hex"),
      onError: (e) => {
        if (logger !== false) logger.warn({ err: e.message }, "change bus");
      },
    });
    const https = config.tls === undefined ? undefined : loadTlsOptions(config.tls);
    if (config.redis !== undefined) {
      redis = await connectLimitRedis(config.redis, (e) => {
        if (logger !== false) logger.warn({ err: e.message }, "Redis unreachable: rate limits are per instance until it is back");
      });
    }
    app = await buildServer({ config, storage, masterKey, logger, version: SERVER_VERSION, changes, ...(https !== undefined && { https }), ...(redis !== undefined && { redis }) });
    masterKey.fill(0);
    if (config.devLogin && logger !== false) logger.warn("devLogin is on: POST /dev-login gives tokens without credentials; never use it in production");
    const address = await app.listen({ host: config.listen.host, port: config.listen.port });
    const server = app;
    const bus = changes;
    let stopReload = (): void => {};
    if (config.tls !== undefined && options.reloadOnSighup === true) {
      stopReload = reloadOnSighup(app.server as unknown as TlsServer, config.tls, (ok, err) => {
        if (logger === false) return;
        if (ok) logger.info("TLS certificates reloaded (SIGHUP)");
        else logger.error({ err: err?.message }, "TLS reload failed; the previous certificates stay in use");
      });
    }
    let closing: Promise<void> | undefined;
    return {
      app,
      url: address,
      close: () => (closing ??= server.close().finally(async () => {
        stopReload();
        redis?.disconnect();
        await bus.close();
        await storage.close();
      })),
    };
  } catch (err) {
    masterKey.fill(0);
    await app?.close().catch(() => {});
    await changes?.close().catch(() => {});
    redis?.disconnect();
    await storage.close();
    throw err;
  }
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
