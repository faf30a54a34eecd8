/**
 * `coffer run`: a command started with its secrets, in env vars and in files of a private
 * runtime dir that is removed on every way out. Every catchable terminating signal
 * (deliver/child.ts) is passed on; the command's exit status becomes coffer's (128+n when it
 * died of signal n). With `--watch` ({@link runWatching}),
 * the command is restarted with the new values when a secret changes.
 */
import type { ChildProcess } from "node:child_process";
import { CofferError } from "../errors.ts";
import { coalesce } from "../core/coalesce.ts";
import { forwardSignals, startCommand, STOP_SIGNALS, withSignalsForwarded, type Running } from "./child.ts";
import { createRuntimeDir, writeRuntimeFile } from "./runtime-dir.ts";
import { disposeResolved, type ResolvedPlan } from "./resolve.ts";

/** Options of {@link runWithSecrets}. */
export interface RunOptions {
  command: string;
  args: readonly string[];
  resolved: ResolvedPlan;
  /** the environment the command starts from (coffer's own, usually) */
  baseEnv: NodeJS.ProcessEnv;
  /** the runtime dir base (`--dir`) */
  dir?: string;
  /** replaces each value in the command's output (see core/mask.ts); null: output passes through */
  masker?: (() => NodeJS.ReadWriteStream) | null;
  /** the umask the command starts with (the caller's own, before coffer tightened its) */
  umask?: number;
  warn?: (message: string) => void;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

/**
 * Runs the command with its secrets and waits for it.
 * @returns the exit status to pass on
 * @throws CofferError E_NOT_FOUND when the command cannot be started (nothing is left behind)
 */
export function runWithSecrets(options: RunOptions): Promise<number> {
  return withSignalsForwarded(() => startChild(options, options.resolved, options.masker ?? null));
}

/**
 * Starts the command with `resolved` in its env and runtime files (a new runtime dir, removed
 * when it ends). `done` gives its exit status (128+n for signal n) once its output is passed on
 * and its dir removed, or rejects with E_NOT_FOUND when it cannot be started.
 */
function startChild(options: Omit<RunOptions, "resolved" | "masker">, resolved: ResolvedPlan, masker: (() => NodeJS.ReadWriteStream) | null): Running<number> {
  // Where the dir is (a fallback base, not tmpfs) matters only when a file is written to it.
  const warn = resolved.files.length > 0 ? options.warn : undefined;
  const dir = createRuntimeDir({ kind: "run", ...(options.dir !== undefined && { base: options.dir }), env: options.baseEnv, ...(warn !== undefined && { warn }) });
  const cleanupOnExit = () => dir.remove();
  process.on("exit", cleanupOnExit);
  const cleanup = () => {
    process.off("exit", cleanupOnExit);
    dir.remove();
  };
  let started: ReturnType<typeof startCommand>;
  try {
    const env: NodeJS.ProcessEnv = { ...options.baseEnv };
    for (const e of resolved.env) env[e.variable] = e.value.reveal();
    for (const f of resolved.files) env[f.variable] = writeRuntimeFile(dir.path, f.variable, f.value.bytes(), f.mode);
    env.COFFER_RUNTIME_DIR = dir.path;
    started = startCommand(options.command, options.args, { env, stdio: masker !== null ? ["inherit", "pipe", "pipe"] : "inherit", umask: options.umask });
  } catch (err) {
    cleanup();
    throw err;
  }
  const { child } = started;
  const piped: Promise<void>[] = [];
  if (masker !== null && child.stdout !== null && child.stderr !== null) {
    piped.push(pipeThrough(child.stdout, masker(), options.stdout ?? process.stdout));
    piped.push(pipeThrough(child.stderr, masker(), options.stderr ?? process.stderr));
  }
  const done = (async () => {
    try {
      const { status } = await started.done;
      await Promise.all(piped);
      return status;
    } finally {
      cleanup();
    }
  })();
  return { child, done };
}

/** Options of {@link runWatching}. */
export interface WatchRunOptions extends Omit<RunOptions, "resolved" | "masker"> {
  /** the values the command starts with (owned by the caller until the first restart; then by runWatching) */
  resolved: ResolvedPlan;
  /** resolves every secret again (all or nothing) */
  resolve: () => Promise<ResolvedPlan>;
  /** starts watching; calls `onChange` when a secret may have changed; returns the stop function */
  watch: (onChange: () => void) => () => void;
  /** makes the masker for a set of values; null: output passes through */
  masker?: ((resolved: ResolvedPlan) => () => NodeJS.ReadWriteStream) | null;
  /** after SIGTERM, how long the command has to exit before SIGKILL (default 10 000 ms) */
  graceMs?: number;
  /** how long after the last change notice the secrets are resolved again (default 250 ms) */
  debounceMs?: number;
  /** told of restarts and failed re-resolves (names only, never values) */
  say: (message: string) => void;
}

/**
 * `coffer run --watch`: runs the command with its secrets, and when a watched secret changes,
 * resolves every secret again and, if any value differs, stops the command (SIGTERM, SIGKILL
 * after `graceMs`) and starts it again with the new values (a new runtime dir). A failed
 * re-resolve keeps the command running with the old values (and says so). Every catchable
 * terminating signal goes to the current command; SIGHUP, SIGINT, SIGQUIT and SIGTERM also end
 * the watching.
 * @returns the command's exit status when it exits by itself (or after a signal to coffer)
 * @throws CofferError E_NOT_FOUND when the command cannot be started
 */
export async function runWatching(options: WatchRunOptions): Promise<number> {
  const graceMs = options.graceMs ?? 10_000;
  const makeMasker = options.masker ?? null;
  const start = (r: ResolvedPlan) => startChild(options, r, makeMasker === null ? null : makeMasker(r));
  let values = options.resolved;
  let ownsValues = false; // the first values are the caller's to dispose
  let current: Running<number>;
  let stopping = false; // a signal came: no more restarts
  let restarting = false;
  const { promise: result, resolve: finish, reject: fail } = Promise.withResolvers<number>();

  const follow = (started: Running<number>) => {
    started.done.then(
      (status) => {
        if (started === current && !restarting) finish(status);
      },
      (err: unknown) => fail(err),
    );
  };

  const check = async (): Promise<void> => {
    if (stopping) return;
    try {
      let next: ResolvedPlan;
      try {
        next = await options.resolve();
      } catch (err) {
        options.say(`coffer: warning: a secret changed but resolving again failed; ${options.command} keeps its current values: ${err instanceof CofferError ? err.message : "provider error"}`);
        return;
      }
      const changed = changedVariables(values, next);
      if (changed.length === 0 || stopping) {
        disposeResolved(next);
        return;
      }
      options.say(`coffer: secrets changed (${changed.join(", ")}): restarting ${options.command}`);
      restarting = true;
      const old = current;
      await stopChild(old.child, old.done, graceMs);
      if (ownsValues) disposeResolved(values);
      values = next;
      ownsValues = true;
      if (stopping) {
        // A signal to coffer while the command was being stopped: it is not started again.
        restarting = false;
        finish(await old.done.catch(() => 128));
        return;
      }
      current = start(values);
      signals.attach(current.child);
      restarting = false;
      follow(current);
    } catch (err) {
      fail(err);
    }
  };

  // Watching starts first: a watch that cannot start (nothing to watch) starts no command.
  const changes = coalesce(check, options.debounceMs ?? 250);
  const stopWatch = options.watch(() => changes.trigger());
  const stopWatching = () => {
    stopping = true;
    stopWatch();
    changes.stop();
  };
  // Handlers first (see runWithSecrets): a signal during start-up is held, then passed on.
  const signals = forwardSignals((sig) => STOP_SIGNALS.has(sig) && stopWatching());
  try {
    current = start(values);
  } catch (err) {
    signals.off();
    stopWatch();
    throw err;
  }
  signals.attach(current.child);
  follow(current);
  try {
    return await result;
  } finally {
    stopWatching();
    signals.off();
    if (current.child.exitCode === null && current.child.signalCode === null) {
      await stopChild(current.child, current.done, graceMs).catch(() => {});
    }
    if (ownsValues) disposeResolved(values);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the command has exited. */
async function stopChild(child: ChildProcess, done: Promise<number>, graceMs: number): Promise<void> {
  const running = child.exitCode === null && child.signalCode === null;
  if (running) child.kill("SIGTERM");
  const timer = running ? setTimeout(() => child.kill("SIGKILL"), graceMs) : undefined;
  await done.catch(() => 0);
  clearTimeout(timer);
}

/** The variables whose values (or file modes) differ between two resolutions, in `b`'s order (env first, then files). */
function changedVariables(a: ResolvedPlan, b: ResolvedPlan): string[] {
  const before = new Map([...a.env, ...a.files].map((e) => [e.variable, e]));
  return [...b.env, ...b.files]
    .filter((e) => {
      const old = before.get(e.variable);
      return old === undefined || !old.value.equals(e.value) || ("mode" in e && "mode" in old && old.mode !== e.mode);
    })
    .map((e) => e.variable);
}

function pipeThrough(from: NodeJS.ReadableStream, masker: NodeJS.ReadWriteStream, to: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    from.pipe(masker);
    masker.on("data", (chunk: Buffer) => void to.write(chunk));
    masker.on("end", () => resolve());
    masker.on("error", () => resolve());
  });
}
