/**
 * Which project files coffer obeys, as git decides with `safe.directory` (the rule and the walk
 * up: docs/design.md §9). A `.coffer.yml` chooses where tokens are sent and which variables the
 * commands coffer starts get, so one planted by someone else must not be obeyed. The trust list
 * holds one absolute directory a line. The rule ({@link untrustedReason}) and the walk
 * ({@link projectDirs}) take stat results and a stat function, so both can be tested with any owner.
 */
import { realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { CofferError, PermissionsError } from "../errors.ts";
import { ensurePrivateDir, replacePrivateFile, shellQuote } from "../core/fs-secure.ts";
import { configDir, homeOf } from "../core/paths.ts";
import { readConfigFile } from "./read.ts";

/** What the rule looks at in a file's or directory's stat. */
export interface OwnerStat {
  uid: number;
  mode: number;
  dev: number;
  isFile(): boolean;
  isDirectory(): boolean;
}

/** Where and as whom the rule runs (defaults: the process's own). */
export interface TrustOptions {
  /** environment for the trust list's place (`COFFER_HOME`, `XDG_CONFIG_HOME`, `HOME`) */
  env?: NodeJS.ProcessEnv;
  /** the caller's uid (default `process.getuid()`) */
  uid?: number;
  /** the user's home, where the walk ends (default `$HOME`, else the passwd entry) */
  home?: string;
  /** stat that follows links; undefined when the path does not exist (default `statSync`) */
  stat?: (path: string) => OwnerStat | undefined;
}

const S_ISVTX = 0o1000;

/**
 * Why a project file must not be obeyed without trust, or undefined when it may be.
 * @param file - the file's stat
 * @param dir - its directory's stat
 * @param uid - the caller
 * @example untrustedReason(st, dirSt, 0) // "it is owned by uid 1000, not by you (uid 0) or root"
 */
export function untrustedReason(file: OwnerStat, dir: OwnerStat, uid: number): string | undefined {
  const mode = (m: number) => (m & 0o7777).toString(8).padStart(4, "0");
  if (file.uid !== uid && file.uid !== 0) return `it is owned by uid ${file.uid}, not by you (uid ${uid}) or root`;
  if ((file.mode & 0o002) !== 0) return `others can write it (mode ${mode(file.mode)})`;
  if (dir.uid !== uid && dir.uid !== 0) return `its directory is owned by uid ${dir.uid}, not by you (uid ${uid}) or root`;
  if ((dir.mode & 0o002) !== 0 && (dir.mode & S_ISVTX) === 0) return `others can write its directory (mode ${mode(dir.mode)})`;
  return undefined;
}

/**
 * Whether the walk must stop before `dir`: a sticky directory that root owns or others can write,
 * as `/tmp` and `/dev/shm` are, where anyone may plant a file.
 */
export function isSharedStickyDir(dir: OwnerStat): boolean {
  return dir.isDirectory() && (dir.mode & S_ISVTX) !== 0 && (dir.uid === 0 || (dir.mode & 0o002) !== 0);
}

/**
 * The directories to look in for a project file, nearest first: `cwd` and its parents, ending at
 * the user's home (included), before a filesystem boundary (a change of `st_dev`), and before a
 * shared sticky directory ({@link isSharedStickyDir}).
 */
export function* projectDirs(cwd: string, options: TrustOptions = {}): Generator<string> {
  const stat = options.stat ?? statOrUndefined;
  const home = realOrSelf(options.home ?? homeOf(options.env ?? process.env));
  let dir = realOrSelf(resolve(cwd));
  let dev: number | undefined;
  for (;;) {
    const st = stat(dir);
    if (st === undefined || !st.isDirectory()) return;
    if (dev !== undefined && st.dev !== dev) return;
    if (isSharedStickyDir(st)) return;
    dev = st.dev;
    yield dir;
    if (dir === home) return;
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

/**
 * Refuses a project file that is not trusted: see the module's rule. The trust list is read only
 * when the file fails the rule.
 * @param file - the file as given (messages show it)
 * @param st - the open file's stat
 * @throws PermissionsError (E_PERMISSIONS) naming the reason and the `coffer trust` to run
 */
export function assertTrustedProjectFile(file: string, st: OwnerStat, options: TrustOptions = {}): void {
  const stat = options.stat ?? statOrUndefined;
  const uid = options.uid ?? process.getuid?.();
  if (uid === undefined) return; // no uids (Windows): nothing to compare
  const dir = dirname(resolve(file));
  const dirSt = stat(dir);
  if (dirSt === undefined) throw new CofferError("E_CONFIG", `${file}: cannot stat its directory`);
  const reason = untrustedReason(st, dirSt, uid);
  if (reason === undefined) return;
  const real = realOrSelf(dir);
  if (readTrustList(options).includes(real)) return;
  const chmod = reason.startsWith("others can write it") ? `\`chmod o-w ${shellQuote(file)}\`, or ` : "";
  throw new PermissionsError(
    `refusing the project file ${file}: ${reason}; a project file chooses where tokens go and what commands run with, ` +
      `so coffer obeys one only when you or root own it and others cannot write it. If you trust it, run ${chmod}\`coffer trust ${shellQuote(real)}\``,
  );
}

/** The trust list's path: `$XDG_CONFIG_HOME/coffer/trusted` (or `COFFER_HOME/trusted`). */
export function trustListPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), "trusted");
}

