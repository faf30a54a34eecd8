/**
 * The team server's HTTP API (fastify 5): authentication, deny-by-default path policies,
 * rate limits per IP and per subject, input validation, a fail-closed audit of every request
 * that touches a secret or a token, Prometheus metrics and OpenAPI docs.
 *
 * Request path, in order: request id and timer → per-IP limit → (API routes) authentication →
 * per-subject limit → schema validation → policy → storage → audit → answer. Errors of every
 * kind become `{ error: { code, message }, requestId }` with the status of the code's row in
 * ERROR_CODES; a 403 says only what was refused, never whether the secret exists.
 */
import { randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import rateLimit, { normalizeIP } from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { Logger } from "pino";
import type { Redis } from "ioredis";
import { CofferError, ERROR_CODES, isCofferError, type ErrorCode } from "../errors.ts";
import { assertSecretName, isSecretName } from "../core/names.ts";
import { jsonValue } from "../core/secret.ts";
import { checkDuration, DURATION_GRAMMAR, DURATION_RULE } from "../core/durations.ts";
import type { AuditRecord } from "../core/audit.ts";
import { AuditWriter } from "./audit-writer.ts";
import { createMemoryBus, type ChangeBus, type ChangeEvent } from "./changes.ts";
import { AuthError, Authenticator, type Principal } from "./auth.ts";
import type { Capability, ServerConfig } from "./config.ts";
import { createJwtVerifier } from "./jwt.ts";
import { newToken, ValueSealer } from "./keys.ts";
import { ServerMetrics } from "./metrics.ts";
import { Policy, ROOT_ROLE } from "./policy.ts";
import type { AuditInput, ServerStorage } from "../storage/types.ts";
import { certificatePrincipal, clientCertificate, type TlsServerOptions } from "./tls.ts";
import { registerWatchRoute } from "./watch.ts";
import { limitStoreClass } from "./rate-limit-store.ts";
import { clientAddress, trustProxyOption } from "./proxy.ts";
import { AuditVerifier, type AuditVerifierOptions } from "./audit-verify.ts";

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
  /** page size and a per-page hook of `GET /v1/audit/verify` (tests) */
  auditVerify?: AuditVerifierOptions;
}

/** The longest an API token may live, and the default when `ttl` is absent: none (no expiry) for tokens, 1 h for dev-login. */
const DEV_LOGIN_TTL_S = 3600;
/** The longest `ttl` of `POST /v1/tokens`: 100 years (a later date is not a date JSON can carry well). */
const MAX_TOKEN_TTL_S = 100 * 366 * 86_400;
const TOKEN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$/;
const ROLE_NAME_RE = /^[a-z][a-z0-9_-]*$/;
const SECRETS_PREFIX = "/v1/secrets/";
const VERSIONS_SUFFIX = "/versions";
/**
 * The per-IP limit counts an IPv6 client by this prefix: one host usually holds a whole /64, and
 * would otherwise get a fresh limit for each of its 2^64 addresses.
 */
const IPV6_LIMIT_PREFIX = 64;
/** The `log.level`s at which fastify logs each request and its answer. */
const REQUEST_LOG_LEVELS: ReadonlySet<string> = new Set(["debug", "trace"]);

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** false: the route needs no credentials */
    auth?: boolean;
  }
}

/** An error with the status and code the client sees. */
function fail(code: ErrorCode, message: string): CofferError {
  return new CofferError(code, message);
}

