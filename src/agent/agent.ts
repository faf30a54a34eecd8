/**
 * `coffer agent`: the side-car that gives a service its secrets for exactly its lifetime.
 * Fetch every secret, write them (one file per ID and a `secrets.env`) atomically, signal
 * readiness, then (with watch) rewrite on change and run the on-change action; remove the
 * files on SIGTERM. A fetch failure at start writes nothing; during watch the last good files
 * stay, and the fetch is retried with backoff. Nothing it logs or signals holds a value.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, constants, fchmodSync, fchownSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CofferError, problemList } from "../errors.ts";
import { createProvider } from "../providers/index.ts";
import { createFolderProvider } from "../providers/folder.ts";
import type { Provider, ProviderContext, ProviderSpec, SecretRef } from "../providers/provider.ts";
import { ensurePrivateDir, fsyncDir } from "../core/fs-secure.ts";
import { fileNameOf, type AgentSecret, type OnChange } from "./config.ts";
import { sdNotify } from "./notify.ts";
import { formatSecretsEnv } from "../deliver/formats/secrets-env.ts";

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

/** How the agent ended. */
export interface AgentExit {
  /** exit status for the CLI */
  code: number;
  reason: "stopped" | "changed";
}

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
  const refs: SecretRef[] = o.secrets.map((s) => ({ provider: "agent", path: s.id }));
  const written: string[] = [];
  try {
    await sdNotify({ STATUS: `fetching ${o.secrets.length} secrets` }, o.context.env).catch(() => undefined);
    let current = await fetchAll(provider, o.secrets);
    ensurePrivateDir(o.dir);
    written.push(...writeAll(o, current, owner));
    o.log(`wrote ${o.secrets.length} secrets and secrets.env to ${o.dir}`);
    await sdNotify({ READY: "1", STATUS: `serving ${o.secrets.length} secrets` }, o.context.env);
    // Watchers and the abort signal do not keep Node running; the agent serves until stopped.
    const alive = setInterval(() => undefined, 1 << 30);
    o.signal.addEventListener("abort", () => clearInterval(alive), { once: true });
    if (!o.watch) {
      await new Promise<void>((resolve) => o.signal.addEventListener("abort", () => resolve(), { once: true }));
      return { code: 0, reason: "stopped" };
    }
    try {
      return await watchLoop(o, provider, refs, () => current, (next) => (current = next), owner);
    } finally {
      clearInterval(alive);
    }
  } finally {
    try {
      await provider.close();
    } catch {
      // closing a provider cannot change how the agent ends
    }
    if (o.signal.aborted) {
      for (const f of written) rmSync(f, { force: true });
      await sdNotify({ STOPPING: "1", STATUS: "stopped; files removed" }, o.context.env).catch(() => undefined);
    }
  }
}

type Values = Map<string, Buffer>;

async function fetchAll(provider: Provider, secrets: readonly AgentSecret[]): Promise<Values> {
  const settled = await Promise.allSettled(secrets.map((s) => provider.resolve({ provider: "agent", path: s.id })));
  const failures: string[] = [];
  const values: Values = new Map();
  settled.forEach((r, i) => {
    const id = secrets[i]!.id;
    if (r.status === "rejected") failures.push(`${id}: ${r.reason instanceof CofferError ? r.reason.message : "the provider failed"}`);
    else {
      values.set(id, Buffer.from(r.value.bytes()));
      r.value.dispose();
    }
  });
  if (failures.length > 0) {
    for (const v of values.values()) v.fill(0);
    const first = settled.find((r) => r.status === "rejected") as PromiseRejectedResult;
    throw new CofferError(first.reason instanceof CofferError ? first.reason.code : "E_PROVIDER", failures.length === 1 ? `cannot fetch ${failures[0]}; nothing was written` : `${problemList("cannot fetch", failures)}\nnothing was written`);
  }
  return values;
}

