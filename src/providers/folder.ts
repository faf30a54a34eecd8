/**
 * The `folder` provider: one file per secret in a directory, as in a root-only `/etc/secrets`
 * or a mounted Kubernetes/Docker secret volume. The value is the file's bytes, exactly.
 * `{ type: folder, dir: /abs }`, `--provider folder:/abs`.
 */
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, statSync, watch as fsWatch, type FSWatcher } from "node:fs";
import { dirname, isAbsolute, join, relative, sep } from "node:path";
import { CofferError, PermissionsError } from "../errors.ts";
import { coalesce } from "../core/coalesce.ts";
import { assertOwnerOnlyWrites } from "../core/fs-secure.ts";
import { assertSecretName, DEFAULT_MAX_VALUE_BYTES } from "../core/names.ts";
import { Secret } from "../core/secret.ts";
import { watchSet } from "./watch.ts";
import type { ProviderType } from "./grammar.ts";
import { describeRef, type Provider, type ProviderContext, type SecretRef } from "./provider.ts";

export interface FolderSpec {
  type: "folder";
  dir: string;
}

/** Options of {@link createFolderProvider} (for tests and tuning; not in the config). */
export interface FolderProviderOptions {
  /** how long watch() waits after the last file event before it looks (default 100 ms) */
  debounceMs?: number;
  /** largest file accepted, in bytes (default 1 MiB) */
  maxValueBytes?: number;
}

/**
 * Creates the `folder` provider over `spec.dir` (an absolute path).
 *
 * `resolve({path: "db/pw"})` reads `<dir>/db/pw`. The path must be a valid secret name (so no
 * `..` and no leading `/`); the file's real path (symlinks resolved) must stay inside the real
 * dir; it must be a regular file of 1 byte to 1 MiB, owned by you or by root, and neither it
 * nor a directory from `dir` down to it may be writable by group or others (E_PERMISSIONS
 * with the `chmod`/`chown` to run). Keys and versions are not supported (E_CONFIG). The
 * Secret's version is 1 and its `updatedAt` the file's mtime.
 *
 * `watch(refs, onChange)` watches the dir (recursively) and, ~100 ms after the last event,
 * calls `onChange` for each ref whose file changed (inode, size, mtime or ctime; appearing or
 * disappearing counts), so an atomic rename or a symlink swap (`..data`) is noticed too.
 * @throws CofferError E_CONFIG when `dir` is not absolute
 */
export function createFolderProvider(
  name: string,
  spec: FolderSpec,
  _ctx: ProviderContext,
  options: FolderProviderOptions = {},
): Provider {
  if (typeof spec.dir !== "string" || !isAbsolute(spec.dir)) {
    throw new CofferError("E_CONFIG", `provider "${name}": dir must be an absolute path, got ${JSON.stringify(String(spec.dir))}`);
  }
  const dir = spec.dir;
  const max = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  const debounceMs = options.debounceMs ?? 100;
  const watches = watchSet();
  return {
    name,
    resolve: (ref) => Promise.resolve().then(() => readSecretFile(dir, ref, max)),
    watch: (refs, onChange) => watches.add(watchFolder(dir, refs, onChange, debounceMs)),
    close: () => watches.stopAll(),
  };
}

export const folderType: ProviderType<FolderSpec> = {
  type: "folder",
  schema: {
    title: "Folder",
    type: "object",
    additionalProperties: false,
    required: ["type", "dir"],
    properties: {
      type: { const: "folder", description: "One file per secret in a directory." },
      dir: { $ref: "#/$defs/absolutePath", description: "The directory, an absolute path.", "x-needs": "an absolute directory path" },
    },
  },
  path: "secret-name",
  cliForm: "folder:/absolute/dir",
  fromCli: (dir) => (dir.startsWith("/") ? { ok: { type: "folder", dir } } : { rule: "folder: needs an absolute directory, e.g. folder:/etc/secrets" }),
  spec: (s) => ({ type: "folder", dir: s["dir"] as string }),
  create: createFolderProvider,
};

