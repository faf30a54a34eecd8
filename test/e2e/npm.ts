/**
 * npm as a user runs it, for the tests that install coffer's packed tarball (install.test.ts,
 * app-package.test.ts): run by the repo's Node 24 (first on PATH, for npm's `#!/usr/bin/env
 * node`), with the user's own npm cache (HOME), which holds the dependencies (--prefer-offline).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
/** The repo's Node 24 (the one running the tests). */
export const NODE_DIR = dirname(process.execPath);

/** Runs a shell script; gives its exit status and output as text. */
export function sh(script: string, options: { cwd: string; env: Record<string, string>; input?: string }) {
  const r = spawnSync("/bin/sh", ["-c", script], { cwd: options.cwd, env: options.env, input: options.input ?? "", encoding: "utf8", maxBuffer: 32 * 1024 * 1024 });
  if (r.error) throw r.error;
  return r;
}

/** The directory of the `npm` on this test's PATH (the `node` package brings no npm of its own). */
function npmDir(): string {
  const r = spawnSync("/bin/sh", ["-c", "command -v npm"], { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  assert.equal(r.status, 0, "npm is on PATH");
  return dirname(r.stdout.trim());
}

/** The environment npm runs in: Node 24 first on PATH, the user's HOME (its npm cache), no network chatter. */
export function npmEnv(): Record<string, string> {
  return { PATH: `${NODE_DIR}:${npmDir()}:/usr/bin:/bin`, HOME: process.env.HOME ?? "/root", npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
}

/** A packed tarball of the repo (as `npm run build` left dist/) in `dir`, with its file list. */
export function packInto(dir: string): { tarball: string; files: string[] } {
  // --ignore-scripts: pack what `npm run build` built (the tests run after it), without building again
  const pack = sh(`npm pack --ignore-scripts --json --pack-destination "${dir}"`, { cwd: REPO, env: npmEnv() });
  assert.equal(pack.status, 0, pack.stderr);
  const [packed] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  return { tarball: join(dir, packed!.filename), files: packed!.files.map((f) => f.path) };
}
