/**
 * `coffer runbook …` against the real server (in this process, on a free loopback port) with
 * real scripts: the built CLI as a subprocess in a temp HOME, logged in with `coffer login`.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { startTestServer, type TestServer } from "../server/harness.ts";
import { cofferAsync } from "./run-cli.ts";

const SECRET_VALUE = "e2e-runbook-secret-Vb4kQ9";

// The server runs in this process: the CLI must not be run with spawnSync.
const cli = (home: string, args: string[], env: Record<string, string> = {}) => cofferAsync(home, args, { env });

async function setup(t: TestContext): Promise<{ home: string; s: TestServer }> {
  const dir = join(tempDir(t, "coffer-e2e-runbooks-"), "runbooks");
  mkdirSync(dir);
  const files: Record<string, string> = {
    "flush-cdn": `description: Flush the CDN cache for one region
run: |
  echo "flushing $REGION"
  echo "token=$CDN_TOKEN"
params:
  REGION: { pattern: "^[a-z0-9-]{1,32}$", required: true, description: the region }
secrets:
  CDN_TOKEN: cdn/token
`,
    fail3: "description: fails\nrun: |\n  echo about to fail\n  exit 3\n",
    slow: "description: slow\ntimeout: 1s\nrun: |\n  echo sleeping\n  sleep 600\n",
    guarded: "description: needs a second person\napprovals: 1\nrun: echo ran\n",
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, `${name}.yml`), text);
  const s = await startTestServer(t, `roles:\n  ops: [ { path: "runbook:*", capabilities: [read, run] } ]\nrunbooks:\n  dir: ${dir}\n`);
  assert.equal((await s.call("PUT", "/v1/secrets/cdn/token", { token: s.rootToken, body: { value: SECRET_VALUE } })).status, 200);
  const home = tempDir(t);
  const login = await cli(home, ["login", s.url], { COFFER_TOKEN: await s.token(["ops"]) });
  assert.equal(login.code, 0, login.err);
  return { home, s };
}

test("coffer runbook run --follow against the real server: masked output, the script's exit status, 124 on timeout", async (t) => {
  const { home, s } = await setup(t);
  const list = await cli(home, ["runbook", "list", "--json"]);
  assert.equal(list.code, 0, list.err);
  assert.deepEqual(JSON.parse(list.out).map((r: { name: string }) => r.name), ["fail3", "flush-cdn", "guarded", "slow"]);

  const ok = await cli(home, ["runbook", "run", "flush-cdn", "-p", "REGION=eu-west-1", "--follow"]);
  assert.equal(ok.code, 0, ok.err);
  assert.equal(ok.out, "flushing eu-west-1\ntoken=***\n");
  assert.ok(!ok.err.includes(SECRET_VALUE) && !s.logs.join("\n").includes(SECRET_VALUE));

  const failed = await cli(home, ["runbook", "run", "fail3", "--follow"]);
  assert.equal(failed.code, 3, failed.err);
  assert.equal(failed.out, "about to fail\n");

  const slow = await cli(home, ["runbook", "run", "slow", "--follow"]);
  assert.equal(slow.code, 124, slow.err);

  const bad = await cli(home, ["runbook", "validate", "flush-cdn", "-p", "REGION=NOT OK"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /REGION/);
  assert.ok(!bad.err.includes("NOT OK"), "a refused value is not echoed");

  const history = await cli(home, ["runbook", "history", "flush-cdn", "--json"]);
  assert.equal(history.code, 0, history.err);
  const rows = JSON.parse(history.out);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].status, "succeeded");
  assert.deepEqual(rows[0].params, { REGION: "eu-west-1" });
});

test("coffer runbook cancel ends a pending execution, and run --follow then exits with E_EXECUTION's code", async (t) => {
  const { home } = await setup(t);
  const started = await cli(home, ["runbook", "run", "guarded", "--json"]);
  assert.equal(started.code, 0, started.err);
  const { id, status } = JSON.parse(started.out);
  assert.equal(status, "pending-approval");
  const cancel = await cli(home, ["runbook", "cancel", id]);
  assert.equal(cancel.code, 0, cancel.err);
  const output = await cli(home, ["runbook", "output", id, "--follow"]);
  assert.equal(output.code, 12, output.err);
  assert.match(output.err, /cancelled/);
});