function readSecretFile(dir: string, ref: SecretRef, max: number): Secret {
  if (ref.key !== undefined || ref.version !== undefined) {
    throw new CofferError("E_CONFIG", `${describeRef(ref)}: the folder provider has no keys or versions; name only the file`);
  }
  assertSecretName(ref.path);
  const path = join(dir, ref.path);
  let realDir: string;
  try {
    realDir = realpathSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new CofferError("E_NOT_FOUND", `folder ${dir} does not exist (provider "${ref.provider}")`);
    }
    throw providerError(dir, err);
  }
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new CofferError("E_NOT_FOUND", `no file ${path} for ${describeRef(ref)}`);
    }
    throw providerError(path, err);
  }
  const rel = relative(realDir, real);
  if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel)) {
    throw new PermissionsError(`${path} resolves to ${real}, outside the folder ${realDir}; refusing to follow a link out of it`);
  }
  // Every directory from the folder down to the file must not be writable by others, or they
  // could swap the file.
  for (let d = dirname(real); ; d = dirname(d)) {
    assertOwnerOnlyWrites(d, statSync(d), "folder");
    if (d === realDir || d.length <= realDir.length) break;
  }
  let fd: number;
  try {
    fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new CofferError("E_NOT_FOUND", `no file ${path} for ${describeRef(ref)}`);
    throw providerError(path, err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new CofferError("E_PROVIDER", `${path} is not a regular file; the folder provider reads one regular file per secret`);
    }
    assertOwnerOnlyWrites(real, st, "secret file");
    if (st.size > max) throw new CofferError("E_INVALID_VALUE", `${path} is ${st.size} bytes, over the limit of ${max} bytes`);
    // Read up to max+1 bytes: the file may grow between fstat and read.
    const buf = Buffer.alloc(Math.min(st.size + 1, max + 1));
    let off = 0;
    for (;;) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
      if (off === buf.length) break;
    }
    if (off > max) {
      buf.fill(0);
      throw new CofferError("E_INVALID_VALUE", `${path} is over the limit of ${max} bytes`);
    }
    const value = off === buf.length ? buf : Buffer.from(buf.subarray(0, off));
    if (value !== buf) buf.fill(0);
    return new Secret({ name: ref.path, version: 1, updatedAt: st.mtime.toISOString() }, value);
  } finally {
    closeSync(fd);
  }
}

function providerError(path: string, err: unknown): CofferError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") {
    return new PermissionsError(`cannot read ${path}: permission denied (run coffer as a user that may read it)`);
  }
  if (code === "ELOOP") return new PermissionsError(`${path} is a symbolic link loop; refusing it`);
  return new CofferError("E_PROVIDER", `cannot read ${path}: ${code ?? String(err)}`, { cause: err });
}

// What identifies a file's content cheaply: changes on write, replace and symlink swap.
function signature(path: string): string {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch {
    return "missing";
  }
}

function watchFolder(dir: string, refs: readonly SecretRef[], onChange: (ref: SecretRef) => void, debounceMs: number): () => void {
  const watched = refs.filter((r) => r.key === undefined && r.version === undefined);
  const seen = new Map<string, string>(watched.map((r) => [r.path, signature(join(dir, r.path))]));
  const looks = coalesce(() => {
    const changed = new Set<string>();
    for (const [path, before] of seen) {
      const now = signature(join(dir, path));
      if (now === before) continue;
      seen.set(path, now);
      changed.add(path);
    }
    for (const r of watched) if (changed.has(r.path)) onChange(r);
  }, debounceMs);
  // One plain (non-recursive) inotify watch per directory that holds a watched file, plus the
  // top dir (a swapped `..data` symlink shows there). Node's recursive mode on Linux is built on
  // per-file watches and can lose a file replaced by rename, which is how secrets are updated.
  const watchers: FSWatcher[] = [];
  if (watched.length > 0) {
    const dirs = new Set([dir, ...watched.map((r) => dirname(join(dir, r.path)))]);
    for (const d of dirs) {
      try {
        const w = fsWatch(d, { persistent: false }, () => looks.trigger());
        w.on("error", () => {
          // The dir went away; the next resolve() reports it.
        });
        watchers.push(w);
      } catch {
        // A dir that does not exist yet: the top dir's watch sees it appear.
      }
    }
  }
  return () => {
    looks.stop();
    for (const w of watchers) w.close();
  };
}
