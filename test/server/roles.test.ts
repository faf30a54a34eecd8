/**
 * `/v1/roles` (issue 14) on a real server: CRUD of database roles, config roles read-only, the
 * never-widen rule, a change taking effect at once here and, on PostgreSQL, on a second instance
 * within about a second, and the audit records of every change.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { callAt, startTestServer, startTwoInstances, TEST_ROLES } from "./harness.ts";

const ROLES = `${TEST_ROLES}
  roleadmin:
    - { path: "sys:roles", capabilities: [read, write, delete] }
    - { path: "sys:tokens", capabilities: [read, write] }
    - { path: "app/*", capabilities: [read, list] }
    - { path: "runbook:cdn-*", capabilities: [run] }
`;

test("roles: list shows config roles as managedBy config; put, show, replace, delete a database role", async (t) => {
  const srv = await startTestServer(t, ROLES);
  const root = srv.rootToken;
  const list = await srv.call("GET", "/v1/roles", { token: root });
  assert.equal(list.status, 200);
  const reader = list.json.roles.find((r: { name: string }) => r.name === "reader");
  assert.deepEqual(reader, { name: "reader", rules: [{ path: "app/*", capabilities: ["read", "list"] }], managedBy: "config", version: null, updatedAt: null, updatedBy: null });

  const put = await srv.call("PUT", "/v1/roles/dev", { token: root, body: { rules: [{ path: "app/**", capabilities: ["read", "list"] }] } });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.managedBy, "api");
  assert.equal(put.json.version, 1);
  assert.equal(put.json.updatedBy.startsWith("token:"), true);
  const shown = await srv.call("GET", "/v1/roles/dev", { token: root });
  assert.deepEqual(shown.json, put.json);
  const again = await srv.call("PUT", "/v1/roles/dev", { token: root, body: { rules: [{ path: "app/x", capabilities: ["read"] }] } });
  assert.equal(again.json.version, 2);
  assert.deepEqual(again.json.rules, [{ path: "app/x", capabilities: ["read"] }]);
  const names = (await srv.call("GET", "/v1/roles", { token: root })).json.roles.map((r: { name: string; managedBy: string }) => `${r.name}:${r.managedBy}`);
  assert.ok(names.includes("dev:api") && names.includes("reader:config"), names.join(" "));

  assert.deepEqual((await srv.call("DELETE", "/v1/roles/dev", { token: root })).json, { name: "dev", deleted: true });
  assert.equal((await srv.call("GET", "/v1/roles/dev", { token: root })).status, 404);
  assert.equal((await srv.call("DELETE", "/v1/roles/dev", { token: root })).status, 404);
  assert.equal((await srv.call("GET", "/v1/roles/nope", { token: root })).status, 404);
});

test("roles: a config role or root cannot be changed or deleted through the API (409)", async (t) => {
  const srv = await startTestServer(t, ROLES);
  for (const name of ["reader", "roleadmin", "root"]) {
    const put = await srv.call("PUT", `/v1/roles/${name}`, { token: srv.rootToken, body: { rules: [] } });
    assert.equal(put.status, 409, `${name}: ${put.text}`);
    assert.equal(put.json.error.code, "E_CONFLICT");
    assert.equal((await srv.call("DELETE", `/v1/roles/${name}`, { token: srv.rootToken })).status, 409);
  }
  const shown = await srv.call("GET", "/v1/roles/reader", { token: srv.rootToken });
  assert.equal(shown.json.managedBy, "config");
});

test("roles: bad names, paths and capabilities are 400 and store nothing", async (t) => {
  const srv = await startTestServer(t, ROLES);
  const root = srv.rootToken;
  const bad: [string, unknown][] = [
    ["Dev", { rules: [] }],
    ["1dev", { rules: [] }],
    ["dev", { rules: [{ path: "app/../x", capabilities: ["read"] }] }],
    ["dev", { rules: [{ path: "sys:nope", capabilities: ["read"] }] }],
    ["dev", { rules: [{ path: "app/*", capabilities: ["run"] }] }],
    ["dev", { rules: [{ path: "runbook:*", capabilities: ["write"] }] }],
    ["dev", { rules: [{ path: "app/*", capabilities: ["fly"] }] }],
    ["dev", { rules: [{ path: "app/*", capabilities: [] }] }],
    ["dev", { rules: [{ path: "app/*" }] }],
    ["dev", { rules: "app/*" }],
    ["dev", { rules: [], extra: 1 }],
  ];
  for (const [name, body] of bad) {
    const r = await srv.call("PUT", `/v1/roles/${name}`, { token: root, body });
    assert.equal(r.status, 400, `${name} ${JSON.stringify(body)}: ${r.text}`);
  }
  assert.equal((await srv.call("GET", "/v1/roles/dev", { token: root })).status, 404);
});

test("roles: sys:roles guards every route; a caller without it gets 403", async (t) => {
  const srv = await startTestServer(t, ROLES);
  const reader = await srv.token(["reader"]);
  assert.equal((await srv.call("GET", "/v1/roles", { token: reader })).status, 403);
  assert.equal((await srv.call("GET", "/v1/roles/reader", { token: reader })).status, 403);
  const put = await srv.call("PUT", "/v1/roles/dev", { token: reader, body: { rules: [] } });
  assert.equal(put.status, 403);
  assert.match(put.json.error.message, /sys:roles/);
  assert.equal((await srv.call("DELETE", "/v1/roles/dev", { token: reader })).status, 403);
  assert.equal((await srv.call("GET", "/v1/roles")).status, 401);
});

test("roles: a caller cannot create or widen a role beyond what it holds itself", async (t) => {
  const srv = await startTestServer(t, ROLES);
  const admin = await srv.token(["roleadmin"]);
  const put = (rules: unknown) => srv.call("PUT", "/v1/roles/team", { token: admin, body: { rules } });
  // within its own rules: app/* read,list covers app/x and app/*; sys:tokens by name; runbook:cdn-* covers runbook:cdn-flush
  for (const rules of [
    [{ path: "app/x", capabilities: ["read"] }],
    [{ path: "app/*", capabilities: ["read", "list"] }],
    [{ path: "app/api-*", capabilities: ["list"] }],
    [{ path: "sys:tokens", capabilities: ["read"] }],
    [{ path: "runbook:cdn-flush", capabilities: ["run"] }],
    [],
  ]) {
    const r = await put(rules);
    assert.equal(r.status, 200, `${JSON.stringify(rules)}: ${r.text}`);
  }
  const refused: [unknown, RegExp][] = [
    [[{ path: "app/**", capabilities: ["read"] }], /grant read on app\/\*\*/],
    [[{ path: "app/x", capabilities: ["write"] }], /grant write on app\/x/],
    [[{ path: "app/x/y", capabilities: ["read"] }], /grant read on app\/x\/y/],
    [[{ path: "**", capabilities: ["list"] }], /grant list on \*\*/],
    [[{ path: "other/x", capabilities: ["read"] }], /grant read/],
    [[{ path: "sys:audit", capabilities: ["read"] }], /grant read on sys:audit/],
    [[{ path: "sys:tokens", capabilities: ["delete"] }], /grant delete on sys:tokens/],
    [[{ path: "runbook:*", capabilities: ["run"] }], /grant run on runbook:\*/],
    [[{ path: "runbook:cdn-flush", capabilities: ["approve"] }], /grant approve/],
    [[{ path: "app/x", capabilities: ["read"] }, { path: "app/**", capabilities: ["read"] }], /rule 2/],
  ];
  for (const [rules, message] of refused) {
    const r = await put(rules);
    assert.equal(r.status, 403, `${JSON.stringify(rules)}: ${r.text}`);
    assert.match(r.json.error.message, message);
  }
  // the role is as the last allowed put left it
  assert.deepEqual((await srv.call("GET", "/v1/roles/team", { token: admin })).json.rules, []);
  // a refusal is audited
  const audit = (await srv.call("GET", "/v1/audit", { token: srv.rootToken })).json.records as { action: string; detail: { result: string; widen?: boolean } }[];
  assert.ok(audit.some((r) => r.action === "role.write" && r.detail.result === "denied" && r.detail.widen === true));
});

