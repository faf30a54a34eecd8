/**
 * Runs one runbook execution as a process (issue 13, "Running"): a fresh private dir, an
 * environment built from nothing, its own process group, a timeout, masked output up to a limit,
 * and the dir removed whatever the end.
 *
 * - The environment: `PATH=/usr/local/bin:/usr/bin:/bin`, `LANG=C.UTF-8`, `HOME` and `TMPDIR` (the
 *   execution dir), `COFFER_EXECUTION_ID`, the params, the secrets and the files' paths. Nothing of
 *   the server's own environment. Values never go on an argv: the script is a file given to the
 *   shell by path, and bubblewrap gets no `--setenv`.
 * - One pipe for stdout and stderr, so their order is kept: the child is
 *   `/bin/sh -c 'exec 2>&1; exec "$@"' coffer-runbook SHELL SCRIPT` (or `… BWRAP ARGS`): the
 *   wrapper points its stderr at its stdout (the pipe) and replaces itself with the shell, so it
 *   costs one exec and no process, and a failing exec is reported in the output too.
 * - The process group: the child is spawned detached, so it leads a new session and group.
 *   Timeout or stop: SIGTERM to the group, SIGKILL to the group {@link KILL_GRACE_MS} later. When
 *   the main process ends, whatever is left of its group gets SIGKILL. A script that leaves its
 *   group (`setsid`) escapes this in `tempdir` mode; in `sandbox` mode the PID namespace ends with
 *   bubblewrap (`--die-with-parent`), leaving nothing. There, SIGTERM goes to every member of the
 *   group but bubblewrap itself (which would die at once and SIGKILL the script), so the script
 *   can still clean up; bubblewrap then exits with the script's status (128+N for signal N).
 * - Output: read with backpressure (the sink's promise is awaited before more is read), masked by
 *   the one masker (src/core/mask.ts) over every secret value and file content, and given to the
 *   sink until `outputLimit` bytes; past it, the bytes the masker holds (maybe the start of a
 *   secret) are dropped, and the pipe is handed to a `/bin/cat` writing to /dev/null, which
 *   drains it so the script never blocks (read here, every 64 KiB read would be garbage that V8
 *   lets pile up to ~64 MB before it collects). Memory stays bounded by the limit's reads and the
 *   longest masked pattern, whatever the script writes. The sink's promises must settle.
 * - Dropping the server's privileges: `runAs` (root only) runs the script (`tempdir`) or
 *   bubblewrap (`sandbox`) as that user, owner of the dir. In `sandbox` mode a root server never
 *   runs bubblewrap as root (see sandbox.ts): without `runAs` it uses nobody.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { CofferError, ValidationError } from "../errors.ts";
import { MaskMatcher, maskPatterns } from "../core/mask.ts";
import { assertEnvName, envValueProblem } from "../core/names.ts";
import { isDangerousEnvName } from "../config/dangerous-env.ts";
import { bwrapArgs, bwrapPath, sandboxProblem, sandboxRunner } from "./sandbox.ts";
import { createExecutionDir, prepareBase, type ExecutionDir, type Runner } from "./workdir.ts";

/** How long a process group has between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 10_000;

/** The PATH every script gets. */
export const SCRIPT_PATH = "/usr/local/bin:/usr/bin:/bin";

/** Names the executor sets itself: a param, secret or file may not take them. */
export const RESERVED_ENV_NAMES: ReadonlySet<string> = new Set(["PATH", "LANG", "HOME", "TMPDIR", "COFFER_EXECUTION_ID"]);

/** How long output may still come after the main process ended and its group was killed. */
const DRAIN_AFTER_EXIT_MS = 5_000;

/** What to run. */
export interface ExecutionSpec {
  /** the execution id (UUIDv7 text), given to the script as `COFFER_EXECUTION_ID` */
  readonly id: string;
  /** the script text: written to a file in the execution dir and given to `shell` by path */
  readonly script: string;
  /** an absolute path, e.g. `/bin/sh` */
  readonly shell: string;
  /** env vars, shown as they are */
  readonly params: Readonly<Record<string, string>>;
  /** env vars whose values (and encoded forms) are masked in the output */
  readonly secrets: Readonly<Record<string, Uint8Array>>;
  /** each written as a file (mode 0400) in the execution dir, its env var holding the path; masked too */
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly timeoutMs: number;
  /** bytes of (masked) output kept, stdout and stderr together */
  readonly outputLimit: number;
  readonly isolation: "tempdir" | "sandbox";
  /**
   * root only: the user that runs the script (`tempdir`) or bubblewrap (`sandbox`), owner of the
   * execution dir. Without it a root server runs `tempdir` scripts as root and bubblewrap as nobody.
   */
  readonly runAs?: Runner | undefined;
  /** the dir (made 0700 if missing, refused if others can read or write it) that holds one dir per execution */
  readonly baseDir: string;
  /** paths a sandbox must not see (the server's data dir); `tempdir` cannot hide anything */
  readonly hide?: readonly string[] | undefined;
  /** SIGTERM → SIGKILL delay; default {@link KILL_GRACE_MS} */
  readonly killGraceMs?: number | undefined;
}

