/**
 * Who is calling: `Authorization: Bearer <credential>`, where the credential is a `cof_` API
 * token (looked up by its SHA-256, refused once revoked or expired) or a JWT checked by
 * {@link JwtVerifier}. Anything else is refused with a reason for the metrics; the reason
 * never carries the credential.
 *
 * Token lookups are cached by the token's hash for at most {@link TOKEN_CACHE_MS}, so a read
 * does not ask the database who its token is; revocation stays safe (docs/design.md §9): an entry
 * is believed for at most 1 s after the database last said the token was good, every entry is
 * dropped at once when a revocation is published on this instance or arrives on the change bus
 * from another, and while the change bus is down the cache is not used at all (fail closed). So
 * a revoked token is refused within 1 s on every instance, and at once on the one that revoked it.
 */
import { CofferError } from "../errors.ts";
import { hashToken, sameHash, TOKEN_PATTERN, TOKEN_PREFIX } from "./keys.ts";
import { JwtError, looksLikeJwt, type JwtVerifier } from "./jwt.ts";
import { ROOT_ROLE } from "./policy.ts";
import type { ChangeBus } from "./changes.ts";
import type { ServerStorage, StoredToken } from "../storage/types.ts";

/** The longest a token lookup is believed without asking the storage again. */
export const TOKEN_CACHE_MS = 1000;
/** The most tokens the cache holds (the oldest entry goes first). */
const TOKEN_CACHE_MAX = 10_000;

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
  /**
   * a JWT caller's verified payload (deep-frozen), for runbooks' `require: { claims }`; absent
   * for tokens and certificates, which never match a claim rule. Not for logs or the audit.
   */
  claims?: Readonly<Record<string, unknown>>;
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
  readonly #bus: Pick<ChangeBus, "healthy" | "onRevocation"> | undefined;
  readonly #cache = new Map<string, { token: StoredToken; until: number }>();
  /** bumped by every revocation: a lookup that started before one does not fill the cache */
  #generation = 0;
  readonly #unsubscribe: () => void;

  /**
   * @param bus - the change bus whose revocations drop cached tokens; without one, nothing is cached
   */
  constructor(storage: ServerStorage, jwt: JwtVerifier | undefined, bus?: Pick<ChangeBus, "healthy" | "onRevocation">) {
    this.#storage = storage;
    this.#jwt = jwt;
    this.#bus = bus;
    this.#unsubscribe = bus?.onRevocation(() => this.forget()) ?? (() => {});
  }

  /** Drops every cached token (a token was revoked somewhere). */
  forget(): void {
    this.#generation++;
    this.#cache.clear();
  }

  /** Stops listening for revocations and empties the cache. */
  close(): void {
    this.#unsubscribe();
    this.forget();
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
        return { subject: `jwt:${claims.subject}`, kind: "jwt", roles, expiresAt: claims.expiresAt ?? null, claims: claims.claims };
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
    const stored = await this.#lookup(hash);
    if (stored === undefined || !sameHash(stored.hash, hash)) throw new AuthError("unknown_token", "the API token is not valid");
    if (stored.revokedAt !== null) throw new AuthError("revoked", "the API token was revoked");
    const expiresAt = stored.expiresAt === null ? null : new Date(stored.expiresAt);
    if (expiresAt !== null && expiresAt.getTime() <= Date.now()) throw new AuthError("expired", "the API token has expired");
    return { subject: `token:${stored.id}`, kind: "token", roles: stored.roles, expiresAt, tokenId: stored.id };
  }

  /** The token with this hash: from the cache while the change bus is healthy, else from the storage. */
  async #lookup(hash: Buffer): Promise<StoredToken | undefined> {
    if (this.#bus === undefined) return this.#storage.findToken(hash);
    if (!this.#bus.healthy()) {
      // Revocations from other instances may be missed now: believe only the database.
      if (this.#cache.size > 0) this.forget();
      return this.#storage.findToken(hash);
    }
    const key = hash.toString("base64");
    const started = Date.now();
    const hit = this.#cache.get(key);
    if (hit !== undefined && hit.until > started) return hit.token;
    const generation = this.#generation;
    const token = await this.#storage.findToken(hash);
    if (token !== undefined && token.revokedAt === null && generation === this.#generation && this.#bus.healthy()) {
      this.#cache.delete(key);
      if (this.#cache.size >= TOKEN_CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(key, { token, until: started + TOKEN_CACHE_MS });
    }
    return token;
  }
}
