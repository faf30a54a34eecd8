/**
 * The public endpoints: `/v1/sys/health` (liveness and readiness, no credentials; coffer's fields and Vault's) and `/metrics`
 * (Prometheus; needs read on `sys:metrics` unless `metrics.public` is set).
 */
import type { FastifyInstance } from "fastify";
import { CofferError } from "../../errors.ts";
import { authenticate, type ServerParts } from "../context.ts";
import { HEALTH_SCHEMA } from "../schemas.ts";

export function systemRoutes(app: FastifyInstance, s: ServerParts): void {
  app.get("/v1/sys/health", {
    config: { auth: false },
    schema: { summary: "Liveness and readiness (no credentials needed)", security: [], response: { 200: HEALTH_SCHEMA } },
  }, async () => {
    await s.storage.getMeta("format");
    const limitMode = s.limitMode();
    const changesHealthy = s.changes.healthy();
    return {
      // Serving either way; "degraded" says what is missing (limits per instance, no push).
      status: limitMode === "local-redis-down" || !changesHealthy ? "degraded" : "ok",
      storage: s.storage.driver,
      rateLimit: limitMode === "redis" ? "shared (redis)" : limitMode === "local" ? "per instance" : "per instance: redis unreachable",
      changes: `${s.changes.kind}${changesHealthy ? "" : " (down: watchers poll)"}`,
      // only whether: the counts are in the metrics, which need credentials
      rotation: s.rotation?.overdue() === true ? "overdue" : "ok",
      version: s.version,
      // Vault's fields, for Vault clients' health checks: an answering coffer is initialised, unsealed and active.
      initialized: true,
      sealed: false,
      standby: false,
      performance_standby: false,
      replication_performance_mode: "disabled",
      replication_dr_mode: "disabled",
      server_time_utc: Math.floor(Date.now() / 1000),
      cluster_name: "coffer",
      cluster_id: "",
    };
  });

  app.get("/metrics", {
    config: { auth: false },
    schema: { summary: "Prometheus metrics (needs read on sys:metrics unless metrics.public is set)", hide: false },
  }, async (req, reply) => {
    if (!s.config.metrics.public) {
      const principal = await authenticate(s, req);
      if (!s.policy.allows(principal.roles, "read", "sys:metrics")) {
        s.metrics.denials.inc({ action: "metrics.read" });
        throw new CofferError("E_DENIED", "you may not read the metrics (needs read on sys:metrics)");
      }
    }
    const { contentType, body } = await s.metrics.render();
    return reply.type(contentType).send(body);
  });
}