/**
 * Builds the fastify app (not listening). The caller owns `storage` and closes it after
 * `app.close()`.
 */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const { config, storage } = deps;
  const metrics = new ServerMetrics();
  const policy = new Policy(config.roles);
  const sealer = new ValueSealer(deps.masterKey, storage.storeId);
  const jwt = config.jwt === undefined ? undefined : await createJwtVerifier(config.jwt);
  const auth = new Authenticator(storage, jwt);
  const changes = deps.changes ?? createMemoryBus();
  const publish = (action: ChangeEvent["action"], name: string, version: number | null): void => {
    void changes.publish({ name, version, action, at: new Date().toISOString() });
  };
  const verifier = new AuditVerifier(storage, deps.masterKey, deps.auditVerify);
  const audit = new AuditWriter(storage, (n, failed) => metrics.auditRecords.inc({ outcome: failed ? "failed" : "written" }, n));

  const mutualTls = deps.https?.requestCert === true;
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
  app.decorateRequest("principal", null);
  app.removeContentTypeParser("text/plain"); // bodies are JSON only: anything else is 415

  // Before any plugin: an encapsulated plugin (the docs) keeps the error handler that was set
  // when it was registered, and fastify's default one answers a 429 thrown by our hook as a 500.
  app.setErrorHandler(async (err: unknown, req, reply) => {
    const { status, code, message } = describeError(err);
    if (status >= 500) req.log.error({ err: safeErr(err), code }, "request failed");
    return reply.status(status).send({ error: { code, message }, requestId: req.id });
  });

  const limits = limitStoreClass(deps.redis, storage.storeId.toString("hex"), () => metrics.rateLimitFallbacks.inc());
  metrics.watch(() => ({ limitMode: limits.state.mode(), changesHealthy: changes.healthy() }));
  await app.register(rateLimit, { global: false, store: limits.Store });
  const ipLimit = app.createRateLimit({
    max: config.rateLimit.ipRequests,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: (req) => `ip:${limitAddress(req)}`,
  });
  const subjectLimit = app.createRateLimit({
    max: config.rateLimit.requests,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: (req) => `subject:${req.principal?.subject ?? limitAddress(req)}`,
  });

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
  await app.register(swaggerUi, { routePrefix: "/docs" });

  // ---- every request: timing, per-IP limit, metrics, errors -------------------------------
  app.addHook("onRequest", async (req, reply) => {
    const limit = await ipLimit(req);
    if (!limit.isAllowed && limit.isExceeded) {
      metrics.rateLimited.inc({ scope: "ip" });
      throw tooMany(reply, limit.ttlInSeconds);
    }
  });
  app.addHook("onSend", async (_req, reply) => {
    // Answers may hold secrets: no cache keeps them, no browser sniffs them.
    reply.header("cache-control", "no-store");
    reply.header("x-content-type-options", "nosniff");
  });
  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  app.setNotFoundHandler(async (req, reply) =>
    reply.status(404).send({ error: { code: "E_NOT_FOUND", message: `no endpoint ${req.method} ${req.url.split("?")[0]}; see /docs` }, requestId: req.id }),
  );

  // ---- public endpoints -------------------------------------------------------------------
  app.get("/v1/sys/health", {
    config: { auth: false },
    schema: {
      summary: "Liveness and readiness (no credentials needed)",
      security: [],
      response: {
        200: {
          type: "object",
          properties: { status: { type: "string" }, storage: { type: "string" }, rateLimit: { type: "string" }, changes: { type: "string" }, version: { type: "string" } },
        },
      },
    },
  }, async () => {
    await storage.getMeta("format");
    const limitMode = limits.state.mode();
    const changesHealthy = changes.healthy();
    return {
      // Serving either way; "degraded" says what is missing (limits per instance, no push).
      status: limitMode === "local-redis-down" || !changesHealthy ? "degraded" : "ok",
      storage: storage.driver,
      rateLimit: limitMode === "redis" ? "shared (redis)" : limitMode === "local" ? "per instance" : "per instance: redis unreachable",
      changes: `${changes.kind}${changesHealthy ? "" : " (down: watchers poll)"}`,
      version: deps.version,
    };
  });

  app.get("/metrics", {
    config: { auth: false },
    schema: { summary: "Prometheus metrics (needs read on sys:metrics unless metrics.public is set)", hide: false },
  }, async (req, reply) => {
    if (!config.metrics.public) {
      const principal = await authenticate(req);
      if (!policy.allows(principal.roles, "read", "sys:metrics")) {
        metrics.denials.inc({ action: "metrics.read" });
        throw fail("E_DENIED", "you may not read the metrics (needs read on sys:metrics)");
      }
    }
    const { contentType, body } = await metrics.render();
    return reply.type(contentType).send(body);
  });

  // ---- the API: authenticated, limited per subject ----------------------------------------
  await app.register(async (api) => {
    api.addHook("onRequest", async (req, reply) => {
      if (req.routeOptions.config.auth === false) return;
      req.principal = await authenticate(req);
      const limit = await subjectLimit(req);
      if (!limit.isAllowed && limit.isExceeded) {
        metrics.rateLimited.inc({ scope: "subject" });
        throw tooMany(reply, limit.ttlInSeconds);
      }
    });

    api.get("/v1/auth/self", {
      schema: {
        summary: "Who the credential authenticates as",
        response: { 200: { type: "object", properties: { subject: { type: "string" }, kind: { type: "string" }, roles: { type: "array", items: { type: "string" } }, expiresAt: { type: ["string", "null"] } } } },
      },
    }, async (req) => {
      const p = principalOf(req);
      return { subject: p.subject, kind: p.kind, roles: p.roles, expiresAt: p.expiresAt?.toISOString() ?? null };
    });

    // -- secrets --
    api.get("/v1/secrets", {
      schema: {
        summary: "List the secrets you may list (names and metadata, never values)",
        querystring: { type: "object", additionalProperties: false, properties: { prefix: { type: "string", maxLength: 256 } } },
        response: { 200: { type: "object", properties: { secrets: { type: "array", items: secretInfoSchema } } } },
      },
    }, async (req) => {
      const p = principalOf(req);
      const prefix = (req.query as { prefix?: string }).prefix ?? "";
      const all = policy.mayList(p.roles, prefix) ? await storage.list(prefix) : [];
      const secrets = all.filter((s) => policy.allows(p.roles, "list", s.name));
      await record(req, { action: "secret.list", name: null, version: null, detail: { prefix, count: secrets.length } }, "ok");
      return { secrets: secrets.map((s) => ({ name: s.name, version: s.version, description: s.description, updatedAt: s.updatedAt, updatedBy: s.updatedBy })) };
    });

    api.get("/v1/secrets/*", {
      schema: {
        summary: "Read a secret (or, with a trailing /versions, list its versions)",
        querystring: { type: "object", additionalProperties: false, properties: { version: POSITIVE_INT } },
        response: { 200: SECRET_READ_SCHEMA },
      },
    }, async (req) => {
      const p = principalOf(req);
      const { name, versions } = secretPath(req, true);
      if (versions) {
        await authorize(req, p, "list", name, "secret.versions");
        const list = await storage.versions(name);
        if (list === undefined) {
          await record(req, { action: "secret.versions", name, version: null, detail: null }, "not_found");
          throw fail("E_NOT_FOUND", `no secret "${name}"`);
        }
        await record(req, { action: "secret.versions", name, version: null, detail: null }, "ok");
        return { name, versions: list };
      }
      await authorize(req, p, "read", name, "secret.read");
      const q = (req.query as { version?: string }).version;
      const wanted = q === undefined ? undefined : Number(q);
      const row = wanted === undefined ? await storage.readCurrent(name) : await storage.readVersion(name, wanted);
      if (row === undefined) {
        await record(req, { action: "secret.read", name, version: wanted ?? null, detail: null }, "not_found");
        throw fail("E_NOT_FOUND", wanted === undefined ? `no secret "${name}"` : `secret "${name}" has no version ${wanted}`);
      }
      const value = sealer.open(name, row.version, row);
      try {
        // Fail closed: the value leaves only once the read is on the record.
        await record(req, { action: "secret.read", name, version: row.version, detail: null }, "ok");
        return {
          name, version: row.version, ...jsonValue(value),
          createdAt: row.createdAt, createdBy: row.createdBy, updatedAt: row.createdAt,
        };
      } finally {
        value.fill(0);
      }
    });

    api.put("/v1/secrets/*", {
      schema: {
        summary: "Write a new version of a secret",
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            value: { type: "string" },
            valueBase64: { type: "string", pattern: "^[A-Za-z0-9+/]*={0,2}$" },
            description: { type: "string", maxLength: 1024 },
            ifVersion: { type: "integer", minimum: 0 },
          },
        },
        response: { 200: writeResultSchema },
      },
    }, async (req) => {
      const p = principalOf(req);
      const { name } = secretPath(req, false);
      await authorize(req, p, "write", name, "secret.write");
      const body = req.body as { value?: string; valueBase64?: string; description?: string; ifVersion?: number };
      if ((body.value === undefined) === (body.valueBase64 === undefined)) {
        throw fail("E_INVALID_VALUE", "invalid request: give exactly one of value (UTF-8 text) or valueBase64 (bytes)");
      }
      const value = body.value !== undefined ? Buffer.from(body.value, "utf8") : Buffer.from(body.valueBase64 ?? "", "base64");
      try {
        if (value.length > config.limits.valueBytes) {
          throw fail("E_INVALID_VALUE", `invalid value: ${value.length} bytes is more than the limit of ${config.limits.valueBytes} bytes`);
        }
        const result = await storage.write({
          name,
          actor: p.subject,
          ...(body.description !== undefined && { description: body.description }),
          ...(body.ifVersion !== undefined && { ifVersion: body.ifVersion }),
          seal: (version) => sealer.seal(name, version, value),
          auditDetail: auditDetail(req, "ok"),
        }).catch(async (err: unknown) => {
          if (isCofferError(err, "E_CONFLICT")) {
            await record(req, { action: "secret.write", name, version: null, detail: { ifVersion: body.ifVersion } }, "conflict");
          }
          throw err;
        });
        publish("write", name, result.version);
        return { name, version: result.version };
      } finally {
        value.fill(0);
      }
    });

    api.delete("/v1/secrets/*", {
      schema: { summary: "Delete a secret (its versions are kept)", response: { 200: writeResultSchema } },
    }, async (req) => {
      const p = principalOf(req);
      const { name } = secretPath(req, false);
      await authorize(req, p, "delete", name, "secret.delete");
      const result = await storage.remove(name, p.subject, auditDetail(req, "ok"));
      if (result === undefined) {
        await record(req, { action: "secret.delete", name, version: null, detail: null }, "not_found");
        throw fail("E_NOT_FOUND", `no secret "${name}"`);
      }
      publish("delete", name, result.version);
      return { name, version: result.version };
    });

    registerWatchRoute(api, {
      bus: changes,
      canSee: (req, name) => req.principal !== null && policy.allows(req.principal.roles, "list", name),
      audit: async (req, prefix) => {
        await record(req, { action: "secret.watch", name: null, version: null, detail: { prefix } }, "ok");
      },
      expiresAt: (req) => req.principal?.expiresAt ?? null,
      tokenId: (req) => req.principal?.tokenId,
      stillValid: async (req) => {
        const p = req.principal;
        if (p === null || (p.expiresAt !== null && p.expiresAt.getTime() <= Date.now())) return false;
        if (p.kind === "cert" && req.headers.authorization === undefined) return true;
        return (await auth.authenticate(req.headers.authorization)).subject === p.subject;
      },
    });

    // -- tokens --
    api.post("/v1/tokens", {
      schema: {
        summary: "Create an API token (shown once); needs write on sys:tokens, and only roles you hold",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name", "roles"],
          properties: {
            name: { type: "string", minLength: 1, maxLength: 64 },
            roles: { type: "array", minItems: 1, maxItems: 32, uniqueItems: true, items: { type: "string", maxLength: 64 } },
            ttl: { anyOf: [{ type: "integer", minimum: 1 }, { type: "string", maxLength: 16 }] },
          },
        },
        response: { 201: { type: "object", properties: { token: { type: "string" }, id: { type: "string" }, name: { type: "string" }, roles: { type: "array", items: { type: "string" } }, expiresAt: { type: ["string", "null"] } } } },
      },
    }, async (req, reply) => {
      const p = principalOf(req);
      await authorize(req, p, "write", "sys:tokens", "token.create");
      const body = req.body as { name: string; roles: string[]; ttl?: number | string };
      if (!TOKEN_NAME_RE.test(body.name)) {
        throw fail("E_INVALID_VALUE", `invalid token name ${JSON.stringify(body.name)}: letters, digits and _ . @ : -, starting with a letter or digit, at most 64`);
      }
      checkRoles(body.roles, p);
      const expiresAt = tokenExpiry(body.ttl, p);
      return reply.status(201).send(await issueToken(req, p.subject, body.name, body.roles, expiresAt, {}));
    });

    api.get("/v1/tokens", {
      schema: {
        summary: "List API tokens (never the tokens themselves); needs read on sys:tokens",
        response: { 200: { type: "object", properties: { tokens: { type: "array", items: tokenInfoSchema } } } },
      },
    }, async (req) => {
      const p = principalOf(req);
      await authorize(req, p, "read", "sys:tokens", "token.list");
      const tokens = await storage.listTokens();
      await record(req, { action: "token.list", name: null, version: null, detail: { count: tokens.length } }, "ok");
      return { tokens: tokens.map((t) => ({ id: t.id, name: t.name, roles: t.roles, createdAt: t.createdAt, createdBy: t.createdBy, expiresAt: t.expiresAt, revokedAt: t.revokedAt })) };
    });

    api.delete("/v1/tokens/:id", {
      schema: {
        summary: "Revoke an API token at once; needs delete on sys:tokens, or be that token; a root token only by root",
        params: { type: "object", properties: { id: { type: "string", pattern: "^[0-9a-f]{16}$" } } },
        response: { 200: { type: "object", properties: { id: { type: "string" }, revoked: { type: "boolean" } } } },
      },
    }, async (req) => {
      const p = principalOf(req);
      const { id } = req.params as { id: string };
      if (p.tokenId !== id) await authorize(req, p, "delete", "sys:tokens", "token.revoke");
      if (!p.roles.includes(ROOT_ROLE) && (await storage.findTokenById(id))?.roles.includes(ROOT_ROLE) === true) {
        // There is no way back from losing every root token but `coffer server root-token` on the host.
        metrics.denials.inc({ action: "token.revoke" });
        await record(req, { action: "token.revoke", name: null, version: null, detail: { object: "sys:tokens", id, root: true } }, "denied");
        throw fail("E_DENIED", "only root may revoke a root token");
      }
      const revoked = await storage.revokeToken(id, p.subject, auditDetail(req, "ok"));
      if (!revoked) {
        await record(req, { action: "token.revoke", name: null, version: null, detail: { id } }, "not_found");
        throw fail("E_NOT_FOUND", `no active token with id ${id}`);
      }
      // Every instance ends this token's watch streams now, not at their next heartbeat.
      void changes.publishRevocation(id);
      return { id, revoked: true };
    });

    // -- audit --
    api.get("/v1/audit", {
      schema: {
        summary: "Read the audit log (hash-chained; never values); needs read on sys:audit",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { since: { type: "string", format: "date-time" }, after: WHOLE_NUMBER, limit: { type: "string", pattern: "^([1-9][0-9]{0,2}|1000)$" } },
        },
        response: { 200: { type: "object", properties: { records: { type: "array", items: auditRecordSchema } } } },
      },
    }, async (req) => {
      const p = principalOf(req);
      await authorize(req, p, "read", "sys:audit", "audit.read");
      const q = req.query as { since?: string; after?: string; limit?: string };
      const records = await storage.auditLog({
        ...(q.since !== undefined && { since: new Date(q.since) }),
        ...(q.after !== undefined && { afterSeq: Number(q.after) }),
        limit: q.limit === undefined ? 100 : Number(q.limit),
      });
      await record(req, { action: "audit.read", name: null, version: null, detail: { count: records.length } }, "ok");
      return { records };
    });

    api.get("/v1/audit/verify", {
      schema: {
        summary: "Recompute the audit hash chain after the last verified checkpoint (?full=true: all of it); needs read on sys:audit",
        querystring: { type: "object", additionalProperties: false, properties: { full: { type: "string", enum: ["true", "false"] } } },
        response: {
          200: {
            type: "object",
            properties: { ok: { type: "boolean" }, records: { type: "integer" }, fromCheckpoint: { type: "integer" }, brokenAt: { type: "integer" }, reason: { type: "string" } },
          },
        },
      },
    }, async (req) => {
      const p = principalOf(req);
      await authorize(req, p, "read", "sys:audit", "audit.verify");
      const full = (req.query as { full?: string }).full === "true";
      await audit.drain();
      const result = await verifier.verify(full);
      await record(req, { action: "audit.verify", name: null, version: null, detail: { ok: result.ok, records: result.records, full } }, "ok");
      return result;
    });

    if (config.devLogin) {
      api.post("/dev-login", {
        config: { auth: false },
        schema: {
          summary: "DEVELOPMENT ONLY: get a 1-hour API token for any configured role, without credentials",
          security: [],
          body: {
            type: "object",
            additionalProperties: false,
            required: ["roles"],
            properties: { subject: { type: "string", maxLength: 64 }, roles: { type: "array", minItems: 1, maxItems: 32, uniqueItems: true, items: { type: "string", maxLength: 64 } } },
          },
        },
      }, async (req, reply) => {
        const body = req.body as { subject?: string; roles: string[] };
        const name = body.subject ?? "dev";
        if (!TOKEN_NAME_RE.test(name)) throw fail("E_INVALID_VALUE", `invalid subject ${JSON.stringify(name)}: letters, digits and _ . @ : -`);
        for (const role of body.roles) {
          if (!Object.hasOwn(config.roles, role)) throw fail("E_INVALID_VALUE", `unknown role ${JSON.stringify(role)}; dev-login gives configured roles only (not root)`);
        }
        const expiresAt = new Date(Date.now() + DEV_LOGIN_TTL_S * 1000);
        return reply.status(201).send(await issueToken(req, "dev-login", `dev:${name}`, body.roles, expiresAt, { via: "dev-login" }));
      });
    }
  });

  app.addHook("onClose", async () => {
    await audit.drain();
  });

  return app;

  // ---- helpers (closures over the server's parts) -----------------------------------------

  /**
   * The caller: a bearer credential when one is sent (on mutual TLS, on top of the client
   * certificate the handshake already verified: the request then acts as the credential, and
   * the audit names the certificate too); else the verified client certificate, with the roles
   * `clients:` gives its CN or DNS name (none when unlisted: everything is denied).
   */
  async function authenticate(req: FastifyRequest): Promise<Principal> {
    const cert = mutualTls ? clientCertificate(req.raw.socket) : undefined;
    try {
      if (cert !== undefined && (req.headers.authorization === undefined || req.headers.authorization === "")) {
        const mapped = certificatePrincipal(cert, config.clients ?? {});
        return mapped === undefined
          ? { subject: `cert:${cert.cn ?? cert.dnsNames[0] ?? cert.fingerprint256}`, kind: "cert", roles: [], expiresAt: null }
          : { ...mapped, kind: "cert", expiresAt: null };
      }
      const p = await auth.authenticate(req.headers.authorization);
      return cert === undefined ? p : { ...p, certificate: cert.cn ?? cert.dnsNames[0] ?? cert.fingerprint256 };
    } catch (err) {
      if (err instanceof AuthError) {
        metrics.authFailures.inc({ reason: err.reason });
        if (touchesAuditedObject(req)) {
          await record(req, { actor: "anonymous", action: "auth.failed", name: null, version: null, detail: { reason: err.reason, route: req.routeOptions.url ?? null } }, "unauthenticated");
        }
      }
      throw err;
    }
  }

  async function authorize(req: FastifyRequest, p: Principal, capability: Capability, path: string, action: string): Promise<void> {
    if (policy.allows(p.roles, capability, path)) return;
    metrics.denials.inc({ action });
    const secret = !path.startsWith("sys:");
    await record(req, { action, name: secret ? path : null, version: null, detail: secret ? null : { object: path } }, "denied");
    throw fail("E_DENIED", secret ? `you may not ${capability} secret "${path}"` : `you may not do ${action} (needs ${capability} on ${path})`);
  }

  function auditDetail(req: FastifyRequest, result: string): Record<string, unknown> {
    const certificate = req.principal?.certificate;
    return { result, requestId: req.id, source: clientAddress(req), ...(certificate !== undefined && { certificate }) };
  }

  async function record(
    req: FastifyRequest,
    entry: Omit<AuditInput, "actor" | "detail"> & { actor?: string; detail: Record<string, unknown> | null },
    result: string,
  ): Promise<AuditRecord> {
    return audit.append({
      actor: entry.actor ?? req.principal?.subject ?? "anonymous",
      action: entry.action,
      name: entry.name,
      version: entry.version,
      detail: { ...entry.detail, ...auditDetail(req, result) },
    });
  }

  function checkRoles(roles: readonly string[], p: Principal): void {
    const callerIsRoot = p.roles.includes(ROOT_ROLE);
    for (const role of roles) {
      if (!ROLE_NAME_RE.test(role)) throw fail("E_INVALID_VALUE", `invalid role name ${JSON.stringify(role)}: must match ${ROLE_NAME_RE.source}`);
      if (role !== ROOT_ROLE && !Object.hasOwn(config.roles, role)) {
        throw fail("E_INVALID_VALUE", `unknown role ${JSON.stringify(role)}; roles: ${Object.keys(config.roles).join(", ") || "(none configured)"}`);
      }
      if (!callerIsRoot && !p.roles.includes(role)) {
        throw fail("E_DENIED", `you may only give roles you hold yourself; you do not hold ${JSON.stringify(role)}`);
      }
    }
  }

  function tokenExpiry(ttl: number | string | undefined, p: Principal): Date | null {
    let seconds: number | undefined;
    if (typeof ttl === "number") seconds = ttl;
    else if (typeof ttl === "string") {
      // whole seconds, rounded down, at least 1s (core/durations.ts)
      const r = checkDuration(ttl, { min: 1000 });
      if ("rule" in r) {
        const why = r.rule === DURATION_RULE ? `must be a number of seconds or a duration: ${DURATION_GRAMMAR}` : r.rule;
        throw fail("E_INVALID_VALUE", `invalid ttl ${JSON.stringify(ttl)}: ${why}`);
      }
      seconds = Math.floor(r.ok / 1000);
    }
    if (seconds !== undefined && !(seconds <= MAX_TOKEN_TTL_S)) {
      throw fail("E_INVALID_VALUE", `invalid ttl: more than 100 years (${MAX_TOKEN_TTL_S} s); leave ttl out for a token that does not expire`);
    }
    let expires = seconds === undefined ? null : new Date(Date.now() + seconds * 1000);
    // A token never outlives the credential that made it.
    if (p.expiresAt !== null && (expires === null || expires > p.expiresAt)) expires = p.expiresAt;
    return expires;
  }

  async function issueToken(req: FastifyRequest, actor: string, name: string, roles: string[], expiresAt: Date | null, detail: Record<string, unknown>) {
    const t = newToken();
    await storage.createToken(
      { id: t.id, name, hash: t.hash, roles, createdAt: new Date().toISOString(), createdBy: actor, expiresAt: expiresAt?.toISOString() ?? null, revokedAt: null },
      actor,
      { ...detail, ...auditDetail(req, "ok") },
    );
    return { token: t.token, id: t.id, name, roles, expiresAt: expiresAt?.toISOString() ?? null };
  }
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

