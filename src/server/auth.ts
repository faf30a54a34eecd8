/**
 * Who is calling: `Authorization: Bearer <credential>`, where the credential is a `cof_` API
 * token (looked up by its SHA-256, refused once revoked or expired) or a JWT checked by
 * {@link JwtVerifier}. Anything else is refused with a reason for the metrics; the reason
 * never carries the credential.
 */
import { CofferError } from "../errors.ts";
import { hashToken, sameHash, TOKEN_PATTERN, TOKEN_PREFIX } from "./keys.ts";
import { JwtError, looksLikeJwt, type JwtVerifier } from "./jwt.ts";
import { ROOT_ROLE } from "./policy.ts";
import type { ServerStorage } from "../storage/types.ts";

/** An authenticated caller. */
export interface Principal {
  /** `token:<id>`, `jwt:<sub>` or `cert:<cn>`: the audit's actor */
  subject: string;
  kind: "token" | "jwt" | "cert";
  roles: string[];
  /** when the credential stops working, if it does */
  expiresAt: Date | null;
  /** the API token's id, for self-revocation */
  tokenId?: string;
  /** on mutual TLS with a bearer credential too: the client certificate's name, for the audit */
  certificate?: string;
}

/** Why authentication failed, for `coffer_auth_failures_total{reason}`. */
export type AuthFailureReason =
  | "missing" | "malformed" | "unknown_token" | "revoked" | "expired" | "jwt_disabled"
  | `jwt_${JwtError["reason"]}`;

/** A 401: the credential is missing or does not authenticate. */
export class AuthError extends CofferError {
  readonly reason: AuthFailureReason;
  constructor(reason: AuthFailureReason, message: string) {
    super("E_UNAUTHENTICATED", message);
    this.name = "AuthError";
    this.reason = reason;
  }
}

/** Checks bearer credentials against the token table and the JWT configuration. */
export class Authenticator {
  readonly #storage: ServerStorage;
  readonly #jwt: JwtVerifier | undefined;

  constructor(storage: ServerStorage, jwt: JwtVerifier | undefined) {
    this.#storage = storage;
    this.#jwt = jwt;
  }

  /**
   * @param header - the Authorization header, if any
   * @throws AuthError
   */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (header === undefined || header === "") {
      throw new AuthError("missing", "no credentials: send Authorization: Bearer <token>");
    }
    const match = /^Bearer +(\S+) *$/i.exec(header);
    if (match === null) throw new AuthError("malformed", "the Authorization header must be `Bearer <token>`");
    const credential = match[1]!;
    if (credential.startsWith(TOKEN_PREFIX)) return this.#token(credential);
    if (looksLikeJwt(credential)) {
      if (this.#jwt === undefined) throw new AuthError("jwt_disabled", "this server does not accept JWTs (no jwt: in its config); use an API token");
      try {
        const claims = await this.#jwt.verify(credential);
        // The built-in root role is never taken from an identity provider's claim: an IdP
        // that lets users name their own groups must not make them root.
        const roles = claims.roles.filter((r) => r !== ROOT_ROLE);
        return { subject: `jwt:${claims.subject}`, kind: "jwt", roles, expiresAt: claims.expiresAt ?? null };
      } catch (err) {
        if (err instanceof JwtError) throw new AuthError(`jwt_${err.reason}`, err.message);
        throw err;
      }
    }
    throw new AuthError("malformed", "the bearer credential is neither a coffer API token (cof_…) nor a JWT");
  }

  async #token(token: string): Promise<Principal> {
    if (!TOKEN_PATTERN.test(token)) throw new AuthError("malformed", "the API token is malformed: cof_ and 43 base64url characters");
    const hash = hashToken(token);
    const stored = await this.#storage.findToken(hash);
    if (stored === undefined || !sameHash(stored.hash, hash)) throw new AuthError("unknown_token", "the API token is not valid");
    if (stored.revokedAt !== null) throw new AuthError("revoked", "the API token was revoked");
    const expiresAt = stored.expiresAt === null ? null : new Date(stored.expiresAt);
    if (expiresAt !== null && expiresAt.getTime() <= Date.now()) throw new AuthError("expired", "the API token has expired");
    return { subject: `token:${stored.id}`, kind: "token", roles: stored.roles, expiresAt, tokenId: stored.id };
  }
}
