/**
 * The server's Prometheus metrics (prom-client, its own registry): requests and latencies by
 * route pattern (never a secret name), authentication failures by reason, denials, rate-limited
 * requests, audit batches.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The metrics of one server instance. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "coffer_http_requests_total",
    help: "HTTP requests by method, route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: "coffer_http_request_duration_seconds",
    help: "HTTP request latency by method and route pattern",
    labelNames: ["method", "route"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: "coffer_auth_failures_total",
    help: "requests refused with 401, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly denials = new Counter({
    name: "coffer_denials_total",
    help: "requests refused with 403 by policy, by action",
    labelNames: ["action"] as const,
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: "coffer_rate_limited_total",
    help: "requests refused with 429, by limit (ip: before authentication, subject: after)",
    labelNames: ["scope"] as const,
    registers: [this.registry],
  });
  readonly auditRecords = new Counter({
    name: "coffer_audit_records_total",
    help: "audit records appended outside secret writes (reads, denials, failures), by outcome",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly rateLimitFallbacks = new Counter({
    name: "coffer_rate_limit_local_fallbacks_total",
    help: "requests counted in this instance's memory because the shared Redis could not be reached",
    registers: [this.registry],
  });
  #state: () => { limitMode: string; changesHealthy: boolean } = () => ({ limitMode: "local", changesHealthy: true });
  readonly redisUp: Gauge = new Gauge({
    name: "coffer_rate_limit_shared",
    help: "1 while rate-limit counters are shared through Redis, 0 while they are per instance (no redis: configured, or Redis unreachable)",
    registers: [this.registry],
    collect: (): void => this.redisUp.set(this.#state().limitMode === "redis" ? 1 : 0),
  });
  readonly changesUp: Gauge = new Gauge({
    name: "coffer_change_bus_up",
    help: "1 while change events flow between instances (watch streams push), 0 while watchers fall back to polling",
    registers: [this.registry],
    collect: (): void => this.changesUp.set(this.#state().changesHealthy ? 1 : 0),
  });

  /** Where the gauges read the server's state from at each scrape. */
  watch(state: () => { limitMode: string; changesHealthy: boolean }): void {
    this.#state = state;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "coffer_" });
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
