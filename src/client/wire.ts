/**
 * The JSON shapes of the coffer server's answers that more than one client reads: the CLI's
 * (runbooks.ts, admin.ts, which check each field with shape.ts) and the web console's (web/).
 * Types and pure functions only, with no import, so the browser bundle can take this file as
 * it is.
 */

/** Every status an execution can have. */
export const EXECUTION_STATUSES = [
  "pending-approval", "running", "succeeded", "failed", "timed-out", "cancelled", "rejected", "interrupted", "expired",
] as const;

/** An execution's status; all but `pending-approval` and `running` are final. */
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

/** True for a status that no longer changes. */
export function isFinalStatus(status: ExecutionStatus): boolean {
  return status !== "pending-approval" && status !== "running";
}

/** A param of a runbook (never its value). */
export interface RunbookParam {
  name: string;
  required: boolean;
  /** the regular expression a value must match, or null */
  pattern: string | null;
  description: string | null;
  /** the value used when none is given, or null */
  default: string | null;
}

/** A runbook that failed to load: it can never run; `problems` say why. */
export interface InvalidRunbook {
  name: string;
  valid: false;
  problems: string[];
}

/** A runbook that loaded. */
export interface ValidRunbook {
  name: string;
  valid: true;
  description: string;
  isolation: "tempdir" | "sandbox";
  /** how many other people must approve before it runs */
  approvals: number;
  timeoutMs: number;
  /** bytes of output kept, stdout and stderr together */
  outputLimit: number;
  /** at most this many running at once, or null for no limit */
  concurrency: number | null;
  /** the env names that receive secrets */
  secrets: string[];
  /** the env names that receive a secret file's path */
  files: string[];
  params: RunbookParam[];
}

/** A runbook as `GET /v1/runbooks` describes it. */
export type RunbookInfo = ValidRunbook | InvalidRunbook;

/** One execution of a runbook (`GET /v1/executions/{id}`). */
export interface Execution {
  id: string;
  runbook: string;
  status: ExecutionStatus;
  /** the script's exit status, or null (not ended, or ended by a signal) */
  exitCode: number | null;
  /** the signal that ended it (`SIGKILL`), or null */
  signal: string | null;
  /** the requester's subject */
  by: string;
  /** the params that are not secrets */
  params: Record<string, string>;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  outputBytes: number;
  truncated: boolean;
  approvalsRequired: number;
  /** the principals who approved */
  approvals: string[];
  /** when a pending execution expires, or null */
  expiresAt: string | null;
  cancelRequested: boolean;
}

/** A token as `GET /v1/tokens` lists it (never the token itself). */
export interface ServerTokenInfo {
  id: string;
  name: string;
  roles: string[];
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

/** A new token: its text (shown once) and what it is. */
export interface ServerNewToken {
  /** the token itself; print it once, store it nowhere */
  token: string;
  id: string;
  name: string;
  roles: string[];
  expiresAt: string | null;
}

/* ------------------------------------- rotation (§12) ------------------------------------- */

/** The charsets a rotation (and `coffer set --generate`) generates from. */
export type RotationCharset = "alnum" | "hex" | "base64" | "words";

/** How a rotation makes its new value: `length` counts characters, or words for `words`. */
export interface RotationGenerate {
  charset: RotationCharset;
  length: number;
}

/**
 * How a new value reaches its target before it is stored: nothing (`null`: the value is only
 * consumed, e.g. an HMAC key); a runbook run with `OLD_VALUE` and `NEW_VALUE` that must exit 0;
 * or PostgreSQL, `ALTER ROLE role PASSWORD` over the admin connection string held in the secret
 * `connection`, then a login as `role` with the new value.
 */
export type RotationApply = null | { runbook: string } | { postgres: { connection: string; role: string } };

/** The body of `PUT /v1/rotation/{name}`. */
export interface RotationPolicyBody {
  /** a duration (`30d`, `12h`, `3s`): rotated that long after its last rotation; absent: only on demand */
  every?: string;
  generate: RotationGenerate;
  apply?: RotationApply;
}

/**
 * Where a secret's rotation stands: `ok` (the last one succeeded, or none yet), `rotating` (one
 * holds the lock now), `failing` (the last attempt failed; it is retried with backoff),
 * `unknown` (a runbook apply was cut off by a crash: a person must check the target).
 */
export type RotationState = "ok" | "rotating" | "failing" | "unknown";

/** A secret's rotation policy and state: `GET /v1/rotation/{name}`, and each of `GET /v1/rotation`. */
export interface RotationView {
  name: string;
  /** the period as given (`30d`), or null: only on demand */
  every: string | null;
  generate: RotationGenerate;
  apply: RotationApply;
  state: RotationState;
  /** when it is due next (ISO 8601), or null without `every` */
  nextAt: string | null;
  /** true when `nextAt` has passed and it has not been rotated since */
  due: boolean;
  lastRotatedAt: string | null;
  /** the last failure's one-line message (never a value), and when; null after a success */
  lastError: string | null;
  lastErrorAt: string | null;
  /** failed attempts since the last success */
  failures: number;
  updatedAt: string;
  updatedBy: string;
}

/** The answer of `POST /v1/rotation/{name}` (rotate now) when it succeeded. */
export interface RotationResult {
  name: string;
  /** the new version, holding the new value */
  version: number;
  rotatedAt: string;
}

/**
 * What revoking someone with rotation did: the secrets rotated (a new version each), and those
 * left to rotate by hand, each with why (no rotation policy, or its apply failed).
 */
export interface RotationReport {
  rotated: { name: string; version: number }[];
  manual: { name: string; reason: string }[];
}