/** How an execution ended. */
export interface ExecutionResult {
  readonly status: "succeeded" | "failed" | "timed-out" | "cancelled" | "interrupted";
  /** the exit code, or null when a signal ended it (in `sandbox` mode: bubblewrap's, 128+N for signal N) */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** bytes given to the sink */
  readonly outputBytes: number;
  /** true when output past `outputLimit` was dropped */
  readonly truncated: boolean;
}

/** A started execution. */
export interface RunningExecution {
  /** the main process, leader of the execution's process group */
  readonly pid: number;
  /** the execution dir (gone once `done` settles) */
  readonly dir: string;
  /**
   * Settles when the main process has ended, its group is killed, the output is read and the dir
   * removed. Rejects only when the sink failed (the execution was killed at once, the dir removed).
   */
  readonly done: Promise<ExecutionResult>;
  /** Ends it: SIGTERM to its group, SIGKILL after the grace. Its status is `why`. No-op once ended. */
  stop(why: "cancelled" | "interrupted"): void;
}

/** Where masked output goes. */
export interface OutputSink {
  /** receives masked output in order; a returned promise is awaited before more output is read */
  output(chunk: Buffer): void | Promise<void>;
}

/**
 * Starts an execution. Resolves once the process runs.
 * @throws ValidationError E_INVALID_NAME for an env name that breaks the env-name rule, changes how
 *   programs run (`PATH`, `LD_*`, …) or is set twice; E_INVALID_VALUE for a value no environment
 *   can carry (NUL, not UTF-8), a shell that is not an absolute path to an executable, bad limits,
 *   or `runAs` without root
 * @throws CofferError E_UNAVAILABLE when the sandbox cannot run here (why: {@link sandboxProblem});
 *   E_PERMISSIONS for a base dir others can use; E_INTERNAL when the process cannot be started.
 *   Nothing is left behind then.
 */
export async function startExecution(spec: ExecutionSpec, sink: OutputSink): Promise<RunningExecution> {
  const values = checkSpec(spec);
  const uid = process.getuid?.();
  const sandbox = spec.isolation === "sandbox";
  let bwrap: string | undefined;
  if (sandbox) {
    const problem = await sandboxProblem(spec.runAs);
    bwrap = bwrapPath();
    if (problem !== undefined || bwrap === undefined) throw new CofferError("E_UNAVAILABLE", `cannot run a sandboxed runbook: ${problem ?? "bubblewrap is gone"}`);
  }
  // Who runs the child: runAs, or (sandbox as root) nobody; undefined: the server's own user.
  const runner = sandbox ? sandboxRunner(spec.runAs) : spec.runAs;
  const other = runner !== undefined && runner.uid !== uid ? runner : undefined;
  const base = prepareBase(spec.baseDir, other);
  const dir = createExecutionDir(base, { script: spec.script, files: spec.files, owner: other });
  let child: ChildProcess;
  try {
    const env = buildEnv(spec, dir);
    const command = [spec.shell, dir.scriptPath];
    const argv = sandbox ? [bwrap as string, ...bwrapArgs({ dir: dir.path, command, hide: spec.hide })] : command;
    child = await spawnChild(argv, { cwd: dir.path, env, runner: other });
  } catch (err) {
    await dir.remove();
    throw err;
  }
  return supervise(child, dir, spec, sink, { sandbox, masked: values });
}

