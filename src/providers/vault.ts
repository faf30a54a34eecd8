/**
 * The `vault` provider: HashiCorp Vault / OpenBao KV v2 over HTTP with a token
 * (REFERENCE.md, "HashiCorp Vault / OpenBao KV v2"), `{ type: vault, address, mount?,
 * namespace?, tokenEnv? }`, `--provider vault:https://host:8200[#mount]`.
 */
import { tokenTransportRule } from "../core/token-transport.ts";
import { CofferError, show } from "../errors.ts";
import { DEFAULT_MAX_VALUE_BYTES, SECRET_NAME_PATTERN } from "../core/names.ts";
import { Secret } from "../core/secret.ts";
import { fetchText } from "../client/http.ts";
import { pollingFeed, watchByPath, watchSet } from "./watch.ts";
import { HTTP_URL_PATTERN, isHttpUrl, type ProviderType } from "./grammar.ts";
import { describeRef, type Provider, type ProviderContext, type SecretRef } from "./provider.ts";

/** Largest response body read from Vault, in bytes; more is refused (E_PROVIDER). */
export const VAULT_MAX_RESPONSE_BYTES = 2 * 1024 * 1024;

/** Options of {@link createVaultProvider} (for tests and tuning; not in the config). */
export interface VaultProviderOptions {
  /** per-request timeout, headers and body (default 10 000 ms) */
  timeoutMs?: number;
  /** how often watch() polls the metadata (default 30 000 ms) */
  pollIntervalMs?: number;
}

export interface VaultSpec {
  type: "vault";
  address: string;
  mount: string;
  namespace?: string;
  tokenEnv?: string;
}

/** The default KV v2 mount. */
export const DEFAULT_VAULT_MOUNT = "secret";
const URL_RULE = "must be an http:// or https:// URL";
const MOUNT_RULE = `must match ${SECRET_NAME_PATTERN}`;

const addressRule = (s: string): string | undefined => (!isHttpUrl(s) ? URL_RULE : tokenTransportRule(s));
const mountRule = (s: string): string | undefined => (new RegExp(SECRET_NAME_PATTERN).test(s) && !s.includes("..") ? undefined : MOUNT_RULE);

export const vaultType: ProviderType<VaultSpec> = {
  type: "vault",
  schema: {
    title: "Vault",
    type: "object",
    additionalProperties: false,
    required: ["type", "address"],
    properties: {
      type: { const: "vault", description: "HashiCorp Vault / OpenBao KV v2 over HTTP with a token." },
      address: {
        type: "string",
        pattern: HTTP_URL_PATTERN,
        description: "An http:// or https:// URL.",
        "x-format": "vault-address",
        "x-needs": "an http:// or https:// URL",
      },
      mount: { type: "string", pattern: SECRET_NAME_PATTERN, default: DEFAULT_VAULT_MOUNT, description: "The KV v2 mount.", "x-format": "mount" },
      namespace: { type: "string", pattern: SECRET_NAME_PATTERN, description: "A Vault Enterprise namespace.", "x-format": "mount" },
      tokenEnv: { $ref: "#/$defs/envName", default: "VAULT_TOKEN", description: "The environment variable holding the token." },
    },
  },
  agentProperties: { tokenFile: { $ref: "#/$defs/absolutePath", description: "A file holding the token, read at start." } },
  formats: { "vault-address": addressRule, mount: mountRule },
  path: "text",
  keys: true,
  cliForm: "vault:https://host:8200[#mount]",
  fromCli(rest) {
    const hash = rest.indexOf("#");
    const address = hash < 0 ? rest : rest.slice(0, hash);
    const mount = hash < 0 ? DEFAULT_VAULT_MOUNT : rest.slice(hash + 1);
    const bad = addressRule(address);
    if (bad === URL_RULE) return { rule: `vault address ${show(address)} ${URL_RULE}, e.g. vault:https://vault.internal:8200#secret` };
    if (mountRule(mount) !== undefined) return { rule: `vault mount ${show(mount)} (after #) ${MOUNT_RULE}` };
    if (bad !== undefined) return { rule: `it ${bad}` };
    return { ok: { type: "vault", address, mount } };
  },
  spec: (s) => ({
    type: "vault",
    address: s["address"] as string,
    mount: (s["mount"] as string | undefined) ?? DEFAULT_VAULT_MOUNT,
    ...(s["namespace"] !== undefined && { namespace: s["namespace"] as string }),
    ...(s["tokenEnv"] !== undefined && { tokenEnv: s["tokenEnv"] as string }),
  }),
  create: createVaultProvider,
};

