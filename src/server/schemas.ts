/**
 * The HTTP API's JSON schemas (fastify validates requests and serializes answers with them; the
 * OpenAPI docs show them) and the TypeScript shapes the routes' generics give them. One place, so
 * a shape used by two routes (a prefix query, a role list) is written once.
 */

/** Whole numbers as a query string carries them (no coercion). */
const POSITIVE_INT = { type: "string", pattern: "^[1-9][0-9]{0,14}$" } as const;
const WHOLE_NUMBER = { type: "string", pattern: "^(0|[1-9][0-9]{0,14})$" } as const;
const STRING = { type: "string" } as const;
const INTEGER = { type: "integer" } as const;
const STRING_OR_NULL = { type: ["string", "null"] } as const;
const STRINGS = { type: "array", items: STRING } as const;

/** A token's name and a dev-login subject: letters, digits and `_ . @ : -`, starting with a letter or digit, at most 64. */
export const TOKEN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$/;

/** `?prefix=` of a listing or a watch. */
export const PREFIX_QUERY = { type: "object", additionalProperties: false, properties: { prefix: { type: "string", maxLength: 256 } } } as const;
export interface PrefixQuery { prefix?: string }

/** The roles a new token gets. */
const ROLES_BODY = { type: "array", minItems: 1, maxItems: 32, uniqueItems: true, items: { type: "string", maxLength: 64 } } as const;

/** The answer of `GET /v1/secrets/{name}` (and of `…/versions`). The benchmark's bare handlers use it too. */
export const SECRET_READ_SCHEMA = {
  type: "object",
  properties: {
    name: STRING, version: INTEGER, value: STRING, valueBase64: STRING, createdAt: STRING, createdBy: STRING, updatedAt: STRING,
    versions: {
      type: "array",
      items: { type: "object", properties: { version: INTEGER, createdAt: STRING, createdBy: STRING, current: { type: "boolean" }, deletedAt: STRING_OR_NULL, destroyed: { type: "boolean" } } },
    },
  },
} as const;
/** A secret's rotation as its metadata shows it (the whole policy: `GET /v1/rotation/{name}`). */
const SECRET_ROTATION = { type: "object", properties: { state: STRING, nextAt: STRING_OR_NULL, lastError: STRING_OR_NULL, lastErrorAt: STRING_OR_NULL } } as const;
const SECRET_INFO = { type: "object", properties: { name: STRING, version: INTEGER, description: STRING_OR_NULL, updatedAt: STRING, updatedBy: STRING, rotation: SECRET_ROTATION } } as const;
export const SECRET_LIST_SCHEMA = { type: "object", properties: { secrets: { type: "array", items: SECRET_INFO } } } as const;
export const READ_QUERY = { type: "object", additionalProperties: false, properties: { version: POSITIVE_INT } } as const;
export interface ReadQuery { version?: string }

const BASE64 = { type: "string", pattern: "^[A-Za-z0-9+/]*={0,2}$" } as const;
export const WRITE_BODY = {
  type: "object",
  additionalProperties: false,
  properties: { value: STRING, valueBase64: BASE64, description: { type: "string", maxLength: 1024 }, ifVersion: { type: "integer", minimum: 0 } },
} as const;
export interface WriteBody { value?: string; valueBase64?: string; description?: string; ifVersion?: number }
export const WRITE_RESULT_SCHEMA = { type: "object", properties: { name: STRING, version: INTEGER } } as const;

export const SELF_SCHEMA = { type: "object", properties: { subject: STRING, kind: STRING, roles: STRINGS, expiresAt: STRING_OR_NULL } } as const;

