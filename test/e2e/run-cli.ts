/**
 * Runs the built `coffer` CLI (dist/bundle/bin.js, the bin that `npm install -g` puts on PATH) as a subprocess in a
 * temp HOME with its own XDG dirs, and returns stdout, stderr and the exit code separately.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../dist/bundle/bin.js", import.meta.url));

if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does) before the e2e tests`);

export interface RunResult {
  code: number;
  stdout: Buffer;
  out: string;
  err: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
  /** run under this umask (via sh) */
  umask?: string;
  /** the working directory (default: the test's) */
  cwd?: string;
}

/**
 * Node's compile cache for the CLIs this test file runs: one private dir per test process, so
 * that a temp HOME holds only what coffer itself wrote (and the cache stays warm).
 */
const COMPILE_CACHE = mkdtempSync(join(tmpdir(), "coffer-test-cache-"));
process.on("exit", () => rmSync(COMPILE_CACHE, { recursive: true, force: true }));

/**
 * The environment a fresh user has: HOME only, no COFFER variables; XDG_CACHE_HOME is the
 * test process's compile cache (pass `XDG_CACHE_HOME: ""` for the default under HOME).
 */
export function userEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, LANG: "C.UTF-8", XDG_CACHE_HOME: COMPILE_CACHE, ...extra };
}

/** Runs `coffer ARGS…` as the user whose HOME is `home`. */
export function coffer(home: string, args: string[], options: RunOptions = {}): RunResult {
  const env = userEnv(home, options.env);
  const argv = options.umask === undefined
    ? [process.execPath, [CLI, ...args]] as const
    : ["/bin/sh", ["-c", `umask ${options.umask} && exec "$0" "$@"`, process.execPath, CLI, ...args]] as const;
  const r = spawnSync(argv[0], argv[1], { env, input: options.input ?? "", maxBuffer: 8 * 1024 * 1024, ...(options.cwd !== undefined && { cwd: options.cwd }) });
  if (r.error) throw r.error;
  return { code: r.status ?? 128, stdout: r.stdout, out: r.stdout.toString("utf8"), err: r.stderr.toString("utf8") };
}

/**
 * Runs `cmd` on a pseudo-terminal (script(1)) and types each answer only once its prompt has
 * appeared, as a person would (typing ahead would be echoed by the terminal before coffer
 * turns echo off).
 */
/**
 * Runs coffer without blocking this process (for a server that runs in this process, where
 * spawnSync would deadlock): the same result as {@link coffer}; `input` is its stdin (default empty).
 */
export function cofferAsync(home: string, args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<RunResult> {
  const child = spawn(process.execPath, [CLI, ...args], { env: userEnv(home, options.env), stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => err.push(d));
  child.stdin.end(options.input ?? "");
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      const stdout = Buffer.concat(out);
      resolve({ code: code ?? 128, stdout, out: stdout.toString("utf8"), err: Buffer.concat(err).toString("utf8") });
    });
  });
}

export function onTerminal(home: string, cmd: string, dialogue: [RegExp, string][]): Promise<{ code: number | null; screen: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qec", cmd, "/dev/null"], { env: userEnv(home) });
    let screen = "";
    let step = 0;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      screen += d;
      const next = dialogue[step];
      if (next !== undefined && next[0].test(screen)) {
        step++;
        child.stdin.write(next[1]);
      }
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, screen }));
  });
}

/** A running `coffer serve` (see {@link serveCli}). */
export interface Served {
  child: ChildProcess;
  /** the base URL it serves on */
  url: string;
  /** its stderr so far */
  stderr: () => string;
  exited: Promise<number | null>;
}

/**
 * Runs `coffer serve ARGS…` as a subprocess on a free loopback port and waits for its
 * "serving on" line; killed after the test if still running. Rejects if it exits first.
 */
export function serveCli(t: TestContext, home: string, args: string[], env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, [CLI, "serve", "--listen", "127.0.0.1:0", ...args], { env: userEnv(home, env), stdio: ["ignore", "pipe", "pipe"] });
  return whenServing(t, child, "coffer serve");
}

/**
 * Waits for a spawned `coffer serve`'s "serving on URL" line on its stderr (its stderr must be
 * piped); the child is killed after the test if still running. Rejects, with its stderr, if it
 * exits first.
 */
export function whenServing(t: TestContext, child: ChildProcess, what: string): Promise<Served> {
  let err = "";
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      err += d;
      const m = /serving on (https?:\/\/\S+) /.exec(err);
      if (m !== null) resolve({ child, url: m[1]!, stderr: () => err, exited });
    });
    void exited.then((code) => reject(new Error(`${what} exited ${code} before serving: ${err}`)));
  });
}

/** A project config (`.coffer.yml`) whose environment `dev` reads DB_PASSWORD from app/db/password on the coffer server at `url`. */
export function teamProjectYaml(url: string): string {
  return [
    "providers:",
    `  team: { type: server, url: "${url}" }`,
    "environments:",
    "  dev:",
    "    env:",
    "      DB_PASSWORD: { from: team, path: app/db/password }",
    "",
  ].join("\n");
}

/**
 * Inits a coffer server in HOME/srv with the config HOME/server.yml (one role, `app`: read and
 * list `app/**`) and serves it ({@link serveCli}); gives its root token with the running server.
 */
export async function serveAppServer(t: TestContext, home: string): Promise<Served & { root: string }> {
  const data = join(home, "srv");
  const config = join(home, "server.yml");
  writeFileSync(config, `roles:\n  app: [ { path: "app/**", capabilities: [read, list] } ]\n`);
  const root = coffer(home, ["server", "init", "--data", data, "--config", config]).out.trim().split("\n").at(-1)!;
  return { ...(await serveCli(t, home, ["--data", data, "--config", config])), root };
}

/** A home under `root` for each named user, each initialised with `coffer init --name NAME`; in the order given. */
export function initHomes(root: string, names: readonly string[]): string[] {
  return names.map((n) => {
    const h = join(root, n);
    mkdirSync(h);
    cofferOk(h, ["init", "--name", n]);
    return h;
  });
}

/** Writes a new version of `name` on a running server through its API (the value in the body, never the URL). */
export async function putSecret(url: string, token: string, name: string, value: string): Promise<void> {
  const res = await fetch(`${url}/v1/secrets/${name}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ value }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** Runs `coffer ARGS…` (stdin: `input`), asserts exit 0 (stderr in the message); gives its stdout. */
export function cofferOk(home: string, args: string[], input = ""): string {
  const r = coffer(home, args, { input });
  assert.equal(r.code, 0, `coffer ${args.join(" ")}: ${r.err}`);
  return r.out;
}
