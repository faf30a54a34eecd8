/**
 * A small typed client for the coffer server's HTTP API (`/v1/secrets`, `/v1/rollback`, `/v1/purge`,
 * `/v1/delete`, `/v1/undelete`, `/v1/destroy`,
 * `/v1/auth/self`, `/v1/sys/health`), used by the `server` provider and by `coffer login`. Every answer is
 * validated before it is returned; every failure is a {@link CofferError} that names the server
 * and never carries the token or a value. {@link CofferClient.send} is the one way a request
 * reaches the server; other API areas build on it in their own modules (`runbooks.ts`, `admin.ts`).
 * What a failed request becomes, and the retry rule, are in `server-error.ts`; the URL, token
 * and TLS files in `server-url.ts`.
 */
import { CofferError } from "../errors.ts";
import { readCapped, tlsFetch, type ClientTls } from "./http.ts";
import { fetchError, retryDelay, ServerError, sleep, statusError } from "./server-error.ts";
import { assertTokenText, normaliseServerUrl, readClientTls, type ClientTlsFiles } from "./server-url.ts";
import { tokenTransportRule } from "../core/token-transport.ts";
import { assertSecretName } from "../core/names.ts";
import { jsonValue, type SecretListing, type VersionInfo, type VersionState } from "../core/secret.ts";
import { field, shapeError, str, whole } from "./shape.ts";

/** Largest response body read from the server, in bytes; more is refused (E_PROVIDER). */
export const SERVER_MAX_RESPONSE_BYTES = 2 * 1024 * 1024;

/** Default per-request timeout (headers and body), in milliseconds. */
export const SERVER_TIMEOUT_MS = 10_000;

/** Options of {@link CofferClient}. */
export interface CofferClientOptions {
  /** the server's base URL, `http(s)://host[:port][/path]` */
  url: string;
  /** an API token (`cof_…`) or a JWT; sent as `Authorization: Bearer` */
  token?: string;
  /** per-request timeout, headers and body (default {@link SERVER_TIMEOUT_MS}) */
  timeoutMs?: number;
  /** aborts every request in flight and later ones (a provider's close()) */
  signal?: AbortSignal;
  /** the fetch to use (tests) */
  fetch?: typeof fetch;
  /** a private CA to trust and a client certificate to present (`coffer login --ca/--cert/--key`) */
  tls?: ClientTlsFiles;
  /** what a 401's message adds, saying how to get a working credential (the CLI: log in again) */
  loginHint?: string;
  /**
   * how many times a GET or HEAD is sent at most (default 1: no retry; `connect()` uses 3). A
   * retry follows a network error, a timeout or a 5xx after a backoff (200 ms, doubling, to 2 s,
   * with jitter), or a 429 after its Retry-After (when that is at most {@link MAX_RETRY_AFTER_MS});
   * a 4xx is never retried, nor a request that sends a body.
   */
  attempts?: number;
  /** PEM material to use instead of files (`connect({ ca, cert, key })` with buffers); not with `tls` */
  tlsPem?: ClientTls;
}

/** One version of a secret, with its value. */
export interface ServerSecret {
  name: string;
  version: number;
  /** the bytes; the caller owns (and should zero) them */
  value: Buffer;
  /** when this version was written (ISO 8601) */
  createdAt: string;
  createdBy: string;
  /** when the secret last changed */
  updatedAt: string;
}

/** A row of {@link CofferClient.listSecrets}. */
export type ServerSecretInfo = Pick<SecretListing, "name" | "version" | "description" | "updatedAt" | "updatedBy">;
/** A row of {@link CofferClient.versions}. */
export type ServerVersionInfo = VersionInfo;

/** Who the token is (`GET /v1/auth/self`). */
export interface ServerSelf {
  /** e.g. `token:ab12…` */
  subject: string;
  kind: "token" | "jwt" | "cert";
  roles: string[];
  /** ISO 8601, or null when the credential does not expire */
  expiresAt: string | null;
}

/**
 * The coffer server API.
 *
 * @example
 * const client = new CofferClient({ url: "https://coffer.example.com", token: process.env.COFFER_TOKEN });
 * const s = await client.readSecret("db/prod/password");
 * try { use(s.value); } finally { s.value.fill(0); }
 */
export class CofferClient {
  /** the canonical base URL (see {@link normaliseServerUrl}) */
  readonly url: string;
  readonly #token: string | undefined;
  readonly #loginHint: string | undefined;
  readonly #timeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #attempts: number;
  /** the fetch every request to this server goes through (with its TLS settings, if any) */
  readonly fetch: typeof fetch;

