/**
 * ServerRoles (src/server/roles.ts): the config's roles plus the database's in one policy, picked
 * up by the background check without any request, a database role shadowed by a config role or
 * with rules that no longer check ignored, and a database failure keeping the last policy.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseServerConfig } from "../../src/server/config.ts";
import { ServerRoles } from "../../src/server/roles.ts";
import { createSqliteStorage, openSqliteStorage } from "../../src/storage/sqlite-async.ts";
import type { ServerStorage } from "../../src/storage/types.ts";
import { tempDir } from "../helpers.ts";

const CONFIG = parseServerConfig(`roles:\n  reader: [ { path: "app/*", capabilities: [read] } ]\n`, "t.yml", {}, { listen: "127.0.0.1:0" });

async function storage(t: TestContext): Promise<ServerStorage> {
  const path = join(tempDir(t, "coffer-roles-"), "server.db");
  await createSqliteStorage(path);
  const s = await openSqliteStorage(path);
  t.after(() => s.close());
  return s;
}

async function until(check: () => boolean): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

test("ServerRoles: a role written to the database (by another instance) is in force after the background check, without a request", async (t) => {
  const s = await storage(t);
  const roles = await ServerRoles.open(CONFIG, s, { intervalMs: 50 });
  t.after(() => roles.close());
  assert.equal(roles.policy.allows(["reader"], "read", "app/x"), true);
  assert.equal(roles.policy.allows(["dev"], "read", "app/x"), false);
  await s.putRole("dev", [{ path: "app/**", capabilities: ["read"] }], "token:other", null);
  assert.ok(await until(() => roles.policy.allows(["dev"], "read", "app/x/y")), "the new role is picked up");
  assert.deepEqual(roles.storedRoles.map((r) => r.name), ["dev"]);
  await s.deleteRole("dev", "token:other", null);
  assert.ok(await until(() => !roles.policy.allows(["dev"], "read", "app/x/y")), "the deleted role is dropped");
});

test("ServerRoles: a database role with a config role's name, or rules that no longer check, is ignored; the rest are in force", async (t) => {
  const s = await storage(t);
  await s.putRole("reader", [{ path: "**", capabilities: ["read", "write"] }], "token:old", null);
  await s.putRole("broken", [{ path: "sys:gone", capabilities: ["read"] }], "token:old", null);
  await s.putRole("fine", [{ path: "app/x", capabilities: ["read"] }], "token:old", null);
  const roles = await ServerRoles.open(CONFIG, s);
  t.after(() => roles.close());
  assert.equal(roles.policy.allows(["reader"], "write", "app/x"), false, "the config's reader is in force");
  assert.equal(roles.policy.allows(["reader"], "read", "other/x"), false);
  assert.equal(roles.policy.rulesOf("broken"), undefined);
  assert.equal(roles.policy.allows(["fine"], "read", "app/x"), true);
  assert.deepEqual(roles.storedRoles.map((r) => r.name), ["fine"]);
  assert.equal(roles.isConfigManaged("reader"), true);
  assert.equal(roles.isConfigManaged("root"), true);
  assert.equal(roles.isConfigManaged("fine"), false);
});

test("ServerRoles: when the database cannot be read, refresh fails and the last policy stays in force", async (t) => {
  const s = await storage(t);
  await s.putRole("dev", [{ path: "app/*", capabilities: ["read"] }], "token:a", null);
  const roles = await ServerRoles.open(CONFIG, s);
  t.after(() => roles.close());
  await s.close();
  await assert.rejects(roles.refresh(), { code: "E_UNAVAILABLE" });
  assert.equal(roles.policy.allows(["dev"], "read", "app/x"), true);
});
