/**
 * End to end with the built CLI: a map a Vault client wrote through `coffer serve`'s Vault API is
 * delivered by `coffer run` through coffer's own `vault` provider pointed at that server, through
 * the `server` provider with `key:`, a store secret holding a JSON object with `key:` too, and
 * `coffer get --key` on both.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { CLI, coffer, userEnv } from "./run-cli.ts";
import { startTestServer, TEST_ROLES } from "../server/harness.ts";

test("coffer run resolves a .coffer.yml through the vault provider pointed at coffer serve, and key: on server and store refs", { timeout: 60_000 }, async (t) => {
  const s = await startTestServer(t, `${TEST_ROLES}\nvault: { mount: secret }\n`);
  const w = await s.call("POST", "/v1/secret/data/payments/stripe", { headers: { "x-vault-token": s.rootToken }, body: { data: { api_key: "sk_from_coffer", other: "x" } } });
  assert.equal(w.status, 200, w.text);
  const reader = await s.token(["reader"], "runner");
  await s.call("POST", "/v1/secret/data/app/db", { headers: { "x-vault-token": s.rootToken }, body: { data: { user: "app", password: "pw-from-map" } } });

  const home = tempDir(t);
  const dir = join(home, "proj");
  mkdirSync(dir);
  const runtime = join(home, "run");
  mkdirSync(runtime, { mode: 0o700 });
  assert.equal(coffer(home, ["init"]).code, 0);
  assert.equal(coffer(home, ["set", "local/map"], { input: '{"a":"1","b":"two"}' }).code, 0);
  writeFileSync(join(dir, ".coffer.yml"), [
    "providers:",
    `  vault: { type: vault, address: ${s.url}, mount: secret }`,
    `  team: { type: server, url: ${s.url} }`,
    "environments:",
    "  dev:",
    "    env:",
    "      STRIPE_KEY: { from: vault, path: payments/stripe, key: api_key }",
    "      DB_PASSWORD: { from: team, path: app/db, key: password }",
    "      LOCAL_B: { secret: local/map, key: b }",
    "",
  ].join("\n"));
  const run = (env: Record<string, string>) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, "run", "--", process.execPath, "-e", "console.log([process.env.STRIPE_KEY, process.env.DB_PASSWORD, process.env.LOCAL_B].join(' '))"], {
      cwd: dir, env: userEnv(home, { XDG_RUNTIME_DIR: runtime, ...env }),
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("close", (code) => resolve({ code, out, err }));
  });
  const ok = await run({ VAULT_TOKEN: reader, COFFER_TOKEN: reader });
  assert.equal(ok.code, 5, "reader may read app/* only: payments/stripe is denied through the Vault API");
  assert.match(ok.err, /vault denied/);
  const root = await run({ VAULT_TOKEN: s.rootToken, COFFER_TOKEN: s.rootToken });
  assert.equal(root.code, 0, root.err);
  assert.equal(root.out, "sk_from_coffer pw-from-map two\n");

  // coffer get --key, on the local store and on the server (async: the server runs in this process)
  const local = coffer(home, ["get", "local/map", "--key", "b"]);
  assert.deepEqual([local.code, local.out], [0, "two"]);
  const missing = coffer(home, ["get", "local/map", "--key", "zz"]);
  assert.equal(missing.code, 3);
  assert.match(missing.err, /local\/map#zz: the secret has no key "zz"; it has the keys a, b/);
  const remote = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, "get", "app/db", "--key", "password", "--server", s.url], { cwd: dir, env: userEnv(home, { COFFER_TOKEN: reader }) });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("close", (code) => resolve({ code, out, err }));
  });
  assert.deepEqual([remote.code, remote.out], [0, "pw-from-map"], remote.err);
});
