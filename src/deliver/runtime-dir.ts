/**
 * The private runtime directory that delivered files live in (docs/design.md §7):
 * `$XDG_RUNTIME_DIR/coffer/<id>` when that is a proper runtime dir, else
 * `/dev/shm/coffer-<uid>/<id>` (tmpfs) with a warning, or a base the user chooses. Every
 * level is 0700 and the user's; a base someone else made is refused. Each dir holds an owner
 * record (pid and process start time) so that a later run can sweep the dirs of processes
 * that are gone (a coffer killed with SIGKILL cannot clean up after itself).
 */
import { randomBytes } from "node:crypto";
import {
  closeSync, constants, fchmodSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, writeSync,
} from "node:fs";
import { join } from "node:path";
import { CofferError } from "../errors.ts";
import { assertPrivate } from "../store/fs-secure.ts";

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
const OWNER_FILE = ".coffer-owner";

/** What a runtime dir is for: `run` dirs die with their process; `load` dirs stay until replaced. */
export type RuntimeKind = "run" | "load";

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
  /** told about fallbacks (no XDG_RUNTIME_DIR, not tmpfs) */
  warn?: (message: string) => void;
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
  writeOwner(path, options.kind);
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
  const fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * Removes the runtime dirs under `base` whose owning process is gone (or that never got an
 * owner record and are over a minute old). `load` dirs are kept: they outlive their process.
 * @returns the paths removed
 */
export function sweepRuntimeDirs(base: string): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return removed;
  }
  for (const entry of entries) {
    if (!/^[0-9a-f]{16}$/.test(entry)) continue;
    const dir = join(base, entry);
    let owner: { kind?: string; pid?: number; start?: string } | undefined;
    try {
      owner = JSON.parse(readFileSync(join(dir, OWNER_FILE), "utf8")) as typeof owner;
    } catch {
      owner = undefined;
    }
    const dead =
      owner === undefined
        ? safeAgeMs(dir) > 60_000
        : owner.kind === "run" && (typeof owner.pid !== "number" || !alive(owner.pid, owner.start));
    if (dead) {
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return removed;
}

function makePrivateDir(dir: string, what: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      fchmodSync(fd, 0o700);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") mkdirSync(dir, { recursive: true, mode: 0o700 });
    else if (code !== "EEXIST") throw err;
  }
  // In a world-writable place like /dev/shm, someone else could have made it first, or planted
  // a symlink: it must be a real dir, ours, and private.
  if (!lstatSync(dir).isDirectory()) {
    throw new CofferError("E_PERMISSIONS", `${what} ${dir} is not a directory (a symlink?); remove it`);
  }
  assertPrivate(dir, what);
}

function writeOwner(dir: string, kind: RuntimeKind): void {
  const record = JSON.stringify({ kind, pid: process.pid, start: processStart(process.pid), created: new Date().toISOString() });
  writeRuntimeFile(dir, OWNER_FILE, Buffer.from(record), 0o600);
}

// A process's start time (clock ticks since boot, field 22 of /proc/PID/stat): with the pid it
// names one process, so a recycled pid does not keep a dead run's dir alive.
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number, start: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  return start === undefined || processStart(pid) === start;
}

function safeAgeMs(dir: string): number {
  try {
    return Date.now() - lstatSync(dir).mtimeMs;
  } catch {
    return 0;
  }
}

function onMemoryFs(dir: string): boolean {
  try {
    const type = Number(statfsSync(dir).type);
    return type === TMPFS_MAGIC || type === RAMFS_MAGIC;
  } catch {
    return false;
  }
}
