/**
 * The PostgreSQL driver's error map (docs/design.md §7): which failures mean a lost connection
 * (retried once, or reported as E_UNAVAILABLE), which a timeout or lock wait (E_BUSY), and the
 * messages, which name the condition and never a value or the URL's password.
 */
import pg from "pg";
import { CofferError } from "../errors.ts";

/**
 * `url` as a message may show it (its password and secret parameters as `***`), and those
 * secrets (encoded and decoded), which a message must never show.
 */
export function hideUrlSecrets(url: string): { shown: string; secrets: string[] } {
  try {
    const u = new URL(url);
    const secrets: string[] = [];
    if (u.password !== "") {
      secrets.push(u.password);
      try {
        secrets.push(decodeURIComponent(u.password));
      } catch {
        // keep the encoded form only
      }
      u.password = "***";
    }
    for (const [key, value] of [...u.searchParams]) {
      if (!/pass|secret|key/i.test(key)) continue;
      if (value !== "") secrets.push(value);
      u.searchParams.set(key, "***");
    }
    return { shown: u.toString(), secrets };
  } catch {
    return { shown: "(an unparsable database URL)", secrets: [] };
  }
}

// Node's socket error codes that mean the connection was lost or never made.
const NET_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN",
  "EHOSTDOWN", "ENOTFOUND", "EAI_AGAIN", "EADDRNOTAVAIL", "ENOENT",
]);
// pg's and pg-pool's own messages for a lost, refused or timed-out connection.
const CONNECTION_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Client has encountered a connection error and is not queryable/,
  /^Client was closed and is not queryable/,
  /^Query read timeout/,
  /^Cannot use a pool after calling end on the pool/,
  /^connection timeout/i,
];

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

// Whether a call that failed with `err` before doing anything may be tried again on a new
// connection: the connection died (not a refused connect, not a timeout, not ours).
export function retryable(err: unknown): boolean {
  if (err instanceof CofferError || !isConnectionError(err)) return false;
  const message = String((err as { message?: unknown }).message ?? "");
  return !/^Query read timeout/.test(message);
}

// Whether `err` means the connection is gone (or never came): the client must not be reused.
export function isConnectionError(err: unknown): boolean {
  if (err === null || typeof err !== "object") return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    if (NET_CODES.has(code)) return true;
    const state = sqlState(err);
    // 08: connection exception; 57P01-57P05: admin/crash shutdown, cannot connect now, idle timeouts
    if (state !== undefined) return state.startsWith("08") || /^57P0[1-5]$/.test(state);
  }
  const message = (err as { message?: unknown }).message;
  return typeof message === "string" && CONNECTION_MESSAGES.some((re) => re.test(message));
}

// The names PostgreSQL gives the conditions a message may mention (never a bound value).
const STATE_NAMES: Record<string, string> = {
  "57P01": "the database server is shutting down (admin shutdown)",
  "57P02": "the database server crashed (crash shutdown)",
  "57P03": "the database server is not accepting connections now",
  "57P04": "the database was dropped",
  "57P05": "the connection was idle too long",
  "53300": "too many connections",
  "53100": "the database server's disk is full",
  "53200": "the database server is out of memory",
  "3D000": "the database does not exist",
  "28P01": "authentication failed",
  "28000": "the connection was not authorised",
  "25P03": "a transaction stayed idle too long",
  "22021": "a name or text is not valid UTF-8 (NUL characters are refused)",
  "42P01": "a coffer table is missing",
};

// The database's failures become CofferErrors: statement timeouts and lock waits → E_BUSY,
// anything else → E_UNAVAILABLE, with the cause attached. The message names the condition (the
// SQLSTATE and its meaning, or the socket error), never a value, and never the URL's password.
export function mapError(err: unknown, what: string, secrets: readonly string[]): unknown {
  if (err instanceof CofferError || err instanceof TypeError || err instanceof RangeError) return err;
  if (err === null || typeof err !== "object") return err;
  const state = sqlState(err);
  if (state === "57014" || state === "55P03" || state === "40P01" || state === "40001") {
    return new CofferError("E_BUSY", `the server's database did not finish in time while ${what} (PostgreSQL ${state}: a slow query or a lock held elsewhere); try again`, { cause: err });
  }
  const message = String((err as { message?: unknown }).message ?? "");
  const code = (err as { code?: unknown }).code;
  let reason: string;
  if (state !== undefined && err instanceof pg.DatabaseError) {
    reason = `PostgreSQL ${state}: ${STATE_NAMES[state] ?? (state.startsWith("08") ? "the connection failed" : "see the server's log")}`;
  } else if (typeof code === "string" && NET_CODES.has(code)) {
    reason = message !== "" ? message : code;
  } else if (isConnectionError(err)) {
    reason = message;
  } else if (err instanceof Error && /password|SASL|SCRAM/i.test(message) && /^(SASL|SCRAM|client password|Password)/.test(message)) {
    reason = "authentication failed";
  } else {
    // not the database's failure (a bug, or an error from seal()): pass it on as it is
    return err;
  }
  for (const s of secrets) reason = reason.split(s).join("***");
  return new CofferError("E_UNAVAILABLE", `the server's database failed: ${reason} (while ${what}); retry`, { cause: err });
}
