/**
 * The one error family of coffer. Every failure a user can meet is a `CofferError` with a
 * stable `code`; the registry below maps each code to its CLI exit status and HTTP status,
 * and the README documents each line (a test checks that).
 *
 * Messages say what failed, why, and what to do. They never carry a secret value.
 */

/**
 * A message listing problems one a line: the problem itself when there is one, else
 * `HEAD: N problems:` and each problem on its own indented line. `total` counts the problems when
 * `problems` shows only the first of them.
 * @example problemList(".coffer.yml", ["a.yml:2: bad", "a.yml:5: worse"]) // ".coffer.yml: 2 problems:\n  a.yml:2: bad\n  a.yml:5: worse"
 */
export function problemList(head: string, problems: readonly string[], total = problems.length): string {
  return total === 1 ? (problems[0] as string) : `${head}: ${total} problems:\n  ${problems.join("\n  ")}`;
}

/** A user-given text in a message: JSON-quoted, cut at `max` characters (never a secret value). */
export function show(s: string, max = 80): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

/** Code → exit status (CLI), HTTP status (server) and a one-line meaning for the docs. */
export const ERROR_CODES = {
  E_INTERNAL: { exit: 1, http: 500, meaning: "an unexpected failure (a bug): rerun with --debug and report it" },
  E_USAGE: { exit: 2, http: 400, meaning: "the command line is wrong: unknown flag, missing argument" },
  E_NOT_FOUND: { exit: 3, http: 404, meaning: "no such secret or version" },
  E_CONFLICT: { exit: 4, http: 409, meaning: "check-and-set failed (--if-version) or the thing already exists" },
  E_PERMISSIONS: { exit: 5, http: 500, meaning: "a file or directory is accessible to others or owned by someone else" },
  E_DENIED: { exit: 5, http: 403, meaning: "the caller may not do this" },
  E_DECRYPT: { exit: 6, http: 500, meaning: "decryption failed: wrong identity or passphrase, or tampered data" },
  E_INTEGRITY: { exit: 6, http: 500, meaning: "stored data is inconsistent: the audit chain or the store format does not verify" },
  E_INVALID_NAME: { exit: 7, http: 400, meaning: "a name breaks the naming rule" },
  E_INVALID_VALUE: { exit: 7, http: 400, meaning: "a value or option value breaks a rule (too large, bad number, empty passphrase)" },
  E_NOT_INITIALIZED: { exit: 8, http: 500, meaning: "no identity or store yet: run `coffer init`" },
  E_IDENTITY: { exit: 8, http: 500, meaning: "the identity file is not a usable age identity" },
  E_BUSY: { exit: 9, http: 503, meaning: "the store stayed locked by another process for too long" },
  E_CANCELLED: { exit: 10, http: 400, meaning: "the user declined a confirmation, or no terminal was there to ask" },
  E_DISPOSED: { exit: 1, http: 500, meaning: "a Secret was used after dispose()" },
  E_SIGNATURE: { exit: 6, http: 400, meaning: "a bundle's signature does not verify: forged or tampered" },
  E_UNTRUSTED: { exit: 5, http: 403, meaning: "a bundle's sender is not a trusted card, or not the one --trust names: check its fingerprint, then --trust it" },
  E_EXPIRED: { exit: 6, http: 400, meaning: "a bundle has expired" },
  E_MISADDRESSED: { exit: 6, http: 400, meaning: "a bundle was made for someone else" },
  E_CONFIG: { exit: 7, http: 400, meaning: "the project file (.coffer.yml) breaks a rule: the message names file, line and rule" },
  E_PROVIDER: { exit: 11, http: 502, meaning: "a provider (Vault, a folder, …) failed or could not be reached" },
  E_UNAUTHENTICATED: { exit: 5, http: 401, meaning: "no credentials, or they are invalid, expired or revoked: log in again" },
  E_RATE_LIMITED: { exit: 9, http: 429, meaning: "too many requests: wait for the time Retry-After gives" },
  E_TOO_LARGE: { exit: 7, http: 413, meaning: "a request body is larger than the server's limit" },
  E_LISTEN: { exit: 9, http: 500, meaning: "the server cannot listen on its address: the port is in use, needs privileges, or the address is not this machine's" },
  E_REPLACED: { exit: 9, http: 503, meaning: "the store file was replaced (restored) after this process opened it: open it again" },
  E_UNAVAILABLE: { exit: 11, http: 503, meaning: "the server cannot serve the request now (its audit log or database failed): nothing was done" },
  E_EXECUTION: { exit: 12, http: 409, meaning: "a runbook execution did not finish: it was cancelled, rejected, interrupted or expired (the status says which)" },
  E_ROTATION: { exit: 13, http: 502, meaning: "a rotation failed: the new value could not be applied to its target (or tested there), so no version was written" },
} as const satisfies Record<string, { exit: number; http: number; meaning: string }>;

/** A stable error code; `switch (err.code)` narrows on it. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Base class of every error coffer throws on purpose. */
export class CofferError extends Error {
  readonly code: ErrorCode;

  /**
   * @param code - the stable code, see {@link ERROR_CODES}
   * @param message - what failed, why, and what to do; never a secret value
   */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CofferError";
    this.code = code;
  }

  /** The CLI exit status for this error. */
  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  /** The HTTP status for this error. */
  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }
}

/** Authenticated decryption failed. Says only that it failed, never where or why. */
export class DecryptError extends CofferError {
  constructor(what: string, options?: ErrorOptions) {
    super("E_DECRYPT", `cannot decrypt ${what}: wrong key or tampered data`, options);
    this.name = "DecryptError";
  }
}

/** A file or directory fails the ownership/mode rule (docs/design.md §3). */
export class PermissionsError extends CofferError {
  constructor(message: string) {
    super("E_PERMISSIONS", message);
    this.name = "PermissionsError";
  }
}

/** An input breaks a rule; the message names the rule. */
export class ValidationError extends CofferError {
  constructor(code: "E_INVALID_NAME" | "E_INVALID_VALUE" | "E_USAGE", message: string) {
    super(code, message);
    this.name = "ValidationError";
  }
}

/** True when `err` is a CofferError with the given code. */
export function isCofferError(err: unknown, code?: ErrorCode): err is CofferError {
  return err instanceof CofferError && (code === undefined || err.code === code);
}