/**
 * Creates the `vault` provider.
 *
 * `resolve({path, key?, version?})` sends `GET {address}/v1/{mount}/data/{path}[?version=N]`
 * with `X-Vault-Token` (from `ctx.env[spec.tokenEnv ?? "VAULT_TOKEN"]`, read on the first
 * resolve and kept) and `X-Vault-Namespace` when `spec.namespace` is set. The value is
 * `data.data[key]`; without a key the secret must hold exactly one key. String values are
 * taken as UTF-8 text; other JSON values (numbers, booleans, objects, arrays, null) are
 * JSON-encoded (`42`, `{"a":1}`). The Secret's version is `data.metadata.version`, its
 * `updatedAt` `created_time`. Nothing is cached between calls except the token.
 *
 * Errors (never carrying the token or a value): missing token E_CONFIG; 403 E_DENIED;
 * 404, a deleted or destroyed version, a missing key E_NOT_FOUND; several keys and none named
 * E_CONFIG; 429/5xx/other statuses, network errors, timeouts, non-JSON or over-2-MiB bodies
 * E_PROVIDER; an over-1-MiB value E_INVALID_VALUE. An empty string is the empty value.
 *
 * `watch(refs, onChange)` polls `GET {address}/v1/{mount}/metadata/{path}` for each path every
 * `pollIntervalMs` and calls `onChange` for the unpinned refs (no `version`) of a path whose
 * `current_version` (or its deletion state) changed. Failed polls are skipped. The timer does
 * not keep the process alive.
 * @throws CofferError E_CONFIG when `address` is not an http(s) URL, or is plain http to a host
 *   that is not loopback (the token would cross the network in clear)
 */
