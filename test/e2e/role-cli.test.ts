/**
 * `coffer role …` against the real server (in this process, on a free loopback port): the built
 * CLI as a subprocess in a temp HOME, logged in with `coffer login`. Needs `npm run build`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { tempDir } from "../helpers.ts";
import { startTestServer, TEST_ROLES } from "../server/harness.ts";
import { cofferAsync } from "./run-cli.ts";

// The server runs in this process: the CLI must not be run with spawnSync.
const cli = (home: string, args: string[], env: Record<string, string> = {}) => cofferAsync(home, args, { env });

const ROLES = `${TEST_ROLES}
  roleadmin:
    - { path: "sys:roles", capabilities: [read, write, delete] }
    - { path: "sys:tokens", capabilities: [read] }
    - { path: "app/*", capabilities: [read, list] }
    - { path: "runbook:*", capabilities: [run] }
`;

test("coffer role set/list/show/rm against the real server, with --json, --server and the never-widen refusal", async (t) => {
  const s = await startTestServer(t, ROLES);
  const home = tempDir(t);
  const login = await cli(home, ["login", s.url], { COFFER_TOKEN: await s.token(["roleadmin"]) });
  assert.equal(login.code, 0, login.err);

  const set = await cli(home, ["role", "set", "dev", "--rule", "app/x:read", "--rule", "sys:tokens:read", "--rule", "runbook:*:run"]);
  assert.equal(set.code, 0, set.err);
  assert.match(set.err, /role dev set \(version 1, 3 rules\)/);

  const shown = await cli(home, ["role", "show", "dev", "--json", "--server", s.url]);
  assert.equal(shown.code, 0, shown.err);
  const role = JSON.parse(shown.out);
  assert.deepEqual(role.rules, [
    { path: "app/x", capabilities: ["read"] }, { path: "sys:tokens", capabilities: ["read"] }, { path: "runbook:*", capabilities: ["run"] },
  ]);
  assert.equal(role.managedBy, "api");
  assert.equal(role.version, 1);

  const text = await cli(home, ["role", "show", "dev"]);
  assert.equal(text.code, 0, text.err);
  assert.match(text.out, /managed by: api/);
  assert.match(text.out, /^ {2}sys:tokens:read$/m);

  const list = await cli(home, ["role", "list"]);
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^NAME +MANAGED +VERSION +RULES/);
  assert.match(list.out, /^dev +api +1 +app\/x:read/m);
  assert.match(list.out, /^reader +config +app\/\*:read,list/m);
  const listed = JSON.parse((await cli(home, ["role", "list", "--json"])).out) as { name: string }[];
  assert.ok(listed.some((r) => r.name === "dev") && listed.some((r) => r.name === "reader"));

  // never widen: app/* read does not give app/** read; the exit code is E_DENIED's (5)
  const wide = await cli(home, ["role", "set", "dev", "--rule", "app/**:read"]);
  assert.equal(wide.code, 5, wide.err);
  assert.match(wide.err, /you may not grant read on app\/\*\*/);
  // a config role is read-only: E_CONFLICT (4)
  const config = await cli(home, ["role", "set", "reader", "--rule", "app/x:read"]);
  assert.equal(config.code, 4, config.err);
  assert.match(config.err, /managed by the config file/);
  // a rule without ':' is a usage error before any request
  const bad = await cli(home, ["role", "set", "dev", "--rule", "app/x"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /PATH:CAPS/);

  const rm = await cli(home, ["role", "rm", "dev", "--json"]);
  assert.equal(rm.code, 0, rm.err);
  assert.deepEqual(JSON.parse(rm.out), { name: "dev", deleted: true });
  const gone = await cli(home, ["role", "show", "dev"]);
  assert.equal(gone.code, 3, gone.err);
});

test("coffer role --help lists examples", async (t) => {
  const home = tempDir(t);
  const help = await cli(home, ["role", "set", "--help"]);
  assert.equal(help.code, 0, help.err);
  assert.match(help.out, /coffer role set ops --rule 'sys:tokens:read' --rule 'runbook:\*:run'/);
  assert.match(help.out, /split at the last ':'/);
});
