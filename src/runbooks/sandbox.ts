/**
 * The bubblewrap sandbox of `isolation: sandbox` runbooks (docs/design.md §10, docs/security.md
 * "Runbooks"): the argv that runs a script with every capability dropped, in new user,
 * PID, network, IPC, UTS and cgroup namespaces as uid 65534, with the system read-only, only its
 * execution dir writable, no network but a private loopback, and none of the server's files.
 *
 * What the argv holds, and why:
 * - `--unshare-all --unshare-user --disable-userns --cap-drop ALL`: no capability, in the sandbox
 *   or in a user namespace the script could make (run as root without them, a script can remount
 *   `/usr` read-write).
 * - `--die-with-parent` and the PID namespace: when bubblewrap ends, everything in it ends, also a
 *   process that left its process group.
 * - no `--new-session`: the executor spawns bubblewrap in a new session already (detached), with
 *   no terminal to inject input into, and keeping the process group lets the executor give the
 *   script SIGTERM before SIGKILL.
 * - `/usr` read-only; `/bin`, `/sbin`, `/lib*` as the host has them (a link into `/usr`, or a
 *   read-only bind); of `/etc` only a list of entries that hold nothing secret. Bound whole, `/etc`
 *   would show `/etc/shadow`: in the user namespace, files of the uid that runs bubblewrap belong to
 *   the sandbox's uid. `/etc/ssl/private` is never bound.
 * - a fresh `/proc` (its own processes only), `/dev` (null, zero, random, tty…) and `/tmp`.
 * - the paths to hide (the server's data dir) are never bound; one that lies below a bound path
 *   is covered by an empty tmpfs (a file: by `/dev/null`).
 * - no `--setenv`/`--clearenv`: values never go on an argv (anyone can read /proc/PID/cmdline);
 *   bubblewrap is started with the script's environment, built from nothing, and passes it on.
 *
 * Who runs bubblewrap: never root. Run by root, bubblewrap maps the sandbox's uid to host uid 0:
 * files owned by root, such as `/proc/sys/kernel/core_pattern` (which bubblewrap leaves writable),
 * are the sandbox's own and a script could set a core pattern that the kernel runs as root. So a
 * server running as root runs bubblewrap as `runAs` when given, else as nobody (65534:65534).
 */
import { spawn } from "node:child_process";
import { accessSync, constants, existsSync, lstatSync, readlinkSync, realpathSync } from "node:fs";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { CofferError } from "../errors.ts";
import type { Runner } from "./workdir.ts";

/** The uid and gid the script has inside the sandbox, and bubblewrap runs as when root starts it without `runAs`. */
export const NOBODY: Runner = { uid: 65534, gid: 65534 };

/** Where bubblewrap is looked for (the fixed PATH the scripts get). */
export const BWRAP_DIRS = ["/usr/local/bin", "/usr/bin", "/bin"] as const;

/** The entries of `/etc` bound read-only into the sandbox when the host has them: nothing secret. */
export const SAFE_ETC = [
  "passwd", "group", "hosts", "host.conf", "hostname", "nsswitch.conf", "resolv.conf", "gai.conf", "services", "protocols",
  "networks", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl/certs", "ssl/openssl.cnf", "ca-certificates",
  "ca-certificates.conf", "pki/tls/certs", "pki/ca-trust", "localtime", "timezone", "mime.types", "os-release", "debian_version",
  "locale.alias", "locale.conf", "magic", "magic.mime", "inputrc", "bash.bashrc", "profile",
] as const;

/** The top-level entries the host may have as links into `/usr` (merged /usr) or as directories. */
const SYSTEM_LINKS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] as const;

/**
 * Who runs bubblewrap: `runAs` when given; else, when the server runs as root, {@link NOBODY};
 * else the server's own user (undefined).
 */
export function sandboxRunner(runAs?: Runner): Runner | undefined {
  if (runAs !== undefined) return runAs;
  return process.getuid?.() === 0 ? NOBODY : undefined;
}

