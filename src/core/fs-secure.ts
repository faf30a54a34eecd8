/**
 * Files 0600 and directories 0700 whatever the umask, and the ssh-style check that refuses
 * what others can read or what someone else owns (docs/design.md §3).
 */
import {
  closeSync, constants, fchmodSync, fchownSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, renameSync, rmSync,
  statSync, writeSync, type Stats,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { CofferError, PermissionsError } from "../errors.ts";
import { homeOf } from "./paths.ts";

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
 * ssh's rule for the directories above a private file (docs/design.md §9; as sshd checks
 * `authorized_keys`): whoever could write one of them could swap the store or its WAL for an
 * older copy. The walk stops after home, at `/`, and at a root-owned sticky directory (`/tmp`),
 * which is not itself refused: nobody can replace what another user made in it. Symlinks are
 * resolved, not refused (dotfiles often live on another disk): the path as given is walked (a
 * link in it must be owned by the user or root), then the real path it resolves to.
 *
 * @param path - the file (or directory) whose parents are checked; need not exist yet
 * @param what - how to name it in the message ("store", "identity file", …)
 * @param home - the user's home (default `$HOME`, else the passwd entry)
 * @throws PermissionsError naming the directory and the `chmod`/`chown` to run
 */
export function assertSecureParents(path: string, what: string, home?: string): void {
  const uid = process.getuid?.();
  if (uid === undefined) return; // no POSIX ownership to check (Windows)
  // Only an absolute home stops the walk: an empty or relative $HOME must not mean the cwd.
  home = home?.startsWith("/") === true ? home : homeOf();
  const homes = new Set([resolve(home)]);
  try {
    homes.add(realpathSync(home));
  } catch {
    // a home that does not exist stops nothing; the walk ends at `/`
  }
  const abs = resolve(path);
  walkParents(abs, what, uid, homes, true);
  let real: string | undefined;
  try {
    real = realpathSync(abs);
  } catch {
    try {
      real = join(realpathSync(dirname(abs)), abs.slice(dirname(abs).length + 1));
    } catch {
      real = undefined; // a missing parent: nothing there to plant files in yet
    }
  }
  if (real !== undefined && real !== abs) walkParents(real, what, uid, homes, false);
}

function walkParents(file: string, what: string, uid: number, homes: Set<string>, lexical: boolean): void {
  for (let dir = dirname(file), prev = file; dir !== prev; prev = dir, dir = dirname(dir)) {
    let st: Stats;
    try {
      st = lexical ? lstatSync(dir) : statSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw err;
    }
    if (st.uid === 0 && st.isDirectory() && (st.mode & 0o1000) !== 0) return; // /tmp, /dev/shm
    if (st.uid !== uid && st.uid !== 0) {
      throw new PermissionsError(
        `the directory ${dir} above the ${what} is owned by uid ${st.uid}, not by you (uid ${uid}) or root, ` +
          `so its owner could replace the ${what}; move it under a directory of yours, or \`sudo chown ${uid} ${shellQuote(dir)}\``,
      );
    }
    if (!st.isSymbolicLink()) {
      const writable = st.mode & 0o022;
      if ((writable & 0o002) !== 0 || ((writable & 0o020) !== 0 && !isOwnPrivateGroup(st.gid))) {
        throw new PermissionsError(
          `the directory ${dir} above the ${what} is writable by ${(writable & 0o002) !== 0 ? "others" : "its group"} ` +
            `(mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}), so they could replace the ${what}; ` +
            `run \`chmod go-w ${shellQuote(dir)}\``,
        );
      }
    }
    if (homes.has(dir)) return;
  }
}

// The user's private group (ssh's "user private group"): the primary gid, a group named as the
// user, and nobody else listed in it. Read only when a group-writable directory is met.
function isOwnPrivateGroup(gid: number): boolean {
  if (gid !== process.getgid?.()) return false;
  let user: string;
  let groups: string;
  try {
    user = userInfo().username;
    groups = readFileSync("/etc/group", "utf8");
  } catch {
    return false;
  }
  for (const line of groups.split("\n")) {
    const [name, , id, members = ""] = line.split(":");
    if (Number(id) !== gid || id === undefined || id === "") continue;
    return name === user && members.split(",").every((m) => m === "" || m === user);
  }
  return false;
}

