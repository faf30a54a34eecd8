/**
 * Vault's shapes on the wire (docs/design.md §13): the response envelope, `{"errors":[…]}` with
 * Vault's status codes for every error on the Vault routes, a Vault path read as a coffer secret
 * name, and the credential a Vault client sends (`X-Vault-Token`, or `Authorization: Bearer`).
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { CofferError } from "../../errors.ts";
import { assertSecretName, isSecretName } from "../../core/names.ts";

/** Vault's message for a CAS mismatch (its clients match on it). */
export const CAS_MISMATCH = "check-and-set parameter did not match the current version";

/** Vault's response envelope around `data`. */
export function envelope(req: FastifyRequest, data: unknown): Record<string, unknown> {
  return { request_id: req.id, lease_id: "", renewable: false, lease_duration: 0, data, wrap_info: null, warnings: null, auth: null, mount_type: "kv" };
}

/** A Vault error answer: `errors` are messages (never values). */
export class VaultError extends Error {
  readonly status: number;
  readonly errors: string[];
  constructor(status: number, errors: string[]) {
    super(errors.join("; ") || `vault error ${status}`);
    this.status = status;
    this.errors = errors;
  }
}

/** The status and `errors` a Vault client gets for any error thrown on a Vault route. */
export function vaultErrorOf(err: unknown): { status: number; errors: string[] } {
  if (err instanceof VaultError) return { status: err.status, errors: err.errors };
  if (err instanceof CofferError) {
    switch (err.code) {
      case "E_UNAUTHENTICATED":
      case "E_DENIED":
        return { status: 403, errors: ["permission denied"] };
      case "E_NOT_FOUND":
        return { status: 404, errors: [] };
      case "E_CONFLICT":
        return { status: 400, errors: [CAS_MISMATCH] };
      case "E_RATE_LIMITED":
        return { status: 429, errors: [err.message] };
      case "E_INVALID_NAME":
      case "E_INVALID_VALUE":
      case "E_USAGE":
        return { status: 400, errors: [err.message] };
      case "E_TOO_LARGE":
        return { status: 413, errors: [err.message] };
      default:
        return { status: 500, errors: ["internal error"] };
    }
  }
  const e = err as { statusCode?: number; validation?: unknown; code?: string; message?: string };
  if (e.validation !== undefined) return { status: 400, errors: [`invalid request: ${e.message ?? "does not match the schema"}`] };
  if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return { status: 415, errors: ["unsupported media type: send JSON (PATCH: application/merge-patch+json)"] };
  if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") return { status: 413, errors: ["the request body is larger than the server's limit"] };
  if (err instanceof SyntaxError || e.statusCode === 400) return { status: 400, errors: ["failed to parse JSON input"] };
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) return { status: e.statusCode, errors: ["the request is not acceptable"] };
  return { status: 500, errors: ["internal error"] };
}

/** Sends a Vault error. */
export function sendVaultError(reply: FastifyReply, status: number, errors: string[]): FastifyReply {
  return reply.status(status).send({ errors });
}

/**
 * The coffer secret name of a Vault path: the raw URL after `prefix`, its query dropped. A `%`
 * is refused (names never need it: see secretPath of routes/secrets.ts), and so is anything the
 * name rule refuses. With `listing`, an empty path and a trailing `/` are allowed (a folder).
 */
export function vaultPath(req: FastifyRequest, prefix: string, listing = false): string {
  const raw = (req.raw.url ?? "").split("?")[0] ?? "";
  // `/v1/{mount}/metadata` without its slash is the mount's root folder: an empty path.
  const rest = raw.startsWith(prefix) ? raw.slice(prefix.length) : "";
  if (rest.includes("%")) throw new CofferError("E_INVALID_NAME", "invalid path: percent-encoded characters are refused; coffer names are letters, digits, '_', '.', '-' and '/' as they are");
  if (listing) {
    const folder = rest.endsWith("/") ? rest.slice(0, -1) : rest;
    if (folder !== "" && !isSecretName(folder)) assertSecretName(folder);
    return folder;
  }
  if (!isSecretName(rest)) assertSecretName(rest);
  return rest;
}

/**
 * The credential of a Vault request as coffer's `Authorization` header: `X-Vault-Token` wins
 * over `Authorization: Bearer` (both carry coffer tokens or JWTs). A non-empty
 * `X-Vault-Namespace` is refused: coffer has no namespaces.
 * @throws VaultError 400 for a namespace
 */
export function vaultCredential(req: FastifyRequest): void {
  const ns = req.headers["x-vault-namespace"];
  if (ns !== undefined && (Array.isArray(ns) ? ns.join("") : ns).trim() !== "") {
    throw new VaultError(400, ["coffer has no Vault namespaces: send no X-Vault-Namespace header (or an empty one)"]);
  }
  const token = req.headers["x-vault-token"];
  if (typeof token === "string" && token !== "") req.headers.authorization = `Bearer ${token}`;
}
