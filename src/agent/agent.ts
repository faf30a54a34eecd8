/**
 * `coffer agent`: the side-car that gives a service its secrets for exactly its lifetime.
 * Fetch every secret, write them (one file per ID and a `secrets.env`) atomically, signal
 * readiness, then (with watch) rewrite on change and run the on-change action; remove the
 * files on SIGTERM. A fetch failure at start writes nothing; during watch the last good files
 * stay, and the fetch is retried with backoff. Nothing it logs or signals holds a value.
 * It fetches with deliver/resolve.ts, writes with core/fs-secure.ts, formats with
 * deliver/formats/secrets-env.ts and watches with core/coalesce.ts, as `run` and `load` do.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { CofferError } from "../errors.ts";
import { createProvider } from "../providers/index.ts";
import { createFolderProvider } from "../providers/folder.ts";
import type { Provider, ProviderContext, ProviderSpec, SecretRef } from "../providers/provider.ts";
import { coalesce } from "../core/coalesce.ts";
import { ensurePrivateDir, replacePrivateFile } from "../core/fs-secure.ts";
import type { Secret } from "../core/secret.ts";
import { formatSecretsEnv } from "../deliver/formats/secrets-env.ts";
import { resolveAll } from "../deliver/resolve.ts";
import { fileNameOf, SECRETS_ENV_FILE, type AgentSecret, type OnChange } from "./config.ts";
import { sdNotify } from "./notify.ts";

/** Options of {@link runAgent}. */
export interface AgentOptions {
  provider: ProviderSpec;
  context: ProviderContext;
  dir: string;
  secrets: readonly AgentSecret[];
  watch: boolean;
  /** how often to poll providers that cannot watch (and the longest retry backoff) */
  pollIntervalMs: number;
  onChange: OnChange;
  /** file mode of what the agent writes (default 0400) */
  mode: number;
  /** a user to own the files (needs root) */
  owner?: string;
  /** for `signal:` actions: the unit whose main process gets the signal */
  unit?: string;
  /** a log line (never a value) */
  log: (line: string) => void;
  /** stops the agent (SIGTERM/SIGINT in the CLI) */
  signal: AbortSignal;
  /** folder watch debounce (ms) */
  debounceMs?: number;
}

/** How the agent ended: the CLI's exit status, and why. */
export type AgentExit = { code: number; reason: "stopped" | "changed" };

/**
 * Runs the agent until it is stopped or (on-change `exit`) a secret changes.
 * @throws CofferError when the first fetch fails (nothing is written then)
 */
export async function runAgent(o: AgentOptions): Promise<AgentExit> {
  const provider: Provider =
    o.provider.type === "folder"
      ? createFolderProvider("agent", o.provider, o.context, { debounceMs: o.debounceMs ?? 20 })
      : createProvider("agent", o.provider, o.context);
  const owner = o.owner === undefined ? undefined : lookupUser(o.owner);
  const wanted = o.secrets.map((s) => ({ label: s.id, ref: { provider: "agent", path: s.id } }));
  const values: Values = { current: [], owner, fetch: () => resolveAll(wanted, provider, { verb: "cannot fetch", after: "nothing was written" }) };
  let written = false;
  try {
    await sdNotify({ STATUS: `fetching ${o.secrets.length} secrets` }, o.context.env).catch(() => undefined);
    values.current = await values.fetch();
    ensurePrivateDir(o.dir);
    writeAll(o, values);
    written = true;
    o.log(`wrote ${o.secrets.length} secrets and secrets.env to ${o.dir}`);
    await sdNotify({ READY: "1", STATUS: `serving ${o.secrets.length} secrets` }, o.context.env);
    // Watchers and the abort signal do not keep Node running; the agent serves until stopped.
    const alive = setInterval(() => undefined, 1 << 30);
    try {
      return await new Promise<AgentExit>((resolve) => {
        const stopWatch = o.watch ? watch(o, provider, wanted.map((w) => w.ref), values, resolve) : () => {};
        const stopped = () => {
          stopWatch();
          resolve({ code: 0, reason: "stopped" });
        };
        o.signal.addEventListener("abort", stopped, { once: true });
      });
    } finally {
      clearInterval(alive);
    }
  } finally {
    try {
      await provider.close();
    } catch {
      // closing a provider cannot change how the agent ends
    }
    for (const v of values.current) v.dispose();
    if (o.signal.aborted && written) {
      for (const name of fileNames(o)) rmSync(join(o.dir, name), { force: true });
      await sdNotify({ STOPPING: "1", STATUS: "stopped; files removed" }, o.context.env).catch(() => undefined);
    }
  }
}