/**
 * Reads a file that must be private to the user (see {@link assertPrivate}).
 * @param missing - the error to throw when the file does not exist
 * @throws PermissionsError, or `missing`
 */
export function readPrivateFile(path: string, what: string, missing: () => CofferError): Buffer {
  return readChecked(path, () => assertPrivate(path, what), missing);
}

// Reads `path` once `check` passes; a missing file is `missing()`.
function readChecked(path: string, check: () => void, missing: () => CofferError): Buffer {
  try {
    check();
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
export function ensurePrivateDir(dir: string): string | undefined {
  const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (created !== undefined) {
    // mkdir's mode is filtered by the umask; set it exactly on every level we created.
    for (let d = dir; d.length >= created.length; d = dirname(d)) {
      chmodExact(d, 0o700);
      if (d === created) break;
    }
  }
  return created;
}

/**
 * Creates `path` with mode 0600 (whatever the umask) holding `data`, durably, and only if it
 * does not exist: the data is written to a temp file, fsynced, then hard-linked into place, so
 * a reader never sees a partial file and an existing file is never replaced.
 * @throws CofferError E_CONFLICT when `path` already exists
 */
export function createPrivateFile(path: string, data: Uint8Array | string): void {
  placeTemp(writeTemp(path, data), path, false);
}

/** The mode (default 0600) and owner (default the user; needs root) of a file written here. */
export interface PrivateFileOptions {
  mode?: number;
  owner?: { uid: number; gid: number } | undefined;
}

/**
 * Writes `path` with mode 0600 (or `options.mode`) holding `data`, replacing any file there
 * atomically: a temp file in the same directory (never following a link) is written, fsynced,
 * given its mode and owner, and renamed over it, so a reader sees the old bytes or the new ones.
 */
export function replacePrivateFile(path: string, data: Uint8Array | string, options: PrivateFileOptions = {}): void {
  placeTemp(writeTemp(path, data, options), path, true);
}

/**
 * {@link createPrivateFile} (or, with `replace`, {@link replacePrivateFile}) from `chunks` as they
 * come: memory is bounded by a chunk, not by the file.
 * @throws CofferError E_CONFLICT when `path` exists and not `replace`
 */
export async function writePrivateFileFrom(path: string, chunks: AsyncIterable<Uint8Array>, options: { replace: boolean }): Promise<void> {
  const tmp = await fillTemp(path, async (fd) => {
    for await (const chunk of chunks) writeAll(fd, chunk);
    fsyncSync(fd);
  });
  placeTemp(tmp, path, options.replace);
}

/**
 * Puts the written, fsynced temp file `tmp` at `path`: hard-linked (so an existing file is never
 * replaced) or, with `replace`, renamed over it; then `tmp` is gone and the directory fsynced.
 * @throws CofferError E_CONFLICT when `path` exists and not `replace`
 */
function placeTemp(tmp: string, path: string, replace: boolean): void {
  try {
    if (replace) renameSync(tmp, path);
    else linkSync(tmp, path);
  } catch (err) {
    if (!replace && (err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new CofferError("E_CONFLICT", `${path} already exists; refusing to overwrite it`);
    }
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  fsyncDir(dirname(path));
}

/**
 * Creates `path` (which must not exist) with mode 0600 (or `mode`) whatever the umask, not
 * following a link, and gives its open file descriptor for writing.
 */
export function openPrivateNew(path: string, mode = 0o600): number {
  const fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, mode);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/**
 * The file at `path` as a stream of chunks of at most `chunkSize` bytes, read only as the
 * consumer pulls (memory bounded by a chunk, whatever the file's size).
 */
export function fileChunks(path: string, chunkSize = 64 * 1024): ReadableStream<Uint8Array> {
  let fd: number | undefined = openSync(path, constants.O_RDONLY);
  const close = () => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (fd === undefined) return;
      const buf = Buffer.allocUnsafe(chunkSize);
      let n: number;
      try {
        n = readSync(fd, buf, 0, chunkSize, null);
      } catch (err) {
        close();
        throw err;
      }
      if (n === 0) {
        close();
        controller.close();
      } else {
        controller.enqueue(buf.subarray(0, n));
      }
    },
    cancel: close,
  }, { highWaterMark: 0 });
}

/** The first `max` bytes of the file at `path` (fewer when it is shorter). */
export function readFilePrefix(path: string, max: number): Buffer {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const buf = Buffer.alloc(max);
    let n = 0;
    for (let got = -1; got !== 0 && n < max; n += got) got = readSync(fd, buf, n, max - n, null);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Writes all of `data` at the file descriptor's position. */
export function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

// A fresh temp file beside `path` holding `data`, fsynced, then given its owner and mode (0600).
function writeTemp(path: string, data: Uint8Array | string, options: PrivateFileOptions = {}): string {
  return fillTemp(path, (fd) => {
    writeAll(fd, typeof data === "string" ? Buffer.from(data, "utf8") : data);
    fsyncSync(fd);
    if (options.owner !== undefined) fchownSync(fd, options.owner.uid, options.owner.gid);
    if (options.mode !== undefined) fchmodSync(fd, options.mode);
  });
}

// The one temp-file writer: a fresh 0600 file beside `path`, written by `fill` (sync for the
// sync callers, async for a stream) and closed; removed again when `fill` fails.
function fillTemp(path: string, fill: (fd: number) => void): string;
function fillTemp(path: string, fill: (fd: number) => Promise<void>): Promise<string>;
function fillTemp(path: string, fill: (fd: number) => void | Promise<void>): string | Promise<string> {
  const tmp = join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openPrivateNew(tmp);
  const fail = (err: unknown): never => {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  };
  const done = (): string => {
    closeSync(fd);
    return tmp;
  };
  let filling: void | Promise<void>;
  try {
    filling = fill(fd);
  } catch (err) {
    return fail(err);
  }
  return filling instanceof Promise ? filling.then(done, fail) : done();
}

/** Creates an empty 0600 file if `path` does not exist (e.g. before SQLite opens it). */
export function touchPrivateFile(path: string): void {
  try {
    closeSync(openPrivateNew(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}

/** fsyncs a directory so a new entry in it survives a crash. */
export function fsyncDir(dir: string): void {
  withDir(dir, constants.O_DIRECTORY, fsyncSync);
}

function chmodExact(path: string, mode: number): void {
  withDir(path, constants.O_DIRECTORY | constants.O_NOFOLLOW, (fd) => fchmodSync(fd, mode));
}

// Opens a directory read-only with `flags`, runs `f` on it, closes it.
function withDir(path: string, flags: number, f: (fd: number) => void): void {
  const fd = openSync(path, constants.O_RDONLY | flags);
  try {
    f(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a file that anyone may read but only its owner may change (a certificate, a CA): owned
 * by the user or root, not writable by group or others.
 * @param missing - the error to throw when the file does not exist
 * @throws PermissionsError with the `chmod`/`chown` to run, or `missing`
 */
export function readPublicFile(path: string, what: string, missing: () => CofferError): Buffer {
  return readChecked(path, () => assertOwnerOnlyWrites(path, statSync(path), what), missing);
}

/**
 * The rule for a file or dir coffer believes but need not keep secret (a certificate, a
 * secrets.env, a folder provider's file): owned by the user or root, not writable by group or
 * others, so nobody else could have written it.
 * @param what - how the message names it ("secret file", "CA certificate", …)
 * @throws PermissionsError naming the `chown`/`chmod` to run
 */
export function assertOwnerOnlyWrites(path: string, st: { uid: number; mode: number }, what: string): void {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new PermissionsError(
      `${what} ${path} is owned by uid ${st.uid}, neither you (uid ${uid}) nor root, who could replace it; ` +
        `make it yours with \`sudo chown ${uid} ${shellQuote(path)}\``,
    );
  }
  const mode = st.mode & 0o777;
  if ((mode & 0o022) !== 0) {
    throw new PermissionsError(
      `${what} ${path} is writable by group or others (mode ${mode.toString(8).padStart(4, "0")}); run \`chmod go-w ${shellQuote(path)}\``,
    );
  }
}
