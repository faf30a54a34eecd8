/**
 * The team server's configuration (`coffer serve`): an optional YAML file, every key overridable
 * by an environment variable, `--listen` and `--production` on top. Everything is checked here,
 * at load, and every problem is reported at once as one CofferError `E_CONFIG`: file problems
 * as `file:line: rule`, environment problems as `VARIABLE: rule`, `--listen` as `--listen: rule`.
 * The result is frozen.
 *
 * Environment variables: `COFFER_` + the key path in SCREAMING_SNAKE_CASE, camelCase split into
 * words (`jwt.jwksFile` → `COFFER_JWT_JWKS_FILE`, `rateLimit.window` → `COFFER_RATE_LIMIT_WINDOW`).
 * `COFFER_JWT_ALGORITHMS` is a comma list; `COFFER_ROLES` and `COFFER_CLIENTS` hold YAML or JSON
 * text of the whole map. A variable set to the empty string counts as unset; other `COFFER_*`
 * variables (`COFFER_HOME`, `COFFER_TOKEN`, …) are not this module's business and are ignored.
 *
 * Secrets: `jwt.secret` never appears in a message, except when it is one of the publicly known
 * defaults of {@link KNOWN_WEAK_JWT_SECRETS}. The `database` and `redis` URLs may carry
 * passwords, so messages about them show only their scheme.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { isScalar, isSeq } from "yaml";
import type { Document, LineCounter } from "yaml";
import { CofferError, problemList } from "../errors.ts";
import { DEFAULT_MAX_VALUE_BYTES } from "../core/names.ts";
import { checkDuration, DURATION_RULE, type DurationBounds } from "../core/durations.ts";
import { parseYaml, show, YamlChecker } from "../config/yaml-checker.ts";
import type { YamlEntry } from "../config/yaml-checker.ts";
import { PATTERN_RULE } from "../core/patterns.ts";
import { policyPatternProblem, SYSTEM_PATHS } from "./policy.ts";

/** What a role rule grants on the paths it matches. */
export type Capability = "read" | "list" | "write" | "delete";

/** pino's level names: what `log.level` accepts. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** A pino level name. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One rule of a role: a path pattern and the capabilities it grants there. */
export interface RoleRule {
  /** a secret-name glob (`app/*`, `app/**`, `db/api-*`) or a system path (`sys:tokens`, `sys:audit`, `sys:metrics`) */
  path: string;
  /** non-empty, no duplicates */
  capabilities: Capability[];
}

/** How the server verifies JWTs: exactly one key source, a fixed issuer and audience. */
export interface JwtConfig {
  /** HS256/384/512 shared secret (its UTF-8 bytes are the key) */
  secret?: string;
  /** absolute path of a JWKS JSON file (RS/PS/ES/EdDSA keys) */
  jwksFile?: string;
  /** https URL of a JWKS */
  jwksUrl?: string;
  /** the required `iss` */
  issuer: string;
  /** the required `aud` */
  audience: string;
  /** the claim holding the caller's role names; default `roles` */
  rolesClaim: string;
  /** accepted `alg` values; default `["HS256"]` with a secret, `["RS256", "ES256", "EdDSA"]` with a JWKS */
  algorithms: string[];
  /**
   * The longest a JWT may live, in ms: `exp - iat` (or `exp - now` without `iat`) above it is
   * refused. Absent: 24 h ({@link DEFAULT_JWT_MAX_LIFETIME_MS}).
   */
  maxLifetimeMs?: number;
}

/** The checked, frozen server configuration. */
export interface ServerConfig {
  /** the config file, when one was read */
  file?: string;
  /** where to listen; default 127.0.0.1:8200 (an IPv6 host is without brackets) */
  listen: { host: string; port: number };
  /** JWT authentication, when configured */
  jwt?: JwtConfig;
  /** per credential `requests` per `windowMs`; per client IP `ipRequests` (default 10 × requests) */
  rateLimit: { requests: number; windowMs: number; ipRequests: number };
  /** request body and secret value limits, in bytes */
  limits: { bodyBytes: number; valueBytes: number };
  /** role name → rules; `root` is built in and not listed */
  roles: Record<string, RoleRule[]>;
  /** `/v1/auth/dev-login` on: for development only */
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
  /** a postgres:// or postgresql:// URL */
  database?: string;
  /** a redis:// or rediss:// URL */
  redis?: string;
  /**
   * the log's level; default `info`. A line per request (method, URL without its query string,
   * status) only at `debug` and `trace`: the audit chain records every request already.
   */
  log: { level: LogLevel };
  /** TLS files (absolute paths); `clientCa` turns on client certificates */
  tls?: { cert: string; key: string; clientCa?: string };
  /** mTLS client certificate CN/SAN → role names */
  clients?: Record<string, string[]>;
}

/** Where {@link loadServerConfig} reads from. */
export interface LoadServerConfigOptions {
  /** the YAML file; without one, defaults and the environment apply */
  file?: string;
  /** default `process.env` */
  env?: NodeJS.ProcessEnv;
  /** `--listen HOST:PORT`: wins over the file and COFFER_LISTEN */
  listen?: string;
  /** `--production` */
  production?: boolean;
}