/** The caller of an authenticated route. */
function principalOf(req: FastifyRequest): Principal {
  if (req.principal === null) throw new CofferError("E_INTERNAL", "an authenticated route ran without a principal");
  return req.principal;
}

/** Whether a 401 on this request is audited: routes about secrets and tokens. */
function touchesAuditedObject(req: FastifyRequest): boolean {
  const url = req.routeOptions.url ?? "";
  return url.startsWith("/v1/secrets") || url.startsWith("/v1/tokens") || url.startsWith("/v1/audit");
}

/**
 * The secret name of a `/v1/secrets/…` request, taken from the raw URL: names never need
 * percent-encoding, so any `%` (an encoded `/` or `.` trying to slip past the name rule) is
 * refused, and so is everything the name rule refuses (`..`, empty segments, a leading `/`).
 */
function secretPath(req: FastifyRequest, allowVersions: boolean): { name: string; versions: boolean } {
  const raw = (req.raw.url ?? "").split("?")[0] ?? "";
  let rest = raw.startsWith(SECRETS_PREFIX) ? raw.slice(SECRETS_PREFIX.length) : "";
  if (rest.includes("%")) {
    throw fail("E_INVALID_NAME", "invalid secret name: percent-encoded characters are refused; names are letters, digits, '_', '.', '-' and '/' as they are");
  }
  let versions = false;
  if (rest.endsWith(VERSIONS_SUFFIX) && rest.length > VERSIONS_SUFFIX.length) {
    if (!allowVersions) {
      throw fail("E_INVALID_NAME", `invalid secret name "${rest}": a last segment "versions" is reserved by the server API (GET …/NAME/versions lists versions)`);
    }
    rest = rest.slice(0, -VERSIONS_SUFFIX.length);
    versions = true;
  }
  if (!isSecretName(rest)) assertSecretName(rest);
  return { name: rest, versions };
}

