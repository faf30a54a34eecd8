/**
 * JWTs as bearer credentials (`Authorization: Bearer <jwt>`), verified with jose.
 *
 * The algorithms are pinned by the configuration (never `none`, never HMAC with a key set, never
 * an asymmetric algorithm with a shared secret, so no algorithm confusion), the issuer and the
 * audience must be the configured ones, and `exp` and `sub` are required: no eternal JWTs, and none
 * that lives longer than `jwt.maxLifetime` (from `iat`, or from now without it).
 * Every failure is a {@link JwtError} whose message is short and fixed: it never carries the token
 * or a claim value.
 */
import { createSecretKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from "jose";
import { CofferError } from "../errors.ts";
import { isLoopbackHost } from "../core/token-transport.ts";
import { algorithmRules } from "./config-check.ts";
import { DEFAULT_JWT_MAX_LIFETIME_MS } from "./config-schema.ts";
import type { JwtConfig } from "./config.ts";

/** What a verified JWT says about its holder: `sub`, the roles claim ([] when absent), `exp`, `iss`. */
export interface JwtClaims {
  subject: string;
  roles: string[];
  expiresAt?: Date;
  issuer: string;
  /**
   * the whole verified payload, deep-frozen, without prototype on any object: what a runbook's
   * `require: { claims }` is checked against (runbooks/claims.ts). Never logged: claims may be personal.
   */
  claims: Readonly<Record<string, unknown>>;
}

/** Verifies a bearer JWT. */
export interface JwtVerifier {
  /** The claims, once signature, algorithm, issuer, audience and times check out. @throws JwtError otherwise */
  verify(token: string): Promise<JwtClaims>;
}

/** Tolerated clock difference with the issuer, in seconds, for `exp` and `nbf`. */
export const CLOCK_SKEW_SECONDS = 60;

const MESSAGES = {
  expired: "the JWT has expired",
  not_yet_valid: "the JWT is not yet valid",
  signature: "the JWT's signature does not verify",
  algorithm: "the JWT's algorithm is not allowed",
  issuer: "the JWT's issuer is not the configured one",
  audience: "the JWT's audience is not the configured one",
  malformed: "the JWT is malformed",
  claims: "the JWT has no sub/exp claim",
  lifetime: "the JWT lives longer than the server's jwt.maxLifetime allows: ask the issuer for a shorter-lived token",
  jwks: "the JWT's signing key is not in the configured key set",
} as const;

/** Why a JWT was refused, for metrics (`coffer_auth_failures_total{reason="jwt_…"}`). */
export type JwtFailureReason = keyof typeof MESSAGES;

/** A JWT was refused (HTTP 401). The message is fixed per reason and leaks nothing. */
export class JwtError extends CofferError {
  readonly reason: JwtFailureReason;

  constructor(reason: JwtFailureReason, message: string = MESSAGES[reason]) {
    super("E_UNAUTHENTICATED", message);
    this.name = "JwtError";
    this.reason = reason;
  }
}

/** A bearer JWT longer than this is refused before any parsing. */
const MAX_JWT_LENGTH = 16 * 1024;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** The longest `sub` accepted. */
const MAX_SUBJECT_LENGTH = 256;
/** How long to wait for the JWKS URL. */
const JWKS_TIMEOUT_MS = 5000;

/**
 * True when a bearer credential looks like a JWT in compact serialization (three base64url
 * parts; the last may be empty so that an unsigned token still reaches the verifier and is
 * refused there with a JWT reason) rather than a `cof_` API token.
 */
export function looksLikeJwt(token: string): boolean {
  return token.length <= MAX_JWT_LENGTH && !token.startsWith("cof_") && JWT_SHAPE.test(token);
}

/** A configuration problem found while building the verifier. */
function configError(message: string, options?: ErrorOptions): CofferError {
  return new CofferError("E_CONFIG", `server config jwt: ${message}`, options);
}

/** Marks a failure to obtain the key set (fetch, timeout, bad response), as opposed to a bad token. */
class KeySetUnavailable extends Error {}

async function loadJwksFile(file: string): Promise<JWTVerifyGetKey> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw configError(`cannot read jwksFile ${JSON.stringify(file)}: ${(cause as NodeJS.ErrnoException).code ?? "error"}`, { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw configError(`jwksFile ${JSON.stringify(file)} is not JSON: it must be a JSON Web Key Set {"keys": [...]}`);
  }
  if (
    typeof parsed !== "object" || parsed === null || !("keys" in parsed) || !Array.isArray(parsed.keys) ||
    parsed.keys.length === 0 || !parsed.keys.every((k: unknown) => typeof k === "object" && k !== null && !Array.isArray(k))
  ) {
    throw configError(`jwksFile ${JSON.stringify(file)} must be a JSON Web Key Set {"keys": [...]} with at least one key`);
  }
  for (const key of parsed.keys as Array<Record<string, unknown>>) {
    // A key set is public: a private or symmetric key in it is a leak or a mistake.
    if (key.kty === "oct" || "d" in key || "k" in key) {
      throw configError(`jwksFile ${JSON.stringify(file)} holds a private or symmetric key: publish public keys only`);
    }
  }
  try {
    return createLocalJWKSet(parsed as JSONWebKeySet);
  } catch (cause) {
    throw configError(`jwksFile ${JSON.stringify(file)} is not a usable JSON Web Key Set`, { cause });
  }
}

function remoteJwks(url: string): JWTVerifyGetKey {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw configError("jwksUrl is not a URL");
  }
  if (parsed.protocol !== "https:" && !(parsed.protocol === "http:" && isLoopbackHost(parsed.hostname))) {
    throw configError("jwksUrl must be https:// (plain http:// only for a loopback host)");
  }
  if (parsed.username !== "" || parsed.password !== "") {
    throw configError("jwksUrl must not carry credentials");
  }
  const remote = createRemoteJWKSet(parsed, { timeoutDuration: JWKS_TIMEOUT_MS });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      throw new KeySetUnavailable("the JWKS could not be fetched", { cause: err });
    }
  };
}

