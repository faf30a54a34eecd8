/**
 * The PostgreSQL apply target (`apply: {postgres: {connection: SECRET, role: ROLE}}`, docs/design.md
 * §12): coffer connects with the admin connection string held in secret `connection`, sets the
 * role's password, and logs in as the role with it before the rotation may store it.
 *
 * - The password never reaches PostgreSQL in clear: coffer computes the SCRAM-SHA-256 verifier
 *   itself ({@link scramSha256Verifier}) and sends `ALTER ROLE "role" PASSWORD 'SCRAM-SHA-256$…'`,
 *   so a server logging statements logs the verifier only. The role is quoted with the driver's
 *   identifier escaping and the verifier with its literal escaping; nothing is string-built from
 *   input otherwise.
 * - SASLprep: PostgreSQL passes an ASCII password through SASLprep unchanged, and applies NFKC and
 *   RFC 4013's mappings to other text (falling back to the raw bytes when that fails). coffer does
 *   not reimplement that: a value that is not printable ASCII is refused before anything is
 *   changed (generated values are ASCII).
 * - The test logs in as the role to the same host, port and database, with the admin URL's other
 *   settings (sslmode, …), and runs `SELECT 1`.
 * - Idempotent: setting the same password again is harmless (with a new salt).
 * Messages name the role and the step, never a password: the admin URL's password and the new
 * value are cut out of the driver's messages too.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import type pg from "pg";
import { CofferError, show } from "../errors.ts";
import { isSecretName, SECRET_NAME_RULE } from "../core/names.ts";
import type { ApplyContext, ApplyTarget } from "./apply.ts";

/** The SCRAM iteration count PostgreSQL uses by default (scram_iterations). */
export const SCRAM_ITERATIONS = 4096;
/** Bytes of random salt per verifier, as PostgreSQL makes them. */
export const SCRAM_SALT_BYTES = 16;
/** The longest a connection (admin or test) may take to open. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** The longest one statement may take. */
export const STATEMENT_TIMEOUT_MS = 15_000;
/** PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes. */
export const MAX_ROLE_BYTES = 63;

