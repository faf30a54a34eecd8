/**
 * The team server's configuration (`coffer serve`): an optional YAML file, every key overridable
 * by a `COFFER_*` variable (config-check.ts), `--listen` and `--production` on top. Every problem
 * is reported at once as one CofferError `E_CONFIG` (`file:line: rule`, `VARIABLE: rule`,
 * `--listen: rule`); the result is frozen. Messages never show `jwt.secret` (but a published
 * default, weak-secrets.ts) nor more than the scheme of the `database` and `redis` URLs.
 */
import { readFileSync } from "node:fs";
import { CofferError } from "../errors.ts";
import { DEFAULT_MAX_VALUE_BYTES } from "../core/names.ts";
import { isLoopbackHost } from "../core/token-transport.ts";
import { ServerConfigCheck } from "./config-check.ts";
import type { LOG_LEVELS } from "./config-schema.ts";

export { KNOWN_WEAK_JWT_SECRETS, weakSecretRule } from "./weak-secrets.ts";

/** What a role rule grants on the paths it matches. */
export type Capability = "read" | "list" | "write" | "delete" | "purge" | "rotate" | "run" | "approve";

/** A pino level name. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One rule of a role: a path pattern and the capabilities it grants there. */
export interface RoleRule {
  /**
   * a secret-name glob (`app/*`, `app/**`, `db/api-*`), a system path (`sys:tokens`, `sys:audit`,
   * `sys:metrics`) or runbooks (`runbook:NAME`, `runbook:*`, `runbook:cdn-*`)
   */
  path: string;
  /** non-empty, no duplicates */
  capabilities: Capability[];
}

/**
 * How the server verifies JWTs: exactly one key source (an HS* `secret`, whose UTF-8 bytes are the
 * key; a JWKS file; an https JWKS URL), the required `iss` and `aud`, the claim holding the role names.
 */
export interface JwtConfig {
  secret?: string;
  jwksFile?: string;
  jwksUrl?: string;
  issuer: string;
  audience: string;
  rolesClaim: string;
  /** accepted `alg` values; default `["HS256"]` with a secret, `["RS256", "ES256", "EdDSA"]` with a JWKS */
  algorithms: string[];
  /** the longest a JWT may live, in ms, from `iat` (else from now); absent: 24 h */
  maxLifetimeMs?: number;
}

/** The checked, frozen server configuration. */
export interface ServerConfig {
  file?: string;
  /** where to listen; default 127.0.0.1:8200 (an IPv6 host is without brackets) */
  listen: { host: string; port: number };
  jwt?: JwtConfig;
  /** per credential `requests` per `windowMs`; per client IP `ipRequests` (default 10 × requests) */
  rateLimit: { requests: number; windowMs: number; ipRequests: number };
  /** request body and secret value limits, in bytes */
  limits: { bodyBytes: number; valueBytes: number };
  /** role name → rules; `root` is built in and not listed */
  roles: Record<string, RoleRule[]>;
  /** `POST /dev-login` on: for development only */
  devLogin: boolean;
  /**
   * how many proxy hops in front of the server to trust for X-Forwarded-For (`behindProxy: true`
   * is 1, `false` or absent 0: the socket's peer is the client)
   */
  behindProxy: number;
  /** the proxies (IP addresses or CIDRs) whose X-Forwarded-For is trusted, instead of a hop count */
  trustedProxies?: string[];
  /** from `production: true`, COFFER_PRODUCTION=1 or --production */
  production: boolean;
  /** `public: false` (default): /metrics needs read on sys:metrics */
  metrics: { public: boolean };
  /** `enabled: true` (default): the web console at `/ui` (docs/design.md §11) */
  ui: { enabled: boolean };
  /**
   * the Vault KV v2-compatible API (docs/design.md §13): absent (default) it is off; `mount` is
   * the path segment after `/v1/` (Vault's `secret`), never one of coffer's own prefixes
   */
  vault?: { mount: string };
  /** postgres:// and redis:// URLs */
  database?: string;
  redis?: string;
  /**
   * the log's level; default `info`. A line per request (method, URL without its query string,
   * status) only at `debug` and `trace`: the audit chain records every request already.
   */
  log: { level: LogLevel };
  /**
   * TLS files (absolute paths, PEM): the certificate chain (the server's first), its unencrypted
   * key, and the CA that issues client certificates (it turns on mutual TLS)
   */
  tls?: { cert: string; key: string; clientCa?: string };
  /** mTLS client certificate CN/SAN → role names */
  clients?: Record<string, string[]>;
  /**
   * runbooks (issue 13): the directory of runbook files; executions per principal per window
   * (default 10 per 1m); the user tempdir scripts run as when the server runs as root (resolved
   * at load); whether the production guard lets tempdir runbooks load
   */
  runbooks?: {
    dir: string;
    rateLimit: { executions: number; windowMs: number };
    runAs?: { user: string; uid: number; gid: number };
    allowUnsandboxed: boolean;
  };
}

