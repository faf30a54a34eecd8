/**
 * The rotation calls of the coffer server's API (docs/design.md §12): a secret's rotation policy
 * (`PUT`/`GET`/`DELETE /v1/rotation/{name}`), rotate now (`POST /v1/rotation/{name}`), the
 * policies (`GET /v1/rotation`, `?due=true`), and revoking a token with rotation
 * (`DELETE /v1/tokens/{id}?rotate=true`). Every request goes through {@link CofferClient.request}
 * (auth, timeouts, error mapping: a failed rotation is E_ROTATION with the server's message); every
 * answer is checked field by field (shape.ts) before it is returned.
 */
import { CofferError } from "../errors.ts";
import { assertSecretName } from "../core/names.ts";
import type { CofferClient } from "./client.ts";
import { field, shapeError, str, whole } from "./shape.ts";
import type {
  RotationApply, RotationCharset, RotationGenerate, RotationPolicyBody, RotationReport, RotationResult, RotationState, RotationView,
} from "./wire.ts";

export type { RotationApply, RotationGenerate, RotationPolicyBody, RotationReport, RotationResult, RotationView } from "./wire.ts";

const CHARSETS: readonly RotationCharset[] = ["alnum", "hex", "base64", "words"];
const STATES: readonly RotationState[] = ["ok", "rotating", "failing", "unknown"];

/** What revoking a token with rotation did: the token, and the two lists of {@link RotationReport}. */
export interface TokenRevocationReport extends RotationReport {
  id: string;
  revoked: boolean;
}

/**
 * Parses `--apply-postgres CONNECTION_SECRET:ROLE` (split at the last `:`: a secret name holds
 * no `:`, a role name may not either).
 * @throws CofferError E_USAGE when either part is empty
 */
export function parsePostgresApply(text: string): { postgres: { connection: string; role: string } } {
  const at = text.lastIndexOf(":");
  const connection = at === -1 ? "" : text.slice(0, at);
  const role = at === -1 ? "" : text.slice(at + 1);
  if (connection === "" || role === "") {
    throw new CofferError("E_USAGE", `invalid --apply-postgres ${JSON.stringify(text.slice(0, 80))}: give CONNECTION_SECRET:ROLE, e.g. db/admin-url:app_user`);
  }
  assertSecretName(connection);
  return { postgres: { connection, role } };
}

/**
 * The rotation API of one server, over a {@link CofferClient}.
 *
 * @example
 * const rotation = new RotationClient(client);
 * await rotation.setPolicy("app/hmac-key", { every: "30d", generate: { charset: "alnum", length: 32 } });
 * const { version } = await rotation.rotateNow("app/hmac-key");
 */
export class RotationClient {
  readonly #client: CofferClient;

  constructor(client: CofferClient) {
    this.#client = client;
  }

  /** the server's URL */
  get url(): string {
    return this.#client.url;
  }

  /**
   * Sets (creates or replaces) a secret's rotation policy.
   * @throws CofferError E_INVALID_NAME; ServerError E_DENIED (needs rotate on the name),
   *   E_INVALID_VALUE (bad period, generator or apply), E_NOT_FOUND (no such secret), …
   */
  async setPolicy(name: string, policy: RotationPolicyBody): Promise<RotationView> {
    assertSecretName(name);
    const payload: RotationPolicyBody = {
      ...(policy.every !== undefined && { every: policy.every }),
      generate: { charset: policy.generate.charset, length: policy.generate.length },
      ...(policy.apply !== undefined && { apply: policy.apply }),
    };
    return this.#view(await this.#client.request("PUT", rotationPath(name), { payload }), `setting the rotation of ${name}`);
  }

  /**
   * A secret's rotation policy and state.
   * @throws ServerError E_NOT_FOUND when it has none, E_DENIED, …
   */
  async getPolicy(name: string): Promise<RotationView> {
    assertSecretName(name);
    return this.#view(await this.#client.request("GET", rotationPath(name)), `the rotation of ${name}`);
  }

  /**
   * Removes a secret's rotation policy (the secret and its versions stay).
   * @throws ServerError E_NOT_FOUND when it has none, E_DENIED, …
   */
  async deletePolicy(name: string): Promise<void> {
    assertSecretName(name);
    const body = await this.#client.request("DELETE", rotationPath(name));
    if (field(body, "deleted") !== true) throw shapeError(this.url, `removing the rotation of ${name}`, "deleted");
  }

