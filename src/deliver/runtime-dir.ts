/**
 * The private runtime directory that delivered files live in (docs/design.md §7):
 * `$XDG_RUNTIME_DIR/coffer/<id>` when that is a proper runtime dir, else
 * `/dev/shm/coffer-<uid>/<id>` (tmpfs) with a warning, or a base the user chooses. Every
 * level is 0700 and the user's; a base someone else made is refused. Each dir holds an owner
 * record ({@link OwnerRecord}) so that a later run can sweep the dirs nothing uses any more (a
 * coffer killed with SIGKILL cannot clean up after itself). coffer removes only dirs it made
 * and recorded ({@link recordedDir}), never a path it was pointed at.
 */
import { randomBytes } from "node:crypto";
import { closeSync, constants, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, statfsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { CofferError } from "../errors.ts";
import { assertPrivate, ensurePrivateDir, openPrivateNew, writeAll } from "../core/fs-secure.ts";

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
const OWNER_FILE = ".coffer-owner";
/** The dotenv file `load -s LINK` writes in its dir; LINK points at it. */
export const LOAD_FILE = ".env";

/** What a runtime dir is for: `run` dirs die with their process group; `load` dirs with their link or session. */
export type RuntimeKind = "run" | "load";

/** What coffer records in each runtime dir it makes (its owner file), and trusts only there. */
export interface OwnerRecord {
  kind: RuntimeKind;
  pid: number;
  /** the process's start time (with the pid it names one process) */
  start?: string;
  /** `run`: the process group of coffer and its command; the dir lives while any member does */
  pgid?: number;
  /** `load`: the session coffer ran in (a terminal's); a dir without a link lives while it does */
  sid?: number;
  /** `load`: the project file the values came from */
  project?: string;
  /** `load -s`: the link that points at this dir's `.env`; the dir lives while it does */
  link?: string;
  created: string;
}

/** A created runtime dir. */
export interface RuntimeDir {
  path: string;
  /** false when the dir is not on tmpfs/ramfs (values may reach a disk) */
  inMemory: boolean;
  /** removes the dir and everything in it; safe to call twice */
  remove(): void;
}

/** Options of {@link createRuntimeDir}. */
export interface RuntimeDirOptions {
  kind: RuntimeKind;
  /** the base dir to create `<id>` in (the CLI's `--dir`) */
  base?: string;
  env?: NodeJS.ProcessEnv;
  /** told about fallbacks (no XDG_RUNTIME_DIR, not tmpfs); pass it only when a file will be written */
  warn?: (message: string) => void;
  /** recorded for `load` (see {@link OwnerRecord}) */
  project?: string;
  link?: string;
}

/**
 * Picks the base dir: `--dir`, else `$XDG_RUNTIME_DIR/coffer` if XDG_RUNTIME_DIR is an
 * absolute dir owned by the user with mode 0700 (as the XDG spec requires), else
 * `/dev/shm/coffer-<uid>`.
 */
export function runtimeBase(options: Pick<RuntimeDirOptions, "base" | "env" | "warn"> = {}): string {
  if (options.base !== undefined) return options.base;
  const env = options.env ?? process.env;
  const uid = process.getuid?.() ?? 0;
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg !== undefined && xdg.startsWith("/")) {
    try {
      const st = lstatSync(xdg);
      if (st.isDirectory() && st.uid === uid && (st.mode & 0o077) === 0) return join(xdg, "coffer");
      options.warn?.(`XDG_RUNTIME_DIR=${xdg} is not a private dir of yours (XDG requires 0700, owned by you); not using it`);
    } catch {
      options.warn?.(`XDG_RUNTIME_DIR=${xdg} does not exist; not using it`);
    }
  }
  const base = join("/dev/shm", `coffer-${uid}`);
  options.warn?.(`no XDG_RUNTIME_DIR: secrets go to ${base} (tmpfs)`);
  return base;
}

/**
 * Creates a fresh private runtime dir, sweeping the dead ones of earlier runs first.
 * @throws PermissionsError when the base is not private to the user
 */