/**
 * Where {@link loadServerConfig} reads from: the YAML file (none: defaults and the environment),
 * `env` (default `process.env`), `--listen` and `--production`.
 */
export interface LoadServerConfigOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  listen?: string;
  production?: boolean;
}

const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = 8200;
const DEFAULT_REQUESTS = 60;
const DEFAULT_WINDOW_MS = 60_000;
// A 1 MiB value sent as valueBase64 is 1.4 MB of JSON: the default body limit leaves room for it.
const DEFAULT_BODY_BYTES = Math.ceil((DEFAULT_MAX_VALUE_BYTES * 4) / 3) + 64 * 1024;

/* ----------------------------------------- loading ----------------------------------------- */

/**
 * Reads the server config: the YAML file when given, then the environment, then `--listen`.
 * @throws CofferError E_CONFIG listing every problem (`file:line: rule`, `VARIABLE: rule`); or
 *   when the file cannot be read
 */
export function loadServerConfig(options: LoadServerConfigOptions = {}): ServerConfig {
  const { file } = options;
  let text = "";
  try {
    if (file !== undefined) text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    const message = `${file}: cannot read the server config file (${code}); check the path given to --config`;
    throw new CofferError("E_CONFIG", message, { cause: err });
  }
  return parseServerConfig(text, file, options.env ?? process.env, options);
}

/**
 * Parses and checks server-config text (what {@link loadServerConfig} does after reading).
 * @param file - the name messages show; undefined: no file, defaults and the environment only
 * @param env - default `process.env`
 * @param overrides - `--listen` and `--production`
 * @throws CofferError E_CONFIG listing every problem
 */
export function parseServerConfig(
  text: string,
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  overrides: { listen?: string; production?: boolean } = {},
): ServerConfig {
  const c = new ServerConfigCheck(file ?? "server config", text, env);
  const config = c.config(file, overrides, {
    listen: { host: DEFAULT_HOST, port: DEFAULT_PORT },
    rateLimit: { requests: DEFAULT_REQUESTS, windowMs: DEFAULT_WINDOW_MS, ipRequests: 0 },
    limits: { bodyBytes: DEFAULT_BODY_BYTES, valueBytes: DEFAULT_MAX_VALUE_BYTES },
  });
  c.throwIfAny();
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/* ------------------------------------- production guard ------------------------------------- */

/**
 * Problems that make the config unfit for production (empty when fine): devLogin on, plain HTTP
 * on a non-loopback address (with behindProxy too: the proxy must be on the same host). Each
 * names the key and its variable and says what to do. (A weak JWT secret is refused at load,
 * in production or not: see {@link weakSecretRule}.)
 */
export function productionProblems(config: ServerConfig): string[] {
  const out: string[] = [];
  if (config.devLogin) {
    out.push("devLogin (COFFER_DEV_LOGIN) is on: it hands out credentials without checking anyone; set devLogin: false in production");
  }
  const proxied = config.behindProxy > 0 || config.trustedProxies !== undefined;
  if (config.tls === undefined && !isLoopback(config.listen.host)) {
    out.push(
      proxied
        ? `listen (COFFER_LISTEN) is ${hostPort(config.listen)}, a non-loopback address, with behindProxy or trustedProxies and plain HTTP: ` +
            "a client that reaches the port without the proxy could choose its own address and send tokens in clear; " +
            "listen on 127.0.0.1 with the TLS-terminating proxy on the same host, or configure tls (COFFER_TLS_CERT, COFFER_TLS_KEY)"
        : `listen (COFFER_LISTEN) is ${hostPort(config.listen)}, a non-loopback address, with plain HTTP: tokens would cross the network in clear; ` +
            "configure tls (COFFER_TLS_CERT, COFFER_TLS_KEY), or listen on 127.0.0.1 and put a TLS-terminating proxy in front " +
            "with behindProxy: 1 (COFFER_BEHIND_PROXY)",
    );
  }
  return out;
}

/**
 * Why tempdir runbooks must not load, or undefined when they may: in production, unless
 * `runbooks.allowUnsandboxed: true`. The server gives it to RunbookCatalog as `refuseTempdir`.
 */
export function tempdirRefusal(config: ServerConfig): string | undefined {
  if (!config.production || config.runbooks?.allowUnsandboxed === true) return undefined;
  return (
    "isolation: tempdir runs the script unsandboxed, with the server's privileges (it can read the data directory and master.key); " +
    "the production guard refuses it: use isolation: sandbox, or set runbooks.allowUnsandboxed: true (COFFER_RUNBOOKS_ALLOW_UNSANDBOXED=1) to accept the risk"
  );
}

/** A listen host on loopback: core/token-transport.ts's rule, for IPv4-mapped and long IPv6 forms too. */
function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === "0:0:0:0:0:0:0:1" || isLoopbackHost(h.startsWith("::ffff:") ? h.slice("::ffff:".length) : h);
}

function hostPort(l: { host: string; port: number }): string {
  return l.host.includes(":") ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}