  /**
   * @throws CofferError E_INVALID_VALUE for a bad URL, a bad timeout, or a token that cannot go in
   *   a header; what {@link readClientTls} throws for `tls`
   */
  constructor(options: CofferClientOptions) {
    this.url = normaliseServerUrl(options.url);
    // fetch would echo a bad header value in its error; refuse it before any request.
    if (options.token !== undefined) assertTokenText(options.token);
    const transport = options.token !== undefined ? tokenTransportRule(this.url) : undefined;
    if (transport !== undefined) throw new CofferError("E_USAGE", `${this.url}: coffer ${transport}`);
    const timeoutMs = options.timeoutMs ?? SERVER_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
      throw new CofferError("E_INVALID_VALUE", `a timeout is a whole number of milliseconds from 1, got ${timeoutMs}`);
    }
    this.#token = options.token;
    this.#loginHint = options.loginHint;
    this.#timeoutMs = timeoutMs;
    this.#signal = options.signal;
    const attempts = options.attempts ?? 1;
    if (!Number.isSafeInteger(attempts) || attempts < 1 || attempts > 10) {
      throw new CofferError("E_INVALID_VALUE", `attempts is a whole number from 1 to 10, got ${attempts}`);
    }
    this.#attempts = attempts;
    if (options.tls !== undefined && options.tlsPem !== undefined) throw new CofferError("E_USAGE", "give TLS files or PEM material, not both");
    if (options.tlsPem !== undefined && !this.url.startsWith("https://")) {
      throw new CofferError("E_USAGE", `server ${this.url}: a CA or client certificate needs an https:// URL`);
    }
    if (options.tlsPem !== undefined && (options.tlsPem.cert === undefined) !== (options.tlsPem.key === undefined)) {
      throw new CofferError("E_USAGE", "a client certificate needs its key: give both cert and key, or neither");
    }
    const tls = options.tls !== undefined ? readClientTls(options.tls, this.url) : options.tlsPem;
    this.fetch = options.fetch ?? (tls !== undefined ? tlsFetch(tls) : fetch);
  }

  /**
   * Reads a secret's current value, or `version`.
   * @throws CofferError E_NOT_FOUND, E_DENIED, E_UNAUTHENTICATED, E_PROVIDER, …
   */
  async readSecret(name: string, version?: number): Promise<ServerSecret> {
    assertSecretName(name);
    if (version !== undefined) checkVersion(version);
    const body = await this.#request("GET", `${secretPath(name)}${version !== undefined ? `?version=${version}` : ""}`);
    const what = `the secret ${name}`;
    const got = {
      name: str(body, "name", what, this.url),
      version: whole(body, "version", what, this.url),
      createdAt: str(body, "createdAt", what, this.url),
      createdBy: str(body, "createdBy", what, this.url),
      updatedAt: str(body, "updatedAt", what, this.url),
    };
    if (got.name !== name || (version !== undefined && got.version !== version)) {
      throw new CofferError("E_PROVIDER", `server ${this.url}: answered for ${name} with another secret or version`);
    }
    const text = field(body, "value");
    const b64 = field(body, "valueBase64");
    let value: Buffer;
    if (typeof text === "string" && b64 === undefined) value = Buffer.from(text, "utf8");
    else if (typeof b64 === "string" && text === undefined && /^[A-Za-z0-9+/]*={0,2}$/.test(b64) && b64.length % 4 === 0) {
      value = Buffer.from(b64, "base64");
    } else {
      throw new CofferError("E_PROVIDER", `server ${this.url}: answered for ${name} without exactly one of value and valueBase64 (base64)`);
    }
    return { ...got, value };
  }

  /**
   * Writes a new version: UTF-8 text as `value`, other bytes as `valueBase64`.
   * @param options.ifVersion - refuse (E_CONFLICT) unless the current version is this (0: must be new)
   */
  async writeSecret(name: string, value: Uint8Array, options: { description?: string; ifVersion?: number } = {}): Promise<{ name: string; version: number }> {
    assertSecretName(name);
    const payload = {
      ...jsonValue(value),
      ...(options.description !== undefined && { description: options.description }),
      ...(options.ifVersion !== undefined && { ifVersion: options.ifVersion }),
    };
    const body = await this.#request("PUT", secretPath(name), payload);
    return { name: str(body, "name", `writing ${name}`, this.url), version: whole(body, "version", `writing ${name}`, this.url) };
  }

  /** Lists the secrets (names and metadata, never values) whose names start with `prefix`. */
  async listSecrets(prefix?: string): Promise<ServerSecretInfo[]> {
    const query = prefix !== undefined && prefix !== "" ? `?${new URLSearchParams({ prefix })}` : "";
    const body = await this.#request("GET", `/v1/secrets${query}`);
    const rows = field(body, "secrets");
    if (!Array.isArray(rows)) throw shapeError(this.url, "the list of secrets", "secrets");
    return rows.map((r: unknown) => {
      const d = field(r, "description");
      if (d !== undefined && d !== null && typeof d !== "string") throw shapeError(this.url, "the list of secrets", "description");
      return {
        name: str(r, "name", "the list of secrets", this.url),
        version: whole(r, "version", "the list of secrets", this.url),
        description: d ?? null,
        updatedAt: str(r, "updatedAt", "the list of secrets", this.url),
        updatedBy: str(r, "updatedBy", "the list of secrets", this.url),
      };
    });
  }

  /** Lists a secret's versions (no values). */
  async versions(name: string): Promise<{ name: string; versions: ServerVersionInfo[] }> {
    assertSecretName(name);
    const body = await this.#request("GET", `${secretPath(name)}/versions`);
    const what = `the versions of ${name}`;
    const rows = field(body, "versions");
    if (!Array.isArray(rows)) throw shapeError(this.url, what, "versions");
    return {
      name: str(body, "name", what, this.url),
      versions: rows.map((r: unknown) => {
        const current = field(r, "current");
        if (typeof current !== "boolean") throw shapeError(this.url, what, "current");
        return {
          version: whole(r, "version", what, this.url), createdAt: str(r, "createdAt", what, this.url), createdBy: str(r, "createdBy", what, this.url), current,
          ...this.#versionMarks(r, what),
        };
      }),
    };
  }

  /**
   * Soft-deletes versions of a secret (`POST /v1/delete/{name}`): reads of them are refused until
   * {@link CofferClient.undeleteVersions}; a version already deleted or destroyed is left as it is.
   * Needs the `delete` capability.
   * @param versions - 1 to 100 version numbers
   * @throws CofferError E_NOT_FOUND for an unknown secret, E_INVALID_VALUE naming versions that do not exist, E_DENIED, …
   */
  async deleteVersions(name: string, versions: readonly number[]): Promise<{ name: string; versions: VersionState[] }> {
    return this.#changeVersions("delete", name, versions);
  }

  /** Undeletes versions (`POST /v1/undelete/{name}`), as {@link CofferClient.deleteVersions}; a destroyed version stays destroyed. */
  async undeleteVersions(name: string, versions: readonly number[]): Promise<{ name: string; versions: VersionState[] }> {
    return this.#changeVersions("undelete", name, versions);
  }

  /**
   * Destroys versions (`POST /v1/destroy/{name}`): their values are gone for good, their rows stay
   * in the history marked destroyed. Needs the `delete` capability.
   */
  async destroyVersions(name: string, versions: readonly number[]): Promise<{ name: string; versions: VersionState[] }> {
    return this.#changeVersions("destroy", name, versions);
  }

  async #changeVersions(kind: "delete" | "undelete" | "destroy", name: string, versions: readonly number[]): Promise<{ name: string; versions: VersionState[] }> {
    assertSecretName(name);
    if (!Array.isArray(versions) || versions.length === 0) throw new CofferError("E_USAGE", `${kind}: give at least one version`);
    for (const v of versions) checkVersion(v);
    const body = await this.#request("POST", `/v1/${kind}/${encodeName(name)}`, { versions: [...versions] });
    const what = `${kind === "delete" ? "deleting" : kind === "undelete" ? "undeleting" : "destroying"} versions of ${name}`;
    const rows = field(body, "versions");
    if (!Array.isArray(rows)) throw shapeError(this.url, what, "versions");
    return {
      name: str(body, "name", what, this.url),
      versions: rows.map((r: unknown) => ({ version: whole(r, "version", what, this.url), ...this.#versionMarks(r, what) })),
    };
  }

  // A version's deletedAt and destroyed (absent from an older server's answer: a version it never deleted).
  #versionMarks(r: unknown, what: string): { deletedAt: string | null; destroyed: boolean } {
    const deletedAt = field(r, "deletedAt") ?? null;
    const destroyed = field(r, "destroyed") ?? false;
    if (deletedAt !== null && typeof deletedAt !== "string") throw shapeError(this.url, what, "deletedAt");
    if (typeof destroyed !== "boolean") throw shapeError(this.url, what, "destroyed");
    return { deletedAt, destroyed };
  }

  /** Removes a secret (the server keeps its history). */
  async removeSecret(name: string): Promise<{ name: string; version: number }> {
    assertSecretName(name);
    const body = await this.#request("DELETE", secretPath(name));
    return { name: str(body, "name", `removing ${name}`, this.url), version: whole(body, "version", `removing ${name}`, this.url) };
  }

  /**
   * Writes a new version holding version `to`'s value (`POST /v1/rollback/{name}`); also
   * restores a removed secret.
   * @throws CofferError E_NOT_FOUND when there is no such version, E_DENIED, …
   */
  async rollbackSecret(name: string, to: number): Promise<{ name: string; version: number }> {
    assertSecretName(name);
    checkVersion(to);
    const body = await this.#request("POST", `/v1/rollback/${encodeName(name)}`, { version: to });
    return { name: str(body, "name", `rolling back ${name}`, this.url), version: whole(body, "version", `rolling back ${name}`, this.url) };
  }

  /**
   * Destroys every version of a secret, live or removed (`POST /v1/purge/{name}`); nothing brings
   * it back. Needs the `purge` capability, which `delete` does not grant.
   * @returns how many versions were destroyed
   * @throws CofferError E_NOT_FOUND when there is no such secret, E_DENIED, …
   */
  async purgeSecret(name: string): Promise<{ name: string; versions: number }> {
    assertSecretName(name);
    const body = await this.#request("POST", `/v1/purge/${encodeName(name)}`);
    const what = `purging ${name}`;
    if (field(body, "purged") !== true) throw shapeError(this.url, what, "purged");
    return { name: str(body, "name", what, this.url), versions: whole(body, "versions", what, this.url) };
  }

  /** Who the token is: subject, kind, roles, expiry. */
  async self(): Promise<ServerSelf> {
    const body = await this.#request("GET", "/v1/auth/self");
    const what = "who the token is";
    const kind = field(body, "kind");
    if (kind !== "token" && kind !== "jwt" && kind !== "cert") throw shapeError(this.url, what, "kind");
    const roles = field(body, "roles");
    if (!Array.isArray(roles) || !roles.every((r): r is string => typeof r === "string")) throw shapeError(this.url, what, "roles");
    const expiresAt = field(body, "expiresAt");
    if (expiresAt !== null && typeof expiresAt !== "string") throw shapeError(this.url, what, "expiresAt");
    return { subject: str(body, "subject", what, this.url), kind, roles, expiresAt };
  }

  /** The server's health (`{status: "ok", …}`); sent without the token. */
  async health(): Promise<{ status: string } & Record<string, unknown>> {
    const body = await this.#request("GET", "/v1/sys/health", undefined, false);
    const status = str(body, "status", "its health", this.url);
    return { ...(body as Record<string, unknown>), status };
  }

  /** the per-request timeout, in milliseconds (headers and body) */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /**
   * Sends one request to this server, the one way every call reaches it (`src/client/runbooks.ts`
   * too): the token as `Authorization: Bearer`, redirects refused (the token goes to this server
   * and nowhere else), the client's timeout and close signal, and an error answer mapped to a
   * {@link ServerError}. Gives the response of a 2xx answer with its body unread; the same
   * signal bounds reading it.
   * @param target - the path and query, e.g. `/v1/runbooks`; names in it already encoded
   * @throws ServerError for an error status (the server's code when it may pass through, its
   *   message without the token or a `redact` text, `problems`, Retry-After); CofferError
   *   E_PROVIDER when the server cannot be reached, does not answer in time, or the request was
   *   cancelled; the `signal`'s reason when that is a CofferError
   */
  async send(method: string, target: string, options: SendOptions = {}): Promise<Response> {
    const retriable = (method === "GET" || method === "HEAD") && options.payload === undefined;
    const attempts = retriable ? this.#attempts : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#sendOnce(method, target, options);
      } catch (err) {
        const wait = attempt < attempts ? retryDelay(err, attempt) : undefined;
        if (wait === undefined || this.#signal?.aborted === true || options.signal?.aborted === true) throw err;
        await sleep(wait, [this.#signal, options.signal]);
      }
    }
  }

  async #sendOnce(method: string, target: string, options: SendOptions): Promise<Response> {
    const where = `server ${this.url}`;
    if (this.#signal?.aborted === true) throw new CofferError("E_PROVIDER", `${where}: the request was cancelled (closed)`);
    const signals = [
      ...(options.timeout !== false ? [AbortSignal.timeout(this.#timeoutMs)] : []),
      ...(this.#signal !== undefined ? [this.#signal] : []),
      ...(options.signal !== undefined ? [options.signal] : []),
    ];
    const headers: Record<string, string> = { Accept: options.accept ?? "application/json" };
    if (options.auth !== false && this.#token !== undefined) headers.Authorization = `Bearer ${this.#token}`;
    if (options.payload !== undefined) headers["Content-Type"] = "application/json";
    const data = options.payload === undefined ? null : JSON.stringify(options.payload);
    const failed = (err: unknown): CofferError => err instanceof CofferError ? err : fetchError(where, err, this.#timeoutMs);
    let res: Response;
    try {
      res = await this.fetch(`${this.url}${target}`, { method, headers, body: data, redirect: "error", signal: AbortSignal.any(signals) });
    } catch (err) {
      throw failed(err);
    }
    if (res.status >= 200 && res.status < 300) return res;
    const text = await this.readBody(res, SERVER_MAX_RESPONSE_BYTES);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    // A server message should never hold the token or a value this request sent; if one does,
    // it is not repeated. (Texts under 4 characters are left: too short to hide and too common.)
    const hidden = [...(this.#token !== undefined ? [this.#token] : []), ...(options.redact ?? []).filter((r) => r.length >= 4)];
    throw statusError(this.url, res, body, hidden, this.#loginHint);
  }

  /**
   * {@link send}s a request and gives its JSON answer (at most {@link SERVER_MAX_RESPONSE_BYTES}).
   * @throws what {@link send} throws; CofferError E_PROVIDER for an answer over the limit or not JSON
   */
  async request(method: string, target: string, options: SendOptions = {}): Promise<unknown> {
    const res = await this.send(method, target, options);
    const text = await this.readBody(res, SERVER_MAX_RESPONSE_BYTES);
    try {
      return JSON.parse(text);
    } catch {
      throw new CofferError("E_PROVIDER", `server ${this.url}: answered ${res.status} with a body that is not JSON (${res.headers.get("content-type") ?? "no content-type"}); is the URL a coffer server?`);
    }
  }

  /**
   * Reads a response's body as UTF-8 text, at most `maxBytes` (the bytes read are zeroed).
   * @throws CofferError E_PROVIDER for a body over `maxBytes`, or one whose reading failed or timed out
   */
  async readBody(res: Response, maxBytes: number): Promise<string> {
    const where = `server ${this.url}`;
    try {
      return await readCapped(res, maxBytes, (n) => n !== undefined
        ? `answered with ${n} bytes, over the limit of ${maxBytes} bytes`
        : `answered with more than the limit of ${maxBytes} bytes`);
    } catch (err) {
      if (err instanceof CofferError) throw new CofferError(err.code, `${where}: ${err.message}`);
      throw fetchError(where, err, this.#timeoutMs);
    }
  }

  async #request(method: string, target: string, payload?: unknown, auth = true): Promise<unknown> {
    return this.request(method, target, { ...(payload !== undefined && { payload }), auth });
  }


}

/** Options of {@link CofferClient.send}. */
export interface SendOptions {
  /** a body, sent as JSON */
  payload?: unknown;
  /** the Accept header (default `application/json`) */
  accept?: string;
  /** false: send no token (default true) */
  auth?: boolean;
  /** the caller's own signal, e.g. an idle timer; its reason, when a CofferError, is what is thrown */
  signal?: AbortSignal;
  /** false: the client's per-request timeout does not apply (a stream its caller bounds with `signal`) */
  timeout?: boolean;
  /** texts this request sends (values) that an error message must not repeat: replaced by `[redacted]` */
  redact?: readonly string[];
}

function encodeName(name: string): string {
  return name.split("/").map(encodeURIComponent).join("/");
}

function secretPath(name: string): string {
  return `/v1/secrets/${encodeName(name)}`;
}

function checkVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new CofferError("E_INVALID_VALUE", `invalid version ${version}: a version is a whole number from 1`);
  }
}

