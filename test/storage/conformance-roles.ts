/**
 * The conformance cases of roles kept in the database (issue 14) on the storage seam: both server
 * drivers create, replace (version + 1), list, read and delete roles alike, bump the roles version
 * on each change (and only then), and append exactly one audit record per change in the same
 * transaction. Registered by `storageConformance` for drivers with the server's tables.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import type { ServerStorage } from "../../src/storage/types.ts";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * Registers the role cases (inside the driver's `describe`).
 * @param reopen - closes and reopens the same database, when the driver can
 */
export function roleConformance(
  factory: (t: TestContext) => Promise<ServerStorage>,
  reopen?: (t: TestContext, storage: ServerStorage) => Promise<ServerStorage>,
): void {
  test("roles: put creates at version 1, put again replaces the rules at version 2; list by name; get; unknown is undefined", async (t) => {
    const s = await factory(t);
    assert.equal(await s.rolesVersion(), 0);
    assert.deepEqual(await s.listRoles(), []);
    assert.equal(await s.getRole("dev"), undefined);

    const created = await s.putRole("dev", [{ path: "app/**", capabilities: ["read", "list"] }], "token:alice", { requestId: "r1" });
    assert.equal(created.name, "dev");
    assert.equal(created.version, 1);
    assert.equal(created.updatedBy, "token:alice");
    assert.match(created.updatedAt, ISO);
    assert.deepEqual(created.rules, [{ path: "app/**", capabilities: ["read", "list"] }]);
    const v1 = await s.rolesVersion();
    assert.ok(v1 > 0);

    const replaced = await s.putRole("dev", [{ path: "sys:tokens", capabilities: ["read"] }, { path: "runbook:*", capabilities: ["run"] }], "jwt:bob", null);
    assert.equal(replaced.version, 2);
    assert.equal(replaced.updatedBy, "jwt:bob");
    assert.deepEqual(replaced.rules, [{ path: "sys:tokens", capabilities: ["read"] }, { path: "runbook:*", capabilities: ["run"] }]);
    assert.ok((await s.rolesVersion()) > v1);
    await s.putRole("a-ops", [], "jwt:bob", null);

    assert.deepEqual((await s.listRoles()).map((r) => [r.name, r.version]), [["a-ops", 1], ["dev", 2]]);
    assert.deepEqual(await s.getRole("dev"), replaced);
    assert.equal(await s.getRole("DEV"), undefined);
  });

  test("roles: delete removes the role and bumps the version; deleting an unknown role changes nothing and audits nothing", async (t) => {
    const s = await factory(t);
    await s.putRole("dev", [{ path: "app/*", capabilities: ["read"] }], "token:alice", null);
    const before = await s.rolesVersion();
    const seq = (await s.auditLog()).at(-1)!.seq;
    assert.equal(await s.deleteRole("nope", "token:alice", null), false);
    assert.equal(await s.rolesVersion(), before);
    assert.equal((await s.auditLog()).at(-1)!.seq, seq);

    assert.equal(await s.deleteRole("dev", "token:alice", { requestId: "r2" }), true);
    assert.equal(await s.getRole("dev"), undefined);
    assert.ok((await s.rolesVersion()) > before);
    // a role made again starts over at version 1
    assert.equal((await s.putRole("dev", [], "token:alice", null)).version, 1);
  });

  test("roles: each change appends exactly one audit record (role.write, role.delete) with the role, and the chain verifies", async (t) => {
    const s = await factory(t);
    await s.putRole("dev", [{ path: "app/**", capabilities: ["read"] }], "token:alice", { requestId: "r1", result: "ok" });
    await s.deleteRole("dev", "jwt:bob", { requestId: "r2", result: "ok" });
    const log = (await s.auditLog()).map(({ actor, action, name, version, detail }) => ({ actor, action, name, version, detail }));
    assert.deepEqual(log, [
      { actor: "token:alice", action: "role.write", name: null, version: null, detail: { requestId: "r1", result: "ok", role: "dev", version: 1, rules: [{ path: "app/**", capabilities: ["read"] }] } },
      { actor: "jwt:bob", action: "role.delete", name: null, version: null, detail: { requestId: "r2", result: "ok", role: "dev" } },
    ]);
    assert.equal((await s.verifyAudit()).ok, true);
  });

  test("roles: malformed arguments are TypeErrors, before anything is written", async (t) => {
    const s = await factory(t);
    await assert.rejects(s.putRole("", [], "a", null), TypeError);
    await assert.rejects(s.putRole("dev", [], "", null), TypeError);
    await assert.rejects(s.putRole("dev", [{ path: 1 } as never], "a", null), TypeError);
    await assert.rejects(s.putRole("dev", "x" as never, "a", null), TypeError);
    await assert.rejects(s.deleteRole("dev", "", null), TypeError);
    assert.deepEqual(await s.listRoles(), []);
    assert.equal(await s.rolesVersion(), 0);
  });

  test("roles: concurrent puts of one role each count (versions 1..n, no lost update)", async (t) => {
    const s = await factory(t);
    const n = 8;
    await Promise.all(Array.from({ length: n }, (_, i) => s.putRole("dev", [{ path: `app/x${i}`, capabilities: ["read"] }], "token:alice", null)));
    assert.equal((await s.getRole("dev"))!.version, n);
    assert.equal((await s.auditLog()).filter((r) => r.action === "role.write").length, n);
  });

  if (reopen !== undefined) {
    test("roles: kept across a reopen, with their version and the roles version", async (t) => {
      let s = await factory(t);
      const role = await s.putRole("dev", [{ path: "app/**", capabilities: ["read", "list"] }], "token:alice", null);
      const version = await s.rolesVersion();
      s = await reopen(t, s);
      assert.deepEqual(await s.getRole("dev"), role);
      assert.equal(await s.rolesVersion(), version);
    });
  }
}