/** The capabilities a rule may grant. */
export const CAPABILITIES: readonly Capability[] = ["read", "list", "write", "delete"];
/** A role's name. */
export const ROLE_NAME_PATTERN = "^[a-z][a-z0-9_-]*$";

/**
 * JWT secrets published in docs, examples and tutorials (jwt.io's defaults among them): anyone
 * can sign tokens with them. Compared case-insensitively by {@link weakSecretRule}; refused in production or not.
 */
export const KNOWN_WEAK_JWT_SECRETS: readonly string[] = Object.freeze([
  "dev-secret-change-me",
  "secret",
  "changeme",
  "change-me",
  "change_me",
  "changeit",
  "change-this",
  "your-256-bit-secret",
  "your-384-bit-secret",
  "your-512-bit-secret",
  "a-string-secret-at-least-256-bits-long",
  "your-secret-key",
  "your_jwt_secret",
  "jwt-secret",
  "jwt_secret",
  "jwtsecret",
  "secretkey",
  "secret-key",
  "secret_key",
  "mysecret",
  "my-secret",
  "my_secret",
  "mysecretkey",
  "supersecret",
  "super-secret",
  "topsecret",
  "password",
  "default",
  "development",
  "test",
  "testing",
  "coffer",
  "coffer-dev",
  "admin",
  "123456",
]);

const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = 8200;
const DEFAULT_REQUESTS = 60;
const DEFAULT_WINDOW_MS = 60_000;
const DEFAULT_VALUE_BYTES = DEFAULT_MAX_VALUE_BYTES;
// A 1 MiB value sent as valueBase64 is 1.4 MB of JSON: the default body limit leaves room for it.
const DEFAULT_BODY_BYTES = Math.ceil((DEFAULT_MAX_VALUE_BYTES * 4) / 3) + 64 * 1024;
const MIN_BODY_BYTES = 1024;
const MAX_WINDOW_MS = 24 * 60 * 60 * 1000;
/** `jwt.maxLifetime` when unset: 24 h. */
export const DEFAULT_JWT_MAX_LIFETIME_MS = 24 * 60 * 60 * 1000;
/** The largest `jwt.maxLifetime`: 366 days. */
const MAX_JWT_MAX_LIFETIME_MS = 366 * 24 * 60 * 60 * 1000;
const MIN_SECRET_BYTES = 32;
const MAX_PROXY_HOPS = 16;
/** COFFER_ENV values that once meant "production" (any case): they must not leave a server unguarded. */
const PRODUCTION_SPELLINGS = /^\s*prod(uction)?\s*$/i;
const ROOT_ROLE = "root";
const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;
const KEY_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;
const ALGORITHMS: readonly string[] = [...HMAC_ALGORITHMS, ...KEY_ALGORITHMS];
const DEFAULT_KEY_ALGORITHMS = ["RS256", "ES256", "EdDSA"];
const ROLE_NAME_RE = new RegExp(ROLE_NAME_PATTERN);
const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const LISTEN_RULE = "must be HOST:PORT or [IPv6]:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8200 or [::1]:8200";
const BOOLEAN_RULE = "must be true or false";
const ENV_BOOLEAN_RULE = "must be true, false, 1 or 0";
const PATH_RULE = `a rule path is a system path (${SYSTEM_PATHS.join(", ")}) or ${PATTERN_RULE}`;

/* ----------------------------------------- loading ----------------------------------------- */

/**
 * Reads the server config: the YAML file when given, then the environment, then `--listen`.
 * @example
 * const config = loadServerConfig({ file: "/etc/coffer/server.yml", listen: "0.0.0.0:8200" });
 * const problems = config.production ? productionProblems(config) : [];
 * @throws CofferError E_CONFIG listing every problem (`file:line: rule`, `VARIABLE: rule`); or
 *   when the file cannot be read
 */