const TTL = { anyOf: [{ type: "integer", minimum: 1 }, { type: "string", maxLength: 16 }] } as const;
export const TOKEN_BODY = { type: "object", additionalProperties: false, required: ["name", "roles"], properties: { name: { type: "string", minLength: 1, maxLength: 64 }, roles: ROLES_BODY, ttl: TTL } } as const;
export interface TokenBody { name: string; roles: string[]; ttl?: number | string }
export const NEW_TOKEN_SCHEMA = { type: "object", properties: { token: STRING, id: STRING, name: STRING, roles: STRINGS, expiresAt: STRING_OR_NULL } } as const;
const TOKEN_INFO = { type: "object", properties: { id: STRING, name: STRING, roles: STRINGS, createdAt: STRING, createdBy: STRING, expiresAt: STRING_OR_NULL, revokedAt: STRING_OR_NULL } } as const;
export const TOKEN_LIST_SCHEMA = { type: "object", properties: { tokens: { type: "array", items: TOKEN_INFO } } } as const;
export const TOKEN_ID_PARAMS = { type: "object", properties: { id: { type: "string", pattern: "^[0-9a-f]{16}$" } } } as const;
export interface TokenIdParams { id: string }
const NAME_VERSIONS = { type: "array", items: { type: "object", properties: { name: STRING, version: { type: "integer" } } } } as const;
const NAME_REASONS = { type: "array", items: { type: "object", properties: { name: STRING, reason: STRING } } } as const;
/** A revocation's answer; with `?rotate=true` also what was rotated and what is left to rotate by hand. */
export const REVOKED_SCHEMA = { type: "object", properties: { id: STRING, revoked: { type: "boolean" }, rotated: NAME_VERSIONS, manual: NAME_REASONS } } as const;
/** `?rotate=true` of a revocation. */
export const REVOKE_QUERY = { type: "object", additionalProperties: false, properties: { rotate: { type: "string", enum: ["true", "false"] } } } as const;
export interface RevokeQuery { rotate?: "true" | "false" }

const NULLABLE_STRING = { type: ["string", "null"] } as const;
const APPLY_VIEW = { anyOf: [{ type: "null" }, { type: "object", additionalProperties: true }] } as const;
/** A rotation policy and where it stands (client/wire.ts RotationView). */
export const ROTATION_VIEW_SCHEMA = {
  type: "object",
  properties: {
    name: STRING, every: NULLABLE_STRING,
    generate: { type: "object", properties: { charset: STRING, length: { type: "integer" } } },
    apply: APPLY_VIEW, state: STRING, nextAt: NULLABLE_STRING, due: { type: "boolean" }, lastRotatedAt: NULLABLE_STRING,
    lastError: NULLABLE_STRING, lastErrorAt: NULLABLE_STRING, failures: { type: "integer" }, updatedAt: STRING, updatedBy: STRING,
  },
} as const;
export const ROTATION_LIST_SCHEMA = { type: "object", properties: { rotations: { type: "array", items: ROTATION_VIEW_SCHEMA } } } as const;
export const ROTATION_RESULT_SCHEMA = { type: "object", properties: { name: STRING, version: { type: "integer" }, rotatedAt: STRING } } as const;
export const ROTATION_DELETED_SCHEMA = { type: "object", properties: { name: STRING, deleted: { type: "boolean" } } } as const;
/** `?due=true` of `GET /v1/rotation`. */
export const ROTATION_LIST_QUERY = { type: "object", additionalProperties: false, properties: { due: { type: "string", enum: ["true", "false"] } } } as const;
export interface RotationListQuery { due?: "true" | "false" }

export const DEV_LOGIN_BODY = { type: "object", additionalProperties: false, required: ["roles"], properties: { subject: { type: "string", maxLength: 64 }, roles: ROLES_BODY } } as const;
export interface DevLoginBody { subject?: string; roles: string[] }

