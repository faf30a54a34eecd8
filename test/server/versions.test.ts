/**
 * `POST /v1/delete|undelete|destroy/{name}` (single versions, under their own prefixes; issue 16)
 * against the real server: the `delete` capability, 404 for an unknown secret, 400 naming versions
 * that do not exist, reads of a deleted version refused with the command that restores it, a
 * destroyed version's ciphertext gone from the SQLite file and its WAL, audit records without
 * values, change events for the current version, failed authentication audited.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { callAt, startTestServer, startTwoInstances } from "./harness.ts";
import { SQLITE_FILE } from "../../src/server/server.ts";

/** Opens `/v1/watch?prefix=…` and returns a wait for text matching a pattern in the stream. */
async function watch(t: TestContext, url: string, token: string, prefix: string): Promise<(re: RegExp) => Promise<void>> {
  const controller = new AbortController();
  t.after(() => controller.abort());
  const res = await fetch(`${url}/v1/watch?${new URLSearchParams({ prefix })}`, { headers: { accept: "text/event-stream", authorization: `Bearer ${token}` }, signal: controller.signal });
  let text = "";
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  return async (re) => {
    const end = Date.now() + 5000;
    while (!re.test(text)) {
      if (Date.now() > end) throw new Error(`no ${re} in ${JSON.stringify(text)}`);
      const { value, done } = await reader.read();
      if (done) throw new Error("the stream ended");
      text += decoder.decode(value, { stream: true });
    }
  };
}

const VALUES = ["version-value-one-Pq83", "version-value-two-Lm27", "version-value-three-Zx19"];

