/**
 * Credentials: who a credential is (`/v1/auth/self`), API tokens (create, list, revoke) and, in
 * development only, `/dev-login`. A token never gets a role its creator does not hold, never
 * outlives its creator's credential, and a revocation reaches every instance through the change
 * bus (their watch streams end and their token caches drop it; see auth.ts).
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { CofferError } from "../../errors.ts";
import { checkDuration, DURATION_GRAMMAR, DURATION_RULE } from "../../core/durations.ts";
import type { Principal } from "../auth.ts";
import { ROLE_NAME_PATTERN } from "../config-schema.ts";
import type { ServerParts } from "../context.ts";
import type { ServerStorage } from "../../storage/types.ts";
import { storeNewToken } from "../keys.ts";
import { ROOT_ROLE } from "../policy.ts";
import {
  DEV_LOGIN_BODY, NEW_TOKEN_SCHEMA, REVOKE_QUERY, REVOKED_SCHEMA, SELF_SCHEMA, TOKEN_BODY, TOKEN_ID_PARAMS, TOKEN_LIST_SCHEMA, TOKEN_NAME_RE,
  type DevLoginBody, type RevokeQuery, type TokenBody, type TokenIdParams,
} from "../schemas.ts";
import { rotateWhatTokensRead } from "./leavers.ts";

/** How long a dev-login token lives. */
const DEV_LOGIN_TTL_S = 3600;
/** The longest `ttl` of `POST /v1/tokens`: 100 years (a later date is not a date JSON can carry well). */
const MAX_TOKEN_TTL_S = 100 * 366 * 86_400;
const ROLE_NAME_RE = new RegExp(ROLE_NAME_PATTERN);

/** `GET /v1/auth/self`: who the credential authenticates as. */
export function selfRoute(api: FastifyInstance): void {
  api.get("/v1/auth/self", { schema: { summary: "Who the credential authenticates as", response: { 200: SELF_SCHEMA } } }, async (req) => {
    const { subject, kind, roles, expiresAt } = req.caller();
    return { subject, kind, roles, expiresAt: expiresAt?.toISOString() ?? null };
  });
}

/** `/v1/tokens`: create, list, revoke. */
export function tokenRoutes(api: FastifyInstance, s: ServerParts): void {
  const { storage } = s;

  api.post<{ Body: TokenBody }>("/v1/tokens", {
    schema: { summary: "Create an API token (shown once); needs write on sys:tokens, and only roles you hold", body: TOKEN_BODY, response: { 201: NEW_TOKEN_SCHEMA } },
  }, async (req, reply) => {
    const p = req.caller();
    await req.authorize("write", "sys:tokens", "token.create");
    const { name, roles, ttl } = req.body;
    if (!TOKEN_NAME_RE.test(name)) {
      throw new CofferError("E_INVALID_VALUE", `invalid token name ${JSON.stringify(name)}: letters, digits and _ . @ : -, starting with a letter or digit, at most 64`);
    }
    checkRoles(roles, p);
    return reply.status(201).send(await issueToken(storage, req, p.subject, name, roles, tokenExpiry(ttl, p), {}));
  });

  api.get("/v1/tokens", {
    schema: { summary: "List API tokens (never the tokens themselves); needs read on sys:tokens", response: { 200: TOKEN_LIST_SCHEMA } },
  }, async (req) => {
    await req.authorize("read", "sys:tokens", "token.list");
    const tokens = await storage.listTokens();
    await req.record("ok", "token.list", { detail: { count: tokens.length } });
    return { tokens: tokens.map(({ id, name, roles, createdAt, createdBy, expiresAt, revokedAt }) => ({ id, name, roles, createdAt, createdBy, expiresAt, revokedAt })) };
  });

  api.delete<{ Params: TokenIdParams; Querystring: RevokeQuery }>("/v1/tokens/:id", {
    schema: {
      summary: "Revoke an API token at once; needs delete on sys:tokens, or be that token; a root token only by root. " +
        "?rotate=true: then rotate the secrets it and the tokens it made read (those you may rotate), listing the rest",
      params: TOKEN_ID_PARAMS,
      querystring: REVOKE_QUERY,
      response: { 200: REVOKED_SCHEMA },
    },
  }, async (req) => {
    const p = req.caller();
    const { id } = req.params;
    if (p.tokenId !== id) await req.authorize("delete", "sys:tokens", "token.revoke");
    if (!p.roles.includes(ROOT_ROLE) && (await storage.findTokenById(id))?.roles.includes(ROOT_ROLE) === true) {
      // There is no way back from losing every root token but `coffer server root-token` on the host.
      s.metrics.denials.inc({ action: "token.revoke" });
      await req.record("denied", "token.revoke", { detail: { object: "sys:tokens", id, root: true } });
      throw new CofferError("E_DENIED", "only root may revoke a root token");
    }
    if (!(await storage.revokeToken(id, p.subject, req.auditDetail("ok")))) {
      await req.record("not_found", "token.revoke", { detail: { id } });
      throw new CofferError("E_NOT_FOUND", `no active token with id ${id}`);
    }
    // Every instance (this one at once) drops the token from its cache and ends its watch streams.
    void s.changes.publishRevocation(id);
    if (req.query.rotate !== "true") return { id, revoked: true };
    return { id, revoked: true, ...(await rotateWhatTokensRead(s, req, id)) };
  });

  /** Refuses a role that is malformed, not configured, or not held by a caller who is not root. */
  function checkRoles(roles: readonly string[], p: Principal): void {
    const callerIsRoot = p.roles.includes(ROOT_ROLE);
    for (const role of roles) {
      if (!ROLE_NAME_RE.test(role)) throw new CofferError("E_INVALID_VALUE", `invalid role name ${JSON.stringify(role)}: must match ${ROLE_NAME_PATTERN}`);
      // the config's roles and the database's (issue 14), as the policy now in force knows them
      if (role !== ROOT_ROLE && s.policy.rulesOf(role) === undefined) {
        throw new CofferError("E_INVALID_VALUE", `unknown role ${JSON.stringify(role)}; roles: ${s.policy.roleNames.join(", ") || "(none defined)"}`);
      }
      if (!callerIsRoot && !p.roles.includes(role)) {
        throw new CofferError("E_DENIED", `you may only give roles you hold yourself; you do not hold ${JSON.stringify(role)}`);
      }
    }
  }
}