/** Secret values and file contents, checked; what the masker hides. */
function checkSpec(spec: ExecutionSpec): Uint8Array[] {
  if (!isAbsolute(spec.shell)) throw new ValidationError("E_INVALID_VALUE", `the shell must be an absolute path: ${JSON.stringify(spec.shell.slice(0, 200))}`);
  try {
    accessSync(spec.shell, constants.X_OK);
    if (!statSync(spec.shell).isFile()) throw new Error("not a file");
  } catch {
    throw new ValidationError("E_INVALID_VALUE", `the shell ${JSON.stringify(spec.shell.slice(0, 200))} is not an executable file here`);
  }
  if (!Number.isFinite(spec.timeoutMs) || spec.timeoutMs <= 0) throw new ValidationError("E_INVALID_VALUE", "the timeout must be a positive number of milliseconds");
  if (!Number.isSafeInteger(spec.outputLimit) || spec.outputLimit < 0) throw new ValidationError("E_INVALID_VALUE", "the output limit must be a whole number of bytes");
  const uid = process.getuid?.();
  if (spec.runAs !== undefined && uid !== 0 && spec.runAs.uid !== uid) {
    throw new ValidationError("E_INVALID_VALUE", `runAs (uid ${spec.runAs.uid}) needs the server to run as root; it runs as uid ${uid}`);
  }
  if (spec.id.includes("\0")) throw new ValidationError("E_INVALID_VALUE", "the execution id holds a NUL byte");
  const seen = new Set<string>();
  const name = (n: string, what: string): void => {
    assertEnvName(n);
    if (RESERVED_ENV_NAMES.has(n)) throw new ValidationError("E_INVALID_NAME", `the ${what} ${n} would replace a variable coffer sets for every script`);
    if (isDangerousEnvName(n)) throw new ValidationError("E_INVALID_NAME", `the ${what} ${n} changes how programs load or run; a runbook may not set it`);
    if (seen.has(n)) throw new ValidationError("E_INVALID_NAME", `${n} is set twice (as a param, a secret or a file)`);
    seen.add(n);
  };
  for (const [n, v] of Object.entries(spec.params)) {
    name(n, "param");
    const problem = envValueProblem(Buffer.from(v, "utf8"));
    if (problem !== undefined) throw new ValidationError("E_INVALID_VALUE", `the param ${n}: ${problem}`);
  }
  for (const [n, v] of Object.entries(spec.secrets)) {
    name(n, "secret");
    const problem = envValueProblem(v);
    if (problem !== undefined) throw new ValidationError("E_INVALID_VALUE", `the secret ${n}: ${problem}`);
  }
  for (const n of Object.keys(spec.files)) name(n, "file");
  return [...Object.values(spec.secrets), ...Object.values(spec.files)];
}


/** The script's environment, from nothing. */
function buildEnv(spec: ExecutionSpec, dir: ExecutionDir): Record<string, string> {
  const env: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [n, v] of Object.entries(spec.params)) env[n] = v;
  for (const [n, v] of Object.entries(spec.secrets)) env[n] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("utf8");
  for (const [n, p] of Object.entries(dir.filePaths)) env[n] = p;
  env.PATH = SCRIPT_PATH;
  env.LANG = "C.UTF-8";
  env.HOME = dir.path;
  env.TMPDIR = dir.path;
  env.COFFER_EXECUTION_ID = spec.id;
  return env;
}

/** The wrapper that sends stderr into the stdout pipe, then becomes `"$@"`. */
const WRAPPER = ["/bin/sh", "-c", 'exec 2>&1; exec "$@"', "coffer-runbook"] as const;

/** Spawns `argv` behind {@link WRAPPER} in a new session, with umask 077; resolves once it runs. */
function spawnChild(argv: readonly string[], o: { cwd: string; env: Record<string, string>; runner: Runner | undefined }): Promise<ChildProcess> {
  const [file, ...rest] = [...WRAPPER, ...argv];
  const previous = process.umask(0o077);
  let child: ChildProcess;
  try {
    child = spawn(file as string, rest, {
      cwd: o.cwd,
      env: o.env,
      detached: true,
      stdio: ["ignore", "pipe", "ignore"],
      ...(o.runner !== undefined && { uid: o.runner.uid, gid: o.runner.gid }),
    });
  } catch (err) {
    throw new CofferError("E_INTERNAL", `cannot start the runbook's shell: ${(err as NodeJS.ErrnoException).code ?? "spawn failed"}`);
  } finally {
    process.umask(previous);
  }
  return new Promise((resolve, reject) => {
    child.once("spawn", () => resolve(child));
    child.once("error", (err: NodeJS.ErrnoException) => {
      child.stdout?.destroy();
      reject(new CofferError("E_INTERNAL", `cannot start the runbook's shell (${WRAPPER[0]}): ${err.code ?? "spawn failed"}`));
    });
  });
}

/** Sends `signal` to process group `pgid`; gone already is fine. */
function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: nothing left
  }
}

/**
 * Sends `signal` to every process of group `pgid` but its leader (bubblewrap), found in /proc.
 * @returns how many were signalled
 */
function signalMembers(pgid: number, signal: NodeJS.Signals): number {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((p) => /^[0-9]+$/.test(p) && Number(p) !== pgid);
  } catch {
    return 0;
  }
  let n = 0;
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp === pgid) {
        process.kill(Number(p), signal);
        n++;
      }
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

