/**
 * `coffer run`: a command started with its secrets, in env vars and in files of a private
 * runtime dir that is removed on every way out. Signals are passed on; the command's exit
 * status becomes coffer's (128+n when it died of signal n).
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { CofferError } from "../errors.ts";
import { createRuntimeDir, writeRuntimeFile } from "./runtime-dir.ts";
import type { ResolvedPlan } from "./resolve.ts";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;

/** Options of {@link runWithSecrets}. */
export interface RunOptions {
  command: string;
  args: readonly string[];
  resolved: ResolvedPlan;
  /** the environment the command starts from (coffer's own, usually) */
  baseEnv: NodeJS.ProcessEnv;
  /** the runtime dir base (`--dir`) */
  dir?: string;
  /** replaces each value in the command's output (see deliver/mask.ts); null: output passes through */
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
export async function runWithSecrets(options: RunOptions): Promise<number> {
  const dir = createRuntimeDir({ kind: "run", ...(options.dir !== undefined && { base: options.dir }), env: options.baseEnv, ...(options.warn !== undefined && { warn: options.warn }) });
  const cleanupOnExit = () => dir.remove();
  process.on("exit", cleanupOnExit);
  const handlers = new Map<string, () => void>();
  try {
    const env: NodeJS.ProcessEnv = { ...options.baseEnv };
    for (const e of options.resolved.env) env[e.variable] = e.value.reveal();
    for (const f of options.resolved.files) env[f.variable] = writeRuntimeFile(dir.path, f.variable, f.value.bytes(), f.mode);
    env.COFFER_RUNTIME_DIR = dir.path;
    const masking = options.masker != null;
    const previous = options.umask === undefined ? undefined : process.umask(options.umask);
    let child;
    try {
      child = spawn(options.command, [...options.args], { env, stdio: masking ? ["inherit", "pipe", "pipe"] : "inherit" });
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
    for (const sig of FORWARDED) {
      const h = () => void child.kill(sig);
      handlers.set(sig, h);
      process.on(sig, h);
    }
    const piped: Promise<void>[] = [];
    if (masking && child.stdout !== null && child.stderr !== null) {
      piped.push(pipeThrough(child.stdout, options.masker!(), options.stdout ?? process.stdout));
      piped.push(pipeThrough(child.stderr, options.masker!(), options.stderr ?? process.stderr));
    }
    const status = await new Promise<number>((resolve, reject) => {
      child.once("error", (err: NodeJS.ErrnoException) => {
        reject(
          err.code === "ENOENT"
            ? new CofferError("E_NOT_FOUND", `cannot start ${options.command}: no such command`)
            : new CofferError("E_INTERNAL", `cannot start ${options.command}: ${err.code ?? err.message}`),
        );
      });
      child.once("exit", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
    });
    await Promise.all(piped);
    return status;
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    process.off("exit", cleanupOnExit);
    dir.remove();
  }
}

function pipeThrough(from: NodeJS.ReadableStream, masker: NodeJS.ReadWriteStream, to: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    from.pipe(masker);
    masker.on("data", (chunk: Buffer) => void to.write(chunk));
    masker.on("end", () => resolve());
    masker.on("error", () => resolve());
  });
}