test("roles: a role put takes effect at once on this instance (a token with it can read), and a delete ends it", async (t) => {
  const srv = await startTestServer(t, ROLES);
  const root = srv.rootToken;
  assert.equal((await srv.call("PUT", "/v1/secrets/app/db", { token: root, body: { value: "s3cret" } })).status, 200);
  assert.equal((await srv.call("PUT", "/v1/roles/dev", { token: root, body: { rules: [{ path: "app/*", capabilities: ["read"] }] } })).status, 200);
  // a token may now name the database role
  const dev = await srv.token(["dev"]);
  const read = await srv.call("GET", "/v1/secrets/app/db", { token: dev });
  assert.equal(read.status, 200, read.text);
  assert.equal(read.json.value, "s3cret");
  assert.equal((await srv.call("GET", "/v1/secrets/other/x", { token: dev })).status, 403);
  await srv.call("DELETE", "/v1/roles/dev", { token: root });
  assert.equal((await srv.call("GET", "/v1/secrets/app/db", { token: dev })).status, 403);
});

test("roles: a list follows a role put at once (the list route never keeps the policy it started with)", async (t) => {
  const srv = await startTestServer(t, ROLES);
  const root = srv.rootToken;
  for (const name of ["app/db", "app/public/banner"]) await srv.call("PUT", `/v1/secrets/${name}`, { token: root, body: { value: "v" } });
  await srv.call("PUT", "/v1/roles/ci", { token: root, body: { rules: [{ path: "app/**", capabilities: ["list"] }] } });
  const ci = await srv.token(["ci"]);
  const names = async () => ((await srv.call("GET", "/v1/secrets", { token: ci })).json.secrets as { name: string }[]).map((x) => x.name);
  assert.deepEqual(await names(), ["app/db", "app/public/banner"]);
  await srv.call("PUT", "/v1/roles/ci", { token: root, body: { rules: [{ path: "app/public/**", capabilities: ["list"] }] } });
  assert.deepEqual(await names(), ["app/public/banner"]);
});