export function createRuntimeDir(options: RuntimeDirOptions): RuntimeDir {
  const base = runtimeBase(options);
  makePrivateDir(base, "runtime dir base");
  sweepRuntimeDirs(base);
  const path = join(base, randomBytes(8).toString("hex"));
  makePrivateDir(path, "runtime dir");
  writeOwner(path, options);
  const inMemory = onMemoryFs(path);
  if (!inMemory) options.warn?.(`${path} is not on tmpfs or ramfs: delivered files may reach a disk`);
  let removed = false;
  return {
    path,
    inMemory,
    remove() {
      if (removed) return;
      removed = true;
      rmSync(path, { recursive: true, force: true });
    },
  };
}

/**
 * Writes `data` as `dir/name` with exactly `mode`, refusing to follow or replace anything.
 * @returns the file's path
 */
export function writeRuntimeFile(dir: string, name: string, data: Uint8Array, mode: number): string {
  const path = join(dir, name);
  const fd = openPrivateNew(path, mode);
  try {
    writeAll(fd, data);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** A runtime dir coffer made and recorded, with its record. */
export type RecordedDir = { path: string; owner: OwnerRecord };

/**
 * The dir `path` names when it is one coffer made and recorded under `base`: written without
 * `..` or `.` (as `base/<16 hex digits>`), a real directory (not a link), the user's, with an
 * owner record. Anything else is undefined: coffer never removes it.
 */
export function recordedDir(base: string, path: string): RecordedDir | undefined {
  if (dirname(path) !== base || !/^[0-9a-f]{16}$/.test(basename(path)) || path.split("/").some((s) => s === ".." || s === ".")) return undefined;
  try {
    const st = lstatSync(path);
    if (!st.isDirectory() || st.uid !== (process.getuid?.() ?? st.uid)) return undefined;
    const owner = JSON.parse(readFileSync(join(path, OWNER_FILE), { encoding: "utf8", flag: constants.O_RDONLY | constants.O_NOFOLLOW })) as Partial<OwnerRecord>;
    if ((owner.kind !== "run" && owner.kind !== "load") || typeof owner.pid !== "number") return undefined;
    return { path, owner: owner as OwnerRecord };
  } catch {
    return undefined;
  }
}

/** The dirs coffer recorded under `base` (none when it does not exist). */
export function recordedDirs(base: string): RecordedDir[] {
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return [];
  }
  return entries.map((e) => recordedDir(base, join(base, e))).filter((d): d is RecordedDir => d !== undefined);
}

/**
 * Removes a dir only when {@link recordedDir} accepts it (and it is of `kind`, when given),
 * checked right before.
 * @returns true when it was removed
 */
export function removeRecordedDir(base: string, path: string, kind?: RuntimeKind): boolean {
  const recorded = recordedDir(base, path);
  if (recorded === undefined || (kind !== undefined && recorded.owner.kind !== kind)) return false;
  rmSync(path, { recursive: true, force: true });
  return true;
}

/**
 * Removes the runtime dirs under `base` that nothing uses any more: a `run` dir when its whole
 * process group is gone (a command orphaned by a killed coffer still uses its files); a `load`
 * dir when its link no longer points at it or, without a link, when the session it was made in
 * is gone. A dir without coffer's record is never touched.
 * @returns the paths removed
 */
export function sweepRuntimeDirs(base: string): string[] {
  const unused = unusedRuntimeDirs(base);
  for (const d of unused) rmSync(d.path, { recursive: true, force: true });
  return unused.map((d) => d.path);
}

/**
 * The runtime dirs under `base` that {@link sweepRuntimeDirs} would remove (nothing uses them any
 * more), without removing them: what `coffer doctor` reports as left behind.
 */
export function unusedRuntimeDirs(base: string): RecordedDir[] {
  const groups = liveGroups(); // one read of /proc for the whole sweep
  // Only a dir coffer recorded is removed. One without a record (a coffer killed between making
  // it and recording it) holds no secret: the record is written before any file.
  return recordedDirs(base).filter((d) => !inUse(d, groups));
}

/** True while something may still use the dir (see {@link sweepRuntimeDirs}). */
function inUse({ path, owner }: RecordedDir, groups: LiveGroups): boolean {
  // The coffer that made it may still be setting it up (a load's link is made after its dir).
  if (alive(owner.pid, owner.start)) return true;
  if (owner.kind === "run") {
    return typeof owner.pgid === "number" && owner.pgid > 1 && groupAlive(owner.pgid, groups);
  }
  if (typeof owner.link === "string") {
    try {
      return readlinkSync(owner.link) === join(path, LOAD_FILE);
    } catch {
      return false;
    }
  }
  // A load without a record of its session (or in none) is kept, as before sessions were recorded.
  return typeof owner.sid !== "number" || owner.sid <= 1 || groupAlive(owner.sid, groups);
}

function makePrivateDir(dir: string, what: string): void {
  try {
    ensurePrivateDir(dir);
  } catch (err) {
    // something other than a directory is there (a dangling link gives ENOENT): refused below
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EEXIST" && code !== "ENOENT") throw err;
  }
  // In a world-writable place like /dev/shm, someone else could have made it first, or planted
  // a symlink: it must be a real dir, ours, and private.
  if (!lstatSync(dir).isDirectory()) {
    throw new CofferError("E_PERMISSIONS", `${what} ${dir} is not a directory (a symlink?); remove it`);
  }
  assertPrivate(dir, what);
}

function writeOwner(dir: string, options: RuntimeDirOptions): void {
  const stat = procStat(process.pid);
  const record: OwnerRecord = {
    kind: options.kind,
    pid: process.pid,
    ...(stat?.start !== undefined && { start: stat.start }),
    ...(options.kind === "run" && stat?.pgid !== undefined && { pgid: stat.pgid }),
    ...(options.kind === "load" && stat?.sid !== undefined && { sid: stat.sid }),
    ...(options.project !== undefined && { project: options.project }),
    ...(options.link !== undefined && { link: options.link }),
    created: new Date().toISOString(),
  };
  writeRuntimeFile(dir, OWNER_FILE, Buffer.from(JSON.stringify(record)), 0o600);
}

// From /proc/PID/stat: the state (field 3), process group (5), session (6) and start time (22,
// clock ticks since boot; with the pid it names one process, so a recycled pid does not keep a
// dead run's dir alive). Undefined where there is no /proc.
function procStat(pid: number | string): { state: string; pgid: number; sid: number; start: string | undefined } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "", pgid: Number(fields[2]), sid: Number(fields[3]), start: fields[19] };
  } catch {
    return undefined;
  }
}