/** Settings of the PostgreSQL target. */
export interface PostgresTargetSettings {
  /** the secret holding the admin connection string (a postgres:// URL) */
  connection: string;
  /** the role whose password is the rotated secret */
  role: string;
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677):
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64. The password's bytes are
 * used as given (PostgreSQL's SASLprep leaves ASCII unchanged).
 */
export function scramSha256Verifier(password: Uint8Array, salt: Uint8Array = randomBytes(SCRAM_SALT_BYTES), iterations = SCRAM_ITERATIONS): string {
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new CofferError("E_INVALID_VALUE", "SCRAM iterations must be a whole number ≥ 1");
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  salted.fill(0);
  clientKey.fill(0);
  const b64 = (b: Uint8Array): string => Buffer.from(b).toString("base64");
  return `SCRAM-SHA-256$${iterations}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

/** Why `role` cannot be a PostgreSQL role name here, or undefined when it can. */
export function roleNameProblem(role: unknown): string | undefined {
  if (typeof role !== "string" || role.length === 0) return "the role must be a non-empty string";
  if (Buffer.byteLength(role, "utf8") > MAX_ROLE_BYTES) return `the role ${show(role)} is longer than PostgreSQL's ${MAX_ROLE_BYTES} bytes (it would be cut)`;
  if (/[\u0000-\u001f\u007f]/.test(role)) return `the role ${show(role)} holds a control character`;
  return undefined;
}

/**
 * Checks the settings of a PostgreSQL target.
 * @throws CofferError E_INVALID_VALUE naming the rule
 */
export function checkPostgresSettings(settings: unknown): PostgresTargetSettings {
  if (settings === null || typeof settings !== "object" || Array.isArray(settings)) throw new CofferError("E_INVALID_VALUE", "apply.postgres must be an object {connection, role}");
  const { connection, role } = settings as Record<string, unknown>;
  const extra = Object.keys(settings).filter((k) => k !== "connection" && k !== "role");
  if (extra.length > 0) throw new CofferError("E_INVALID_VALUE", `apply.postgres takes connection and role only, not ${extra.map((k) => show(k)).join(", ")}`);
  if (!isSecretName(connection)) throw new CofferError("E_INVALID_VALUE", `apply.postgres.connection must name the secret holding the admin connection string: ${SECRET_NAME_RULE}`);
  const why = roleNameProblem(role);
  if (why !== undefined) throw new CofferError("E_INVALID_VALUE", `apply.postgres.role: ${why}`);
  return { connection, role: role as string };
}

/**
 * The apply target that sets the password of PostgreSQL role `settings.role` (label
 * `postgres:ROLE`, idempotent).
 * @throws CofferError E_INVALID_VALUE for settings that break a rule ({@link checkPostgresSettings})
 */
export function postgresTarget(settings: PostgresTargetSettings): ApplyTarget {
  const { connection, role } = checkPostgresSettings(settings);
  return {
    label: `postgres:${role}`,
    idempotent: true,
    apply: (ctx) => applyPassword(connection, role, ctx),
  };
}

type Step = "read the admin connection string" | "connect as admin" | "alter role" | "log in as role";

async function applyPassword(connection: string, role: string, ctx: ApplyContext): Promise<void> {
  const fail = (step: Step, why: string): CofferError => new CofferError("E_ROTATION", `postgres role ${show(role)}: ${step} failed: ${why}`);
  const value = ctx.newValue;
  if (value.length === 0 || !value.every((b) => b >= 0x20 && b < 0x7f)) {
    throw fail("alter role", "the new value is not printable ASCII (PostgreSQL would SASLprep it); nothing was changed");
  }
  if (ctx.signal.aborted) throw fail("connect as admin", "the server is stopping");

  let adminUrl: string;
  const raw = await ctx.readSecret(connection).catch((err: unknown) => {
    throw fail("read the admin connection string", `secret ${show(connection)}: ${err instanceof CofferError ? err.message : "unreadable"}`);
  });
  try {
    adminUrl = raw.toString("utf8");
  } finally {
    raw.fill(0);
  }
  const password = value.toString("latin1");
  const admin = parseAdminUrl(adminUrl);
  if (admin === undefined) throw fail("connect as admin", `secret ${show(connection)} does not hold a postgres:// or postgresql:// URL with a host (for a socket: ?host=/dir)`);
  const hidden = [...admin.secrets, password, encodeURIComponent(password)];
  const clean = (err: unknown): string => {
    let m = (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "";
    for (const s of hidden) if (s.length > 0) m = m.replaceAll(s, "***");
    return m.length > 300 ? `${m.slice(0, 300)}…` : m;
  };

  const { Client } = (await import("pg")).default;
  const open = async (url: string, step: Step): Promise<pg.Client> => {
    const client = new Client({
      connectionString: url,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      query_timeout: STATEMENT_TIMEOUT_MS + 5_000,
      application_name: "coffer-rotation",
    });
    client.on("error", () => {}); // a connection lost meanwhile fails the pending call instead
    try {
      await abortable(client.connect(), ctx.signal, client);
    } catch (err) {
      void client.end().catch(() => {});
      throw fail(step, ctx.signal.aborted ? "the server is stopping" : clean(err));
    }
    return client;
  };
  const run = async (client: pg.Client, sql: string, step: Step): Promise<void> => {
    try {
      await abortable(client.query(sql), ctx.signal, client);
    } catch (err) {
      throw fail(step, ctx.signal.aborted ? "the server is stopping" : clean(err));
    }
  };

  const adminClient = await open(adminUrl, "connect as admin");
  try {
    const verifier = scramSha256Verifier(value);
    await run(adminClient, `ALTER ROLE ${adminClient.escapeIdentifier(role)} PASSWORD ${adminClient.escapeLiteral(verifier)}`, "alter role");
  } finally {
    await adminClient.end().catch(() => {});
  }
  const roleClient = await open(roleUrl(admin.url, role, password), "log in as role");
  try {
    await run(roleClient, "SELECT 1", "log in as role");
  } finally {
    await roleClient.end().catch(() => {});
  }
}

/** The admin URL and the secrets in it (its password, encoded and decoded, and secret parameters), or undefined when it is not a postgres URL. */
function parseAdminUrl(text: string): { url: URL; secrets: string[] } | undefined {
  if (!/^postgres(ql)?:\/\//.test(text)) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.hostname === "") {
    // postgres:///db?host=/run/postgresql: a user needs a host in a URL; pg ignores it beside ?host=.
    if (!url.searchParams.has("host")) return undefined;
    url.hostname = "localhost";
  }
  const secrets: string[] = [];
  if (url.password !== "") {
    secrets.push(url.password);
    try {
      secrets.push(decodeURIComponent(url.password));
    } catch {
      // keep the encoded form only
    }
  }
  for (const [key, v] of url.searchParams) if (/pass|secret|key/i.test(key) && v !== "") secrets.push(v);
  return { url, secrets };
}

/** The admin URL with the role as its user and `password` as its password: same host, port, database and settings. */
function roleUrl(admin: URL, role: string, password: string): string {
  const u = new URL(admin.href);
  // pg reads user and password from the query too, before the userinfo: drop them there.
  for (const key of ["user", "password", "passfile"]) u.searchParams.delete(key);
  u.username = encodeURIComponent(role);
  u.password = encodeURIComponent(password);
  return u.href;
}

/** `p`, or a rejection as soon as `signal` aborts (the client's connection is closed then). */
function abortable<T>(p: Promise<T>, signal: AbortSignal, client: pg.Client): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {});
    void client.end().catch(() => {});
    return Promise.reject(new Error("aborted"));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      void client.end().catch(() => {});
      reject(new Error("aborted"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