/** Maps whatever jwtVerify threw to a JwtError; unknown failures are refused as malformed. */
function toJwtError(err: unknown): JwtError {
  if (err instanceof JwtError) return err;
  if (err instanceof KeySetUnavailable) return new JwtError("jwks", "the JWT cannot be checked: the configured key set (jwksUrl) could not be fetched");
  if (!(err instanceof errors.JOSEError)) return new JwtError("malformed");
  const { claim } = err as errors.JWTClaimValidationFailed;
  const reason = err.code === "ERR_JWT_CLAIM_VALIDATION_FAILED" ? CLAIM_REASONS.get(claim) : CODE_REASONS.get(err.code);
  return new JwtError(reason ?? "malformed");
}

/** jose's error codes and failed claims → the reason of the refusal; anything else is "malformed". */
const CODE_REASONS = new Map<string, JwtFailureReason>([
  ["ERR_JWT_EXPIRED", "expired"],
  ["ERR_JWS_SIGNATURE_VERIFICATION_FAILED", "signature"],
  ["ERR_JOSE_ALG_NOT_ALLOWED", "algorithm"],
  ["ERR_JOSE_NOT_SUPPORTED", "algorithm"],
  ["ERR_JWKS_NO_MATCHING_KEY", "jwks"],
  ["ERR_JWKS_MULTIPLE_MATCHING_KEYS", "jwks"],
]);
const CLAIM_REASONS = new Map<string, JwtFailureReason>([
  ["iss", "issuer"], ["aud", "audience"], ["nbf", "not_yet_valid"], ["exp", "claims"], ["sub", "claims"],
]);

/**
 * Reads the roles claim. A dotted name is a path into nested objects ("realm_access.roles" as
 * Keycloak does), unless the payload has a top-level claim of that exact name (namespaced claims
 * such as "https://example.com/roles" contain dots). The value may be an array of strings or a
 * string of space-separated roles; absent means no roles.
 */
function readRoles(payload: JWTPayload, claimName: string): string[] {
  let value: unknown;
  if (Object.hasOwn(payload, claimName)) {
    value = payload[claimName];
  } else {
    value = payload;
    for (const part of claimName.split(".")) {
      // Own properties only: "__proto__" or "constructor" must not reach Object.prototype.
      if (typeof value !== "object" || value === null || Array.isArray(value) || !Object.hasOwn(value, part)) {
        return [];
      }
      value = (value as Record<string, unknown>)[part];
    }
  }
  if (value === undefined || value === null) return [];
  const list = typeof value === "string" ? value.split(" ") : value;
  if (!Array.isArray(list) || !list.every((r): r is string => typeof r === "string")) {
    throw new JwtError("claims", "the JWT's roles claim is neither a string nor a list of strings");
  }
  return [...new Set(list.filter((r) => r !== ""))];
}