function writeAll(o: AgentOptions, values: Values, owner: { uid: number; gid: number } | undefined): string[] {
  // secrets.env first in memory: a value it cannot carry stops everything before any file changes.
  const env = formatSecretsEnv(o.secrets.map((s) => [s.env, values.get(s.id)!.toString("utf8")] as const));
  const paths: string[] = [];
  for (const s of o.secrets) paths.push(writeAtomic(o.dir, fileNameOf(s.id), values.get(s.id)!, o.mode, owner));
  paths.push(writeAtomic(o.dir, "secrets.env", Buffer.from(env), o.mode, owner));
  fsyncDir(o.dir);
  return paths;
}

// temp file in DIR, written, fsynced, given its mode and owner, then renamed over the old one:
// a reader sees the old bytes or the new bytes, never a partial or empty file.
function writeAtomic(dir: string, name: string, data: Uint8Array, mode: number, owner: { uid: number; gid: number } | undefined): string {
  const path = join(dir, name);
  const tmp = join(dir, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
    if (owner !== undefined) fchownSync(fd, owner.uid, owner.gid);
    fchmodSync(fd, mode);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  return path;
}

async function watchLoop(
  o: AgentOptions,
  provider: Provider,
  refs: SecretRef[],
  current: () => Values,
  replace: (v: Values) => void,
  owner: { uid: number; gid: number } | undefined,
): Promise<AgentExit> {
  return new Promise<AgentExit>((resolve) => {
    let busy = false;
    let again = false;
    let backoff = 500;
    let timer: NodeJS.Timeout | undefined;
    let stopWatch: (() => void) | undefined;
    const finish = (exit: AgentExit) => {
      stopWatch?.();
      if (timer !== undefined) clearTimeout(timer);
      resolve(exit);
    };
    const check = async (): Promise<void> => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        const next = await fetchAll(provider, o.secrets);
        backoff = 500;
        if (sameValues(current(), next)) return;
        await sdNotify({ RELOADING: "1", MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n) }, o.context.env).catch(() => undefined);
        writeAll(o, next, owner);
        for (const v of current().values()) v.fill(0);
        replace(next);
        o.log(`a secret changed: rewrote ${o.dir}`);
        await sdNotify({ READY: "1", STATUS: `serving ${o.secrets.length} secrets` }, o.context.env).catch(() => undefined);
        if (o.onChange.kind === "exit") return finish({ code: 0, reason: "changed" });
        runAction(o);
      } catch (err) {
        o.log(`fetch failed, keeping the last good files: ${err instanceof CofferError ? err.message : "provider error"}; retrying in ${backoff} ms`);
        schedule(backoff);
        backoff = Math.min(backoff * 2, o.pollIntervalMs);
      } finally {
        busy = false;
        if (again && !o.signal.aborted) {
          again = false;
          void check();
        }
      }
    };
    const schedule = (ms: number) => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => void check(), ms);
    };
    o.signal.addEventListener("abort", () => finish({ code: 0, reason: "stopped" }), { once: true });
    if (provider.watch !== undefined) {
      const stopEvents = provider.watch(refs, () => void check());
      // A change between the first fetch and the watch starting would otherwise be missed, and
      // a lost inotify event would leave stale files: look once now, and at every poll interval.
      void check();
      const safety = setInterval(() => void check(), o.pollIntervalMs);
      stopWatch = () => {
        stopEvents();
        clearInterval(safety);
      };
    } else {
      const tick = () => {
        void check().finally(() => {
          if (!o.signal.aborted) timer = setTimeout(tick, o.pollIntervalMs);
        });
      };
      timer = setTimeout(tick, o.pollIntervalMs);
    }
  });
}

function sameValues(a: Values, b: Values): boolean {
  const digest = (v: Values) => {
    const h = createHash("sha256");
    for (const [k, val] of [...v].sort(([x], [y]) => (x < y ? -1 : 1))) h.update(`${k.length}:${k}${val.length}:`).update(val);
    return h.digest("hex");
  };
  return digest(a) === digest(b);
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