export function createVaultProvider(name: string, spec: VaultSpec, ctx: ProviderContext, options: VaultProviderOptions = {}): Provider {
  const address = parseAddress(name, spec.address);
  const mount = spec.mount === undefined || spec.mount === "" ? DEFAULT_VAULT_MOUNT : spec.mount.replace(/^\/+|\/+$/g, "");
  const tokenEnv = spec.tokenEnv ?? "VAULT_TOKEN";
  const timeoutMs = options.timeoutMs ?? 10_000;
  const pollIntervalMs = options.pollIntervalMs ?? 30_000;
  const closing = new AbortController();
  const watches = watchSet();
  let token: string | undefined;

  const getToken = (): string => {
    if (token === undefined) {
      const t = ctx.env[tokenEnv];
      if (t === undefined || t === "") {
        throw new CofferError("E_CONFIG", `provider "${name}" needs a Vault token in the environment variable ${tokenEnv}, which is not set`);
      }
      token = t;
    }
    return token;
  };

  const request = async (kind: "data" | "metadata", path: string, version?: number): Promise<{ status: number; body: unknown }> => {
    const t = getToken();
    if (closing.signal.aborted) throw new CofferError("E_INTERNAL", `provider "${name}" was used after close()`);
    const url = `${address}/v1/${encodePath(mount)}/${kind}/${encodePath(path)}${version !== undefined ? `?version=${version}` : ""}`;
    const where = `vault at ${address}`;
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), closing.signal]);
    const send = (): Promise<Response> => fetch(url, {
      method: "GET",
      headers: {
        "X-Vault-Token": t,
        Accept: "application/json",
        ...(spec.namespace !== undefined && spec.namespace !== "" && { "X-Vault-Namespace": spec.namespace }),
      },
      redirect: "error",
      signal,
    });
    const { res, text } = await fetchText(send, {
      where,
      maxBytes: VAULT_MAX_RESPONSE_BYTES,
      tooLarge: (n) => n !== undefined
        ? `response of ${n} bytes is over the limit of ${VAULT_MAX_RESPONSE_BYTES} bytes`
        : `response is over the limit of ${VAULT_MAX_RESPONSE_BYTES} bytes`,
      failed: (err) => fetchError(where, err, timeoutMs),
    });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new CofferError(
        "E_PROVIDER",
        `${where} answered ${res.status} for ${path} with a body that is not JSON (${res.headers.get("content-type") ?? "no content-type"}); is the address a Vault server?`,
      );
    }
    return { status: res.status, body };
  };

  // What changes with a new version, a delete or a destroy of the current one.
  const metadataSignature = async (path: string): Promise<string> => {
    const { status, body } = await request("metadata", path);
    if (status === 404) return "missing";
    if (status !== 200) throw statusError(status, body, path, address);
    const data = field(body, "data");
    const current = field(data, "current_version");
    const versions = field(data, "versions");
    const cur = isObject(versions) ? versions[String(current)] : undefined;
    return JSON.stringify([current, field(cur, "deletion_time"), field(cur, "destroyed")]);
  };

  return {
    name,
    async resolve(ref: SecretRef): Promise<Secret> {
      if (ref.version !== undefined && (!Number.isSafeInteger(ref.version) || ref.version < 1)) {
        throw new CofferError("E_INVALID_VALUE", `${describeRef(ref)}: a version is a whole number from 1`);
      }
      checkPath(ref);
      const shown = `${ref.path}${ref.version !== undefined ? ` version ${ref.version}` : ""}`;
      const { status, body } = await request("data", ref.path, ref.version);
      if (status === 200 || status === 404) {
        const data = field(body, "data");
        const meta = field(data, "metadata");
        if (isObject(meta) && (isDeleted(meta) || (status === 200 && field(data, "data") === null))) {
          const how = meta["destroyed"] === true ? "destroyed" : "deleted";
          const v = typeof meta["version"] === "number" ? ` (version ${meta["version"]})` : "";
          throw new CofferError("E_NOT_FOUND", `vault secret ${shown}${v} was ${how}; undelete it in Vault or name another version`);
        }
        if (status === 404) {
          const errors = errorsOf(body);
          throw new CofferError("E_NOT_FOUND", `vault has no secret ${shown} in mount ${mount}${errors !== "" ? `: ${errors}` : ""}`);
        }
        return toSecret(ref, shown, data);
      }
      throw statusError(status, body, ref.path, address);
    },
    watch: (refs, onChange) => watches.add(watchByPath(refs, onChange, pollingFeed(metadataSignature, pollIntervalMs))),
    close(): void {
      watches.stopAll();
      closing.abort();
    },
  };
}

function parseAddress(name: string, address: string): string {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new CofferError("E_CONFIG", `provider "${name}": address ${JSON.stringify(String(address))} is not a URL (e.g. https://vault.example.com:8200)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CofferError("E_CONFIG", `provider "${name}": address must be http:// or https://, got ${url.protocol}`);
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    throw new CofferError("E_CONFIG", `provider "${name}": address must be scheme://host[:port][/path] without credentials, query or fragment`);
  }
  const transport = tokenTransportRule(url.href);
  if (transport !== undefined) throw new CofferError("E_CONFIG", `provider "${name}" ${transport}`);
  return url.href.replace(/\/+$/, "");
}

function checkPath(ref: SecretRef): void {
  const segments = ref.path.split("/");
  if (ref.path === "" || segments.some((s) => s === "" || s === "." || s === "..")) {
    throw new CofferError(
      "E_INVALID_NAME",
      `${describeRef(ref)}: a vault path is segments separated by single '/', without empty, '.' or '..' segments`,
    );
  }
}

