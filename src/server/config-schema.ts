/**
 * The structure of the server config (docs/design.md §7): {@link SERVER_SCHEMA} is the single
 * source of the file's keys, types and bounds, with its formats (listen addresses, durations,
 * https URLs, policy paths, the Vault mount) and the names each setting takes as an environment
 * variable (`COFFER_` + its path). The one config checker (config/schema-check.ts) walks it; the
 * rules that need several settings at once are config-check.ts's.
 */
import { isIP } from "node:net";
import type { Formats, Schema } from "../config/schema-check.ts";
import { checkDuration, DURATION_RULE, type DurationBounds } from "../core/durations.ts";
import { PATTERN_RULE } from "../core/patterns.ts";
import { CAPABILITIES, policyPatternProblem, ROOT_ROLE, SYSTEM_PATHS } from "./policy.ts";
import { USER_NAME_PATTERN } from "./users.ts";
import { weakSecretRule } from "./weak-secrets.ts";

/** pino's level names: what `log.level` accepts. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** A role's name. */
export const ROLE_NAME_PATTERN = "^[a-z][a-z0-9_-]*$";
/** `runbooks.rateLimit` when unset: 10 executions a minute per subject. */
export const DEFAULT_RUNBOOK_EXECUTIONS = 10;
export const DEFAULT_RUNBOOK_WINDOW_MS = 60_000;
/** `jwt.maxLifetime` when unset: 24 h. */
export const DEFAULT_JWT_MAX_LIFETIME_MS = 24 * 60 * 60 * 1000;

const MAX_WINDOW_MS = 24 * 60 * 60 * 1000;
const MAX_JWT_MAX_LIFETIME_MS = 366 * 24 * 60 * 60 * 1000;
export const MAX_PROXY_HOPS = 16;
export const ALGORITHMS: readonly string[] = [
  ...["HS256", "HS384", "HS512", "RS256", "RS384", "RS512"],
  ...["PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"],
];
export const DEFAULT_KEY_ALGORITHMS = ["RS256", "ES256", "EdDSA"];
const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** COFFER_ENV values that once meant "production" (any case): they must not leave a server unguarded. */
export const PRODUCTION_SPELLINGS = /^\s*prod(uction)?\s*$/i;
export const LISTEN_RULE = "must be HOST:PORT or [IPv6]:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8200 or [::1]:8200";
export const ENV_BOOLEAN_RULE = "must be true, false, 1 or 0";
export const HOP_RULE = `must be true, false or a number of proxy hops from 0 to ${MAX_PROXY_HOPS}`;

const GOT = "{where} {rule}, got {value}";
const text: Schema = { type: "string", minLength: 1 };
const secretText: Schema = { ...text, "x-secret": true };
const absolute: Schema = { ...text, pattern: "^/", "x-rule": "{where} must be an absolute path (starting with /), got {value}" };
const wholeNumber = (minimum: number, expect: string): Schema => ({ type: "integer", minimum, "x-expect": expect });
const section = (properties: Record<string, Schema>): Schema => ({ type: "object", additionalProperties: false, "x-sep": ".", properties });
const hops = { type: "integer", minimum: 0, maximum: MAX_PROXY_HOPS, "x-expect": HOP_RULE.slice("must be ".length) };

