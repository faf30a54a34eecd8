/**
 * What every route works with, and the request context that carries it: the caller
 * (`req.principal`, set by authentication), `req.authorize(capability, path, action)` (deny by
 * default, a denial audited and counted) and `req.record(result, action, …)` (an audit record with
 * the request's id, source address and certificate). Routes get the server's parts as
 * {@link ServerParts} and never re-implement these.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { CofferError } from "../errors.ts";
import type { AuditRecord } from "../core/audit.ts";
import type { AuditVerifier } from "./audit-verify.ts";
import type { AuditWriter } from "./audit-writer.ts";
import { AuthError, type Authenticator, type Principal } from "./auth.ts";
import type { ChangeBus } from "./changes.ts";
import type { Capability, ServerConfig } from "./config.ts";
import type { ValueSealer } from "./keys.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { Policy } from "./policy.ts";
import type { ServerRoles } from "./roles.ts";
import { clientAddress } from "./proxy.ts";
import type { LimitMode } from "./rate-limit-store.ts";
import type { ServerStorage } from "../storage/types.ts";
import { certificatePrincipal, clientCertificate } from "./tls.ts";
import type { RunbookParts } from "./routes/runbooks.ts";
import type { RotationParts } from "./routes/rotation.ts";

/** Policy paths of runbooks: `runbook:NAME`. */
const RUNBOOK_PREFIX = "runbook:";

/** The server's parts, built once by buildServer (app.ts) and handed to every route module. */
export interface ServerParts {
  config: ServerConfig;
  storage: ServerStorage;
  /** the policy now in force: config roles + database roles (roles.ts keeps it current) */
  readonly policy: Policy;
  /** the config's and the database's roles */
  roles: ServerRoles;
  sealer: ValueSealer;
  metrics: ServerMetrics;
  auth: Authenticator;
  changes: ChangeBus;
  audit: AuditWriter;
  verifier: AuditVerifier;
  /** where the rate-limit counters are right now */
  limitMode: () => LimitMode;
  /** the server asks for client certificates (mutual TLS) */
  mutualTls: boolean;
  version: string;
  /** the runbooks and their executions, when `runbooks:` is configured */
  runbooks?: RunbookParts;
  /** the rotation engine and scheduler (docs/design.md §12) */
  rotation?: RotationParts;
}

/** What a route adds to an audit record besides the action and the result. */
export interface RecordOptions {
  name?: string | null;
  version?: number | null;
  detail?: Record<string, unknown> | null;
  /** default: the caller's subject, else `anonymous` */
  actor?: string;
}

declare module "fastify" {
  interface FastifyRequest {
    /** the authenticated caller; null before authentication and on public routes */
    principal: Principal | null;
    /** the caller of an authenticated route (E_INTERNAL on a route that skipped authentication) */
    caller(): Principal;
    /**
     * Lets the request go on when the caller holds `capability` on `path`; else counts the
     * denial, audits it (result `denied`) and throws E_DENIED (saying only what was refused).
     */
    authorize(capability: Capability, path: string, action: string): Promise<void>;
    /** Appends an audit record of this request and waits for its commit (fail closed). */
    record(result: string, action: string, options?: RecordOptions): Promise<AuditRecord>;
    /** The detail every audit record of this request carries: result, request id, source, certificate. */
    auditDetail(result: string): Record<string, unknown>;
  }
  interface FastifyContextConfig {
    /** false: the route needs no credentials */
    auth?: boolean;
  }
}

/** Decorates every request of `app` with the context above. */
export function registerRequestContext(app: FastifyInstance, parts: ServerParts): void {
  app.decorateRequest("principal", null);
  app.decorateRequest("caller", function (this: FastifyRequest): Principal {
    if (this.principal === null) throw new CofferError("E_INTERNAL", "an authenticated route ran without a principal");
    return this.principal;
  });
  app.decorateRequest("auditDetail", function (this: FastifyRequest, result: string): Record<string, unknown> {
    const certificate = this.principal?.certificate;
    return { result, requestId: this.id, source: clientAddress(this), ...(certificate !== undefined && { certificate }) };
  });
  app.decorateRequest("record", function (this: FastifyRequest, result: string, action: string, o: RecordOptions = {}): Promise<AuditRecord> {
    return parts.audit.append({
      actor: o.actor ?? this.principal?.subject ?? "anonymous",
      action,
      name: o.name ?? null,
      version: o.version ?? null,
      detail: { ...o.detail, ...this.auditDetail(result) },
    });
  });
  app.decorateRequest("authorize", async function (this: FastifyRequest, capability: Capability, path: string, action: string): Promise<void> {
    if (parts.policy.allows(this.caller().roles, capability, path)) return;
    parts.metrics.denials.inc({ action });
    const secret = !path.startsWith("sys:") && !path.startsWith(RUNBOOK_PREFIX);
    await this.record("denied", action, secret ? { name: path } : { detail: { object: path } });
    if (secret) throw new CofferError("E_DENIED", `you may not ${capability} secret "${path}"`);
    if (path.startsWith(RUNBOOK_PREFIX)) throw new CofferError("E_DENIED", `you may not ${capability} runbook "${path.slice(RUNBOOK_PREFIX.length)}" (needs ${capability} on ${path})`);
    throw new CofferError("E_DENIED", `you may not do ${action} (needs ${capability} on ${path})`);
  });
}

/** The routes whose failed authentication is audited: every one that reads or changes something. */
const AUDITED_AUTH_FAILURES = ["/v1/secrets", "/v1/rollback", "/v1/purge", "/v1/delete", "/v1/undelete", "/v1/destroy", "/v1/tokens", "/v1/roles", "/v1/audit", "/v1/runbooks", "/v1/executions", "/v1/rotation"];

/** Whether {@link authenticate} audits a failed authentication on the route `url` itself. */
export function auditsAuthFailure(url: string): boolean {
  return AUDITED_AUTH_FAILURES.some((prefix) => url.startsWith(prefix));
}

/**
 * The caller: a bearer credential when one is sent (on mutual TLS, on top of the client
 * certificate the handshake already verified: the request then acts as the credential, and
 * the audit names the certificate too); else the verified client certificate, with the roles
 * `clients:` gives its CN or DNS name (none when unlisted: everything is denied). A failure is
 * counted, and audited on the routes of {@link AUDITED_AUTH_FAILURES}.
 * @throws AuthError (401)
 */
export async function authenticate(parts: ServerParts, req: FastifyRequest): Promise<Principal> {
  const cert = parts.mutualTls ? clientCertificate(req.raw.socket) : undefined;
  const certName = cert && (cert.cn ?? cert.dnsNames[0] ?? cert.fingerprint256);
  try {
    if (certName !== undefined && (req.headers.authorization === undefined || req.headers.authorization === "")) {
      const mapped = certificatePrincipal(cert!, parts.config.clients ?? {});
      return { subject: `cert:${certName}`, roles: [], ...mapped, kind: "cert", expiresAt: null };
    }
    const p = await parts.auth.authenticate(req.headers.authorization);
    return certName === undefined ? p : { ...p, certificate: certName };
  } catch (err) {
    if (err instanceof AuthError) {
      parts.metrics.authFailures.inc({ reason: err.reason });
      if (auditsAuthFailure(req.routeOptions.url ?? "")) {
        await req.record("unauthenticated", "auth.failed", { actor: "anonymous", detail: { reason: err.reason, route: req.routeOptions.url ?? null } });
      }
    }
    throw err;
  }
}