function tooMany(reply: FastifyReply, retryAfterSeconds: number): CofferError {
  const seconds = Math.max(1, retryAfterSeconds);
  reply.header("retry-after", String(seconds));
  return fail("E_RATE_LIMITED", `too many requests; retry in ${seconds} s`);
}

/** The status, code and message a client sees for any error; nothing else leaks. */
function describeError(err: unknown): { status: number; code: ErrorCode; message: string } {
  if (err instanceof CofferError) {
    return { status: ERROR_CODES[err.code].http, code: err.code, message: err.message };
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

const POSITIVE_INT = { type: "string", pattern: "^[1-9][0-9]{0,14}$" } as const;
const WHOLE_NUMBER = { type: "string", pattern: "^(0|[1-9][0-9]{0,14})$" } as const;
/** The answer of `GET /v1/secrets/{name}` (and of `…/versions`). Exported for the benchmark's bare handler. */
export const SECRET_READ_SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string" }, version: { type: "integer" }, value: { type: "string" }, valueBase64: { type: "string" },
    createdAt: { type: "string" }, createdBy: { type: "string" }, updatedAt: { type: "string" },
    versions: { type: "array", items: { type: "object", properties: { version: { type: "integer" }, createdAt: { type: "string" }, createdBy: { type: "string" }, current: { type: "boolean" } } } },
  },
} as const;
const secretInfoSchema = {
  type: "object",
  properties: { name: { type: "string" }, version: { type: "integer" }, description: { type: ["string", "null"] }, updatedAt: { type: "string" }, updatedBy: { type: "string" } },
} as const;
const writeResultSchema = { type: "object", properties: { name: { type: "string" }, version: { type: "integer" } } } as const;
const tokenInfoSchema = {
  type: "object",
  properties: {
    id: { type: "string" }, name: { type: "string" }, roles: { type: "array", items: { type: "string" } },
    createdAt: { type: "string" }, createdBy: { type: "string" }, expiresAt: { type: ["string", "null"] }, revokedAt: { type: ["string", "null"] },
  },
} as const;
const auditRecordSchema = {
  type: "object",
  properties: {
    seq: { type: "integer" }, at: { type: "string" }, actor: { type: "string" }, action: { type: "string" },
    name: { type: ["string", "null"] }, version: { type: ["integer", "null"] },
    detail: { type: ["object", "null"], additionalProperties: true }, hash: { type: "string" },
  },
} as const;
