/**
 * The private directory of one runbook execution (issue 13, "Running"): a fresh directory with a
 * random name under the server's execution base, mode 0700, owned by whoever runs the script; it
 * holds the script and the runbook's files (mode 0400) in `.runbook/`, and is the script's cwd,
 * `HOME` and `TMPDIR`.
 *
 * Deleting follows docs/design.md §9: only a directory made here and recorded (its exact path,
 * `BASE/<pid>-<32 hex>`, written without `..`), a real directory and not a link put in its place,
 * is removed; `fs.rm` does not follow the links a script leaves inside. A script may leave
 * directories it made unreadable (mode 0000): they are made accessible and removal is retried.
 *
 * The name starts with the server's pid, so that {@link sweepExecutionDirs} can remove what an
 * instance killed with SIGKILL left behind, without touching the live dirs of another instance
 * sharing the base.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, closeSync, fchownSync, lstatSync, mkdirSync, readdirSync, realpathSync, rmSync, statSync } from "node:fs";
import { chmod, lstat, readdir, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { PermissionsError } from "../errors.ts";
import { ensurePrivateDir, openPrivateNew, shellQuote, writeAll } from "../core/fs-secure.ts";

/** A uid and gid a script (or bubblewrap) runs as. */
export interface Runner {
  readonly uid: number;
  readonly gid: number;
}

/** Where, inside an execution dir, the script and the runbook's files live. */
export const RUNBOOK_SUBDIR = ".runbook";
/** The script's file name in {@link RUNBOOK_SUBDIR}. */
export const SCRIPT_FILE = "script";

const NAME_RE = /^([0-9]+)-[0-9a-f]{32}$/;

/** The execution dirs of this process that are in use: never swept. */
const live = new Set<string>();

/** A created execution dir. */
export interface ExecutionDir {
  /** its real path (no link, no `..`) */
  readonly path: string;
  /** the script file, `path/.runbook/script` */
  readonly scriptPath: string;
  /** env name → the path of that file */
  readonly filePaths: Readonly<Record<string, string>>;
  /** removes the dir and everything in it; safe to call twice */
  remove(): Promise<void>;
}

/**
 * Makes the execution base ready: created 0700 when missing, then it must be a real directory
 * owned by this process's user that nobody else can read or write. When scripts run as another
 * user (`runner`), that user must be able to pass through it to its own dir: the base gets
 * mode 0711 (search only: names are random and each dir is 0700, so nothing in it can be listed
 * or entered by others), and every directory above it must let that user pass.
 * @returns the base's real path
 * @throws PermissionsError naming the directory and the `chmod`/`chown` to run
 */
