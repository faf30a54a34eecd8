/**
 * The coffer server's administration API for the CLI: API tokens (`/v1/tokens`) and the audit
 * log (`/v1/audit`, `/v1/audit/verify`). Built on {@link CofferClient.request}, the one HTTP
 * path; every answer is checked field by field (shape.ts) before it is returned.
 */
import { CofferError } from "../errors.ts";
import type { AuditRecord } from "../core/audit.ts";
import type { CofferClient } from "./client.ts";
import { field, shapeError, str, whole } from "./shape.ts";

export type { ServerNewToken, ServerTokenInfo } from "./wire.ts";
import type { ServerNewToken, ServerTokenInfo } from "./wire.ts";

/** Which audit records {@link ServerAdmin.auditLog} asks for. */
export interface ServerAuditQuery {
  /** at or after this ISO 8601 time */
  since?: string;
  /** with seq above this */
  after?: number;
  /** at most this many (1–1000; the server's default is 100) */
  limit?: number;
  /** only this subject's records */
  subject?: string;
  /** only this action's */
  action?: string;
  /** only records whose name starts with this */
  prefix?: string;
}

/** The outcome of `GET /v1/audit/verify`. */
export interface ServerAuditVerification {
  ok: boolean;
  records: number;
  brokenAt?: number;
  reason?: string;
}

/** The largest page `GET /v1/audit` gives. */
export const AUDIT_PAGE_MAX = 1000;

/**
 * Tokens and audit of one coffer server.
 *
 * @example
 * const admin = new ServerAdmin(client);
 * const t = await admin.createToken({ name: "ci", roles: ["ci"], ttl: "30d" });
 */
export class ServerAdmin {
  readonly #client: CofferClient;

  constructor(client: CofferClient) {
    this.#client = client;
  }

  /**
   * Creates an API token (needs write on sys:tokens, and only roles the caller holds).
   * @param ttl - seconds or a duration such as `30d`; none: it lives as long as the caller's credential
   * @throws CofferError E_DENIED, E_INVALID_VALUE (unknown role, bad ttl), …
   */
  async createToken(request: { name: string; roles: string[]; ttl?: string }): Promise<ServerNewToken> {
    const body = await this.#client.request("POST", "/v1/tokens", { payload: request });
    const what = "the new token";
    const token = str(body, "token", what, this.#client.url);
    return { token, ...tokenBase(body, what, this.#client.url) };
  }

  /** Lists the API tokens (needs read on sys:tokens). */
  async listTokens(): Promise<ServerTokenInfo[]> {
    const body = await this.#client.request("GET", "/v1/tokens");
    const rows = field(body, "tokens");
    if (!Array.isArray(rows)) throw shapeError(this.#client.url, "the list of tokens", "tokens");
    return rows.map((r: unknown) => tokenInfo(r, "the list of tokens", this.#client.url));
  }

  /**
   * Revokes a token by id (needs delete on sys:tokens, or to be that token).
   * @throws CofferError E_USAGE for an id that is not 16 hex digits, E_NOT_FOUND, E_DENIED
   */
  async revokeToken(id: string): Promise<{ id: string; revoked: boolean }> {
    if (!/^[0-9a-f]{16}$/.test(id)) throw new CofferError("E_USAGE", "a token id is 16 hex digits, as `coffer token list` shows it");
    const body = await this.#client.request("DELETE", `/v1/tokens/${id}`);
    const revoked = field(body, "revoked");
    if (typeof revoked !== "boolean") throw shapeError(this.#client.url, "the revocation", "revoked");
    return { id: str(body, "id", "the revocation", this.#client.url), revoked };
  }

  /** One page of audit records, oldest first (needs read on sys:audit). */
  async auditLog(query: ServerAuditQuery = {}): Promise<AuditRecord[]> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const q = params.size > 0 ? `?${params}` : "";
    const body = await this.#client.request("GET", `/v1/audit${q}`);
    const rows = field(body, "records");
    const what = "the audit log";
    const url = this.#client.url;
    if (!Array.isArray(rows)) throw shapeError(url, what, "records");
    return rows.map((r: unknown) => {
      const name = field(r, "name");
      const version = field(r, "version");
      const detail = field(r, "detail");
      if (name !== null && typeof name !== "string") throw shapeError(url, what, "name");
      if (version !== null && (typeof version !== "number" || !Number.isSafeInteger(version))) throw shapeError(url, what, "version");
      if (detail !== null && (typeof detail !== "object" || Array.isArray(detail))) throw shapeError(url, what, "detail");
      return {
        seq: whole(r, "seq", what, url), at: str(r, "at", what, url), actor: str(r, "actor", what, url), action: str(r, "action", what, url),
        name, version, detail: detail as Record<string, unknown> | null, hash: str(r, "hash", what, url),
      };
    });
  }

  /** Every audit record matching `query` (without `after`/`limit`), page by page. */
  async auditLogAll(query: Omit<ServerAuditQuery, "after" | "limit"> = {}): Promise<AuditRecord[]> {
    const all: AuditRecord[] = [];
    for (;;) {
      const page = await this.auditLog({ ...query, limit: AUDIT_PAGE_MAX, ...(all.length > 0 && { after: all[all.length - 1]!.seq }) });
      all.push(...page);
      if (page.length < AUDIT_PAGE_MAX) return all;
    }
  }

  /** Recomputes the audit chain on the server (`full`: from the start, not the last checkpoint). */
  async verifyAudit(full = false): Promise<ServerAuditVerification> {
    const body = await this.#client.request("GET", `/v1/audit/verify${full ? "?full=true" : ""}`);
    const ok = field(body, "ok");
    if (typeof ok !== "boolean") throw shapeError(this.#client.url, "the audit verification", "ok");
    const brokenAt = field(body, "brokenAt");
    const reason = field(body, "reason");
    return {
      ok, records: whole(body, "records", "the audit verification", this.#client.url),
      ...(typeof brokenAt === "number" && { brokenAt }), ...(typeof reason === "string" && { reason }),
    };
  }
}

/** The fields a new token and a listed one share. */
function tokenBase(r: unknown, what: string, url: string): Omit<ServerNewToken, "token"> {
  const roles = field(r, "roles");
  if (!Array.isArray(roles) || !roles.every((x): x is string => typeof x === "string")) throw shapeError(url, what, "roles");
  return { id: str(r, "id", what, url), name: str(r, "name", what, url), roles, expiresAt: nullableStr(r, "expiresAt", what, url) };
}

function tokenInfo(r: unknown, what: string, url: string): ServerTokenInfo {
  return {
    ...tokenBase(r, what, url),
    createdAt: str(r, "createdAt", what, url), createdBy: str(r, "createdBy", what, url), revokedAt: nullableStr(r, "revokedAt", what, url),
  };
}

function nullableStr(r: unknown, name: string, what: string, url: string): string | null {
  const v = field(r, name);
  if (v !== null && typeof v !== "string") throw shapeError(url, what, name);
  return v;
}