type StopReason = "timed-out" | "cancelled" | "interrupted";

function supervise(
  child: ChildProcess,
  dir: ExecutionDir,
  spec: ExecutionSpec,
  sink: OutputSink,
  { sandbox, masked }: { sandbox: boolean; masked: readonly Uint8Array[] },
): RunningExecution {
  const pid = child.pid as number;
  const stdout = child.stdout!;
  const grace = spec.killGraceMs ?? KILL_GRACE_MS;
  let reason: StopReason | undefined;
  /** the main process has exited: a stop no longer changes the status */
  let exitedYet = false;
  let ended = false;
  let killTimer: NodeJS.Timeout | undefined;

  const terminate = (why: StopReason): void => {
    if (exitedYet || ended || reason !== undefined) return;
    reason = why;
    // In a sandbox, bubblewrap stays (it would SIGKILL the script at once), unless nothing else is there yet.
    if (!sandbox || signalMembers(pid, "SIGTERM") === 0) signalGroup(pid, "SIGTERM");
    killTimer = setTimeout(() => {
      if (!ended) signalGroup(pid, "SIGKILL");
    }, grace);
  };
  const timeoutTimer = setTimeout(() => terminate("timed-out"), spec.timeoutMs);

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      exitedYet = true;
      resolve({ code, signal });
    });
  });

  const state = { outputBytes: 0, truncated: false };
  const matcher = new MaskMatcher(maskPatterns(masked));
  const emit = async (b: Buffer): Promise<void> => {
    if (b.length === 0 || state.truncated) return;
    const room = spec.outputLimit - state.outputBytes;
    if (b.length > room) {
      state.truncated = true;
      b = b.subarray(0, room);
      if (b.length === 0) return;
    }
    state.outputBytes += b.length;
    await sink.output(b);
  };
  let sinkError: { err: unknown } | undefined;
  let abandoned = false;
  // Output past the limit goes to a `cat >/dev/null` that gets the pipe: read here, each read
  // would be 64 KiB of garbage, and V8 lets ~64 MB of it pile up before it collects.
  let drainer: ChildProcess | undefined;
  let drained: Promise<void> | undefined;
  const handOff = (): void => {
    if (drained !== undefined) return;
    drained = new Promise<void>((resolve) => {
      try {
        drainer = spawn("/bin/cat", [], { cwd: "/", env: {}, stdio: [stdout, "ignore", "ignore"] });
      } catch {
        return resolve(); // the loop below keeps reading and dropping
      }
      drainer.once("spawn", () => {
        abandoned = true;
        stdout.destroy();
      });
      drainer.once("error", () => resolve());
      drainer.once("exit", () => resolve());
    });
  };
  const reading = (async () => {
    for await (const chunk of stdout as AsyncIterable<Buffer>) {
      if (state.truncated || sinkError !== undefined) continue; // dropped
      await emit(matcher.write(chunk));
      if (state.truncated) handOff();
    }
    if (!state.truncated) await emit(matcher.end()); // else the held bytes are dropped
  })().catch((err: unknown) => {
    if (abandoned) return; // the pipe was closed on purpose
    // The sink failed (or the pipe): nobody takes the output any more, so the execution ends now.
    sinkError = { err };
    signalGroup(pid, "SIGKILL");
    stdout.resume();
  });
  const outputRead = (async () => {
    await reading;
    await drained;
  })();

  const done = (async (): Promise<ExecutionResult> => {
    const exit = await exited;
    // Nothing of the group outlives its main process.
    signalGroup(pid, "SIGKILL");
    clearTimeout(timeoutTimer);
    // A process that left the group may still hold the pipe open: stop reading after a while.
    let drainTimer: NodeJS.Timeout | undefined;
    const late = await Promise.race([outputRead.then(() => false), new Promise<boolean>((resolve) => (drainTimer = setTimeout(() => resolve(true), DRAIN_AFTER_EXIT_MS)))]);
    clearTimeout(drainTimer);
    if (late) {
      abandoned = true;
      stdout.destroy();
      drainer?.kill("SIGKILL");
      await outputRead;
    }
    ended = true;
    clearTimeout(killTimer);
    await dir.remove();
    if (sinkError !== undefined) throw sinkError.err;
    const status = reason ?? (exit.code === 0 ? "succeeded" : "failed");
    return { status, exitCode: exit.code, signal: exit.signal, outputBytes: state.outputBytes, truncated: state.truncated };
  })();

  return {
    pid,
    dir: dir.path,
    done,
    stop(why) {
      terminate(why);
    },
  };
}
