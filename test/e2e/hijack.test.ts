import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { coffer } from "./run-cli.ts";

const TOKEN = "hvs.TOPSECRET-token-value-123";

function project(t: import("node:test").TestContext, yml: string): { home: string; file: string } {
  const home = tempDir(t);
  mkdirSync(join(home, "proj"));
  const file = join(home, "proj", ".coffer.yml");
  writeFileSync(file, yml);
  return { home, file };
}

test("a committed PATH is refused by coffer run unless allowDangerous names it, and then coffer warns", (t) => {
  const { home, file } = project(t, "providers:\n  os: { type: env }\nenvironments:\n  dev:\n    env:\n      PATH: { from: os, path: EVIL_PATH }\n");
  const refused = coffer(home, ["run", "--config", file, "--", "true"], { env: { EVIL_PATH: "/tmp/evil" } });
  assert.equal(refused.code, 7, refused.err);
  assert.equal(refused.err, `coffer: ${file}:6: PATH changes how programs load or run, so a config file may not set it unless the top-level allowDangerous: [PATH] names it\n`);

  writeFileSync(file, `allowDangerous: [PATH]\n${"providers:\n  os: { type: env }\nenvironments:\n  dev:\n    env:\n      PATH: { from: os, path: GOOD_PATH }\n"}`);
  const allowed = coffer(home, ["run", "--config", file, "--", "/bin/sh", "-c", 'test "$PATH" = /usr/bin:/bin'], { env: { GOOD_PATH: "/usr/bin:/bin" } });
  assert.equal(allowed.code, 0, allowed.err);
  assert.equal(allowed.err.split("\n")[0], `coffer: warning: ${file} sets PATH, which changes how programs load or run (allowed by its allowDangerous:)`);
});

test("config check --verbose names the variable each token comes from, never the token", (t) => {
  const { home, file } = project(
    t,
    "providers:\n  v: { type: vault, address: http://127.0.0.1:1, tokenEnv: TEAM_VAULT }\n  s: { type: server, url: \"http://127.0.0.1:1\" }\n" +
      "environments:\n  dev:\n    env:\n      A: { from: v, path: a }\n      B: { from: s, path: b }\n",
  );
  const r = coffer(home, ["config", "check", "--verbose", "--config", file], { env: { TEAM_VAULT: TOKEN } });
  assert.notEqual(r.code, 0, "nothing listens there: resolving fails after the names are printed");
  const lines = r.err.split("\n");
  assert.equal(lines[0], "provider v (vault): token sent to http://127.0.0.1:1, from the variable TEAM_VAULT");
  assert.equal(lines[1], "provider s (server): token sent to http://127.0.0.1:1, from the variable COFFER_TOKEN (not set, and no `coffer login` token)");
  assert.ok(!r.err.includes(TOKEN) && !r.out.includes(TOKEN));
});

test("a provider token is never sent over plain http to a remote host: coffer config check refuses the file", (t) => {
  const { home, file } = project(t, "providers:\n  v: { type: vault, address: http://vault.example.com:8200 }\nenvironments:\n  dev:\n    env:\n      A: { from: v, path: a }\n");
  const r = coffer(home, ["config", "check", "--config", file], { env: { VAULT_TOKEN: TOKEN } });
  assert.equal(r.code, 7);
  assert.match(r.err, /^coffer: [^]*\.coffer\.yml:2: provider "v" address "http:\/\/vault\.example\.com:8200" would send its token over plain http:\/\/ to vault\.example\.com:8200/);
  assert.ok(!r.err.includes(TOKEN));
});
