/**
 * The API tokens `coffer login` saves, one per server, in `<config dir>/tokens.json`: a 0600
 * file in a 0700 directory, refused when others can read it (docs/design.md §3, like the identity).
 *
 * Format: `{"version":1,"servers":{"https://coffer.example.com":{"token":"cof_…","savedAt":"…"}}}`,
 * keyed by the server's canonical URL ({@link normaliseServerUrl}).
 */
import { dirname, join } from "node:path";
import { CofferError } from "../errors.ts";
import { ensurePrivateDir, readPrivateFile, replacePrivateFile } from "../store/fs-secure.ts";
import { configDir } from "../store/paths.ts";
import { normaliseServerUrl } from "./client.ts";

export { normaliseServerUrl } from "./client.ts";

interface Entry {
  token: string;
  savedAt: string;
}

/**
 * The token file's path: `$COFFER_HOME/tokens.json`, else `$XDG_CONFIG_HOME/coffer/tokens.json`,
 * else `~/.config/coffer/tokens.json` (the identity's directory; see src/store/paths.ts).
 */
export function tokenFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), "tokens.json");
}

/**
 * The token saved for the server at `url`, or undefined when none is.
 * @throws PermissionsError when the file is accessible to others; CofferError E_CONFIG when it is malformed
 */
export function loadToken(url: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const servers = readServers(tokenFilePath(env));
  return servers[normaliseServerUrl(url)]?.token;
}

/**
 * Saves `token` for the server at `url`, replacing any token saved for it (atomically; the file
 * is 0600 and its directory 0700 whatever the umask).
 * @returns the file written
 * @throws CofferError E_INVALID_VALUE for a bad URL or a token with spaces or control characters
 */
export function saveToken(url: string, token: string, env: NodeJS.ProcessEnv = process.env): string {
  const key = normaliseServerUrl(url);
  if (!/^[\x21-\x7e]{1,8192}$/.test(token)) {
    throw new CofferError("E_INVALID_VALUE", "the token is empty, too long, or holds spaces or control characters; check how it was copied");
  }
  const path = tokenFilePath(env);
  ensurePrivateDir(dirname(path));
  const servers = readServers(path);
  servers[key] = { token, savedAt: new Date().toISOString() };
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
  const sorted: Record<string, Entry> = {};
  for (const k of Object.keys(servers).sort()) sorted[k] = servers[k]!;
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
    servers[key] = { token: entry.token, savedAt: entry.savedAt };
  }
  return servers;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

