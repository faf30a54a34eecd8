/**
 * client/admin.ts with a fake fetch: the audit log pages through `after` until a short page,
 * answers of the wrong shape are E_PROVIDER naming the field, and a bad token id never leaves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CofferClient } from "../../src/client/client.ts";
import { AUDIT_PAGE_MAX, ServerAdmin } from "../../src/client/admin.ts";

const URL_ = "http://127.0.0.1:8200";

function fake(answer: (url: URL, init: RequestInit) => unknown): { admin: ServerAdmin; seen: URL[] } {
  const seen: URL[] = [];
  const fetchFn = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(String(input));
    seen.push(url);
    return new Response(JSON.stringify(answer(url, init)), { status: 200, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  return { admin: new ServerAdmin(new CofferClient({ url: URL_, token: "cof_test", fetch: fetchFn })), seen };
}

const record = (seq: number) => ({ seq, at: "2026-01-01T00:00:00.000Z", actor: "token:a", action: "secret.read", name: "app/x", version: 1, detail: null, hash: "00" });

test("auditLogAll pages with after = the last seq until a short page, passing the filters on each", async () => {
  const total = AUDIT_PAGE_MAX * 2 + 5;
  const { admin, seen } = fake((url) => {
    const after = Number(url.searchParams.get("after") ?? 0);
    const limit = Number(url.searchParams.get("limit"));
    const records = [];
    for (let s = after + 1; s <= Math.min(total, after + limit); s++) records.push(record(s));
    return { records };
  });
  const all = await admin.auditLogAll({ action: "secret.read", prefix: "app/", subject: "token:a", since: "2026-01-01T00:00:00.000Z" });
  assert.equal(all.length, total);
  assert.deepEqual(all.map((r) => r.seq), Array.from({ length: total }, (_, i) => i + 1));
  assert.equal(seen.length, 3);
  for (const u of seen) {
    assert.equal(u.pathname, "/v1/audit");
    assert.deepEqual([u.searchParams.get("action"), u.searchParams.get("prefix"), u.searchParams.get("subject")], ["secret.read", "app/", "token:a"]);
  }
  assert.deepEqual(seen.map((u) => u.searchParams.get("after")), [null, String(AUDIT_PAGE_MAX), String(AUDIT_PAGE_MAX * 2)]);
});

test("an answer of the wrong shape is E_PROVIDER naming the field, never a TypeError later", async () => {
  const cases: [(a: ServerAdmin) => Promise<unknown>, unknown, string][] = [
    [(a) => a.auditLog(), { records: [{ ...record(1), seq: "1" }] }, "seq"],
    [(a) => a.auditLog(), { records: [{ ...record(1), detail: [] }] }, "detail"],
    [(a) => a.auditLog(), {}, "records"],
    [(a) => a.listTokens(), { tokens: [{ id: "0123456789abcdef", name: "n", roles: "r", createdAt: "x", createdBy: "y", expiresAt: null, revokedAt: null }] }, "roles"],
    [(a) => a.listTokens(), { tokens: [{ id: "0123456789abcdef", name: "n", roles: [], createdAt: "x", createdBy: "y", expiresAt: 5, revokedAt: null }] }, "expiresAt"],
    [(a) => a.createToken({ name: "n", roles: ["r"] }), { id: "0123456789abcdef", name: "n", roles: ["r"], expiresAt: null }, "token"],
    [(a) => a.verifyAudit(), { records: 3 }, "ok"],
    [(a) => a.revokeToken("0123456789abcdef"), { id: "0123456789abcdef" }, "revoked"],
  ];
  for (const [call, answer, name] of cases) {
    const { admin } = fake(() => answer);
    await assert.rejects(call(admin), (err: Error & { code?: string }) => {
      assert.equal(err.code, "E_PROVIDER");
      assert.match(err.message, new RegExp(`without a usable "${name}"`));
      return true;
    });
  }
});

test("revokeToken refuses an id that is not 16 hex digits before any request (no path tricks)", async () => {
  const { admin, seen } = fake(() => ({ id: "x", revoked: true }));
  for (const id of ["../secrets/app/x", "0123456789ABCDEF", "", "0123456789abcdef0"]) {
    await assert.rejects(admin.revokeToken(id), { code: "E_USAGE" });
  }
  assert.equal(seen.length, 0);
});

test("createToken sends name, roles and ttl, and gives back the token once with what it is", async () => {
  let body: unknown;
  const { admin, seen } = fake((_u, init) => {
    body = JSON.parse(String(init.body));
    return { token: "cof_new", id: "0123456789abcdef", name: "ci", roles: ["ci"], expiresAt: "2026-02-01T00:00:00.000Z" };
  });
  const t = await admin.createToken({ name: "ci", roles: ["ci"], ttl: "30d" });
  assert.deepEqual(body, { name: "ci", roles: ["ci"], ttl: "30d" });
  assert.equal(seen[0]!.pathname, "/v1/tokens");
  assert.deepEqual(t, { token: "cof_new", id: "0123456789abcdef", name: "ci", roles: ["ci"], expiresAt: "2026-02-01T00:00:00.000Z" });
});
