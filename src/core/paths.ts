/**
 * Where coffer keeps its files (docs/design.md §3), following the XDG base directory spec.
 */
import { homedir } from "node:os";
import { join } from "node:path";

/** The identity file and store file coffer uses. */
export interface CofferPaths {
  identity: string;
  store: string;
}

/** Options that override the defaults. */
export interface PathOptions {
  /** environment to read (default `process.env`) */
  env?: NodeJS.ProcessEnv;
  /** the store file (the CLI's `--store`) */
  store?: string;
  /** the identity file */
  identity?: string;
}

/**
 * Resolves the identity and store paths: explicit options, else `COFFER_HOME` (one dir for
 * both), else `$XDG_CONFIG_HOME/coffer/identity` and `$XDG_DATA_HOME/coffer/store.db`.
 */
export function resolvePaths(options: PathOptions = {}): CofferPaths {
  const env = options.env ?? process.env;
  const cofferHome = nonEmpty(env.COFFER_HOME);
  const dataDir = cofferHome ?? join(nonEmpty(env.XDG_DATA_HOME) ?? join(homeOf(env), ".local", "share"), "coffer");
  return {
    identity: options.identity ?? nonEmpty(env.COFFER_IDENTITY) ?? join(configDir(env), "identity"),
    store: options.store ?? nonEmpty(env.COFFER_STORE) ?? join(dataDir, "store.db"),
  };
}

/** coffer's config dir (identity, saved API tokens): `COFFER_HOME`, else `$XDG_CONFIG_HOME/coffer`, else `~/.config/coffer`. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  return nonEmpty(env.COFFER_HOME) ?? join(nonEmpty(env.XDG_CONFIG_HOME) ?? join(homeOf(env), ".config"), "coffer");
}

/**
 * coffer's cache dir (the encrypted cache of server secrets, src/cache/): `$COFFER_HOME/cache`,
 * else `$XDG_CACHE_HOME/coffer`, else `~/.cache/coffer`.
 */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const home = nonEmpty(env.COFFER_HOME);
  return home !== undefined ? join(home, "cache") : join(nonEmpty(env.XDG_CACHE_HOME) ?? join(homeOf(env), ".cache"), "coffer");
}

/**
 * {@link cacheDir} when the environment names it (COFFER_HOME, XDG_CACHE_HOME or HOME is set),
 * else undefined: a process given an environment without a home (a test, a sandbox) gets no
 * files from the cache, rather than files in the passwd entry's home.
 */
export function namedCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return [env.COFFER_HOME, env.XDG_CACHE_HOME, env.HOME].some((v) => nonEmpty(v) !== undefined) ? cacheDir(env) : undefined;
}

/** The user's home: `$HOME` when set to an absolute path, else the passwd entry's. */
export function homeOf(env: NodeJS.ProcessEnv = process.env): string {
  return nonEmpty(env.HOME) ?? homedir();
}

// XDG: a variable that is set but empty counts as unset; relative paths are invalid and ignored.
function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.startsWith("/") ? v : undefined;
}