/** `POST /dev-login` (only with `devLogin: true`): a 1-hour token for any configured role, without credentials. */
export function devLoginRoute(api: FastifyInstance, s: ServerParts): void {
  const { config, storage } = s;
  if (!config.devLogin) return;
  api.post<{ Body: DevLoginBody }>("/dev-login", {
    config: { auth: false },
    schema: { summary: "DEVELOPMENT ONLY: get a 1-hour API token for any configured role, without credentials", security: [], body: DEV_LOGIN_BODY },
  }, async (req, reply) => {
    const { subject = "dev", roles } = req.body;
    if (!TOKEN_NAME_RE.test(subject)) throw new CofferError("E_INVALID_VALUE", `invalid subject ${JSON.stringify(subject)}: letters, digits and _ . @ : -`);
    for (const role of roles) {
      if (!Object.hasOwn(config.roles, role)) throw new CofferError("E_INVALID_VALUE", `unknown role ${JSON.stringify(role)}; dev-login gives configured roles only (not root)`);
    }
    const expiresAt = new Date(Date.now() + DEV_LOGIN_TTL_S * 1000);
    return reply.status(201).send(await issueToken(storage, req, "dev-login", `dev:${subject}`, roles, expiresAt, { via: "dev-login" }));
  });
}

/** Makes a token and stores it (only its hash) with its audit record; the answer shows it once. */
async function issueToken(storage: ServerStorage, req: FastifyRequest, actor: string, name: string, roles: string[], expiresAt: Date | null, detail: Record<string, unknown>) {
  const t = await storeNewToken(storage, actor, { name, roles, expiresAt }, { ...detail, ...req.auditDetail("ok") });
  return { token: t.token, id: t.id, name, roles, expiresAt: expiresAt?.toISOString() ?? null };
}

/** When a new token expires: its `ttl` (seconds, or a duration of core/durations.ts), never later than the caller's own credential. */
function tokenExpiry(ttl: number | string | undefined, p: Principal): Date | null {
  let seconds: number | undefined;
  if (typeof ttl === "number") seconds = ttl;
  else if (typeof ttl === "string") {
    // whole seconds, rounded down, at least 1s (core/durations.ts)
    const r = checkDuration(ttl, { min: 1000 });
    if ("rule" in r) {
      const why = r.rule === DURATION_RULE ? `must be a number of seconds or a duration: ${DURATION_GRAMMAR}` : r.rule;
      throw new CofferError("E_INVALID_VALUE", `invalid ttl ${JSON.stringify(ttl)}: ${why}`);
    }
    seconds = Math.floor(r.ok / 1000);
  }
  if (seconds !== undefined && !(seconds <= MAX_TOKEN_TTL_S)) {
    throw new CofferError("E_INVALID_VALUE", `invalid ttl: more than 100 years (${MAX_TOKEN_TTL_S} s); leave ttl out for a token that does not expire`);
  }
  let expires = seconds === undefined ? null : new Date(Date.now() + seconds * 1000);
  // A token never outlives the credential that made it.
  if (p.expiresAt !== null && (expires === null || expires > p.expiresAt)) expires = p.expiresAt;
  return expires;
}