/** The JSON Schema of the server config, with coffer's `x-` message keywords (schema-check.ts). */
export const SERVER_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "urn:coffer:schema:server.yml:1",
  title: "coffer server config",
  type: "object",
  additionalProperties: false,
  properties: {
    listen: { type: "string", "x-format": "listen", "x-rule": GOT },
    jwt: section({
      secret: { ...secretText, "x-format": "jwt-secret", "x-rule": "{where} {rule}" },
      jwksFile: absolute,
      jwksUrl: { ...text, "x-format": "https-url", "x-rule": GOT },
      issuer: text,
      audience: text,
      rolesClaim: text,
      algorithms: { type: "array", items: { type: "string" }, "x-expect": "a list of algorithm names, e.g. [HS256]" },
      maxLifetime: { type: "string", "x-format": "jwt-lifetime", "x-rule": GOT },
    }),
    rateLimit: section({
      requests: wholeNumber(1, "a positive whole number"),
      window: { type: "string", "x-format": "window", "x-rule": GOT },
      ipRequests: wholeNumber(1, "a positive whole number"),
    }),
    limits: section({
      bodyBytes: wholeNumber(1024, "a whole number of bytes, at least 1024"),
      valueBytes: wholeNumber(1, "a positive whole number of bytes"),
    }),
    roles: {
      type: "object",
      propertyNames: {
        pattern: ROLE_NAME_PATTERN,
        not: { const: ROOT_ROLE, "x-rule": 'role name "root" is reserved: root is built in (every capability on every path); choose another name' },
        "x-rule": "role name {value} must match {pattern}",
      },
      additionalProperties: { $ref: "#/$defs/role" },
      "x-item": "role {key}",
    },
    devLogin: { type: "boolean" },
    behindProxy: { oneOf: [{ type: "boolean" }, hops], "x-expect": hops["x-expect"] },
    trustedProxies: { type: "array", items: { type: "string" }, "x-expect": "a list of proxy addresses or CIDRs, e.g. [10.0.0.5, 10.1.0.0/16]" },
    production: { type: "boolean" },
    metrics: section({ public: { type: "boolean" } }),
    ui: section({ enabled: { type: "boolean" } }),
    vault: section({ mount: { type: "string", "x-format": "vault-mount", "x-rule": GOT } }),
    database: secretText,
    redis: secretText,
    tls: section({ cert: absolute, key: absolute, clientCa: absolute }),
    clients: {
      type: "object",
      propertyNames: { pattern: "\\S", "x-rule": "clients: a certificate name must not be empty" },
      additionalProperties: {
        type: "array",
        minItems: 1,
        items: { type: "string" },
        "x-item": "{where} role",
        "x-expect": "a non-empty list of role names",
        "x-empty": "{where} must be a non-empty list of role names, got an empty list",
      },
      "x-item": "client {key}",
    },
    log: section({ level: { type: "string", enum: LOG_LEVELS } }),
    runbooks: section({
      dir: absolute,
      rateLimit: section({
        executions: wholeNumber(1, "a positive whole number"),
        window: { type: "string", "x-format": "window", "x-rule": GOT },
      }),
      runAs: { type: "string", pattern: USER_NAME_PATTERN, "x-rule": "{where} must be a user name matching {pattern}, got {value}" },
      allowUnsandboxed: { type: "boolean" },
    }),
  },
  $defs: {
    role: {
      type: "array",
      minItems: 1,
      "x-item": "{where} rule {n}",
      "x-expect": "a list of { path, capabilities }",
      "x-empty": "{where} has no rules; give at least one { path, capabilities }",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["path", "capabilities"],
        properties: {
          path: {
            type: "string",
            "x-format": "policy-path",
            "x-rule": `{where} {value}: {rule}; a rule path is a system path (${SYSTEM_PATHS.join(", ")}), runbook:NAME (a glob over runbook names, e.g. runbook:*, runbook:cdn-*) or ${PATTERN_RULE}`,
            "x-needs": "a secret-name glob (e.g. app/*), sys:tokens, sys:audit, sys:metrics, sys:roles, or runbook:NAME (e.g. runbook:*)",
          },
          capabilities: {
            type: "array",
            minItems: 1,
            uniqueItems: true,
            items: { type: "string", enum: CAPABILITIES, "x-rule": `{where} {value} is unknown; capabilities: ${CAPABILITIES.join(", ")}` },
            "x-item": "{owner} capability",
            "x-expect": `a list of ${CAPABILITIES.join(", ")}`,
            "x-needs": `a list of ${CAPABILITIES.join(", ")}`,
            "x-empty": `{where} is empty; give at least one of ${CAPABILITIES.join(", ")}`,
          },
        },
      },
    },
  },
};

const durationRule = (bounds: DurationBounds) => (s: string, number?: boolean) => {
  if (number === true) return `${DURATION_RULE}, got number ${s}`;
  const r = checkDuration(s, bounds);
  return "rule" in r ? r.rule : undefined;
};

export const SERVER_FORMATS: Formats = {
  listen: (s) => (parseListen(s) === undefined ? LISTEN_RULE : undefined),
  "jwt-secret": (s) => weakSecretRule(s),
  "https-url": (s) => (httpsUrl(s) ? undefined : "must be an https:// URL without credentials"),
  "jwt-lifetime": durationRule({ min: 1000, max: MAX_JWT_MAX_LIFETIME_MS }),
  window: durationRule({ min: 1, max: MAX_WINDOW_MS }),
  "policy-path": (s) => policyPatternProblem(s),
  "vault-mount": (s) => vaultMountRule(s),
};

/**
 * The first segments of coffer's own routes (and the ones it keeps for later): a Vault mount
 * named like one would shadow coffer's API under `/v1/`.
 */
export const RESERVED_MOUNTS: readonly string[] = [
  "secrets", "sys", "auth", "tokens", "roles", "audit", "watch", "runbooks", "executions", "rotation",
  "rollback", "purge", "delete", "undelete", "destroy", "ui", "docs", "metrics",
];

/** Why `mount` cannot be the Vault KV v2 mount, or undefined when it can. */
export function vaultMountRule(mount: string): string | undefined {
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(mount)) return "must be one path segment of lower-case letters, digits, '_' and '-' (e.g. secret or kv)";
  if (RESERVED_MOUNTS.includes(mount)) return `must not shadow coffer's own routes under /v1/ (${RESERVED_MOUNTS.join(", ")}); choose another name, e.g. secret or kv`;
  return undefined;
}

/** `rateLimit.ipRequests` → `COFFER_RATE_LIMIT_IP_REQUESTS`. */
export function envName(path: string): string {
  return `COFFER_${path
    .split(".")
    .map((p) => p.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase())
    .join("_")}`;
}

/** `HOST:PORT` or `[IPv6]:PORT`; the host of an IPv6 address without brackets. */
export function parseListen(text: string): { host: string; port: number } | undefined {
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
  const u = URL.parse(s);
  return u !== null && u.protocol === "https:" && u.hostname !== "" && u.username === "" && u.password === "";
}
