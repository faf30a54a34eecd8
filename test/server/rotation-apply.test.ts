/**
 * Rotation through the API with the real apply targets (docs/design.md §12): PostgreSQL (a role
 * made by the test changes password: the old one is refused, the value read back through the
 * API logs in) and runbooks (one that exits 1 stores nothing and is recorded; the next success
 * clears it; one that needs approvals cannot be a target). Needs the test setup's PostgreSQL
 * (`node test/launch.ts`).
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { adminQuery, postgresUrl, pgLogin } from "../services.ts";
import { startTestServer, type TestServer } from "./harness.ts";

const ROLES = "rateLimit: { requests: 100000, window: 1m, ipRequests: 1000000 }\n";

async function put(s: TestServer, name: string, value: string): Promise<void> {
  const r = await s.call("PUT", `/v1/secrets/${name}`, { token: s.rootToken, body: { value } });
  assert.equal(r.status, 200, r.text);
}

async function read(s: TestServer, name: string): Promise<{ version: number; value: string }> {
  const r = await s.call("GET", `/v1/secrets/${name}`, { token: s.rootToken });
  assert.equal(r.status, 200, r.text);
  return r.json as { version: number; value: string };
}

function runbooks(t: TestContext, files: Record<string, string>): string {
  const dir = join(tempDir(t, "coffer-rotation-runbooks-"), "runbooks");
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, `${name}.yml`), text);
  return dir;
}

test("rotation with the postgres apply: the old password is refused after it, and the value read back through the API logs in", { timeout: 60_000 }, async (t) => {
  const role = `coffer_app_${randomBytes(4).toString("hex")}`;
  const old = `old-${randomBytes(12).toString("hex")}`;
  await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD '${old}'`);
  t.after(() => adminQuery(`DROP ROLE IF EXISTS ${role}`));
  const s = await startTestServer(t, ROLES);
  await put(s, "db/admin-url", await postgresUrl());
  await put(s, "db/app-password", old);
  assert.equal(await pgLogin(role, old), "ok", "the role logs in with the old password before");

  const policy = { every: "30d", generate: { charset: "alnum", length: 40 }, apply: { postgres: { connection: "db/admin-url", role } } };
  const set = await s.call("PUT", "/v1/rotation/db/app-password", { token: s.rootToken, body: policy });
  assert.equal(set.status, 200, set.text);
  const rotated = await s.call("POST", "/v1/rotation/db/app-password", { token: s.rootToken });
  assert.equal(rotated.status, 200, rotated.text);
  assert.equal(rotated.json.version, 2);

  const now = await read(s, "db/app-password");
  assert.equal(now.version, 2);
  assert.match(now.value, /^[A-Za-z0-9]{40}$/);
  assert.equal(await pgLogin(role, old), "28P01", "the old password is refused");
  assert.equal(await pgLogin(role, now.value), "ok", "the new value logs in");
  const view = await s.call("GET", "/v1/rotation/db/app-password", { token: s.rootToken });
  assert.equal(view.json.state, "ok");
  assert.ok(!s.logs.join("\n").includes(now.value), "the new value is not in the server's log");
  const audit = await s.call("GET", "/v1/audit?action=secret.rotate", { token: s.rootToken });
  assert.ok(!audit.text.includes(now.value) && !audit.text.includes(old), "no value in the audit");
});

test("rotation with a runbook apply: exit 1 stores nothing, counts the failure and shows it; the next success clears it; approvals are refused", { timeout: 60_000 }, async (t) => {
  const dir = runbooks(t, {
    "push-broken": "description: fails\nrun: |\n  echo trying\n  exit 1\n",
    "push-key": 'description: pushes the key\nrun: |\n  [ -n "$NEW_VALUE" ] && [ "$NEW_VALUE" != "$OLD_VALUE" ] || exit 9\n  echo "old=$OLD_VALUE new=$NEW_VALUE"\n',
    "push-guarded": "description: needs a person\napprovals: 1\nrun: exit 0\n",
  });
  const s = await startTestServer(t, `${ROLES}runbooks:\n  dir: ${dir}\n`);
  await put(s, "app/hmac-key", "first-key-value");
  const policy = (runbook: string) => ({ generate: { charset: "hex", length: 64 }, apply: { runbook } });

  const guarded = await s.call("PUT", "/v1/rotation/app/hmac-key", { token: s.rootToken, body: policy("push-guarded") });
  assert.equal(guarded.status, 400, guarded.text);
  assert.match(guarded.json.error.message, /approval/);

  assert.equal((await s.call("PUT", "/v1/rotation/app/hmac-key", { token: s.rootToken, body: policy("push-broken") })).status, 200);
  const failed = await s.call("POST", "/v1/rotation/app/hmac-key", { token: s.rootToken });
  assert.equal(failed.status, 502, failed.text);
  assert.equal(failed.json.error.code, "E_ROTATION");
  assert.match(failed.json.error.message, /runbook push-broken exited 1/);
  const unchanged = await read(s, "app/hmac-key");
  assert.deepEqual([unchanged.version, unchanged.value], [1, "first-key-value"]);
  const view = await s.call("GET", "/v1/rotation/app/hmac-key", { token: s.rootToken });
  assert.equal(view.json.state, "failing");
  assert.match(view.json.lastError, /push-broken exited 1/);
  assert.match((await s.call("GET", "/metrics", { token: s.rootToken })).text, /coffer_rotation_failures_total\{state="failing"\} 1/);
  // The secret's own metadata carries the failure too.
  const listed = (await s.call("GET", "/v1/secrets?prefix=app/", { token: s.rootToken })).json.secrets as { name: string; rotation?: { state: string; lastError: string | null } }[];
  const meta = listed.find((x) => x.name === "app/hmac-key")?.rotation;
  assert.equal(meta?.state, "failing");
  assert.match(meta?.lastError ?? "", /push-broken exited 1/);

  assert.equal((await s.call("PUT", "/v1/rotation/app/hmac-key", { token: s.rootToken, body: policy("push-key") })).status, 200);
  const ok = await s.call("POST", "/v1/rotation/app/hmac-key", { token: s.rootToken });
  assert.equal(ok.status, 200, ok.text);
  const now = await read(s, "app/hmac-key");
  assert.equal(now.version, 2);
  assert.match(now.value, /^[0-9a-f]{64}$/);
  const cleared = await s.call("GET", "/v1/rotation/app/hmac-key", { token: s.rootToken });
  assert.deepEqual([cleared.json.state, cleared.json.lastError, cleared.json.failures], ["ok", null, 0]);
  const relisted = (await s.call("GET", "/v1/secrets?prefix=app/", { token: s.rootToken })).json.secrets as { name: string; rotation?: { lastError: string | null } }[];
  assert.equal(relisted.find((x) => x.name === "app/hmac-key")?.rotation?.lastError, null);

  // The apply ran as an execution in the history, by "rotation", its output masked.
  const history = await s.call("GET", "/v1/executions?runbook=push-key", { token: s.rootToken });
  const e = history.json.executions[0] as { id: string; by: string; status: string };
  assert.deepEqual([e.by, e.status], ["rotation", "succeeded"]);
  const output = await s.call("GET", `/v1/executions/${e.id}/output`, { token: s.rootToken });
  assert.equal(output.text, "old=*** new=***\n");
});
