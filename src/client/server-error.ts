/**
 * What a failed request to a coffer server becomes, and whether it is tried again: the server's
 * error answer as a {@link ServerError} (its code when it may pass through, its message cleaned
 * of control characters, the token and the request's values), a request that never got an
 * answer as E_PROVIDER, and the retry rule of {@link CofferClient.send} (client.ts).
 */
import { randomInt } from "node:crypto";
import { CofferError, ERROR_CODES, type ErrorCode } from "../errors.ts";
import { field } from "./shape.ts";

// Codes a server answer may carry through to the caller. Others (E_INTERNAL, E_DECRYPT, …)
// describe the server's own state, not the caller's request, and become E_PROVIDER here, so a
// server bug does not read as a client bug (exit 1, "report it").
const PASSED_THROUGH: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "E_USAGE", "E_INVALID_NAME", "E_INVALID_VALUE", "E_UNAUTHENTICATED", "E_DENIED", "E_NOT_FOUND",
  "E_CONFLICT", "E_TOO_LARGE", "E_RATE_LIMITED", "E_UNAVAILABLE", "E_BUSY", "E_ROTATION",
]);

// The contract's status → code, for an error body without a usable code.
const BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: "E_USAGE", 401: "E_UNAUTHENTICATED", 403: "E_DENIED", 404: "E_NOT_FOUND", 409: "E_CONFLICT",
  413: "E_TOO_LARGE", 429: "E_RATE_LIMITED", 503: "E_UNAVAILABLE",
};

/** A failure the server answered with (an HTTP error status). */
export class ServerError extends CofferError {
  /** the HTTP status */
  readonly status: number;
  /** the server's request id, for its logs */
  readonly requestId: string | undefined;
  /** for 429: seconds to wait, from Retry-After */
  readonly retryAfterSeconds: number | undefined;
  /** every problem the server listed (`error.problems` of a 400 from a runbook's validate or run), control characters removed */
  readonly problems: readonly string[] | undefined;

  /** @param message - names the server and what failed; never the token or a value */
  constructor(code: ErrorCode, message: string, status: number, requestId?: string, retryAfterSeconds?: number, problems?: readonly string[]) {
    super(code, message);
    this.name = "ServerError";
    this.status = status;
    this.requestId = requestId;
    this.retryAfterSeconds = retryAfterSeconds;
    this.problems = problems;
  }
}

/** The most problems of one error answer kept; the rest are counted. */
const MAX_PROBLEMS = 100;

/** The longest Retry-After a retry waits for; a longer one is the caller's E_RATE_LIMITED. */
export const MAX_RETRY_AFTER_MS = 30_000;

export function statusError(url: string, res: Response, body: unknown, hidden: readonly string[], loginHint?: string): ServerError {
  const where = `server ${url}`;
  const err = field(body, "error");
  const rawCode = field(err, "code");
  const rawMessage = field(err, "message");
  const requestId = field(body, "requestId");
  const id = typeof requestId === "string" && /^[\x21-\x7e]{1,100}$/.test(requestId) ? requestId : undefined;
  const retry = res.status === 429 ? parseRetryAfter(res.headers.get("retry-after")) : undefined;
  const known = typeof rawCode === "string" && Object.hasOwn(ERROR_CODES, rawCode) && PASSED_THROUGH.has(rawCode as ErrorCode);
  const code: ErrorCode = known ? (rawCode as ErrorCode) : (BY_STATUS[res.status] ?? "E_PROVIDER");
  const clean = (s: string, max?: number): string => {
    let t = s.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
    for (const h of hidden) if (t.includes(h)) t = t.replaceAll(h, "[redacted]");
    return shorten(t, max);
  };
  let message = typeof rawMessage === "string" ? clean(rawMessage) : "";
  if (message === "") message = body === undefined ? `answered ${res.status} with a body that is not JSON; is the URL a coffer server?` : `answered ${res.status}`;
  const rawProblems = field(err, "problems");
  const problems = Array.isArray(rawProblems)
    ? rawProblems.filter((p): p is string => typeof p === "string").slice(0, MAX_PROBLEMS).map((p) => clean(p)).filter((p) => p !== "")
    : undefined;
  if (problems !== undefined && Array.isArray(rawProblems) && rawProblems.length > MAX_PROBLEMS) {
    problems.push(`… and ${rawProblems.length - MAX_PROBLEMS} more`);
  }
  if (code === "E_UNAUTHENTICATED" && loginHint !== undefined) message = `${message}; ${loginHint}`;
  const hints = [
    ...(typeof rawCode === "string" && !known ? [`server code ${shorten(rawCode.replace(/[^\x21-\x7e]/g, ""), 40)}`] : []),
    ...(retry !== undefined ? [`retry after ${retry} s`] : []),
    ...(id !== undefined ? [`request ${id}`] : []),
  ];
  return new ServerError(code, `${where}: ${message}${hints.length > 0 ? ` (${hints.join("; ")})` : ""}`, res.status, id, retry, problems);
}

