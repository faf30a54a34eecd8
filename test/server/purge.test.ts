/**
 * `POST /v1/purge/{name}` (every version destroyed, under its own prefix) against the real server:
 * the `purge` capability that `delete` does not imply, 404 for an unknown name, nothing left to
 * read, list or roll back afterwards, the audit record with the count and never a value, and the
 * roles API refusing to hand out purge to a caller who does not hold it. SQLite, then PostgreSQL.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { callAt, startTestServer, startTwoInstances, TEST_ROLES } from "./harness.ts";

const ROLES = `${TEST_ROLES}
  shredder: [ { path: "app/**", capabilities: [purge] } ]
  cleaner: [ { path: "app/**", capabilities: [purge, list] } ]
  roleadmin:
    - { path: "sys:roles", capabilities: [read, write] }
    - { path: "app/**", capabilities: [read, list, write, delete] }
`;
const VALUES = ["purged-value-one-Hx31", "purged-value-two-Kq58", "purged-value-three-Tz04"];

test("purge destroys every version: get, versions and rollback are 404 after it, the audit has secret.purge with the count and no value", async (t) => {
  const s = await startTestServer(t, ROLES);
  const deployer = await s.token(["deployer"]);
  const shredder = await s.token(["shredder"]);
  for (const value of VALUES) assert.equal((await s.call("PUT", "/v1/secrets/app/leaked", { token: deployer, body: { value } })).status, 200);
  assert.equal((await s.call("PUT", "/v1/secrets/app/leaked2", { token: deployer, body: { value: "kept" } })).status, 200);

  const r = await s.call("POST", "/v1/purge/app/leaked", { token: shredder });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { name: "app/leaked", versions: 3, purged: true });

  assert.equal((await s.call("GET", "/v1/secrets/app/leaked", { token: deployer })).status, 404);
  for (const v of [1, 2, 3]) assert.equal((await s.call("GET", `/v1/secrets/app/leaked?version=${v}`, { token: deployer })).status, 404);
  assert.equal((await s.call("GET", "/v1/secrets/app/leaked/versions", { token: deployer })).status, 404);
  assert.equal((await s.call("POST", "/v1/rollback/app/leaked", { token: deployer, body: { version: 1 } })).status, 404);
  assert.deepEqual((await s.call("GET", "/v1/secrets?prefix=app/", { token: deployer })).json.secrets.map((x: { name: string }) => x.name), ["app/leaked2"]);
  assert.equal((await s.call("GET", "/v1/secrets/app/leaked2", { token: deployer })).json.value, "kept");

  const log = await s.call("GET", "/v1/audit?action=secret.purge", { token: s.rootToken });
  assert.equal(log.status, 200, log.text);
  assert.deepEqual(log.json.records.map((x: { name: string; version: number | null; detail: { versions: number; result: string } }) =>
    [x.name, x.version, x.detail.versions, x.detail.result]), [["app/leaked", null, 3, "ok"]]);
  const all = JSON.stringify((await s.call("GET", "/v1/audit", { token: s.rootToken })).json);
  for (const v of VALUES) {
    assert.ok(!all.includes(v), "no value in the audit log");
    assert.ok(!s.logs.join("\n").includes(v), "no value in the server's log");
  }
  assert.equal((await s.call("GET", "/v1/audit/verify", { token: s.rootToken })).json.ok, true);

  // The name is free again: a write starts over at v1.
  const again = await s.call("PUT", "/v1/secrets/app/leaked", { token: deployer, body: { value: "fresh", ifVersion: 0 } });
  assert.deepEqual(again.json, { name: "app/leaked", version: 1 });
});

test("attack: delete does not grant purge: a caller with delete, or with write, gets 403, audited as denied, and nothing is destroyed", async (t) => {
  const s = await startTestServer(t, ROLES);
  const janitor = await s.token(["janitor"]);
  const deployer = await s.token(["deployer"]);
  assert.equal((await s.call("PUT", "/v1/secrets/app/db", { token: s.rootToken, body: { value: VALUES[0] } })).status, 200);
  for (const token of [janitor, deployer]) {
    for (const name of ["app/db", "app/nothing"]) {
      const r = await s.call("POST", `/v1/purge/${name}`, { token });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.json.error.code, "E_DENIED");
      assert.match(r.json.error.message, new RegExp(`you may not purge secret "${name}"`));
    }
  }
  // Delete still works for the janitor, and hides only: the versions stay.
  assert.equal((await s.call("DELETE", "/v1/secrets/app/db", { token: janitor })).status, 200);
  assert.equal((await s.call("GET", "/v1/secrets/app/db/versions", { token: s.rootToken })).json.versions.length, 1);
  const denied = await s.call("GET", "/v1/audit?action=secret.purge", { token: s.rootToken });
  assert.deepEqual(denied.json.records.map((x: { detail: { result: string } }) => x.detail.result), ["denied", "denied", "denied", "denied"]);
  assert.equal((await s.call("POST", "/v1/purge/app/db")).status, 401);
  // Root holds purge; a removed secret can be purged.
  const root = await s.call("POST", "/v1/purge/app/db", { token: s.rootToken });
  assert.deepEqual(root.json, { name: "app/db", versions: 1, purged: true });
});

test("purge of a name never written, or purged already, is 404 and audited as not_found", async (t) => {
  const s = await startTestServer(t, ROLES);
  const cleaner = await s.token(["cleaner"]);
  assert.equal((await s.call("PUT", "/v1/secrets/app/once", { token: s.rootToken, body: { value: "x" } })).status, 200);
  assert.equal((await s.call("POST", "/v1/purge/app/once", { token: cleaner })).status, 200);
  for (const name of ["app/once", "app/never"]) {
    const r = await s.call("POST", `/v1/purge/${name}`, { token: cleaner });
    assert.equal(r.status, 404, r.text);
    assert.equal(r.json.error.code, "E_NOT_FOUND");
  }
  const log = await s.call("GET", "/v1/audit?action=secret.purge", { token: s.rootToken });
  assert.deepEqual(log.json.records.map((x: { name: string; detail: { result: string } }) => [x.name, x.detail.result]),
    [["app/once", "ok"], ["app/once", "not_found"], ["app/never", "not_found"]]);
});

test("purge refuses names slipped past the name rule (percent-encoding, .., a versions suffix, none)", async (t) => {
  const s = await startTestServer(t, ROLES);
  assert.equal((await s.call("PUT", "/v1/secrets/app/db", { token: s.rootToken, body: { value: "x" } })).status, 200);
  for (const path of ["/v1/purge/app%2Fdb", "/v1/purge/app/../db", "/v1/purge/app/db/versions", "/v1/purge/", "/v1/purge/app//db"]) {
    const r = await s.call("POST", path, { token: s.rootToken });
    assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
  }
  assert.equal((await s.call("GET", "/v1/secrets/app/db/versions", { token: s.rootToken })).json.versions.length, 1, "nothing was purged");
});

test("the roles API: purge is granted only by one who holds it (delete does not contain it), and only on secret names", async (t) => {
  const s = await startTestServer(t, ROLES);
  const admin = await s.token(["roleadmin"]);
  const widen = await s.call("PUT", "/v1/roles/eraser", { token: admin, body: { rules: [{ path: "app/x/*", capabilities: ["delete", "purge"] }] } });
  assert.equal(widen.status, 403, widen.text);
  assert.match(widen.json.error.message, /purge/);
  assert.equal((await s.call("PUT", "/v1/roles/eraser", { token: admin, body: { rules: [{ path: "app/x/*", capabilities: ["delete"] }] } })).status, 200);
  assert.equal((await s.call("PUT", "/v1/roles/eraser", { token: s.rootToken, body: { rules: [{ path: "app/x/*", capabilities: ["purge"] }] } })).status, 200);
  const onSystem = await s.call("PUT", "/v1/roles/bad", { token: s.rootToken, body: { rules: [{ path: "sys:audit", capabilities: ["purge"] }] } });
  assert.equal(onSystem.status, 400, onSystem.text);
  assert.match(onSystem.json.error.message, /purge applies only to secret names/);
  const all = await s.call("PUT", "/v1/roles/all", { token: s.rootToken, body: { rules: [{ path: "app/**", capabilities: ["read", "list", "write", "delete", "purge"] }] } });
  assert.equal(all.status, 200, all.text);
});

test("PostgreSQL: a purge on one instance is gone on the other at once, and the chain stays intact", async (t) => {
  const { a, b, root } = await startTwoInstances(t, { yaml: ROLES });
  for (const value of VALUES) assert.equal((await callAt(a.url, "PUT", "/v1/secrets/app/shared", root, { value })).status, 200);
  assert.equal((await callAt(b.url, "GET", "/v1/secrets/app/shared", root)).status, 200);
  const janitor = (await callAt(a.url, "POST", "/v1/tokens", root, { name: "j", roles: ["janitor"] })).json.token as string;
  assert.equal((await callAt(b.url, "POST", "/v1/purge/app/shared", janitor)).status, 403);
  const r = await callAt(b.url, "POST", "/v1/purge/app/shared", root);
  assert.deepEqual(r.json, { name: "app/shared", versions: 3, purged: true });
  assert.equal((await callAt(a.url, "GET", "/v1/secrets/app/shared", root)).status, 404);
  assert.equal((await callAt(a.url, "GET", "/v1/secrets/app/shared/versions", root)).status, 404);
  assert.equal((await callAt(a.url, "POST", "/v1/purge/app/shared", root)).status, 404);
  const log = await callAt(a.url, "GET", "/v1/audit?action=secret.purge", root);
  assert.deepEqual(log.json.records.map((x: { detail: { versions?: number; result: string } }) => [x.detail.result, x.detail.versions]),
    [["denied", undefined], ["ok", 3], ["not_found", undefined]]);
  assert.ok(!JSON.stringify(log.json).includes(VALUES[0]!));
  assert.equal((await callAt(a.url, "GET", "/v1/audit/verify", root)).json.ok, true);
});