  /**
   * Rotates a secret now: generate, apply, test, write.
   * @returns the new version
   * @throws ServerError E_ROTATION when the apply or its test failed (no version was written; the
   *   message says why), E_CONFLICT when a rotation of it is in progress, E_NOT_FOUND (no policy), …
   */
  async rotateNow(name: string): Promise<RotationResult> {
    assertSecretName(name);
    const body = await this.#client.request("POST", rotationPath(name));
    const what = `rotating ${name}`;
    const got = str(body, "name", what, this.url);
    if (got !== name) throw new CofferError("E_PROVIDER", `server ${this.url}: answered for rotating ${name} with another secret`);
    return { name, version: whole(body, "version", what, this.url), rotatedAt: str(body, "rotatedAt", what, this.url) };
  }

  /**
   * The rotation policies you may see, by name; with `due`, only those whose time has passed.
   * @throws ServerError E_DENIED, …
   */
  async listPolicies(options: { due?: boolean } = {}): Promise<RotationView[]> {
    const body = await this.#client.request("GET", `/v1/rotation${options.due === true ? "?due=true" : ""}`);
    const rows = field(body, "rotations");
    if (!Array.isArray(rows)) throw shapeError(this.url, "the rotation policies", "rotations");
    return rows.map((r: unknown) => this.#view(r, "the rotation policies"));
  }

  /**
   * Revokes an API token and rotates the secrets it and the tokens it made read (from the audit
   * chain); those that could not be rotated are listed with why.
   * @throws CofferError E_USAGE for an id that is not 16 hex digits; ServerError E_NOT_FOUND, E_DENIED, …
   */
  async revokeToken(id: string): Promise<TokenRevocationReport> {
    if (!/^[0-9a-f]{16}$/.test(id)) throw new CofferError("E_USAGE", "a token id is 16 hex digits, as `coffer token list` shows it");
    const body = await this.#client.request("DELETE", `/v1/tokens/${id}?rotate=true`);
    const what = "the revocation";
    const revoked = field(body, "revoked");
    if (typeof revoked !== "boolean") throw shapeError(this.url, what, "revoked");
    return { id: str(body, "id", what, this.url), revoked, ...reportOf(body, what, this.url) };
  }

  #view(v: unknown, what: string): RotationView {
    const url = this.url;
    const nullable = (key: string): string | null => {
      const x = field(v, key);
      if (x !== null && typeof x !== "string") throw shapeError(url, what, key);
      return x;
    };
    const state = field(v, "state");
    if (typeof state !== "string" || !(STATES as readonly string[]).includes(state)) throw shapeError(url, what, "state");
    const due = field(v, "due");
    if (typeof due !== "boolean") throw shapeError(url, what, "due");
    return {
      name: str(v, "name", what, url),
      every: nullable("every"),
      generate: generateOf(field(v, "generate"), what, url),
      apply: applyOf(field(v, "apply"), what, url),
      state: state as RotationState,
      nextAt: nullable("nextAt"),
      due,
      lastRotatedAt: nullable("lastRotatedAt"),
      lastError: nullable("lastError"),
      lastErrorAt: nullable("lastErrorAt"),
      failures: whole(v, "failures", what, url),
      updatedAt: str(v, "updatedAt", what, url),
      updatedBy: str(v, "updatedBy", what, url),
    };
  }
}

/** The `rotated` and `manual` lists of an answer, checked. */
export function reportOf(body: unknown, what: string, url: string): RotationReport {
  const rotated = field(body, "rotated");
  const manual = field(body, "manual");
  if (!Array.isArray(rotated)) throw shapeError(url, what, "rotated");
  if (!Array.isArray(manual)) throw shapeError(url, what, "manual");
  return {
    rotated: rotated.map((r: unknown) => ({ name: str(r, "name", what, url), version: whole(r, "version", what, url) })),
    manual: manual.map((r: unknown) => ({ name: str(r, "name", what, url), reason: str(r, "reason", what, url) })),
  };
}

function generateOf(g: unknown, what: string, url: string): RotationGenerate {
  const charset = field(g, "charset");
  if (typeof charset !== "string" || !(CHARSETS as readonly string[]).includes(charset)) throw shapeError(url, what, "generate.charset");
  const length = field(g, "length");
  if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 1) throw shapeError(url, what, "generate.length");
  return { charset: charset as RotationCharset, length };
}

function applyOf(a: unknown, what: string, url: string): RotationApply {
  if (a === null) return null;
  const runbook = field(a, "runbook");
  if (typeof runbook === "string") return { runbook };
  const pg = field(a, "postgres");
  const connection = field(pg, "connection");
  const role = field(pg, "role");
  if (typeof connection === "string" && typeof role === "string") return { postgres: { connection, role } };
  throw shapeError(url, what, "apply");
}

function rotationPath(name: string): string {
  return `/v1/rotation/${name.split("/").map(encodeURIComponent).join("/")}`;
}
