/**
 * Files 0600 and directories 0700 whatever the umask, and the ssh-style check that refuses
 * what others can read or what someone else owns (docs/design.md §3).
 */
import {
  closeSync, constants, fchmodSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { CofferError, PermissionsError } from "../errors.ts";

/** Quotes a path for a shell command line shown to the user. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./@%+=:,-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Refuses a file or directory that is group/world-accessible or not owned by the current user.
 * @param what - how to name it in the message ("identity file", "store", …)
 * @throws PermissionsError with the exact `chmod`/`chown` to run
 */
export function assertPrivate(path: string, what: string): void {
  const st = statSync(path);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new PermissionsError(
      `${what} ${path} is owned by uid ${st.uid}, not by you (uid ${uid}); ` +
        `make it yours with \`sudo chown ${uid} ${shellQuote(path)}\` or use your own`,
    );
  }
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    const want = st.isDirectory() ? "700" : "600";
    throw new PermissionsError(
      `${what} ${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, "0")}); ` +
        `run \`chmod ${want} ${shellQuote(path)}\``,
    );
  }
}

/**
 * Reads a file that must be private to the user (see {@link assertPrivate}).
 * @param missing - the error to throw when the file does not exist
 * @throws PermissionsError, or `missing`
 */
export function readPrivateFile(path: string, what: string, missing: () => CofferError): Buffer {
  try {
    assertPrivate(path, what);
    return readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw missing();
    throw err;
  }
}

/**
 * Creates `dir` (and missing parents) with mode 0700 whatever the umask. An existing directory
 * is left as it is: the files in it are what {@link assertPrivate} checks.
 */
export function ensurePrivateDir(dir: string): void {
  const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (created !== undefined) {
    // mkdir's mode is filtered by the umask; set it exactly on every level we created.
    for (let d = dir; d.length >= created.length; d = dirname(d)) {
      chmodExact(d, 0o700);
      if (d === created) break;
    }
  }
}

/**
 * Creates `path` with mode 0600 (whatever the umask) holding `data`, durably, and only if it
 * does not exist: the data is written to a temp file, fsynced, then hard-linked into place, so
 * a reader never sees a partial file and an existing file is never replaced.
 * @throws CofferError E_CONFLICT when `path` already exists
 */
export function createPrivateFile(path: string, data: Uint8Array | string): void {
  const tmp = writeTemp(path, data);
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new CofferError("E_CONFLICT", `${path} already exists; refusing to overwrite it`);
    }
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  fsyncDir(dirname(path));
}

/**
 * Writes `path` with mode 0600 holding `data`, replacing any file there atomically: a temp
 * file in the same directory is written, fsynced and renamed over it.
 */
export function replacePrivateFile(path: string, data: Uint8Array | string): void {
  const tmp = writeTemp(path, data);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
}

// A fresh 0600 temp file beside `path` holding `data`, fsynced.
function writeTemp(path: string, data: Uint8Array | string): string {
  const tmp = join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, 0o600);
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  return tmp;
}

/** Creates an empty 0600 file if `path` does not exist (e.g. before SQLite opens it). */
export function touchPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return;
    throw err;
  }
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/** fsyncs a directory so a new entry in it survives a crash. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function chmodExact(path: string, mode: number): void {
  const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}