/**
 * How long to wait before retrying after `err`, or undefined when it is not retried: a network
 * error or timeout (E_PROVIDER without a status) or a 5xx after a backoff of 200 ms doubling to
 * 2 s (with up to 50 % jitter, so clients that failed together do not retry together); a 429
 * after its Retry-After (1 s when it gives none) unless that is over {@link MAX_RETRY_AFTER_MS}.
 * A closed client (cancelled) and every other 4xx: never.
 */
export function retryDelay(err: unknown, attempt: number): number | undefined {
  if (err instanceof ServerError) {
    if (err.status === 429) {
      const ms = (err.retryAfterSeconds ?? 1) * 1000;
      return ms <= MAX_RETRY_AFTER_MS ? ms : undefined;
    }
    if (err.status < 500) return undefined;
  } else if (!(err instanceof CofferError) || err.code !== "E_PROVIDER" || / cancelled /.test(err.message)) {
    return undefined;
  } else if (/ answered /.test(err.message)) {
    return undefined; // a 2xx the client could not use (not JSON, too large): the same again
  }
  const base = Math.min(200 * 2 ** (attempt - 1), 2000);
  // The jitter from the CSPRNG, as every random number in coffer (one rule, nothing to audit).
  return base + randomInt(0, base / 2 + 1);
}

/** Waits `ms`, ended early (resolving) when one of `signals` aborts. */
export function sleep(ms: number, signals: readonly (AbortSignal | undefined)[]): Promise<void> {
  return new Promise((resolve) => {
    const live = signals.filter((s): s is AbortSignal => s !== undefined);
    const done = (): void => {
      clearTimeout(timer);
      for (const s of live) s.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    for (const s of live) s.addEventListener("abort", done, { once: true });
  });
}

function parseRetryAfter(h: string | null): number | undefined {
  if (h === null) return undefined;
  if (/^\d{1,9}$/.test(h.trim())) return Number(h.trim());
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

export function fetchError(where: string, err: unknown, timeoutMs: number): CofferError {
  const e = err as { name?: string; cause?: { code?: string; message?: string } };
  if (e.name === "TimeoutError") return new CofferError("E_PROVIDER", `${where}: did not answer within ${timeoutMs} ms`);
  if (e.name === "AbortError") return new CofferError("E_PROVIDER", `${where}: the request was cancelled (closed)`);
  // Only the cause's code (ECONNREFUSED, ENOTFOUND, …): fetch's own messages can quote headers.
  const cause = e.cause?.code ?? (e.name === "TypeError" ? "network error" : "error");
  // A certificate the system does not trust, or a server that wants one from us.
  const tls = /CERT|SELF_SIGNED|UNABLE_TO_|^ERR_SSL_|^ERR_TLS_/.test(cause)
    ? `; the TLS handshake failed: for a private CA or a client certificate, run \`coffer login ${where.replace(/^server /, "")} --ca FILE [--cert FILE --key FILE]\``
    : "";
  return new CofferError("E_PROVIDER", `${where}: cannot reach it: ${cause}${tls}`);
}

export function shorten(s: string, max = 300): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