function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

function toSecret(ref: SecretRef, shown: string, data: unknown): Secret {
  const kv = field(data, "data");
  const meta = field(data, "metadata");
  if (!isObject(kv) || !isObject(meta)) {
    throw new CofferError("E_PROVIDER", `vault answered for ${shown} without data.data and data.metadata; is the mount a KV version 2 engine?`);
  }
  const keys = Object.keys(kv);
  let key: string;
  if (ref.key !== undefined) {
    if (!Object.hasOwn(kv, ref.key)) {
      throw new CofferError(
        "E_NOT_FOUND",
        `vault secret ${ref.path}#${ref.key} does not exist: ${shown} has ${keys.length === 0 ? "no keys" : `the keys ${keys.join(", ")}`}`,
      );
    }
    key = ref.key;
  } else if (keys.length === 1) {
    key = keys[0]!;
  } else if (keys.length === 0) {
    throw new CofferError("E_INVALID_VALUE", `vault secret ${shown} holds no keys`);
  } else {
    throw new CofferError("E_CONFIG", `vault secret ${shown} holds ${keys.length} keys; name a key: one of ${keys.join(", ")} (e.g. ${ref.provider}:${ref.path}#${keys[0]})`);
  }
  const raw = kv[key];
  const value = Buffer.from(typeof raw === "string" ? raw : JSON.stringify(raw ?? null), "utf8");
  if (value.length > DEFAULT_MAX_VALUE_BYTES) {
    const size = value.length;
    value.fill(0);
    throw new CofferError("E_INVALID_VALUE", `vault secret ${ref.path}#${key} is ${size} bytes, over the limit of ${DEFAULT_MAX_VALUE_BYTES} bytes`);
  }
  const version = meta["version"];
  const created = meta["created_time"];
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1 || typeof created !== "string") {
    value.fill(0);
    throw new CofferError("E_PROVIDER", `vault answered for ${shown} without a usable metadata.version and created_time`);
  }
  return new Secret({ name: ref.key !== undefined ? `${ref.path}#${ref.key}` : ref.path, version, updatedAt: created }, value);
}

function isDeleted(meta: Record<string, unknown>): boolean {
  const t = meta["deletion_time"];
  return meta["destroyed"] === true || (typeof t === "string" && t !== "");
}

function statusError(status: number, body: unknown, path: string, address: string): CofferError {
  const errors = errorsOf(body);
  if (status === 403) return new CofferError("E_DENIED", `vault denied ${path}: ${errors !== "" ? errors : "permission denied"} (check the token and its policies)`);
  const hint = status === 429 ? " (rate limited, or a standby node)" : status === 503 ? " (sealed or unavailable)" : "";
  return new CofferError("E_PROVIDER", `vault at ${address} answered ${status} for ${path}${hint}${errors !== "" ? `: ${errors}` : ""}`);
}

// Vault's `{"errors":[…]}`, joined and shortened; Vault error strings do not carry values.
function errorsOf(body: unknown): string {
  const errors = field(body, "errors");
  if (!Array.isArray(errors)) return "";
  const text = errors
    .filter((e): e is string => typeof e === "string")
    .map((e) => e.replace(/\s+/g, " ").trim())
    .filter((e) => e !== "")
    .join("; ");
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function fetchError(where: string, err: unknown, timeoutMs: number): CofferError {
  const e = err as { name?: string; cause?: { code?: string; message?: string } };
  if (e.name === "TimeoutError") return new CofferError("E_PROVIDER", `${where} did not answer within ${timeoutMs} ms`);
  if (e.name === "AbortError") return new CofferError("E_PROVIDER", `request to ${where} was cancelled (provider closed)`);
  const cause = e.cause?.code ?? e.cause?.message ?? (err instanceof Error ? err.message : String(err));
  return new CofferError("E_PROVIDER", `cannot reach ${where}: ${cause}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function field(v: unknown, name: string): unknown {
  return isObject(v) ? v[name] : undefined;
}