test("roles: every change is audited (role.write with the rules, role.delete), and the chain verifies", async (t) => {
  const srv = await startTestServer(t, ROLES);
  const root = srv.rootToken;
  await srv.call("PUT", "/v1/roles/dev", { token: root, body: { rules: [{ path: "app/*", capabilities: ["read"] }] } });
  await srv.call("DELETE", "/v1/roles/dev", { token: root });
  const records = (await srv.call("GET", "/v1/audit", { token: root })).json.records as { action: string; actor: string; detail: Record<string, unknown> }[];
  const write = records.find((r) => r.action === "role.write");
  assert.ok(write);
  assert.equal(write.detail.result, "ok");
  assert.equal(write.detail.role, "dev");
  assert.deepEqual(write.detail.rules, [{ path: "app/*", capabilities: ["read"] }]);
  assert.equal(typeof write.detail.requestId, "string");
  const del = records.find((r) => r.action === "role.delete");
  assert.equal(del?.detail.role, "dev");
  assert.equal(del?.actor, write.actor);
  assert.equal((await srv.call("GET", "/v1/audit/verify", { token: root })).json.ok, true);
});

test("roles: a role put on one instance takes effect on a second instance (PostgreSQL) within a second or so", async (t) => {
  const { a, b, root } = await startTwoInstances(t, { yaml: ROLES });
  assert.equal((await callAt(a.url, "PUT", "/v1/secrets/app/shared", root, { value: "v" })).status, 200);
  // b has already compiled its policy without "dev"; a token for "dev" is made after the put
  assert.equal((await callAt(b.url, "GET", "/v1/roles/dev", root)).status, 404);
  assert.equal((await callAt(a.url, "PUT", "/v1/roles/dev", root, { rules: [{ path: "app/*", capabilities: ["read"] }] })).status, 200);
  const made = await callAt(a.url, "POST", "/v1/tokens", root, { name: "dev", roles: ["dev"] });
  assert.equal(made.status, 201, made.text);
  const token = made.json.token as string;
  assert.equal((await callAt(a.url, "GET", "/v1/secrets/app/shared", token)).status, 200);
  const seen = async (expected: number): Promise<boolean> => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if ((await callAt(b.url, "GET", "/v1/secrets/app/shared", token)).status === expected) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  };
  assert.ok(await seen(200), "instance b grants the new role");
  assert.equal((await callAt(a.url, "DELETE", "/v1/roles/dev", root)).status, 200);
  assert.ok(await seen(403), "instance b drops the deleted role");
});
