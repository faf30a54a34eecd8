/**
 * Real Vault clients against `coffer serve`'s Vault KV v2-compatible API (docs/design.md §13):
 * `node-vault` (npm, axios, one kept-alive socket) and Python's `hvac` (Debian's python3-hvac,
 * requests: LIST on its pooled connection). Each result is checked, soft delete, undelete and
 * destroy of versions included.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent } from "node:http";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import vaultClient from "node-vault";
import { startTestServer, TEST_ROLES } from "./harness.ts";

const VAULT = `${TEST_ROLES}\nvault: { mount: secret }\n`;

test("node-vault: write, read, an older version, CAS conflict, list (LIST on a kept-alive socket), metadata, soft delete, undelete, destroy, lookup-self, health, metadata delete", async (t) => {
  const s = await startTestServer(t, VAULT);
  // One socket for every request: a GET, then a LIST, on one kept-alive connection.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const v = vaultClient({ apiVersion: "v1", endpoint: s.url, token: s.rootToken, requestOptions: { httpAgent: agent } });

  const w1 = await v.write("secret/data/app/db", { data: { user: "app", password: "p1" } });
  assert.equal(w1.data.version, 1);
  const w2 = await v.write("secret/data/app/db", { options: { cas: 1 }, data: { user: "app", password: "p2" } });
  assert.equal(w2.data.version, 2);
  await v.write("secret/data/app/sub/x", { data: { a: "b" } });

  const r = await v.read("secret/data/app/db");
  assert.deepEqual(r.data.data, { user: "app", password: "p2" });
  assert.equal(r.data.metadata.version, 2);
  const old = await v.read("secret/data/app/db?version=1");
  assert.deepEqual(old.data.data, { user: "app", password: "p1" });

  await assert.rejects(v.write("secret/data/app/db", { options: { cas: 1 }, data: { user: "x" } }), (err: { response?: { statusCode: number; body: unknown } }) => {
    assert.equal(err.response?.statusCode, 400);
    assert.deepEqual(err.response?.body, { errors: ["check-and-set parameter did not match the current version"] });
    return true;
  });

  const listed = await v.list("secret/metadata/app");
  assert.deepEqual(listed.data.keys, ["db", "sub/"]);
  const root = await v.list("secret/metadata/");
  assert.deepEqual(root.data.keys, ["app/"]);

  const meta = await v.read("secret/metadata/app/db");
  assert.equal(meta.data.current_version, 2);
  assert.deepEqual(Object.keys(meta.data.versions), ["1", "2"]);

  // Soft delete the latest, undelete it, destroy the first.
  await v.delete("secret/data/app/db");
  await assert.rejects(v.read("secret/data/app/db"), (err: { response?: { statusCode: number } }) => err.response?.statusCode === 404);
  await v.write("secret/undelete/app/db", { versions: [2] });
  assert.deepEqual((await v.read("secret/data/app/db")).data.data, { user: "app", password: "p2" });
  await v.write("secret/destroy/app/db", { versions: [1] });
  const after = await v.read("secret/metadata/app/db");
  assert.equal(after.data.versions["1"].destroyed, true);
  assert.equal(after.data.versions["2"].deletion_time, "");
  await assert.rejects(v.read("secret/data/app/db?version=1"), (err: { response?: { statusCode: number } }) => err.response?.statusCode === 404);

  const me = await v.tokenLookupSelf();
  assert.deepEqual(me.data.policies, ["root"]);
  assert.equal(me.data.display_name, "token-root");
  assert.ok(!JSON.stringify(me).includes(s.rootToken));

  const health = await v.health();
  assert.equal(health.initialized, true);
  assert.equal(health.sealed, false);

  await v.delete("secret/metadata/app/sub/x");
  await assert.rejects(v.read("secret/data/app/sub/x"), (err: { response?: { statusCode: number } }) => err.response?.statusCode === 404);

  // a token whose role reads app/* only: Vault's 403 for ops/x
  await v.write("secret/data/ops/x", { data: { k: "v" } });
  const reader = vaultClient({ apiVersion: "v1", endpoint: s.url, token: await s.token(["reader"]), requestOptions: { httpAgent: agent } });
  assert.deepEqual((await reader.read("secret/data/app/db")).data.data.password, "p2");
  await assert.rejects(reader.read("secret/data/ops/x"), (err: { response?: { statusCode: number; body: unknown } }) => {
    assert.equal(err.response?.statusCode, 403);
    assert.deepEqual(err.response?.body, { errors: ["permission denied"] });
    return true;
  });
});

/** Debian's python3-hvac is installed for /usr/bin/python3 (not a pyenv python first on PATH). */
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