const LIMIT = { type: "string", pattern: "^([1-9][0-9]{0,2}|1000)$" } as const;
/** `?subject=&action=&prefix=` of `GET /v1/audit`: exact subject and action, a name prefix. */
export const AUDIT_QUERY = {
  type: "object",
  additionalProperties: false,
  properties: {
    since: { type: "string", format: "date-time" }, after: WHOLE_NUMBER, before: WHOLE_NUMBER, limit: LIMIT,
    subject: { type: "string", minLength: 1, maxLength: 256, pattern: "^[\\x21-\\x7e]+$" },
    action: { type: "string", minLength: 1, maxLength: 64, pattern: "^[a-z][a-z0-9_.-]*$" },
    prefix: { type: "string", minLength: 1, maxLength: 256, pattern: "^[A-Za-z0-9_./-]+$" },
  },
} as const;
export interface AuditQuery { since?: string; after?: string; before?: string; limit?: string; subject?: string; action?: string; prefix?: string }
/** `{version}` of `POST /v1/rollback/{name}`: the version whose value the new version gets. */
export const ROLLBACK_BODY = { type: "object", additionalProperties: false, required: ["version"], properties: { version: { type: "integer", minimum: 1 } } } as const;
export interface RollbackBody { version: number }
/** The answer of `POST /v1/rollback/{name}`. */
export const ROLLBACK_RESULT_SCHEMA = { type: "object", properties: { name: STRING, version: INTEGER, from: INTEGER } } as const;
/** The answer of `POST /v1/purge/{name}`: how many versions were destroyed. */
export const PURGE_RESULT_SCHEMA = { type: "object", properties: { name: STRING, versions: INTEGER, purged: { type: "boolean" } } } as const;
/** The body of `POST /v1/delete|undelete|destroy/{name}`: 1 to 100 versions. */
export const VERSIONS_BODY = {
  type: "object", additionalProperties: false, required: ["versions"],
  properties: { versions: { type: "array", minItems: 1, maxItems: 100, items: { type: "integer", minimum: 1 } } },
} as const;
export interface VersionsBody { versions: number[] }
/** Their answer: each version asked for, as it is now. */
export const VERSIONS_RESULT_SCHEMA = {
  type: "object",
  properties: { name: STRING, versions: { type: "array", items: { type: "object", properties: { version: INTEGER, deletedAt: STRING_OR_NULL, destroyed: { type: "boolean" } } } } },
} as const;
const AUDIT_RECORD = {
  type: "object",
  properties: {
    seq: INTEGER, at: STRING, actor: STRING, action: STRING, name: STRING_OR_NULL, version: { type: ["integer", "null"] },
    detail: { type: ["object", "null"], additionalProperties: true }, hash: STRING,
  },
} as const;
export const AUDIT_LOG_SCHEMA = { type: "object", properties: { records: { type: "array", items: AUDIT_RECORD } } } as const;
export const VERIFY_QUERY = { type: "object", additionalProperties: false, properties: { full: { type: "string", enum: ["true", "false"] } } } as const;
export interface VerifyQuery { full?: "true" | "false" }
export const VERIFY_SCHEMA = { type: "object", properties: { ok: { type: "boolean" }, records: INTEGER, fromCheckpoint: INTEGER, brokenAt: INTEGER, reason: STRING } } as const;

/** coffer's health fields, and Vault's (`/v1/sys/health` of Vault clients: docs/design.md §13). */
export const HEALTH_SCHEMA = {
  type: "object",
  properties: {
    status: STRING, storage: STRING, rateLimit: STRING, changes: STRING, rotation: STRING, version: STRING,
    initialized: { type: "boolean" }, sealed: { type: "boolean" }, standby: { type: "boolean" }, performance_standby: { type: "boolean" },
    replication_performance_mode: STRING, replication_dr_mode: STRING, server_time_utc: { type: "integer" }, cluster_name: STRING, cluster_id: STRING,
  },
} as const;