export function loadServerConfig(options: LoadServerConfigOptions = {}): ServerConfig {
  const env = options.env ?? process.env;
  const overrides = {
    ...(options.listen !== undefined && { listen: options.listen }),
    ...(options.production !== undefined && { production: options.production }),
  };
  if (options.file === undefined) return check("", undefined, env, overrides);
  let text: string;
  try {
    text = readFileSync(options.file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new CofferError("E_CONFIG", `${options.file}: cannot read the server config file (${code}); check the path given to --config`, {
      cause: err,
    });
  }
  return check(text, options.file, env, overrides);
}

/**
 * Parses and checks server-config text (what {@link loadServerConfig} does after reading).
 * @param file - the name messages show
 * @param env - default `process.env`
 * @param overrides - `--listen` and `--production`
 * @throws CofferError E_CONFIG listing every problem
 */
export function parseServerConfig(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  overrides: { listen?: string; production?: boolean } = {},
): ServerConfig {
  return check(text, file, env, overrides);
}

function check(text: string, file: string | undefined, env: NodeJS.ProcessEnv, overrides: { listen?: string; production?: boolean }): ServerConfig {
  const label = file ?? "server config";
  const { doc, lines } = parseYaml(text, label);
  const c = new ServerChecker(label, doc, lines, env);
  const config = c.root(doc.contents, file, overrides);
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
 * @example
 * if (config.production) {
 *   const problems = productionProblems(config);
 *   if (problems.length > 0) throw new CofferError("E_CONFIG", `refusing to start in production: ${problems.join("; ")}`);
 * }
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
 * Why a JWT secret is refused (in production or not), or undefined: a published default, or
 * shorter than 32 bytes. Never shows the secret, except a known public default.
 */
export function weakSecretRule(secret: string): string | undefined {
  const fix = `use a random secret of at least ${MIN_SECRET_BYTES} bytes, e.g. from \`openssl rand -base64 48\``;
  const known = KNOWN_WEAK_JWT_SECRETS.find((w) => w.toLowerCase() === secret.toLowerCase());
  // Naming it is safe: it is published; saying which one helps find where it came from.
  if (known !== undefined) return `is a known default (${JSON.stringify(secret)}) anyone can sign tokens with: ${fix}`;
  const bytes = Buffer.byteLength(secret, "utf8");
  if (bytes < MIN_SECRET_BYTES) return `is only ${bytes} bytes long, too short to resist guessing: ${fix}`;
  if (/^[.…]+$|\.\.\.|…/.test(secret)) return `is a placeholder: ${fix}`;
  return undefined;
}

function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice("::ffff:".length) : h;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

function hostPort(l: { host: string; port: number }): string {
  return l.host.includes(":") ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}

/* ------------------------------------------ checker ------------------------------------------ */

/** Where a setting's value came from. */
type Source =
  | { from: "file"; node: unknown; line: number; where: string }
  | { from: "env"; name: string; text: string };

/** `rateLimit.ipRequests` → `COFFER_RATE_LIMIT_IP_REQUESTS`. */
function envName(path: string): string {
  return `COFFER_${path
    .split(".")
    .map((p) => p.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase())
    .join("_")}`;
}

const TOP_KEYS = [
  "listen", "jwt", "rateLimit", "limits", "roles", "devLogin", "behindProxy", "trustedProxies", "production", "metrics", "database", "redis", "tls", "clients",
  "log",
] as const;
const SECTION_KEYS = {
  jwt: ["secret", "jwksFile", "jwksUrl", "issuer", "audience", "rolesClaim", "algorithms", "maxLifetime"],
  rateLimit: ["requests", "window", "ipRequests"],
  limits: ["bodyBytes", "valueBytes"],
  metrics: ["public"],
  log: ["level"],
  tls: ["cert", "key", "clientCa"],
} as const;
type Section = keyof typeof SECTION_KEYS;

/** Walks the server config with its rules; environment problems are kept beside the file's. */
class ServerChecker extends YamlChecker {
  readonly env: NodeJS.ProcessEnv;
  /** `VARIABLE: rule`, in the order found */
  readonly envProblems: string[] = [];
  /** key → entry of the top level, and of each section */
  readonly top = new Map<string, YamlEntry>();
  readonly sections = new Map<Section, Map<string, YamlEntry>>();

  constructor(file: string, doc: Document.Parsed, lines: LineCounter, env: NodeJS.ProcessEnv) {
    super(file, doc, lines);
    this.env = env;
  }

  /** Throws the file's problems (by line), then the environment's, as one message. */
  override throwIfAny(): void {
    if (this.problems.length === 0 && this.envProblems.length === 0) return;
    const sorted = [...this.problems].sort((a, b) => a.line - b.line || a.order - b.order);
    const items = [...sorted.map((p) => `${this.file}:${p.line}: ${p.rule.replace(/\s*\n\s*/g, " ")}`), ...this.envProblems];
    throw new CofferError("E_CONFIG", problemList(this.file, items));
  }

  /** Notes a problem with a value from `src`: `file:line: where rule[, got …]` or `VARIABLE: rule`. */
  bad(src: Source, rule: string, got?: string): void {
    if (src.from === "env") this.envProblems.push(`${src.name}: ${rule}`);
    else this.problem(src.line, `${src.where} ${rule}${got !== undefined ? `, got ${got}` : ""}`);
  }

  /** A duration setting (core/durations.ts) in milliseconds within `bounds`; undefined when absent or noted as a problem. */
  duration(path: string, bounds: DurationBounds): number | undefined {
    const src = this.source(path);
    if (src === undefined) return undefined;
    const text = src.from === "env" ? src.text : isScalar(src.node) && typeof src.node.value === "string" ? src.node.value : undefined;
    const r = text === undefined ? { rule: DURATION_RULE } : checkDuration(text, bounds);
    if ("ok" in r) return r.ok;
    if (r.rule === DURATION_RULE) this.bad(src, r.rule, src.from === "file" ? this.kind(src.node) : undefined);
    else this.bad(src, r.rule, show(text ?? ""));
    return undefined;
  }

  /** The value of `path` (`listen`, `jwt.secret`): the variable when set and not empty, else the file's entry. */
  source(path: string): Source | undefined {
    const name = envName(path);
    const text = this.env[name];
    if (text !== undefined && text !== "") return { from: "env", name, text };
    const [a, b] = path.split(".") as [string, string | undefined];
    const entry = b === undefined ? this.top.get(a) : this.sections.get(a as Section)?.get(b);
    if (entry === undefined) return undefined;
    const n = this.deref(entry.value, entry.line);
    if (n === undefined && entry.value !== null && entry.value !== undefined) return undefined; // alias problem noted
    return { from: "file", node: n, line: n === null || n === undefined ? entry.line : this.line(n), where: path };
  }

  /** A string setting; `secret` ones never show their value. */
  str(path: string, secret = false): { value: string; src: Source } | undefined {
    const src = this.source(path);
    if (src === undefined) return undefined;
    if (src.from === "env") return { value: src.text, src };
    const n = src.node;
    if (isScalar(n) && typeof n.value === "string") {
      if (n.value === "") {
        this.bad(src, "must not be empty");
        return undefined;
      }
      return { value: n.value, src };
    }
    if (secret) {
      this.bad(src, isScalar(n) && n.value !== null ? "must be a string (quote it)" : "must be a string");
      return undefined;
    }
    const hint = isScalar(n) && n.value !== null && typeof n.source === "string" ? ` (quote it: "${n.source}")` : "";
    this.bad(src, "must be a string", `${this.kind(n)}${hint}`);
    return undefined;
  }

  /** A whole number of at least `min`. */
  int(path: string, min: number, rule: string): number | undefined {
    const src = this.source(path);
    if (src === undefined) return undefined;
    if (src.from === "env") {
      const v = /^[0-9]{1,15}$/.test(src.text) ? Number(src.text) : NaN;
      if (Number.isSafeInteger(v) && v >= min) return v;
      this.bad(src, rule);
      return undefined;
    }
    const n = src.node;
    if (isScalar(n) && typeof n.value === "number" && Number.isSafeInteger(n.value) && n.value >= min) return n.value;
    this.bad(src, rule, this.kind(n));
    return undefined;
  }

  bool(path: string): boolean | undefined {
    const src = this.source(path);
    if (src === undefined) return undefined;
    if (src.from === "env") {
      const t = src.text.toLowerCase();
      if (t === "true" || t === "1") return true;
      if (t === "false" || t === "0") return false;
      this.bad(src, ENV_BOOLEAN_RULE);
      return undefined;
    }
    const n = src.node;
    if (isScalar(n) && typeof n.value === "boolean") return n.value;
    this.bad(src, BOOLEAN_RULE, this.kind(n));
    return undefined;
  }

  /** The top level and the sections' entries, with unknown keys reported. */
  readFile(contents: unknown): void {
    if (contents === null || contents === undefined || (isScalar(contents) && contents.value === null)) return; // empty: defaults
    const map = this.asMap(contents, 1, "the top level");
    if (map === undefined) return;
    const top = this.entries(map, "the top level");
    this.unknownKeys(top, TOP_KEYS, "the top level");
    for (const e of top) {
      if (!(TOP_KEYS as readonly string[]).includes(e.key)) continue;
      if (e.key in SECTION_KEYS) {
        const section = e.key as Section;
        const m = this.asMap(e.value, e.line, section);
        if (m === undefined) continue;
        const keys = this.entries(m, section);
        this.unknownKeys(keys, SECTION_KEYS[section], section);
        this.sections.set(section, new Map(keys.filter((k) => (SECTION_KEYS[section] as readonly string[]).includes(k.key)).map((k) => [k.key, k])));
      }
      this.top.set(e.key, e);
    }
  }

  root(contents: unknown, file: string | undefined, overrides: { listen?: string; production?: boolean }): ServerConfig {
    this.readFile(contents);

    let listen = { host: DEFAULT_HOST, port: DEFAULT_PORT };
    if (overrides.listen !== undefined) {
      const l = parseListen(overrides.listen);
      if (l === undefined) this.envProblems.push(`--listen: ${LISTEN_RULE}`);
      else listen = l;
    } else {
      const s = this.str("listen");
      if (s !== undefined) {
        const l = parseListen(s.value);
        if (l === undefined) this.bad(s.src, LISTEN_RULE, s.src.from === "file" ? show(s.value) : undefined);
        else listen = l;
      }
    }

    const requests = this.int("rateLimit.requests", 1, "must be a positive whole number") ?? DEFAULT_REQUESTS;
    const ipRequests = this.int("rateLimit.ipRequests", 1, "must be a positive whole number") ?? 10 * requests;
    const windowMs = this.duration("rateLimit.window", { min: 1, max: MAX_WINDOW_MS }) ?? DEFAULT_WINDOW_MS;

    const bodyBytes = this.int("limits.bodyBytes", MIN_BODY_BYTES, `must be a whole number of bytes, at least ${MIN_BODY_BYTES}`) ?? DEFAULT_BODY_BYTES;
    const valueBytes = this.int("limits.valueBytes", 1, "must be a positive whole number of bytes") ?? DEFAULT_VALUE_BYTES;

    const roles = this.rolesSetting();
    const jwt = this.jwt();
    const tls = this.tls();
    const clients = this.clients(roles, tls);

    const database = this.url("database", ["postgres:", "postgresql:"], "must be a postgres:// or postgresql:// URL");
    const redis = this.url("redis", ["redis:", "rediss:"], "must be a redis:// or rediss:// URL");

    const production = overrides.production === true || (this.bool("production") ?? false);
    const cofferEnv = this.env["COFFER_ENV"];
    if (!production && cofferEnv !== undefined && PRODUCTION_SPELLINGS.test(cofferEnv)) {
      // COFFER_ENV used to switch the guard on: a deployment that relied on it must not run unguarded.
      this.envProblems.push(
        `COFFER_ENV=${cofferEnv.trim()} no longer turns on the server's production checks (COFFER_ENV only picks the .coffer.yml environment): ` +
          "set production: true in the server config, COFFER_PRODUCTION=1, or pass --production",
      );
    }
    const proxy = this.proxies();
    return {
      ...(file !== undefined && { file }),
      listen,
      ...(jwt !== undefined && { jwt }),
      rateLimit: { requests, windowMs, ipRequests },
      limits: { bodyBytes, valueBytes },
      roles,
      devLogin: this.bool("devLogin") ?? false,
      behindProxy: proxy.hops,
      ...(proxy.trusted !== undefined && { trustedProxies: proxy.trusted }),
      production,
      metrics: { public: this.bool("metrics.public") ?? false },
      log: { level: this.logLevel() },
      ...(database !== undefined && { database }),
      ...(redis !== undefined && { redis }),
      ...(tls !== undefined && { tls }),
      ...(clients !== undefined && { clients }),
    };
  }

  /** `log.level`: one of pino's level names; default `info`. */
  logLevel(): LogLevel {
    const s = this.str("log.level");
    if (s === undefined) return "info";
    if ((LOG_LEVELS as readonly string[]).includes(s.value)) return s.value as LogLevel;
    this.bad(s.src, `must be one of ${LOG_LEVELS.join(", ")}`, s.src.from === "file" ? show(s.value) : undefined);
    return "info";
  }

  /**
   * `behindProxy` (true = 1 hop, false = 0, or a hop count) or `trustedProxies` (addresses or
   * CIDRs), not both: whose X-Forwarded-For the server believes.
   */
  proxies(): { hops: number; trusted?: string[] } {
    const hopRule = `must be true, false or a number of proxy hops from 0 to ${MAX_PROXY_HOPS}`;
    let hops = 0;
    const b = this.source("behindProxy");
    if (b !== undefined) {
      let v: number | undefined;
      if (b.from === "env") {
        const t = b.text.trim().toLowerCase();
        v = t === "true" ? 1 : t === "false" ? 0 : /^[0-9]{1,2}$/.test(t) ? Number(t) : undefined;
      } else if (isScalar(b.node) && typeof b.node.value === "boolean") {
        v = b.node.value ? 1 : 0;
      } else if (isScalar(b.node) && typeof b.node.value === "number" && Number.isSafeInteger(b.node.value)) {
        v = b.node.value;
      }
      if (v === undefined || v < 0 || v > MAX_PROXY_HOPS) this.bad(b, hopRule, b.from === "file" ? this.kind(b.node) : undefined);
      else hops = v;
    }
    const t = this.source("trustedProxies");
    if (t === undefined) return { hops };
    const list = this.stringList(t, "must be a list of proxy addresses or CIDRs, e.g. [10.0.0.5, 10.1.0.0/16]");
    if (list === undefined) return { hops };
    const rules: string[] = [];
    if (list.length === 0) rules.push("must not be empty; list the addresses or CIDRs of your proxies, e.g. [10.0.0.5, 10.1.0.0/16]");
    for (const entry of list) {
      const why = cidrRule(entry);
      if (why !== undefined) rules.push(`${show(entry)}: ${why}`);
    }
    if (b !== undefined) rules.push("give behindProxy (a number of hops) or trustedProxies (addresses), not both");
    for (const r of rules) this.bad(t, r);
    return rules.length > 0 ? { hops } : { hops: 0, trusted: list };
  }

  /** A URL with one of `schemes`; messages show only the scheme (the URL may hold a password). */
  url(path: string, schemes: readonly string[], rule: string): string | undefined {
    const s = this.str(path, true);
    if (s === undefined) return undefined;
    let protocol: string | undefined;
    let host = "";
    try {
      const u = new URL(s.value);
      protocol = u.protocol;
      host = u.hostname;
    } catch {
      protocol = undefined;
    }
    if (protocol === undefined || !schemes.includes(protocol)) {
      this.bad(s.src, rule, protocol === undefined ? "something that is not a URL" : `a ${protocol}// URL`);
      return undefined;
    }
    if (host === "" && protocol.startsWith("redis")) {
      this.bad(s.src, `${rule} with a host`);
      return undefined;
    }
    return s.value;
  }

  absolute(path: string): string | undefined {
    const s = this.str(path);
    if (s === undefined) return undefined;
    if (!s.value.startsWith("/")) {
      this.bad(s.src, "must be an absolute path (starting with /)", s.src.from === "file" ? show(s.value) : undefined);
      return undefined;
    }
    return s.value;
  }

  jwt(): JwtConfig | undefined {
    const keys = SECTION_KEYS.jwt.map((k) => `jwt.${k}`);
    const given = keys.filter((k) => this.source(k) !== undefined);
    const sectionEntry = this.top.get("jwt");
    if (given.length === 0 && sectionEntry === undefined) return undefined;
    const where = sectionEntry?.line ?? 0;
    const before = this.problems.length + this.envProblems.length;
    // Reported without a line when jwt: is not in the file (it came from the environment only).
    const missing = (rule: string): void => {
      if (sectionEntry !== undefined) this.problem(where, rule);
      else this.envProblems.push(rule);
    };

    const secretSetting = this.str("jwt.secret", true);
    const secretWhy = secretSetting === undefined ? undefined : weakSecretRule(secretSetting.value);
    if (secretSetting !== undefined && secretWhy !== undefined) this.bad(secretSetting.src, secretWhy);
    const secret = secretSetting?.value;
    const jwksFile = this.absolute("jwt.jwksFile");
    let jwksUrl: string | undefined;
    const ju = this.str("jwt.jwksUrl");
    if (ju !== undefined) {
      if (!httpsUrl(ju.value)) this.bad(ju.src, "must be an https:// URL without credentials", ju.src.from === "file" ? show(ju.value) : undefined);
      else jwksUrl = ju.value;
    }
    const sources = ["secret", "jwksFile", "jwksUrl"].filter((k) => this.source(`jwt.${k}`) !== undefined);
    if (sources.length === 0) {
      missing("jwt needs one key source: secret (COFFER_JWT_SECRET), jwksFile (COFFER_JWT_JWKS_FILE) or jwksUrl (COFFER_JWT_JWKS_URL)");
    } else if (sources.length > 1) {
      missing(`jwt has ${sources.join(" and ")}: give exactly one of secret, jwksFile, jwksUrl`);
    }
    const issuer = this.str("jwt.issuer")?.value;
    if (this.source("jwt.issuer") === undefined) missing("jwt needs issuer (COFFER_JWT_ISSUER): the iss tokens must carry");
    const audience = this.str("jwt.audience")?.value;
    if (this.source("jwt.audience") === undefined) missing("jwt needs audience (COFFER_JWT_AUDIENCE): the aud tokens must carry");
    const rolesClaim = this.str("jwt.rolesClaim")?.value ?? "roles";

    const hmac = sources.length === 1 && sources[0] === "secret";
    let algorithms = hmac ? ["HS256"] : [...DEFAULT_KEY_ALGORITHMS];
    const alg = this.source("jwt.algorithms");
    if (alg !== undefined) {
      const list = this.stringList(alg, "must be a list of algorithm names, e.g. [HS256]");
      if (list !== undefined) {
        const out: string[] = [];
        const rules: string[] = [];
        if (list.length === 0) rules.push(`must not be empty; algorithms: ${ALGORITHMS.join(", ")}`);
        for (const a of list) {
          if (a.toLowerCase() === "none") rules.push(`"none" is refused: it accepts unsigned tokens, which anyone can forge`);
          else if (!ALGORITHMS.includes(a)) rules.push(`${show(a)} is unknown; algorithms: ${ALGORITHMS.join(", ")}`);
          else if (out.includes(a)) rules.push(`${show(a)} is listed twice`);
          else if (sources.length === 1 && hmac && !a.startsWith("HS")) rules.push(`${a} needs a key set (jwksFile or jwksUrl); with secret use HS256, HS384 or HS512`);
          else if (sources.length === 1 && !hmac && a.startsWith("HS")) rules.push(`${a} needs secret; with jwksFile or jwksUrl use RS*, PS*, ES* or EdDSA`);
          else out.push(a);
        }
        for (const r of rules) this.bad(alg, r);
        if (rules.length === 0) algorithms = out;
      }
    }
    const maxLifetimeMs = this.duration("jwt.maxLifetime", { min: 1000, max: MAX_JWT_MAX_LIFETIME_MS });
    if (this.problems.length + this.envProblems.length > before) return undefined;
    if (issuer === undefined || audience === undefined) return undefined;
    return {
      ...(secret !== undefined && { secret }),
      ...(jwksFile !== undefined && { jwksFile }),
      ...(jwksUrl !== undefined && { jwksUrl }),
      issuer,
      audience,
      rolesClaim,
      algorithms,
      ...(maxLifetimeMs !== undefined && { maxLifetimeMs }),
    };
  }

  /** A list of strings from the file, or a comma list from the environment. */
  stringList(src: Source, rule: string): string[] | undefined {
    if (src.from === "env") return src.text.split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (!isSeq(src.node)) {
      this.bad(src, rule, this.kind(src.node));
      return undefined;
    }
    const out: string[] = [];
    let ok = true;
    for (const item of src.node.items) {
      const s = this.asStringAt(item, src.line, `${src.where} entry`);
      if (s === undefined) ok = false;
      else out.push(s.value);
    }
    return ok ? out : undefined;
  }

  tls(): ServerConfig["tls"] {
    const given = SECTION_KEYS.tls.some((k) => this.source(`tls.${k}`) !== undefined);
    const entry = this.top.get("tls");
    if (!given && entry === undefined) return undefined;
    const before = this.problems.length + this.envProblems.length;
    const cert = this.absolute("tls.cert");
    const key = this.absolute("tls.key");
    const clientCa = this.absolute("tls.clientCa");
    for (const [k, v] of [["cert", "COFFER_TLS_CERT"], ["key", "COFFER_TLS_KEY"]] as const) {
      if (this.source(`tls.${k}`) !== undefined) continue;
      const rule = `tls needs ${k} (${v}): the absolute path of the ${k === "cert" ? "certificate chain (PEM)" : "private key (PEM)"}`;
      if (entry !== undefined) this.problem(entry.line, rule);
      else this.envProblems.push(rule);
    }
    if (this.problems.length + this.envProblems.length > before || cert === undefined || key === undefined) return undefined;
    return { cert, key, ...(clientCa !== undefined && { clientCa }) };
  }

  /** `roles` from the file or from COFFER_ROLES (YAML or JSON text). */
  rolesSetting(): Record<string, RoleRule[]> {
    const src = this.source("roles");
    if (src === undefined) return Object.create(null) as Record<string, RoleRule[]>;
    if (src.from === "file") return this.roles(src.node, src.line, "roles") ?? (Object.create(null) as Record<string, RoleRule[]>);
    return this.fromEnv(src, (c, node) => c.roles(node, 1, "roles")) ?? (Object.create(null) as Record<string, RoleRule[]>);
  }

  /** Checks a variable's YAML text with a checker of its own; its problems read `VARIABLE:line: rule`. */
  fromEnv<T>(src: { name: string; text: string }, run: (c: ServerChecker, node: unknown) => T | undefined): T | undefined {
    let parsed;
    try {
      parsed = parseYaml(src.text, src.name);
    } catch (err) {
      this.envProblems.push((err as Error).message);
      return undefined;
    }
    const c = new ServerChecker(src.name, parsed.doc, parsed.lines, {});
    const out = run(c, parsed.doc.contents);
    try {
      c.throwIfAny();
    } catch (err) {
      this.envProblems.push((err as Error).message);
      return undefined;
    }
    return out;
  }

  roles(node: unknown, line: number, where: string): Record<string, RoleRule[]> | undefined {
    const map = this.asMap(node, line, where);
    if (map === undefined) return undefined;
    const out = Object.create(null) as Record<string, RoleRule[]>;
    for (const { key: name, line: nameLine, value } of this.entries(map, where)) {
      if (name === ROOT_ROLE) {
        this.problem(nameLine, `role name "root" is reserved: root is built in (every capability on every path); choose another name`);
        continue;
      }
      if (!ROLE_NAME_RE.test(name)) {
        this.problem(nameLine, `role name ${show(name)} must match ${ROLE_NAME_PATTERN}`);
        continue;
      }
      const rules = this.role(name, value, nameLine);
      if (rules !== undefined) out[name] = rules;
    }
    return out;
  }

  role(name: string, node: unknown, line: number): RoleRule[] | undefined {
    const where = `role ${show(name)}`;
    const seq = this.deref(node, line);
    if (!isSeq(seq)) {
      if (seq !== undefined || node === null) {
        this.problem(seq === null || seq === undefined ? line : this.line(seq), `${where} must be a list of { path, capabilities }, got ${this.kind(seq)}`);
      }
      return undefined;
    }
    if (seq.items.length === 0) {
      this.problem(line, `${where} has no rules; give at least one { path, capabilities }`);
      return undefined;
    }
    const before = this.problems.length;
    const out: RoleRule[] = [];
    seq.items.forEach((item, i) => {
      const rw = `${where} rule ${i + 1}`;
      const map = this.asMap(item, this.line(seq), rw);
      if (map === undefined) return;
      const keys = this.entries(map, rw);
      this.unknownKeys(keys, ["path", "capabilities"], rw);
      const pathEntry = keys.find((k) => k.key === "path");
      const capsEntry = keys.find((k) => k.key === "capabilities");
      let path: string | undefined;
      if (pathEntry === undefined) {
        this.problem(this.line(map), `${rw} needs path: a secret-name glob (e.g. app/*) or sys:tokens, sys:audit, sys:metrics`);
      } else {
        const p = this.asStringAt(pathEntry.value, pathEntry.line, `${rw} path`);
        if (p !== undefined) {
          const why = policyPatternProblem(p.value);
          if (why !== undefined) this.problem(p.line, `${rw} path ${show(p.value)}: ${why}; ${PATH_RULE}`);
          else path = p.value;
        }
      }
      let capabilities: Capability[] | undefined;
      if (capsEntry === undefined) {
        this.problem(this.line(map), `${rw} needs capabilities: a list of ${CAPABILITIES.join(", ")}`);
      } else {
        capabilities = this.capabilities(capsEntry, rw);
      }
      if (path !== undefined && capabilities !== undefined) out.push({ path, capabilities });
    });
    return this.problems.length > before ? undefined : out;
  }

  capabilities(entry: YamlEntry, rw: string): Capability[] | undefined {
    const seq = this.deref(entry.value, entry.line);
    if (!isSeq(seq)) {
      if (seq !== undefined || entry.value === null) {
        this.problem(seq === null || seq === undefined ? entry.line : this.line(seq), `${rw} capabilities must be a list of ${CAPABILITIES.join(", ")}, got ${this.kind(seq)}`);
      }
      return undefined;
    }
    if (seq.items.length === 0) {
      this.problem(entry.line, `${rw} capabilities is empty; give at least one of ${CAPABILITIES.join(", ")}`);
      return undefined;
    }
    const out: Capability[] = [];
    let ok = true;
    for (const item of seq.items) {
      const s = this.asStringAt(item, entry.line, `${rw} capability`);
      if (s === undefined) {
        ok = false;
        continue;
      }
      const cap = CAPABILITIES.find((c) => c === s.value);
      if (cap === undefined) {
        this.problem(s.line, `${rw} capability ${show(s.value)} is unknown; capabilities: ${CAPABILITIES.join(", ")}`);
        ok = false;
      } else if (out.includes(cap)) {
        this.problem(s.line, `${rw} capability ${show(cap)} is listed twice`);
        ok = false;
      } else {
        out.push(cap);
      }
    }
    return ok ? out : undefined;
  }

  /** `clients` (file or COFFER_CLIENTS): certificate names → existing role names; needs tls.clientCa. */
  clients(roles: Record<string, RoleRule[]>, tls: ServerConfig["tls"]): Record<string, string[]> | undefined {
    const src = this.source("clients");
    if (src === undefined) return undefined;
    const check = (c: ServerChecker, node: unknown, line: number): Record<string, string[]> | undefined => {
      const map = c.asMap(node, line, "clients");
      if (map === undefined) return undefined;
      const out = Object.create(null) as Record<string, string[]>;
      const before = c.problems.length;
      for (const { key: name, line: nameLine, value } of c.entries(map, "clients")) {
        const where = `client ${show(name)}`;
        if (name.trim() === "") {
          c.problem(nameLine, "clients: a certificate name must not be empty");
          continue;
        }
        const seq = c.deref(value, nameLine);
        if (!isSeq(seq) || seq.items.length === 0) {
          if (seq !== undefined || value === null) c.problem(nameLine, `${where} must be a non-empty list of role names, got ${isSeq(seq) ? "an empty list" : c.kind(seq)}`);
          continue;
        }
        const names: string[] = [];
        for (const item of seq.items) {
          const s = c.asStringAt(item, nameLine, `${where} role`);
          if (s === undefined) continue;
          if (s.value !== ROOT_ROLE && !Object.hasOwn(roles, s.value)) {
            c.problem(s.line, `${where}: role ${show(s.value)} is not defined; roles: ${[ROOT_ROLE, ...Object.keys(roles)].join(", ")}`);
          } else if (!names.includes(s.value)) {
            names.push(s.value);
          }
        }
        out[name] = names;
      }
      return c.problems.length > before ? undefined : out;
    };
    const clients = src.from === "file" ? check(this, src.node, src.line) : this.fromEnv(src, (c, node) => check(c, node, 1));
    if (clients !== undefined && tls?.clientCa === undefined) {
      this.bad(src, "needs tls.clientCa (COFFER_TLS_CLIENT_CA): client certificates are only asked for with a CA to check them");
      return undefined;
    }
    return clients;
  }
}

/** Why `entry` is not an IP address or CIDR coffer accepts as a trusted proxy, or undefined. */
function cidrRule(entry: string): string | undefined {
  const [addr, bits, extra] = entry.split("/");
  const family = isIP(addr ?? "");
  if (extra !== undefined || family === 0) return "not an IP address or CIDR (e.g. 10.0.0.5, 10.1.0.0/16, fd00::/8)";
  if (bits === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (!/^[0-9]{1,3}$/.test(bits) || Number(bits) > max) return `the prefix length must be a number from 1 to ${max}`;
  if (Number(bits) === 0) return "a /0 trusts every address, so any client could choose its own; list your proxies";
  return undefined;
}

/** `HOST:PORT` or `[IPv6]:PORT`; the host of an IPv6 address without brackets. */
function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:([0-9]{1,5})$/.exec(text) ?? /^([^:[\]\s]+):([0-9]{1,5})$/.exec(text);
  if (m === null) return undefined;
  const host = m[1]!;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  const bracketed = text.startsWith("[");
  if (bracketed ? isIP(host) !== 6 : isIP(host) !== 4 && !HOSTNAME_RE.test(host)) return undefined;
  return { host, port };
}

function httpsUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === "https:" && u.hostname !== "" && u.username === "" && u.password === "";
  } catch {
    return false;
  }
}
