/**
 * Runs the built `coffer` CLI (dist/bundle/bin.js, the bundle `npx coffer` runs) as a subprocess in a
 * temp HOME with its own XDG dirs, and returns stdout, stderr and the exit code separately.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
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
}

/** The environment a fresh user has: HOME only, no XDG or COFFER variables. */
export function userEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, LANG: "C.UTF-8", ...extra };
}

/** Runs `coffer ARGS…` as the user whose HOME is `home`. */
export function coffer(home: string, args: string[], options: RunOptions = {}): RunResult {
  const env = userEnv(home, options.env);
  const argv = options.umask === undefined
    ? [process.execPath, [CLI, ...args]] as const
    : ["/bin/sh", ["-c", `umask ${options.umask} && exec "$0" "$@"`, process.execPath, CLI, ...args]] as const;
  const r = spawnSync(argv[0], argv[1], { env, input: options.input ?? "", maxBuffer: 8 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status ?? 128, stdout: r.stdout, out: r.stdout.toString("utf8"), err: r.stderr.toString("utf8") };
}

/**
 * Runs `cmd` on a pseudo-terminal (script(1)) and types each answer only once its prompt has
 * appeared, as a person would (typing ahead would be echoed by the terminal before coffer
 * turns echo off).
 */
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