const HVAC_SCRIPT = String.raw`
import json, os, sys, hvac
c = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
kv = c.secrets.kv.v2
out = {}
out["authenticated"] = c.is_authenticated()
out["w1"] = kv.create_or_update_secret(path="app/db", secret={"user": "app", "password": "p1"})["data"]["version"]
out["w2"] = kv.create_or_update_secret(path="app/db", secret={"user": "app", "password": "p2"}, cas=1)["data"]["version"]
try:
    kv.create_or_update_secret(path="app/db", secret={"user": "x"}, cas=1)
    out["cas"] = "accepted"
except hvac.exceptions.InvalidRequest as e:
    out["cas"] = str(e)
out["read"] = kv.read_secret_version(path="app/db")["data"]["data"]
out["v1"] = kv.read_secret_version(path="app/db", version=1)["data"]["data"]
out["patch"] = kv.patch(path="app/db", secret={"password": "p3"})["data"]["version"]
out["patched"] = kv.read_secret_version(path="app/db")["data"]["data"]
kv.create_or_update_secret(path="app/sub/x", secret={"a": "b"})
out["list"] = kv.list_secrets(path="app")["data"]["keys"]
meta = kv.read_secret_metadata(path="app/db")["data"]
out["meta"] = {"current_version": meta["current_version"], "versions": sorted(meta["versions"].keys())}
kv.delete_latest_version_of_secret(path="app/db")
try:
    kv.read_secret_version(path="app/db")
    out["soft"] = "readable"
except hvac.exceptions.InvalidPath:
    out["soft"] = "404"
kv.undelete_secret_versions(path="app/db", versions=[3])
out["undeleted"] = kv.read_secret_version(path="app/db")["data"]["data"]
kv.delete_secret_versions(path="app/db", versions=[2])
kv.destroy_secret_versions(path="app/db", versions=[1])
vs = kv.read_secret_metadata(path="app/db")["data"]["versions"]
out["states"] = {k: {"deleted": v["deletion_time"] != "", "destroyed": v["destroyed"]} for k, v in vs.items()}
me = c.auth.token.lookup_self()["data"]
out["me"] = {"policies": me["policies"], "display_name": me["display_name"], "has_id": "id" in me}
out["health"] = c.sys.read_health_status(method="GET")
kv.delete_metadata_and_all_versions(path="app/sub/x")
try:
    kv.read_secret_version(path="app/sub/x")
    out["gone"] = False
except hvac.exceptions.InvalidPath:
    out["gone"] = True
try:
    hvac.Client(url=os.environ["VAULT_ADDR"], token="cof_wrong").secrets.kv.v2.read_secret_version(path="app/db")
    out["bad_token"] = "accepted"
except hvac.exceptions.Forbidden as e:
    out["bad_token"] = str(e)
print(json.dumps(out))
`;

test("hvac (python3-hvac): write, CAS conflict, read, an older version, patch, list (LIST), metadata, soft delete, undelete, delete and destroy of versions, lookup-self, health, metadata delete, a bad token", async (t) => {
  const s = await startTestServer(t, VAULT);
  const out = await new Promise<string>((resolve, reject) => {
    execFile(PYTHON, ["-c", HVAC_SCRIPT], { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", VAULT_ADDR: s.url, VAULT_TOKEN: s.rootToken }, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`hvac script failed: ${stderr}`));
      else resolve(stdout);
    });
  });
  const r = JSON.parse(out) as Record<string, any>;
  assert.equal(r["authenticated"], true);
  assert.equal(r["w1"], 1);
  assert.equal(r["w2"], 2);
  assert.match(r["cas"], /check-and-set parameter did not match the current version/);
  assert.deepEqual(r["read"], { user: "app", password: "p2" });
  assert.deepEqual(r["v1"], { user: "app", password: "p1" });
  assert.equal(r["patch"], 3);
  assert.deepEqual(r["patched"], { user: "app", password: "p3" });
  assert.deepEqual(r["list"], ["db", "sub/"]);
  assert.deepEqual(r["meta"], { current_version: 3, versions: ["1", "2", "3"] });
  assert.equal(r["soft"], "404");
  assert.deepEqual(r["undeleted"], { user: "app", password: "p3" });
  assert.deepEqual(r["states"], { "1": { deleted: false, destroyed: true }, "2": { deleted: true, destroyed: false }, "3": { deleted: false, destroyed: false } });
  assert.deepEqual(r["me"], { policies: ["root"], display_name: "token-root", has_id: false });
  assert.equal(r["health"].initialized, true);
  assert.equal(r["health"].sealed, false);
  assert.equal(r["gone"], true);
  assert.match(r["bad_token"], /permission denied/);
});