/** The values the files hold (in the order of the secrets), and how to fetch them again. */
interface Values {
  current: Secret[];
  fetch: () => Promise<Secret[]>;
  owner: { uid: number; gid: number } | undefined;
}

/** The files the agent writes in its dir: one per secret, then secrets.env. */
const fileNames = (o: AgentOptions) => [...o.secrets.map((s) => fileNameOf(s.id)), SECRETS_ENV_FILE];

/** Writes every file (each replaced atomically, never through a link) from `values.current`. */
function writeAll(o: AgentOptions, { current, owner }: Values): void {
  // secrets.env first in memory: a value it cannot carry stops everything before any file changes.
  const env = formatSecretsEnv(o.secrets.map((s, i) => [s.env, current[i]!.reveal()] as const));
  const data = [...current.map((v) => v.bytes()), Buffer.from(env)];
  fileNames(o).forEach((name, i) => replacePrivateFile(join(o.dir, name), data[i]!, { mode: o.mode, owner }));
}

/**
 * Watches the secrets (the provider's events and a look every poll interval, or only the look
 * for a provider that cannot watch) and, when a value changed, rewrites the files and runs the
 * on-change action. A failed fetch keeps the last good files and is retried with backoff.
 * @returns the function that stops watching
 */
function watch(o: AgentOptions, provider: Provider, refs: SecretRef[], values: Values, exit: (exit: AgentExit) => void): () => void {
  let backoff = 500;
  const checks = coalesce(async () => {
    const old = values.current;
    let next: Secret[] | undefined;
    try {
      next = await values.fetch();
      backoff = 500;
      if (o.signal.aborted || next.every((v, i) => v.equals(old[i]!))) return;
      await sdNotify({ RELOADING: "1", MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n) }, o.context.env).catch(() => undefined);
      writeAll(o, { ...values, current: next });
      values.current = next;
      for (const v of old) v.dispose();
      o.log(`a secret changed: rewrote ${o.dir}`);
      await sdNotify({ READY: "1", STATUS: `serving ${o.secrets.length} secrets` }, o.context.env).catch(() => undefined);
      if (o.onChange.kind !== "exit") return runAction(o);
      stop();
      exit({ code: 0, reason: "changed" });
    } catch (err) {
      o.log(`fetch failed, keeping the last good files: ${err instanceof CofferError ? err.message : "provider error"}; retrying in ${backoff} ms`);
      checks.trigger(backoff);
      backoff = Math.min(backoff * 2, o.pollIntervalMs);
    } finally {
      if (next !== undefined && next !== values.current) for (const v of next) v.dispose();
    }
  });
  // A change between the first fetch and the watch starting would otherwise be missed, and a
  // lost inotify event would leave stale files: look once now, and at every poll interval.
  const stopEvents = provider.watch?.(refs, () => checks.trigger());
  if (stopEvents !== undefined) checks.trigger();
  checks.every(o.pollIntervalMs);
  const stop = () => {
    checks.stop();
    stopEvents?.();
  };
  return stop;
}

function runAction(o: AgentOptions): void {
  const a = o.onChange;
  const done = (what: string) => (err: Error | null) => {
    if (err !== null) o.log(`on-change ${what} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
  };
  switch (a.kind) {
    case "none":
    case "exit":
      return;
    case "restart-unit":
      execFile("systemctl", ["restart", a.unit], { timeout: 60_000 }, done(`restart-unit:${a.unit}`));
      return;
    case "signal":
      if (o.unit === undefined) return void o.log("on-change signal: no unit to signal (give --unit NAME)");
      execFile("systemctl", ["kill", "--kill-whom=main", `--signal=${a.signal}`, o.unit], { timeout: 60_000 }, done(`signal:${a.signal}`));
      return;
    case "exec": {
      const child = spawn("/bin/sh", ["-c", a.command], { stdio: "inherit" });
      child.on("error", done(`exec`));
      return;
    }
  }
}

function lookupUser(user: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error("not a number");
    return { uid, gid };
  } catch {
    throw new CofferError("E_USAGE", `--owner ${user}: no such user`);
  }
}
