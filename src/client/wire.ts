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
