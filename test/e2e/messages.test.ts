import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { CLI, coffer, userEnv } from "./run-cli.ts";

test("--prefix without a slash is refused with the fix, instead of running names together", (t) => {
  const home = tempDir(t);
  assert.equal(coffer(home, ["init"]).code, 0);
  const env = join(home, ".env");
  writeFileSync(env, "STRIPE_KEY=sk-value-1\n");
  const r = coffer(home, ["import", "--dotenv", env, "--prefix", "legacy"]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--prefix must end with \/.*: use --prefix legacy\/\n$/);
  assert.deepEqual(JSON.parse(coffer(home, ["list", "--json"]).out), [], "nothing imported");
  assert.equal(coffer(home, ["import", "--dotenv", env, "--prefix", "legacy/"]).code, 0);
  assert.equal(coffer(home, ["get", "legacy/STRIPE_KEY"]).out, "sk-value-1");
});

test("a problem list prints one problem a line", (t) => {
  const home = tempDir(t);
  const dir = join(home, "proj");
  mkdirSync(dir);
  assert.equal(coffer(home, ["init"]).code, 0);
  writeFileSync(join(dir, ".coffer.yml"), "environments:\n  dev:\n    env:\n      1BAD: a/b\n      OK: { from: nope, path: x }\n    colour: red\n");
  const r = spawnSync(process.execPath, [CLI, "config", "check"], { cwd: dir, env: userEnv(home), encoding: "utf8" });
  assert.notEqual(r.status, 0);
  const lines = r.stderr.trimEnd().split("\n");
  assert.match(lines[0]!, /^coffer: \S*\.coffer\.yml: 3 problems:$/, r.stderr);
  assert.equal(lines.length, 4, r.stderr);
  for (const l of lines.slice(1)) assert.match(l, /^ {2}\S*\.coffer\.yml:\d+: /);
});