test("delete hides a version (403 without delete), undelete brings it back, history shows deletedAt; audited per version, no value", async (t) => {
  const s = await startTestServer(t);
  const deployer = await s.token(["deployer"]);
  const janitor = await s.token(["janitor"]);
  for (const value of VALUES) assert.equal((await s.call("PUT", "/v1/secrets/app/db", { token: deployer, body: { value } })).status, 200);

  const denied = await s.call("POST", "/v1/delete/app/db", { token: deployer, body: { versions: [1] } });
  assert.equal(denied.status, 403, denied.text);
  assert.match(denied.json.error.message, /you may not delete secret "app\/db"/);

  const r = await s.call("POST", "/v1/delete/app/db", { token: janitor, body: { versions: [1, 2] } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.name, "app/db");
  assert.deepEqual(r.json.versions.map((v: { version: number; deletedAt: string | null; destroyed: boolean }) => [v.version, typeof v.deletedAt, v.destroyed]),
    [[1, "string", false], [2, "string", false]]);
  const read = await s.call("GET", "/v1/secrets/app/db?version=1", { token: deployer });
  assert.equal(read.status, 404);
  assert.equal(read.json.error.message, "version 1 of app/db was deleted; `coffer undelete app/db --version 1` restores it");
  assert.equal((await s.call("GET", "/v1/secrets/app/db", { token: deployer })).json.value, VALUES[2]);
  const rb = await s.call("POST", "/v1/rollback/app/db", { token: deployer, body: { version: 2 } });
  assert.equal(rb.status, 404);
  assert.match(rb.json.error.message, /version 2 of app\/db was deleted/);
  const history = await s.call("GET", "/v1/secrets/app/db/versions", { token: deployer });
  assert.deepEqual(history.json.versions.map((v: { version: number; current: boolean; deletedAt: string | null; destroyed: boolean }) =>
    [v.version, v.current, v.deletedAt !== null, v.destroyed]), [[1, false, true, false], [2, false, true, false], [3, true, false, false]]);

  const back = await s.call("POST", "/v1/undelete/app/db", { token: janitor, body: { versions: [1] } });
  assert.deepEqual(back.json, { name: "app/db", versions: [{ version: 1, deletedAt: null, destroyed: false }] });
  assert.equal((await s.call("GET", "/v1/secrets/app/db?version=1", { token: deployer })).json.value, VALUES[0]);

  const log = await s.call("GET", "/v1/audit?prefix=app/db", { token: s.rootToken });
  const rows = log.json.records
    .filter((x: { action: string }) => ["secret.delete-version", "secret.undelete"].includes(x.action))
    .map((x: { action: string; version: number | null; detail: { result: string; changed?: boolean } }) => [x.action, x.version, x.detail.result, x.detail.changed ?? null]);
  assert.deepEqual(rows, [
    ["secret.delete-version", null, "denied", null],
    ["secret.delete-version", 1, "ok", true], ["secret.delete-version", 2, "ok", true],
    ["secret.undelete", 1, "ok", true],
  ]);
  const all = JSON.stringify((await s.call("GET", "/v1/audit", { token: s.rootToken })).json);
  for (const v of VALUES) {
    assert.ok(!all.includes(v), "no value in the audit log");
    assert.ok(!s.logs.join("\n").includes(v), "no value in the server's log");
  }
  assert.equal((await s.call("GET", "/v1/audit/verify", { token: s.rootToken })).json.ok, true);
});

test("deleting the current version makes a plain read 404 and tells watchers; undelete tells them it is back", async (t) => {
  const s = await startTestServer(t);
  const janitor = await s.token(["janitor"]);
  assert.equal((await s.call("PUT", "/v1/secrets/app/cur", { token: s.rootToken, body: { value: "x1" } })).status, 200);
  const until = await watch(t, s.url, s.rootToken, "app/");
  await until(/event: ready/);
  assert.equal((await s.call("POST", "/v1/delete/app/cur", { token: janitor, body: { versions: [1] } })).status, 200);
  await until(/"name":"app\/cur","version":1,"action":"delete"/);
  const read = await s.call("GET", "/v1/secrets/app/cur", { token: s.rootToken });
  assert.equal(read.status, 404);
  assert.equal(read.json.error.message, "version 1 of app/cur was deleted; `coffer undelete app/cur --version 1` restores it");
  assert.equal((await s.call("POST", "/v1/undelete/app/cur", { token: janitor, body: { versions: [1] } })).status, 200);
  await until(/"name":"app\/cur","version":1,"action":"write"/);
  assert.equal((await s.call("GET", "/v1/secrets/app/cur", { token: s.rootToken })).json.value, "x1");
});

test("destroy removes the ciphertext from the SQLite file and its WAL; the version stays in the history marked destroyed; undelete changes nothing", async (t) => {
  const s = await startTestServer(t);
  const janitor = await s.token(["janitor"]);
  assert.equal((await s.call("PUT", "/v1/secrets/app/gone", { token: s.rootToken, body: { value: "d".repeat(5000) } })).status, 200);
  assert.equal((await s.call("PUT", "/v1/secrets/app/gone", { token: s.rootToken, body: { value: "next" } })).status, 200);
  const path = join(s.dataDir, SQLITE_FILE);
  const peek = new DatabaseSync(path, { readOnly: true });
  const sealed = Buffer.from((peek.prepare("SELECT ciphertext FROM versions WHERE name = 'app/gone' AND version = 1").get() as { ciphertext: Uint8Array }).ciphertext);
  peek.close();
  const needle = sealed.subarray(200, 280);
  const holds = (f: string): boolean => existsSync(f) && readFileSync(f).includes(needle);
  assert.ok(holds(path) || holds(`${path}-wal`), "the ciphertext is on disk before the destroy");

  const r = await s.call("POST", "/v1/destroy/app/gone", { token: janitor, body: { versions: [1] } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { name: "app/gone", versions: [{ version: 1, deletedAt: null, destroyed: true }] });
  for (const f of [path, `${path}-wal`]) assert.equal(holds(f), false, `ciphertext bytes left in ${f}`);
  const read = await s.call("GET", "/v1/secrets/app/gone?version=1", { token: s.rootToken });
  assert.equal(read.status, 404);
  assert.equal(read.json.error.message, "version 1 of app/gone was destroyed; its value is gone for good");
  const un = await s.call("POST", "/v1/undelete/app/gone", { token: janitor, body: { versions: [1] } });
  assert.deepEqual(un.json.versions, [{ version: 1, deletedAt: null, destroyed: true }], "a destroyed version never comes back (no error, as Vault)");
  assert.equal((await s.call("POST", "/v1/rollback/app/gone", { token: s.rootToken, body: { version: 1 } })).status, 404);
  const history = await s.call("GET", "/v1/secrets/app/gone/versions", { token: s.rootToken });
  assert.deepEqual(history.json.versions.map((v: { version: number; destroyed: boolean; createdBy: string }) => [v.version, v.destroyed, typeof v.createdBy]),
    [[1, true, "string"], [2, false, "string"]]);
  const log = await s.call("GET", "/v1/audit?action=secret.destroy", { token: s.rootToken });
  assert.deepEqual(log.json.records.map((x: { name: string; version: number; detail: { result: string; changed: boolean } }) => [x.name, x.version, x.detail.result, x.detail.changed]),
    [["app/gone", 1, "ok", true]]);
});

test("404 for an unknown secret, 400 naming versions that do not exist or a bad list, names slipped past the rule refused; failed auth audited", async (t) => {
  const s = await startTestServer(t);
  const janitor = await s.token(["janitor"]);
  assert.equal((await s.call("PUT", "/v1/secrets/app/y", { token: s.rootToken, body: { value: "y" } })).status, 200);
  for (const prefix of ["delete", "undelete", "destroy"]) {
    const none = await s.call("POST", `/v1/${prefix}/app/never`, { token: janitor, body: { versions: [1] } });
    assert.equal(none.status, 404, none.text);
    const missing = await s.call("POST", `/v1/${prefix}/app/y`, { token: janitor, body: { versions: [1, 5] } });
    assert.equal(missing.status, 400, missing.text);
    assert.match(missing.json.error.message, /secret "app\/y" has no version 5/);
    for (const body of [{}, { versions: [] }, { versions: [0] }, { versions: ["1"] }, { versions: Array.from({ length: 101 }, (_, i) => i + 1) }]) {
      assert.equal((await s.call("POST", `/v1/${prefix}/app/y`, { token: janitor, body })).status, 400, `${prefix} ${JSON.stringify(body)}`);
    }
    for (const path of [`/v1/${prefix}/app%2Fy`, `/v1/${prefix}/app/../y`, `/v1/${prefix}/app/y/versions`, `/v1/${prefix}/`]) {
      const r = await s.call("POST", path, { token: s.rootToken, body: { versions: [1] } });
      assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
    }
    assert.equal((await s.call("POST", `/v1/${prefix}/app/y`, { body: { versions: [1] } })).status, 401);
  }
  assert.equal((await s.call("GET", "/v1/secrets/app/y", { token: s.rootToken })).json.value, "y", "nothing was changed");
  const failed = await s.call("GET", "/v1/audit?action=auth.failed", { token: s.rootToken });
  assert.deepEqual(failed.json.records.map((x: { detail: { route: string } }) => x.detail.route), ["/v1/delete/*", "/v1/undelete/*", "/v1/destroy/*"]);
});

test("PostgreSQL: a version deleted on one instance is refused on the other at once; destroyed stays destroyed; the chain stays intact", async (t) => {
  const { a, b, root } = await startTwoInstances(t);
  for (const value of VALUES) assert.equal((await callAt(a.url, "PUT", "/v1/secrets/app/shared", root, { value })).status, 200);
  const deployer = (await callAt(a.url, "POST", "/v1/tokens", root, { name: "d", roles: ["deployer"] })).json.token as string;
  assert.equal((await callAt(b.url, "POST", "/v1/destroy/app/shared", deployer, { versions: [1] })).status, 403);
  assert.equal((await callAt(b.url, "POST", "/v1/delete/app/shared", root, { versions: [3] })).status, 200);
  const read = await callAt(a.url, "GET", "/v1/secrets/app/shared", root);
  assert.equal(read.status, 404);
  assert.match(read.json.error.message, /version 3 of app\/shared was deleted/);
  const destroyed = await callAt(a.url, "POST", "/v1/destroy/app/shared", root, { versions: [1, 3] });
  assert.deepEqual(destroyed.json.versions.map((v: { destroyed: boolean }) => v.destroyed), [true, true]);
  assert.equal((await callAt(b.url, "POST", "/v1/undelete/app/shared", root, { versions: [3] })).json.versions[0].destroyed, true);
  assert.equal((await callAt(b.url, "GET", "/v1/secrets/app/shared?version=2", root)).json.value, VALUES[1]);
  const history = await callAt(b.url, "GET", "/v1/secrets/app/shared/versions", root);
  assert.deepEqual(history.json.versions.map((v: { version: number; destroyed: boolean }) => [v.version, v.destroyed]), [[1, true], [2, false], [3, true]]);
  const log = JSON.stringify((await callAt(a.url, "GET", "/v1/audit", root)).json);
  for (const v of VALUES) assert.ok(!log.includes(v));
  assert.equal((await callAt(a.url, "GET", "/v1/audit/verify", root)).json.ok, true);
});