/**
 * The trusted directories (absolute, as `coffer trust` wrote them). A missing list is empty.
 * @throws PermissionsError when the list is owned by someone other than you or root, or others can write it
 */
export function readTrustList(options: TrustOptions = {}): string[] {
  const path = trustListPath(options.env);
  const uid = options.uid ?? process.getuid?.();
  if (statOrUndefined(path) === undefined) return []; // the list itself is always on the real disk
  const text = readConfigFile(path, "trust list", (st) => {
    if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
      throw new PermissionsError(`the trust list ${path} is owned by uid ${st.uid}, not by you (uid ${uid}); remove it or make it yours with \`chown ${uid} ${shellQuote(path)}\``);
    }
    if ((st.mode & 0o022) !== 0) {
      throw new PermissionsError(`the trust list ${path} can be written by group or others; run \`chmod 600 ${shellQuote(path)}\``);
    }
  });
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#") && isAbsolute(l));
}

/**
 * Adds a directory to the trust list (its real path; a file stands for its directory).
 * @returns the directory as recorded, and whether it was new
 * @throws CofferError E_NOT_FOUND when it does not exist
 */
export function addTrusted(path: string, options: TrustOptions = {}): { dir: string; added: boolean } {
  const dir = trustTarget(path, options);
  const list = readTrustList(options);
  if (list.includes(dir)) return { dir, added: false };
  writeTrustList([...list, dir], options);
  return { dir, added: true };
}

/**
 * Removes a directory from the trust list (as given, or its real path when it still exists).
 * @returns the entry removed, or undefined when it was not there
 */
export function removeTrusted(path: string, options: TrustOptions = {}): string | undefined {
  const list = readTrustList(options);
  const given = resolve(path);
  let real: string | undefined;
  try {
    real = trustTarget(path, options);
  } catch {
    real = undefined;
  }
  const entry = list.find((d) => d === given || d === real);
  if (entry === undefined) return undefined;
  writeTrustList(list.filter((d) => d !== entry), options);
  return entry;
}

function trustTarget(path: string, options: TrustOptions): string {
  const st = (options.stat ?? statOrUndefined)(path);
  if (st === undefined) throw new CofferError("E_NOT_FOUND", `${path} does not exist; give the directory that holds the .coffer.yml to trust`);
  const real = realOrSelf(resolve(path));
  const dir = st.isDirectory() ? real : dirname(real);
  if (/[\n\r]/.test(dir)) throw new CofferError("E_INVALID_VALUE", "a directory whose path holds a line break cannot be trusted; rename it");
  return dir;
}

function writeTrustList(dirs: string[], options: TrustOptions): void {
  const path = trustListPath(options.env);
  ensurePrivateDir(dirname(path));
  const header = "# Directories whose .coffer.yml coffer obeys whoever owns it (`coffer trust DIR`), one a line.\n";
  replacePrivateFile(path, header + dirs.map((d) => `${d}\n`).join(""));
}

function realOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function statOrUndefined(path: string): OwnerStat | undefined {
  try {
    return statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw err;
  }
}