/** A runbook's or an execution's name in a URL (checked again by the route: one segment, the name rule). */
export const RUNBOOK_PARAMS = { type: "object", properties: { name: { type: "string", maxLength: 256 } } } as const;
export interface RunbookParams { name: string }
/** An execution id: a UUID as coffer writes it. */
const EXECUTION_ID = { type: "string", pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" } as const;
export const EXECUTION_PARAMS = { type: "object", properties: { id: EXECUTION_ID } } as const;
export interface ExecutionParams { id: string }
/** `{ params }` of validate and run: the values are checked by the runbook (checkParams). */
export const RUN_BODY = { type: "object", additionalProperties: false, properties: { params: { type: "object" } } } as const;
export interface RunBody { params?: unknown }
export const HISTORY_QUERY = {
  type: "object",
  additionalProperties: false,
  properties: { runbook: { type: "string", maxLength: 256 }, limit: { type: "string", pattern: "^([1-9][0-9]?|100)$" }, before: EXECUTION_ID },
} as const;
export interface HistoryQuery { runbook?: string; limit?: string; before?: string }
const NUMBER_OR_NULL = { type: ["integer", "null"] } as const;
const STRING_MAP = { type: "object", additionalProperties: STRING } as const;
export const EXECUTION_SCHEMA = {
  type: "object",
  properties: {
    id: STRING, runbook: STRING, status: STRING, exitCode: NUMBER_OR_NULL, signal: STRING_OR_NULL, by: STRING, params: STRING_MAP,
    createdAt: STRING, startedAt: STRING_OR_NULL, finishedAt: STRING_OR_NULL, outputBytes: INTEGER, truncated: { type: "boolean" },
    approvalsRequired: INTEGER, approvals: STRINGS, expiresAt: STRING_OR_NULL, cancelRequested: { type: "boolean" },
  },
} as const;
const PARAM_INFO = {
  type: "object",
  properties: { name: STRING, required: { type: "boolean" }, pattern: STRING_OR_NULL, description: STRING_OR_NULL, default: STRING_OR_NULL },
} as const;
export const RUNBOOK_INFO = {
  type: "object",
  properties: {
    name: STRING, description: STRING, valid: { type: "boolean" }, problems: STRINGS, isolation: STRING, approvals: INTEGER,
    timeoutMs: INTEGER, outputLimit: INTEGER, concurrency: NUMBER_OR_NULL, secrets: STRINGS, files: STRINGS,
    params: { type: "array", items: PARAM_INFO },
  },
} as const;

/** `{name}` of `/v1/roles/{name}`: checked against ROLE_NAME_PATTERN by the route (400 with the rule). */
export const ROLE_NAME_PARAMS = { type: "object", required: ["name"], properties: { name: { type: "string", minLength: 1, maxLength: 64 } } } as const;
export interface RoleNameParams { name: string }
const ROLE_RULE = {
  type: "object",
  additionalProperties: false,
  required: ["path", "capabilities"],
  properties: {
    path: { type: "string", minLength: 1, maxLength: 300 },
    capabilities: { type: "array", minItems: 1, maxItems: 8, uniqueItems: true, items: { type: "string", maxLength: 16 } },
  },
} as const;
/** The body of `PUT /v1/roles/{name}`: the role's rules, replacing those it had. */
export const ROLE_BODY = {
  type: "object", additionalProperties: false, required: ["rules"], properties: { rules: { type: "array", maxItems: 100, items: ROLE_RULE } },
} as const;
export interface RoleBody { rules: { path: string; capabilities: string[] }[] }
const ROLE_VIEW = {
  type: "object",
  properties: {
    name: STRING,
    rules: { type: "array", items: { type: "object", properties: { path: STRING, capabilities: STRINGS } } },
    managedBy: { type: "string", enum: ["config", "api"] },
    version: { type: ["integer", "null"] },
    updatedAt: STRING_OR_NULL,
    updatedBy: STRING_OR_NULL,
  },
} as const;
export const ROLE_SCHEMA = ROLE_VIEW;
export const ROLE_LIST_SCHEMA = { type: "object", properties: { roles: { type: "array", items: ROLE_VIEW } } } as const;
export const ROLE_DELETED_SCHEMA = { type: "object", properties: { name: STRING, deleted: { type: "boolean" } } } as const;
