/**
 * The server's Prometheus metrics (prom-client, its own registry): requests and latencies by
 * route pattern (never a secret name), authentication failures by reason, denials, rate-limited
 * requests, audit batches.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ExecutionObserver } from "../runbooks/executions.ts";

/** The metrics of one server instance. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = this.#counter("coffer_http_requests_total", "HTTP requests by method, route pattern and status", [
    "method", "route", "status",
  ]);
  readonly latency = new Histogram({
    name: "coffer_http_request_duration_seconds",
    help: "HTTP request latency by method and route pattern",
    labelNames: ["method", "route"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly authFailures = this.#counter("coffer_auth_failures_total", "requests refused with 401, by reason", ["reason"]);
  readonly denials = this.#counter("coffer_denials_total", "requests refused with 403 by policy, by action", ["action"]);
  readonly rateLimited = this.#counter(
    "coffer_rate_limited_total",
    "requests refused with 429, by limit (ip: before authentication, subject: after)",
    ["scope"],
  );
  readonly auditRecords = this.#counter(
    "coffer_audit_records_total",
    "audit records appended outside secret writes (reads, denials, failures), by outcome",
    ["outcome"],
  );
  readonly rateLimitFallbacks = this.#counter(
    "coffer_rate_limit_local_fallbacks_total",
    "requests counted in this instance's memory because the shared Redis could not be reached",
    [],
  );
  readonly executions = this.#counter("coffer_runbook_executions_total", "runbook executions that ended, by runbook and final status", ["runbook", "status"]);
  readonly executionSeconds = new Histogram({
    name: "coffer_runbook_execution_duration_seconds",
    help: "how long runbook executions ran, from start to end, by runbook",
    labelNames: ["runbook"] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600],
    registers: [this.registry],
  });
  /** how many executions this instance runs, asked at each scrape */
  runningExecutions = (): number => 0;
  readonly executionsRunning: Gauge = new Gauge({
    name: "coffer_runbook_executions_running",
    help: "runbook executions running on this instance",
    registers: [this.registry],
    collect: () => this.executionsRunning.set(this.runningExecutions()),
  });
  readonly truncations = this.#counter("coffer_runbook_output_truncations_total", "runbook executions whose output went past its outputLimit, by runbook", ["runbook"]);
  readonly rotations = this.#counter("coffer_rotations_total", "secrets rotated (a new version stored), by this instance", []);
  readonly rotationFailures = this.#counter(
    "coffer_rotation_failures_total",
    "rotations that stored no version, by state: failing (retried with backoff) or unknown (a person must check the target)",
    ["state"],
  );
  /** how many rotations are overdue, as the scheduler last counted */
  overdueRotations = (): number => 0;
  readonly rotationOverdue: Gauge = new Gauge({
    name: "coffer_rotation_overdue",
    help: "rotation policies overdue (past their time by a minute, failing, or unknown)",
    registers: [this.registry],
    collect: () => this.rotationOverdue.set(this.overdueRotations()),
  });
  #state = () => ({ limitMode: "local", changesHealthy: true });

  constructor() {
    this.#gauge(
      "coffer_rate_limit_shared",
      "1 while rate-limit counters are shared through Redis, 0 while they are per instance (no redis: configured, or Redis unreachable)",
      () => this.#state().limitMode === "redis",
    );
    this.#gauge(
      "coffer_change_bus_up",
      "1 while change events flow between instances (watch streams push), 0 while watchers fall back to polling",
      () => this.#state().changesHealthy,
    );
    collectDefaultMetrics({ register: this.registry, prefix: "coffer_" });
  }

  /** What the execution manager (runbooks/executions.ts) tells these metrics. */
  executionObserver(): ExecutionObserver {
    return {
      finished: (runbook, status, seconds) => {
        this.executions.inc({ runbook, status });
        if (seconds !== null) this.executionSeconds.observe({ runbook }, seconds);
      },
      truncated: (runbook) => this.truncations.inc({ runbook }),
    };
  }

  /** Where the gauges read the server's state from at each scrape. */
  watch(state: () => { limitMode: string; changesHealthy: boolean }): void {
    this.#state = state;
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  #counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  /** A 1/0 gauge set from `up` at each scrape. */
  #gauge(name: string, help: string, up: () => boolean): void {
    const gauge: Gauge = new Gauge({ name, help, registers: [this.registry], collect: () => gauge.set(up() ? 1 : 0) });
  }
}