// A zombie (exited, not yet reaped: where PID 1 does not reap orphans) uses no files.
const dead = (state: string) => state === "Z" || state === "X" || state === "x";

/**
 * True while a process of group `pgid` runs. kill(-pgid, 0) says ESRCH when there is none; it
 * also succeeds for a group of zombies, so /proc (where there is one) has the last word.
 */
function groupAlive(pgid: number, groups: LiveGroups): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  const live = groups();
  return live === undefined || live.has(pgid);
}

/** The process groups with a running (not zombie) member, read from /proc once, when first asked; undefined without /proc. */
type LiveGroups = () => ReadonlySet<number> | undefined;

function liveGroups(): LiveGroups {
  let cached: ReadonlySet<number> | undefined | null = null;
  return () => {
    if (cached !== null) return cached;
    try {
      cached = new Set(readdirSync("/proc").flatMap((pid) => {
        const st = /^[0-9]+$/.test(pid) ? procStat(pid) : undefined;
        return st !== undefined && !dead(st.state) ? [st.pgid] : [];
      }));
    } catch {
      cached = undefined;
    }
    return cached;
  };
}

function alive(pid: number, start: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const st = procStat(pid);
  if (st === undefined) return true;
  return !dead(st.state) && (start === undefined || st.start === start);
}

/** True when `dir` is on tmpfs or ramfs (what it holds never reaches a disk). */
export function onMemoryFs(dir: string): boolean {
  try {
    const type = Number(statfsSync(dir).type);
    return type === TMPFS_MAGIC || type === RAMFS_MAGIC;
  } catch {
    return false;
  }
}