/**
 * A deep copy of JSON data, frozen, its objects without a prototype (so `claims.constructor` or
 * `claims.__proto__` is only ever a claim of that name, never something inherited).
 */
function frozenCopy(value: unknown): unknown {
  if (Array.isArray(value)) return Object.freeze(value.map(frozenCopy));
  if (value === null || typeof value !== "object") return value;
  const out = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value)) out[k] = frozenCopy(v);
  return Object.freeze(out);
}

/**
 * Builds a verifier from the server's `jwt:` config: HS256/384/512 with the shared `secret`, or a
 * JSON Web Key Set from `jwksFile` (read once, now) or `jwksUrl` (fetched and cached by jose; https
 * only unless the host is loopback). Every refusal of the verifier is a {@link JwtError}.
 * @throws CofferError E_CONFIG when the key source, the algorithms or the key set break a rule
 */
export async function createJwtVerifier(config: JwtConfig): Promise<JwtVerifier> {
  const sources = [config.secret, config.jwksFile, config.jwksUrl].filter((s) => s !== undefined);
  if (sources.length !== 1) throw configError("set exactly one of secret, jwksFile and jwksUrl");
  if (typeof config.issuer !== "string" || config.issuer === "") throw configError("issuer is required");
  if (typeof config.audience !== "string" || config.audience === "") throw configError("audience is required");
  if (typeof config.rolesClaim !== "string" || config.rolesClaim === "") throw configError("rolesClaim is required");

  const rules = algorithmRules(config.algorithms, config.secret !== undefined);
  if (rules.length > 0) throw configError(`algorithms: ${rules.join("; ")}`);
  let key: KeyObject | JWTVerifyGetKey;
  if (config.secret !== undefined) {
    // Length and known defaults: weakSecretRule, at config load.
    if (config.secret === "") throw configError("secret is empty");
    key = createSecretKey(Buffer.from(config.secret, "utf8"));
  } else {
    key = config.jwksFile !== undefined ? await loadJwksFile(config.jwksFile) : remoteJwks(config.jwksUrl ?? "");
  }

  const options = {
    algorithms: config.algorithms,
    issuer: config.issuer,
    audience: config.audience,
    clockTolerance: CLOCK_SKEW_SECONDS,
    requiredClaims: ["exp", "sub"],
  };
  const rolesClaim = config.rolesClaim;
  const maxLifetimeS = (config.maxLifetimeMs ?? DEFAULT_JWT_MAX_LIFETIME_MS) / 1000;

  return {
    async verify(token: string): Promise<JwtClaims> {
      if (typeof token !== "string" || !looksLikeJwt(token)) throw new JwtError("malformed");
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, options));
      } catch (err) {
        throw toJwtError(err);
      }
      const { sub, exp, iss, iat } = payload;
      if (typeof sub !== "string" || sub === "" || typeof exp !== "number" || typeof iss !== "string") {
        throw new JwtError("claims");
      }
      // An exp far away (1e300) is a JWT that never expires, and no date either: refused here,
      // before anything turns it into a Date. The lifetime counts from iat when the JWT has one
      // (an iat in the future counts from now: it must not stretch the limit).
      const now = Date.now() / 1000;
      const issuedAt = typeof iat === "number" && Number.isFinite(iat) ? Math.min(iat, now) : now;
      if (!Number.isFinite(exp) || exp - issuedAt > maxLifetimeS) throw new JwtError("lifetime");
      // The subject becomes the audit's actor (`jwt:<sub>`): keep it one short printable line.
      if (sub.length > MAX_SUBJECT_LENGTH || /\p{Cc}/u.test(sub)) {
        throw new JwtError("claims", `the JWT's sub claim is longer than ${MAX_SUBJECT_LENGTH} characters or holds control characters`);
      }
      return { subject: sub, roles: readRoles(payload, rolesClaim), expiresAt: new Date(exp * 1000), issuer: iss, claims: frozenCopy(payload) as Record<string, unknown> };
    },
  };
}
