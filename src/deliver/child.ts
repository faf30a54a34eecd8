/**
 * What coffer does around a process that holds secrets: the one list of signals it catches
 * (`run` and `exec-env` pass them on to their command, the agent stops and removes its files),
 * the one way a command is started and its signals passed on, and how a command that cannot
 * start is reported.
 */
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { constants } from "node:os";
import { CofferError } from "../errors.ts";

/**
 * Every signal whose default action ends a process and that a program can catch: coffer
 * catches each, so that it never dies without cleaning up (an uncaught SIGALRM used to end
 * `coffer run` at once, leaving its runtime dir and an orphaned command behind). SIGPIPE is not
 * here: Node ignores it (a write to a closed pipe is an EPIPE error instead), and it is meant
 * for the process that wrote, never for a command coffer started.
 */
export const TERMINATING_SIGNALS = [
  "SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGALRM", "SIGVTALRM", "SIGXCPU", "SIGXFSZ", "SIGPROF", "SIGUSR1", "SIGUSR2",
] as const satisfies readonly NodeJS.Signals[];

/**
 * The ones that ask a supervisor itself to stop (`run --watch` then restarts nothing more); the
 * others (USR1, USR2, ALRM, …) are only the command's business: it may handle them and go on.
 */
export const STOP_SIGNALS: ReadonlySet<string> = new Set(["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"]);

/** One of {@link TERMINATING_SIGNALS}. */
export type TerminatingSignal = (typeof TERMINATING_SIGNALS)[number];

/**
 * Calls `handler` with every terminating signal coffer receives, until the returned function
 * is called. While it is installed, none of them ends coffer by itself.
 */
export function onTerminatingSignals(handler: (signal: TerminatingSignal) => void): () => void {
  const installed = TERMINATING_SIGNALS.map((sig) => {
    const h = () => handler(sig);
    process.on(sig, h);
    return [sig, h] as const;
  });
  return () => {
    for (const [sig, h] of installed) process.off(sig, h);
  };
}

/**
 * Passes every terminating signal coffer receives to the command last {@link attach}ed (one
 * that comes before there is a command is held and passed on when one is attached), and tells
 * `onSignal` of each, until `off()`.
 */
export function forwardSignals(onSignal?: (signal: TerminatingSignal) => void): { attach(child: ChildProcess): void; off(): void } {
  let current: ChildProcess | undefined;
  let pending: TerminatingSignal | undefined;
  const off = onTerminatingSignals((sig) => {
    onSignal?.(sig);
    if (current === undefined) pending = sig;
    else current.kill(sig);
  });
  return {
    attach(child) {
      current = child;
      if (pending !== undefined) child.kill(pending);
      pending = undefined;
    },
    off,
  };
}

/** How a command ended, and the status a shell would give it (128+n for signal n). */
export interface CommandExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  status: number;
}

/**
 * Starts `command` under `umask` (coffer's own is put back at once); `done` settles when it
 * ends, or rejects with {@link startError} when it cannot start.
 */
export function startCommand(
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; stdio: StdioOptions; umask?: number | undefined },
): Running<CommandExit> {
  const previous = options.umask === undefined ? undefined : process.umask(options.umask);
  let child: ChildProcess;
  try {
    child = spawn(command, [...args], { env: options.env, stdio: options.stdio });
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
  const done = new Promise<CommandExit>((resolve, reject) => {
    child.once("error", (err: NodeJS.ErrnoException) => reject(startError(command, err)));
    child.once("exit", (code, signal) => resolve({ code, signal, status: code ?? 128 + (signal === null ? 0 : constants.signals[signal]) }));
  });
  return { child, done };
}

/** A started command and what it settles with when it ends. */
export interface Running<T> {
  child: ChildProcess;
  done: Promise<T>;
}

/**
 * Starts a command (`start`) with every terminating signal coffer receives passed on to it
 * (installed first: one that comes while it starts is held, then passed on) and waits for it.
 */
export async function withSignalsForwarded<T>(start: () => Running<T>): Promise<T> {
  const signals = forwardSignals();
  try {
    const started = start();
    signals.attach(started.child);
    return await started.done;
  } finally {
    signals.off();
  }
}

/** A command coffer could not start; it exits as a shell would: 127 not found, 126 not executable. */
export class CommandStartError extends CofferError {
  readonly status: 126 | 127;

  constructor(command: string, status: 126 | 127) {
    super(
      status === 127 ? "E_NOT_FOUND" : "E_PERMISSIONS",
      status === 127 ? `cannot start ${command}: no such command` : `cannot start ${command}: permission denied (not executable?)`,
    );
    this.name = "CommandStartError";
    this.status = status;
  }

  override get exitCode(): number {
    return this.status;
  }
}

/** The error for a failed spawn of `command` (the child's `error` event). */
export function startError(command: string, err: NodeJS.ErrnoException): CofferError {
  if (err.code === "ENOENT") return new CommandStartError(command, 127);
  if (err.code === "EACCES") return new CommandStartError(command, 126);
  return new CofferError("E_INTERNAL", `cannot start ${command}: ${err.code ?? err.message}`);
}
