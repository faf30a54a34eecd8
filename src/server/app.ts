/**
 * The team server's HTTP API (fastify 5), assembled: the server's parts and request context
 * (context.ts: authentication, policies, the fail-closed audit), error answers, rate limits per IP
 * and per subject, OpenAPI docs, metrics hooks and the route modules of routes/.
 *
 * Request path, in order: request id and timer → per-IP limit → (API routes) authentication →
 * per-subject limit → schema validation → policy → storage → audit → answer. Errors of every
 * kind become `{ error: { code, message }, requestId }` with the status of the code's row in
 * ERROR_CODES; a 403 says only what was refused, never whether the secret exists.
 */
import { randomBytes, randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import rateLimit, { normalizeIP } from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { Logger } from "pino";
import type { Redis } from "ioredis";
import { CofferError, ERROR_CODES, type ErrorCode } from "../errors.ts";
import { AuditWriter } from "./audit-writer.ts";
import { AuditVerifier, type AuditVerifierOptions } from "./audit-verify.ts";
import { Authenticator } from "./auth.ts";
import { createMemoryBus, type ChangeBus } from "./changes.ts";
import type { ServerConfig } from "./config.ts";
import { authenticate, registerRequestContext, type ServerParts } from "./context.ts";
import { createJwtVerifier } from "./jwt.ts";
import { ValueSealer } from "./keys.ts";
import { ServerMetrics } from "./metrics.ts";
import { ServerRoles } from "./roles.ts";
import { roleRoutes } from "./routes/roles.ts";
import { clientAddress, trustProxyOption } from "./proxy.ts";
import { consoleRoutes, loadConsoleFiles, type ConsoleFile } from "./console.ts";
import { docsLogo } from "./docs-static.ts";
import { limitStoreClass } from "./rate-limit-store.ts";
import { auditRoutes } from "./routes/audit.ts";
import { secretRoutes } from "./routes/secrets.ts";
import { systemRoutes } from "./routes/system.ts";
import { devLoginRoute, selfRoute, tokenRoutes } from "./routes/tokens.ts";
import { watchRoutes } from "./routes/watch.ts";
import { ProblemsError, runbookRoutes } from "./routes/runbooks.ts";
import type { RunbookCatalog } from "../runbooks/catalog.ts";
import { ExecutionManager } from "../runbooks/executions.ts";
import type { ServerStorage } from "../storage/types.ts";
import type { TlsServerOptions } from "./tls.ts";
import { rotationRoutes } from "./routes/rotation.ts";
import { RotationEngine } from "../rotation/engine.ts";
import type { TargetFactory } from "../rotation/apply.ts";
import { RotationScheduler } from "../rotation/scheduler.ts";
import { targetFactory } from "../rotation/targets.ts";
import { listMethodHandler } from "./vault/list-method.ts";
import { vaultApi } from "./vault/routes.ts";

/** What {@link buildServer} needs. */
export interface ServerDeps {
  config: ServerConfig;
  storage: ServerStorage;
  /** the 32-byte master key (DATA/master.key) */
  masterKey: Uint8Array;
  /** a pino logger (redacting), or false for none */
  logger: Logger | false;
  /** coffer's version, for health and the docs */
  version: string;
  /** where change events go (default: in memory, for one instance) */
  changes?: ChangeBus;
  /** serve HTTPS with these options (see tls.ts); mutual TLS when they request client certificates */
  https?: TlsServerOptions;
  /** shares rate-limit counters with the other instances (see rate-limit-store.ts) */
  redis?: Redis;
  /** the web console's files (default: read from dist/ui/ at start; see console.ts) */
  consoleFiles?: Map<string, ConsoleFile>;
  /** page size and a per-page hook of `GET /v1/audit/verify` (tests) */
  auditVerify?: AuditVerifierOptions;
  /** with `runbooks:` configured: the loaded runbooks, where executions get their directories, what a sandbox must not see */
  runbooks?: { catalog: RunbookCatalog; baseDir: string; hide: string[] };
  /** rotation (docs/design.md §12): the apply targets, and in tests shorter leases and polls */
  rotation?: RotationOptions;
}

/** How rotation runs on this instance. */
export interface RotationOptions {
  /** makes the target of a policy's `apply`; absent: only policies without apply rotate */
  targets?: TargetFactory;
  /** the rotation lease (default 60 s) */
  leaseMs?: number;
  /** the scheduler's longest sleep (default 5 s) */
  pollMs?: number;
}

/**
 * The per-IP limit counts an IPv6 client by this prefix: one host usually holds a whole /64, and
 * would otherwise get a fresh limit for each of its 2^64 addresses.
 */
const IPV6_LIMIT_PREFIX = 64;
/** The `log.level`s at which fastify logs each request and its answer. */
const REQUEST_LOG_LEVELS: ReadonlySet<string> = new Set(["debug", "trace"]);

/**
 * Builds the fastify app (not listening). The caller owns `storage` and closes it after
 * `app.close()`.
 */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const { config, storage } = deps;
  const metrics = new ServerMetrics();
  const changes = deps.changes ?? createMemoryBus();
  const limits = limitStoreClass(deps.redis, storage.storeId.toString("hex"), () => metrics.rateLimitFallbacks.inc());
  const jwt = config.jwt === undefined ? undefined : await createJwtVerifier(config.jwt);
  const roles = await ServerRoles.open(config, storage, { changes, ...(deps.logger !== false && { log: deps.logger }) });
  const parts: ServerParts = {
    config,
    storage,
    metrics,
    changes,
    // read per request: a change of roles swaps in a new policy (compiled once per change)
    get policy() {
      return roles.policy;
    },
    roles,
    sealer: new ValueSealer(deps.masterKey, storage.storeId),
    auth: new Authenticator(storage, jwt, changes),
    verifier: new AuditVerifier(storage, deps.masterKey, deps.auditVerify),
    audit: new AuditWriter(storage, (n, failed) => metrics.auditRecords.inc({ outcome: failed ? "failed" : "written" }, n)),
    limitMode: limits.mode,
    mutualTls: deps.https?.requestCert === true,
    version: deps.version,
  };
  const sealer = parts.sealer;
  const executions = deps.runbooks === undefined || config.runbooks === undefined ? undefined : new ExecutionManager({
    storage,
    readSecret: async (name) => {
      const row = await storage.readCurrent(name);
      return row === undefined ? undefined : sealer.open(name, row.version, row);
    },
    baseDir: deps.runbooks.baseDir,
    hide: deps.runbooks.hide,
    ...(config.runbooks.runAs !== undefined && { runAs: config.runbooks.runAs }),
    observe: metrics.executionObserver(),
    ...(deps.logger !== false && { log: deps.logger }),
  });

  const rotationEngine = new RotationEngine({
    storage,
    sealer,
    targets: deps.rotation?.targets ?? targetFactory(executions === undefined || deps.runbooks === undefined ? {} : { runbooks: { catalog: deps.runbooks.catalog, executions } }),
    ...(deps.rotation?.leaseMs !== undefined && { leaseMs: deps.rotation.leaseMs }),
    instanceId: randomBytes(8).toString("hex"),
    publish: (name, version, at) => void changes.publish({ name, version, action: "write", at }),
    observe: { rotated: () => metrics.rotations.inc(), failed: (_name, state) => metrics.rotationFailures.inc({ state }) },
    ...(deps.logger !== false && { log: deps.logger }),
  });
  let overdue = 0;
  metrics.overdueRotations = () => overdue;
  const rotationScheduler = new RotationScheduler({
    engine: rotationEngine,
    list: () => storage.listRotations(),
    ...(deps.rotation?.pollMs !== undefined && { pollMs: deps.rotation.pollMs }),
    overdue: (n) => (overdue = n),
    ...(deps.logger !== false && { log: deps.logger }),
  });
  parts.rotation = { engine: rotationEngine, scheduler: rotationScheduler, overdue: () => overdue > 0 };

  const app = Fastify({
    ...(deps.https !== undefined && { https: deps.https }),
    ...(deps.logger === false ? { logger: false } : { loggerInstance: withRequestSerializer(deps.logger) as FastifyBaseLogger }),
    // Two lines a request cost a sixth of the throughput; the audit chain records every request.
    logController: new LogController({ disableRequestLogging: !REQUEST_LOG_LEVELS.has(config.log.level) }),
    bodyLimit: config.limits.bodyBytes,
    trustProxy: trustProxyOption(config),
    genReqId: () => randomUUID(),
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true,
    requestTimeout: 30_000, // a client that trickles its request in is cut off
    forceCloseConnections: "idle",
    // No coercion: a JSON number is not a value; query numbers are checked as digit strings.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  if (config.vault !== undefined) {
    // Vault clients list with the method LIST, which Node's parser refuses: this handler (in place
    // of fastify's, which it falls back to) serves it (vault/list-method.ts).
    const server = app.server;
    server.removeAllListeners("clientError");
    server.on("clientError", listMethodHandler(() => server));
  }
  registerRequestContext(app, parts);
  app.removeContentTypeParser("text/plain"); // bodies are JSON only: anything else is 415

  // Before any plugin: an encapsulated plugin (the docs) keeps the error handler that was set
  // when it was registered, and fastify's default one answers a 429 thrown by our hook as a 500.
  app.setErrorHandler(async (err: unknown, req, reply) => {
    const { status, code, message, problems } = describeError(err);
    if (status >= 500) req.log.error({ err: safeErr(err), code }, "request failed");
    return reply.status(status).send({ error: { code, message, ...(problems !== undefined && { problems }) }, requestId: req.id });
  });

  metrics.watch(() => ({ limitMode: limits.mode(), changesHealthy: changes.healthy() }));
  await app.register(rateLimit, { global: false, store: limits.Store });
  // Without a trusted proxy a connection's client never changes: its limit key is worked out once.
  const proxied = trustProxyOption(config) !== false;
  const ipKeys = new WeakMap<object, string>();
  const ipKey = (req: FastifyRequest): string => {
    const socket: object | undefined = req.raw.socket;
    if (proxied || socket === undefined || socket === null) return `ip:${limitAddress(req)}`;
    let key = ipKeys.get(socket);
    if (key === undefined) ipKeys.set(socket, (key = `ip:${limitAddress(req)}`));
    return key;
  };
  const ipLimit = app.createRateLimit({
    max: config.rateLimit.ipRequests,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: ipKey,
  });
  const runLimit = config.runbooks === undefined ? undefined : app.createRateLimit({
    max: config.runbooks.rateLimit.executions,
    timeWindow: config.runbooks.rateLimit.windowMs,
    keyGenerator: (req) => `run:${runPrincipals.get(req) ?? req.principal?.subject ?? limitAddress(req)}`,
  });
  const runPrincipals = new WeakMap<FastifyRequest, string>();
  if (executions !== undefined && deps.runbooks !== undefined && runLimit !== undefined) {
    metrics.runningExecutions = () => executions.running;
    parts.runbooks = {
      catalog: deps.runbooks.catalog,
      executions,
      limit: async (req, reply, principal) => {
        runPrincipals.set(req, principal);
        await checkLimit(runLimit, "runbook", req, reply);
      },
    };
  }
  const subjectLimit = app.createRateLimit({
    max: config.rateLimit.requests,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: (req) => `subject:${req.principal?.subject ?? limitAddress(req)}`,
  });
  /** Lets a request within the limit go on; else a 429 with Retry-After. */
  const checkLimit = async (limiter: typeof ipLimit, scope: "ip" | "subject" | "runbook", req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const limit = await limiter(req);
    if (limit.isAllowed || !limit.isExceeded) return;
    metrics.rateLimited.inc({ scope });
    const seconds = Math.max(1, limit.ttlInSeconds);
    reply.header("retry-after", String(seconds));
    throw new CofferError("E_RATE_LIMITED", `too many requests; retry in ${seconds} s`);
  };

  await app.register(swagger, {
    openapi: {
      info: {
        title: "coffer team server",
        version: deps.version,
        description:
          "Secrets by name, under deny-by-default path policies. Authenticate with `Authorization: Bearer <token>`: a `cof_` API token or a JWT from the configured issuer.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs", ...docsLogo() });

  // ---- every request: per-IP limit, headers, metrics ----------------------------------------
  app.addHook("onRequest", (req, reply) => checkLimit(ipLimit, "ip", req, reply));
  // Callback hooks, not async ones: no promise per request for work that never waits.
  app.addHook("onSend", (_req, reply, payload, done) => {
    // Answers may hold secrets: no cache keeps them, no browser sniffs them.
    reply.header("cache-control", "no-store");
    reply.header("x-content-type-options", "nosniff");
    reply.header("referrer-policy", "no-referrer");
    done(null, payload);
  });
  app.addHook("onResponse", (req, reply, done) => {
    const route = req.routeOptions.url ?? "unmatched";
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    done();
  });
  app.setNotFoundHandler(async (req, reply) =>
    reply.status(404).send({ error: { code: "E_NOT_FOUND", message: `no endpoint ${req.method} ${req.url.split("?")[0]}; see /docs` }, requestId: req.id }),
  );

  systemRoutes(app, parts);
  consoleRoutes(app, config.ui.enabled ? (deps.consoleFiles ?? loadConsoleFiles()) : undefined, config.ui.enabled);
  // ---- the API: authenticated, limited per subject ------------------------------------------
  await app.register(async (api) => {
    api.addHook("onRequest", async (req, reply) => {
      if (req.routeOptions.config.auth === false) return;
      req.principal = await authenticate(parts, req);
      await checkLimit(subjectLimit, "subject", req, reply);
    });
    // An API answer is data, never a page: a browser that is sent to one renders nothing active.
    api.addHook("onSend", (_req, reply, payload, done) => {
      reply.header("content-security-policy", "default-src 'none'; frame-ancestors 'none'");
      done(null, payload);
    });
    // In this order, the docs list them as they always have.
    selfRoute(api);
    secretRoutes(api, parts);
    watchRoutes(api, parts);
    tokenRoutes(api, parts);
    roleRoutes(api, parts);
    auditRoutes(api, parts);
    devLoginRoute(api, parts);
    runbookRoutes(api, parts);
    rotationRoutes(api, parts);
  });
  // The Vault KV v2-compatible API (docs/design.md §13), with its own token header and error shape.
  await vaultApi(app, parts, { limit: (req, reply) => checkLimit(subjectLimit, "subject", req, reply) });
  await executions?.start();
  rotationScheduler.start();

  app.addHook("onClose", async () => {
    // Running scripts are stopped (their groups killed) and recorded `interrupted` before the storage closes.
    await executions?.close();
    rotationEngine.close();
    await rotationScheduler.close();
    parts.auth.close();
    roles.close();
    await parts.audit.drain();
  });
  return app;
}

/**
 * The logger with fastify's request serializer replaced by one that drops the query string: a
 * client may put a token there (`?token=cof_…`), and a URL is logged for every request.
 */
function withRequestSerializer(logger: Logger): Logger {
  return logger.child({}, {
    serializers: {
      req: (req: FastifyRequest) => ({
        method: req.method,
        url: redactQuery(req.url),
        host: req.host,
        remoteAddress: clientAddress(req),
        remotePort: req.socket?.remotePort,
      }),
    },
  });
}

/**
 * The client's address as the rate limits count it: the plugin's own grouping, an IPv4 address
 * (or an IPv4-mapped IPv6 one) as it is, an IPv6 address by its /64 prefix.
 */
function limitAddress(req: FastifyRequest): string {
  return normalizeIP(clientAddress(req), IPV6_LIMIT_PREFIX);
}

/** `/path?a=b` → `/path?[redacted]`; a URL without a query string is kept as it is. */
function redactQuery(url: string | undefined): string | undefined {
  if (typeof url !== "string") return url;
  const q = url.indexOf("?");
  return q === -1 ? url : `${url.slice(0, q)}?[redacted]`;
}

/** The status, code and message a client sees for any error; nothing else leaks. */
function describeError(err: unknown): { status: number; code: ErrorCode; message: string; problems?: string[] } {
  if (err instanceof CofferError) {
    const problems = err instanceof ProblemsError ? { problems: [...err.problems] } : {};
    return { status: ERROR_CODES[err.code].http, code: err.code, message: err.message, ...problems };
  }
  const e = err as { code?: string; statusCode?: number; validation?: unknown; validationContext?: string; message?: string };
  if (e.validation !== undefined) {
    return { status: 400, code: "E_INVALID_VALUE", message: `invalid request: ${e.message ?? "does not match the schema"}` };
  }
  switch (e.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return { status: 413, code: "E_TOO_LARGE", message: "the request body is larger than the server's limit (limits.bodyBytes)" };
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return { status: 415, code: "E_USAGE", message: "send the body as application/json" };
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return { status: 400, code: "E_USAGE", message: "the JSON body is empty" };
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return { status: 400, code: "E_USAGE", message: "the Content-Length does not match the body" };
  }
  if (err instanceof SyntaxError || e.statusCode === 400) {
    return { status: 400, code: "E_USAGE", message: "the body is not valid JSON" };
  }
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: e.statusCode, code: "E_USAGE", message: "the request is not acceptable" };
  }
  return { status: 500, code: "E_INTERNAL", message: "the server failed unexpectedly; the request id is in its log" };
}

/** What of an unexpected error may be logged: its class, code and message (ours never hold values). */
function safeErr(err: unknown): Record<string, unknown> {
  const e = err as { name?: string; code?: unknown; message?: string; stack?: string; cause?: { message?: string; code?: unknown } };
  return { type: e.name, code: e.code, message: e.message, stack: e.stack, cause: e.cause === undefined ? undefined : { message: e.cause.message, code: e.cause.code } };
}