export function prepareBase(baseDir: string, runner?: Runner): string {
  try {
    ensurePrivateDir(baseDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const lst = lstatSync(baseDir);
  if (!lst.isDirectory()) throw new PermissionsError(`the execution base ${baseDir} is not a directory (a symlink?); remove it or choose another`);
  const base = realpathSync(baseDir);
  const uid = process.getuid?.();
  if (uid !== undefined && lst.uid !== uid) {
    throw new PermissionsError(`the execution base ${base} is owned by uid ${lst.uid}, not by the server (uid ${uid}); \`chown ${uid} ${shellQuote(base)}\` or choose another`);
  }
  if ((lst.mode & 0o066) !== 0) {
    throw new PermissionsError(
      `the execution base ${base} is readable or writable by others (mode ${(lst.mode & 0o7777).toString(8).padStart(4, "0")}); run \`chmod 0700 ${shellQuote(base)}\``,
    );
  }
  if (runner !== undefined && runner.uid !== uid) {
    if ((lst.mode & 0o7777) !== 0o711) chmodSync(base, 0o711);
    for (let d = dirname(base), prev = base; d !== prev; prev = d, d = dirname(d)) {
      const st = statSync(d);
      const passes = st.uid === runner.uid ? (st.mode & 0o100) !== 0 : st.gid === runner.gid ? (st.mode & 0o010) !== 0 : (st.mode & 0o001) !== 0;
      if (!passes) {
        throw new PermissionsError(
          `the scripts' user (uid ${runner.uid}) cannot pass through ${d} to reach the execution base ${base}; ` +
            `run \`chmod o+x ${shellQuote(d)}\` or choose a base outside it`,
        );
      }
    }
  }
  return base;
}

/**
 * Creates a fresh execution dir under `base` (from {@link prepareBase}) holding the script and
 * `files` (mode 0400), everything owned by `owner` when given (root only).
 * @throws CofferError when a file cannot be written; nothing is left behind then
 */
export function createExecutionDir(base: string, contents: { script: string; files: Readonly<Record<string, Uint8Array>>; owner?: Runner | undefined }): ExecutionDir {
  const path = join(base, `${process.pid}-${randomBytes(16).toString("hex")}`);
  mkdirSync(path, { mode: 0o700 });
  chmodSync(path, 0o700);
  live.add(path);
  let removed: Promise<void> | undefined;
  const remove = (): Promise<void> => (removed ??= removeExecutionDir(base, path).finally(() => live.delete(path)));
  try {
    const sub = join(path, RUNBOOK_SUBDIR);
    mkdirSync(sub, { mode: 0o700 });
    chmodSync(sub, 0o700);
    const write = (name: string, data: Uint8Array): string => {
      const file = join(sub, name);
      const fd = openPrivateNew(file, 0o400);
      try {
        writeAll(fd, data);
        if (contents.owner !== undefined) fchownSync(fd, contents.owner.uid, contents.owner.gid);
      } finally {
        closeSync(fd);
      }
      return file;
    };
    const scriptPath = write(SCRIPT_FILE, Buffer.from(contents.script, "utf8"));
    const filePaths: Record<string, string> = {};
    for (const [name, data] of Object.entries(contents.files)) filePaths[name] = write(name, data);
    if (contents.owner !== undefined) {
      chownSync(sub, contents.owner.uid, contents.owner.gid);
      chownSync(path, contents.owner.uid, contents.owner.gid);
    }
    return { path, scriptPath, filePaths, remove };
  } catch (err) {
    // Nothing but what was written above is in it yet.
    live.delete(path);
    rmSync(path, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Removes `path` when it is an execution dir made under `base`: named `base/<pid>-<32 hex>` and
 * a real directory (not a link). Anything else is left alone.
 */
export async function removeExecutionDir(base: string, path: string): Promise<void> {
  if (dirname(path) !== base || !NAME_RE.test(basename(path))) return;
  try {
    if (!(await lstat(path)).isDirectory()) return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    await rm(path, { recursive: true, force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EACCES" && code !== "EPERM") throw err;
    // A script made some of its directories unreadable or unwritable: open them up, try again.
    await openUp(path);
    await rm(path, { recursive: true, force: true });
  }
}

// Gives the owner rwx on `dir` and every directory below it, never following a link.
async function openUp(dir: string): Promise<void> {
  let st;
  try {
    st = await lstat(dir);
  } catch {
    return; // gone already (the first rm got this far)
  }
  if (!st.isDirectory()) return;
  await chmod(dir, 0o700).catch(() => undefined);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  for (const e of entries) await openUp(join(dir, e));
}

/**
 * Removes the execution dirs under `baseDir` that no running server uses: those of a process
 * that is gone, and those of this process that it is not running (an earlier server with the
 * same pid, as in a container where the server is always pid 1). Call it when the server
 * starts: an instance killed with SIGKILL could not remove its dirs, which may hold files.
 * @returns the paths removed
 */
export async function sweepExecutionDirs(baseDir: string): Promise<string[]> {
  let base: string;
  let entries: string[];
  try {
    base = realpathSync(baseDir);
    entries = readdirSync(base);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const e of entries) {
    const m = NAME_RE.exec(e);
    if (m === null) continue;
    const path = join(base, e);
    const pid = Number(m[1]);
    if (pid === process.pid ? live.has(path) : alive(pid)) continue;
    await removeExecutionDir(base, path);
    removed.push(path);
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
