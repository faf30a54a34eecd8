/**
 * What a local command loads at start-up (docs/design.md §8): `coffer get` on the local store
 * must not pay for the HTTP client, TLS and sockets, which only `--server` uses. Node's own list
 * of the built-in modules it loaded (process.moduleLoadList) is read at exit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { CLI, cofferOk, userEnv } from "./run-cli.ts";

test("a local coffer get loads no HTTP, TLS or socket module (node:https, node:http, node:tls, node:net)", (t) => {
  const home = tempDir(t);
  cofferOk(home, ["init", "--name", "alice"]);
  cofferOk(home, ["set", "app/a"], "v");
  const out = join(home, "loaded.txt");
  const preload = join(home, "loaded.cjs");
  writeFileSync(preload, `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(out)}, process.moduleLoadList.join("\\n")));\n`);
  const r = spawnSync(process.execPath, ["--require", preload, CLI, "get", "app/a"], { env: userEnv(home), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "v");
  const loaded = readFileSync(out, "utf8").split("\n");
  assert.ok(loaded.includes("NativeModule sqlite"), "the list is Node's (it has node:sqlite)");
  for (const m of ["https", "http", "tls", "net"]) assert.ok(!loaded.includes(`NativeModule ${m}`), `node:${m} was loaded`);
});
