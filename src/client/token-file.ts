/**
 * The API tokens `coffer login` saves, one per server, in `<config dir>/tokens.json`: a 0600
 * file in a 0700 directory, refused when others can read it (docs/design.md §3, like the identity).
 *
 * Format: `{"version":1,"servers":{"https://coffer.example.com":{"token":"cof_…","savedAt":"…"}}}`,
 * keyed by the server's canonical URL ({@link normaliseServerUrl}). An entry may also hold `"tls":
 * {"ca": PATH, "cert": PATH, "key": PATH}` (absolute paths, each optional; `coffer login --ca
 * --cert --key`): the files every client of that server uses, read (and checked) when used.
 */
import { dirname, isAbsolute, join } from "node:path";
import { CofferError } from "../errors.ts";
import { ensurePrivateDir, readPrivateFile, replacePrivateFile } from "../core/fs-secure.ts";
import { configDir } from "../core/paths.ts";
import { assertTokenText, normaliseServerUrl, type ClientTlsFiles } from "./server-url.ts";

export { normaliseServerUrl } from "./server-url.ts";

interface Entry {
  token: string;
  savedAt: string;
  tls?: ClientTlsFiles;
}

const TLS_KEYS = ["ca", "cert", "key"] as const;

/**
 * The token file's path: `$COFFER_HOME/tokens.json`, else `$XDG_CONFIG_HOME/coffer/tokens.json`,
 * else `~/.config/coffer/tokens.json` (the identity's directory; see src/core/paths.ts).
 */
export function tokenFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), "tokens.json");
}

/**
 * The token saved for the server at `url`, or undefined when none is.
 * @throws PermissionsError when the file is accessible to others; CofferError E_CONFIG when it is malformed
 */
export function loadToken(url: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return readServers(tokenFilePath(env))[normaliseServerUrl(url)]?.token;
}

/**
 * The token a library or provider uses for `url`: the variable `variable` when it is set and not
 * empty, else the one `coffer login` saved. (The CLI's `--server` commands also trim it: cli/server-client.ts.)
 * @throws what {@link loadToken} throws
 */
export function tokenFor(url: string, env: NodeJS.ProcessEnv, variable = "COFFER_TOKEN"): string | undefined {
  const given = env[variable];
  return given !== undefined && given !== "" ? given : loadToken(url, env);
}

/**
 * The servers a token is saved for, by canonical URL, sorted.
 * @throws PermissionsError when the file is accessible to others; CofferError E_CONFIG when it is malformed
 */
export function savedServers(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.keys(readServers(tokenFilePath(env))).sort();
}

/**
 * The TLS files saved for the server at `url` by `coffer login --ca/--cert/--key`, or undefined.
 * @throws PermissionsError when the file is accessible to others; CofferError E_CONFIG when it is malformed
 */
export function loadServerTls(url: string, env: NodeJS.ProcessEnv = process.env): ClientTlsFiles | undefined {
  return readServers(tokenFilePath(env))[normaliseServerUrl(url)]?.tls;
}

/**
 * Saves `token` for the server at `url`, with the TLS files to use for it (if any), replacing
 * whatever was saved for it (atomically; the file is 0600 and its directory 0700 whatever the umask).
 * @returns the file written
 * @throws CofferError E_INVALID_VALUE for a bad URL or a token with spaces or control characters
 */
export function saveToken(url: string, token: string, env: NodeJS.ProcessEnv = process.env, tls?: ClientTlsFiles): string {
  const key = normaliseServerUrl(url);
  assertTokenText(token);
  const path = tokenFilePath(env);
  ensurePrivateDir(dirname(path));
  const servers = readServers(path);
  const files = tls === undefined ? undefined : tlsEntry(tls);
  servers[key] = { token, savedAt: new Date().toISOString(), ...(files !== undefined && { tls: files }) };
  write(path, servers);
  return path;
}

/**
 * Forgets the token saved for the server at `url` (the server is not told; revoke it there).
 * @returns true when a token was removed
 */
export function removeToken(url: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const key = normaliseServerUrl(url);
  const path = tokenFilePath(env);
  const servers = readServers(path);
  if (servers[key] === undefined) return false;
  delete servers[key];
  write(path, servers);
  return true;
}

function write(path: string, servers: Record<string, Entry>): void {
  const sorted = Object.fromEntries(Object.keys(servers).sort().map((k) => [k, servers[k]]));
  replacePrivateFile(path, `${JSON.stringify({ version: 1, servers: sorted }, null, 2)}\n`);
}

// The servers map of the file (empty when there is no file), validated field by field.
function readServers(path: string): Record<string, Entry> {
  const servers = Object.create(null) as Record<string, Entry>;
  let raw: Buffer;
  try {
    raw = readPrivateFile(path, "token file", () => new CofferError("E_NOT_FOUND", "no token file"));
  } catch (err) {
    if (err instanceof CofferError && err.code === "E_NOT_FOUND") return servers;
    throw err;
  }
  const bad = (why: string): CofferError =>
    new CofferError("E_CONFIG", `token file ${path} is not usable: ${why}; remove it and run \`coffer login URL\` again`);
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString("utf8"));
  } catch {
    throw bad("not JSON");
  } finally {
    raw.fill(0);
  }
  if (!isObject(doc) || doc.version !== 1) throw bad('not {"version": 1, …}');
  const list = doc.servers;
  if (!isObject(list)) throw bad('no "servers" object');
  for (const [url, entry] of Object.entries(list)) {
    let key: string;
    try {
      key = normaliseServerUrl(url);
    } catch {
      throw bad("a key is not a server URL");
    }
    if (!isObject(entry) || typeof entry.token !== "string" || entry.token === "" || typeof entry.savedAt !== "string") {
      throw bad(`the entry for ${key} is not {"token": "…", "savedAt": "…"}`);
    }
    let tls: ClientTlsFiles | undefined;
    if (entry.tls !== undefined) {
      const t = entry.tls;
      if (!isObject(t) || Object.keys(t).some((k) => !(TLS_KEYS as readonly string[]).includes(k)) ||
        TLS_KEYS.some((k) => t[k] !== undefined && (typeof t[k] !== "string" || !isAbsolute(t[k])))) {
        throw bad(`the tls of ${key} is not {"ca", "cert", "key"} with absolute paths`);
      }
      tls = tlsEntry(t as ClientTlsFiles);
    }
    servers[key] = { token: entry.token, savedAt: entry.savedAt, ...(tls !== undefined && { tls }) };
  }
  return servers;
}

/** Only the paths that are set; undefined when none is. */
function tlsEntry(tls: ClientTlsFiles): ClientTlsFiles | undefined {
  const set = TLS_KEYS.filter((k) => tls[k] !== undefined);
  return set.length === 0 ? undefined : Object.fromEntries(set.map((k) => [k, tls[k]]));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