/** The bubblewrap executable in {@link BWRAP_DIRS}, or undefined when there is none. */
export function bwrapPath(): string | undefined {
  for (const dir of BWRAP_DIRS) {
    const p = `${dir}/bwrap`;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** What {@link bwrapArgs} builds a sandbox for. */
export interface SandboxSpec {
  /** the execution dir: the only writable path, the working directory (real path) */
  readonly dir: string;
  /** the command and its arguments run inside (the shell and the script file's path) */
  readonly command: readonly string[];
  /** paths the script must not see (the server's data dir, its config) */
  readonly hide?: readonly string[] | undefined;
}

/** One mount of the system part: host source (real path) → path in the sandbox. */
interface Bound {
  src: string;
  dest: string;
}

/**
 * The bubblewrap argv (after the program name) that runs `spec.command` in the sandbox. It holds
 * paths only, never a value: start bubblewrap with the script's environment.
 * @throws CofferError E_INVALID_VALUE when a path to hide is not absolute, or would hide `/usr`
 */
export function bwrapArgs(spec: SandboxSpec): string[] {
  // Then everything but the execution dir is made read-only: the root bubblewrap built (its mount
  // points), the private /tmp and /dev (a device node stays writable on a read-only mount).
  return [
    ...systemArgs(spec.hide ?? []), "--bind", spec.dir, spec.dir,
    "--remount-ro", "/tmp", "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", spec.dir, "--", ...spec.command,
  ];
}

// Everything but the execution dir: namespaces, capabilities, the read-only system, the covers.
function systemArgs(hidden: readonly string[]): string[] {
  const hide = hidden.map((h) => {
    if (!isAbsolute(h)) throw new CofferError("E_INVALID_VALUE", `a path to hide from the sandbox must be absolute: ${JSON.stringify(h)}`);
    return realOrResolved(h);
  });
  const args = [
    "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--cap-drop", "ALL",
    "--uid", String(NOBODY.uid), "--gid", String(NOBODY.gid),
  ];
  const bound: Bound[] = [];
  const bind = (src: string, dest: string): void => {
    const real = realOrResolved(src);
    if (hide.some((h) => within(real, h))) {
      if (dest === "/usr") throw new CofferError("E_INVALID_VALUE", `cannot hide ${real} from the sandbox: the sandbox needs /usr`);
      return; // an /etc entry inside a hidden path: left out
    }
    args.push("--ro-bind", src, dest);
    bound.push({ src: real, dest });
  };
  bind("/usr", "/usr");
  for (const p of SYSTEM_LINKS) {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push("--symlink", readlinkSync(p), p);
    else if (st.isDirectory()) bind(p, p);
  }
  for (const e of SAFE_ETC) {
    const p = `/etc/${e}`;
    if (existsSync(p)) bind(p, p);
  }
  args.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp");
  // A hidden path below a bound one is covered, where it shows in the sandbox.
  for (const h of hide) {
    for (const b of bound) {
      if (!within(h, b.src)) continue;
      const dest = h === b.src ? b.dest : `${b.dest}/${relative(b.src, h)}`;
      let isDir = true;
      try {
        isDir = lstatSync(h).isDirectory();
      } catch {
        // a path that does not exist yet: covered as a directory
      }
      if (isDir) args.push("--tmpfs", dest);
      else args.push("--ro-bind", "/dev/null", dest);
    }
  }
  return args;
}

function realOrResolved(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** True when `p` is `root` or below it. */
function within(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);
}

const probes = new Map<string, Promise<string | undefined>>();

/**
 * Whether the sandbox can run here, probed once per user bubblewrap runs as (see
 * {@link sandboxRunner}) by starting `/bin/true` in it: undefined when it can, else why not,
 * in words for the operator (the server refuses `isolation: sandbox` runbooks with it).
 * {@link resetSandboxProbe} forgets the answers (e.g. on SIGHUP).
 */
export function sandboxProblem(runAs?: Runner): Promise<string | undefined> {
  const runner = sandboxRunner(runAs);
  const key = runner === undefined ? "self" : `${runner.uid}:${runner.gid}`;
  let probe = probes.get(key);
  if (probe === undefined) {
    probe = probeSandbox(runner);
    probes.set(key, probe);
  }
  return probe;
}

/** Forgets what {@link sandboxProblem} found, so that the next call probes again. */
export function resetSandboxProbe(): void {
  probes.clear();
}

const PROBE_TIMEOUT_MS = 30_000;

function probeSandbox(runner: Runner | undefined): Promise<string | undefined> {
  const bwrap = bwrapPath();
  if (bwrap === undefined) {
    return Promise.resolve(`bubblewrap is not installed (no bwrap in ${BWRAP_DIRS.join(", ")}): install the Debian package bubblewrap`);
  }
  // The system part of a real sandbox, with / as the working directory instead of an execution dir.
  const args = [...systemArgs([]), "--chdir", "/", "--", "/bin/true"];
  const as = runner === undefined ? "" : ` as uid ${runner.uid}`;
  return new Promise((resolvePromise) => {
    let stderr = "";
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(bwrap, args, {
        cwd: "/",
        env: { PATH: "/usr/local/bin:/usr/bin:/bin", LANG: "C.UTF-8" },
        stdio: ["ignore", "ignore", "pipe"],
        ...(runner !== undefined && runner.uid !== process.getuid?.() && { uid: runner.uid, gid: runner.gid }),
      });
    } catch (err) {
      // Some failures are thrown at once: EINVAL when this process may not take that uid (inside
      // a user namespace that does not map it), EPERM when it has no right to change uid.
      return resolvePromise(`bubblewrap (${bwrap}) cannot be started${as}: ${(err as NodeJS.ErrnoException).code ?? "spawn failed"}`);
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), PROBE_TIMEOUT_MS);
    child.stderr?.on("data", (d: Buffer) => {
      if (stderr.length < 1000) stderr += d.toString("utf8");
    });
    child.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolvePromise(`bubblewrap (${bwrap}) cannot be started${as}: ${err.code ?? err.message}`);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolvePromise(undefined);
      const said = stderr.trim().split("\n")[0]?.slice(0, 300) ?? "";
      resolvePromise(
        `bubblewrap (${bwrap}) cannot start a sandbox here${as} (${signal ?? `exit ${code}`}${said === "" ? "" : `: ${said}`}); ` +
          "user namespaces may be forbidden: a systemd unit with RestrictNamespaces=yes or a narrow SystemCallFilter= " +
          "(docs/security.md gives the settings that allow it), user.max_user_namespaces=0, or an AppArmor policy " +
          "(kernel.apparmor_restrict_unprivileged_userns=1) that keeps unprivileged users from making them",
      );
    });
  });
}
