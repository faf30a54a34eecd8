/**
 * `POST /v1/rollback/{name}` (a new version holding an old one's value, under its own prefix)
 * and the filters of `GET /v1/audit` (subject, action, name prefix) with paging, against the
 * real server.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startTestServer } from "./harness.ts";

test("rollback writes a new version equal to the old one, restores a removed secret, and is audited as secret.rollback", async (t) => {
  const s = await startTestServer(t);
  const deployer = await s.token(["deployer"]);
  for (const value of ["one", "two"]) {
    assert.equal((await s.call("PUT", "/v1/secrets/app/db", { token: deployer, body: { value } })).status, 200);
  }
  const r = await s.call("POST", "/v1/rollback/app/db", { token: deployer, body: { version: 1 } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { name: "app/db", version: 3, from: 1 });
  const read = await s.call("GET", "/v1/secrets/app/db", { token: deployer });
  assert.equal(read.json.value, "one");
  assert.equal(read.json.version, 3);

  assert.equal((await s.call("DELETE", "/v1/secrets/app/db", { token: s.rootToken })).status, 200);
  assert.equal((await s.call("GET", "/v1/secrets/app/db", { token: deployer })).status, 404);
  const back = await s.call("POST", "/v1/rollback/app/db", { token: deployer, body: { version: 2 } });
  assert.equal(back.status, 200, back.text);
  assert.equal((await s.call("GET", "/v1/secrets/app/db", { token: deployer })).json.value, "two");

  const log = await s.call("GET", "/v1/audit?action=secret.rollback", { token: s.rootToken });
  assert.deepEqual(log.json.records.map((x: { name: string; version: number; detail: { from: number; result: string } }) =>
    [x.name, x.version, x.detail.from, x.detail.result]), [["app/db", 3, 1, "ok"], ["app/db", 4, 2, "ok"]]);
  assert.ok(!JSON.stringify(log.json).includes("\"one\"") && !JSON.stringify(log.json).includes("\"two\""), "no value in the audit log");
});

test("rollback without write is refused (403) and audited as denied, whether or not the secret exists", async (t) => {
  const s = await startTestServer(t);
  const reader = await s.token(["reader"]);
  assert.equal((await s.call("PUT", "/v1/secrets/app/db", { token: s.rootToken, body: { value: "x" } })).status, 200);
  for (const name of ["app/db", "app/nothing"]) {
    const r = await s.call("POST", `/v1/rollback/${name}`, { token: reader, body: { version: 1 } });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.error.code, "E_DENIED");
  }
  const denied = await s.call("GET", "/v1/audit?action=secret.rollback", { token: s.rootToken });
  assert.deepEqual(denied.json.records.map((x: { detail: { result: string } }) => x.detail.result), ["denied", "denied"]);
  assert.equal((await s.call("POST", "/v1/rollback/app/db", { body: { version: 1 } })).status, 401);
});

test("rollback to a version or secret that does not exist is 404, and writes nothing", async (t) => {
  const s = await startTestServer(t);
  const deployer = await s.token(["deployer"]);
  assert.equal((await s.call("PUT", "/v1/secrets/app/db", { token: deployer, body: { value: "x" } })).status, 200);
  for (const [name, version] of [["app/db", 2], ["app/none", 1]] as const) {
    const r = await s.call("POST", `/v1/rollback/${name}`, { token: deployer, body: { version } });
    assert.equal(r.status, 404, r.text);
    assert.equal(r.json.error.code, "E_NOT_FOUND");
  }
  assert.equal((await s.call("GET", "/v1/secrets/app/db/versions", { token: deployer })).json.versions.length, 1);
});

test("rollback refuses bad bodies and names slipped past the name rule (percent-encoding, .., a versions suffix)", async (t) => {
  const s = await startTestServer(t);
  const token = s.rootToken;
  for (const body of [{}, { version: 0 }, { version: "1" }, { version: 1, extra: true }]) {
    assert.equal((await s.call("POST", "/v1/rollback/app/db", { token, body })).status, 400, JSON.stringify(body));
  }
  for (const path of ["/v1/rollback/app%2Fdb", "/v1/rollback/app/../db", "/v1/rollback/app/db/versions", "/v1/rollback/"]) {
    const r = await s.call("POST", path, { token, body: { version: 1 } });
    assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
    assert.notEqual(r.status, 200);
  }
});

test("a rollback racing a write: both land as versions, none lost (no conflict is invented)", async (t) => {
  const s = await startTestServer(t);
  const token = s.rootToken;
  assert.equal((await s.call("PUT", "/v1/secrets/app/db", { token, body: { value: "v1" } })).status, 200);
  const [a, b] = await Promise.all([
    s.call("POST", "/v1/rollback/app/db", { token, body: { version: 1 } }),
    s.call("PUT", "/v1/secrets/app/db", { token, body: { value: "v-new", ifVersion: 1 } }),
  ]);
  assert.equal(a.status, 200, a.text);
  // The write's check-and-set sees the rollback when it came first: then it is a 409 conflict.
  assert.ok(b.status === 200 || b.status === 409, b.text);
  const versions = (await s.call("GET", "/v1/secrets/app/db/versions", { token })).json.versions;
  assert.equal(versions.length, b.status === 200 ? 3 : 2);
});

test("GET /v1/audit filters by subject, action and name prefix, and pages through the matches with after/limit", async (t) => {
  const s = await startTestServer(t);
  const deployer = await s.token(["deployer"], "dep");
  const auditor = await s.token(["auditor"], "aud");
  const reader = await s.token(["reader"], "rdr");
  const depSubject = (await s.call("GET", "/v1/auth/self", { token: deployer })).json.subject;
  for (const n of ["app/a", "app/b", "app/c", "app2/x"]) {
    assert.equal((await s.call("PUT", `/v1/secrets/${n}`, { token: n.startsWith("app2") ? s.rootToken : deployer, body: { value: "v" } })).status, 200);
  }
  await s.call("GET", "/v1/secrets/app/a", { token: reader });

  const q = async (query: string) => {
    const r = await s.call("GET", `/v1/audit?${query}`, { token: auditor });
    assert.equal(r.status, 200, r.text);
    return r.json.records as { seq: number; actor: string; action: string; name: string | null }[];
  };
  const writes = await q("action=secret.write");
  assert.deepEqual(writes.map((r) => r.name), ["app/a", "app/b", "app/c", "app2/x"]);
  const byDeployer = await q(`subject=${encodeURIComponent(depSubject)}`);
  assert.ok(byDeployer.length === 3 && byDeployer.every((r) => r.actor === depSubject));
  // "app/" is a name prefix, not a string prefix of "app2/x".
  assert.deepEqual((await q("prefix=app/&action=secret.write")).map((r) => r.name), ["app/a", "app/b", "app/c"]);
  assert.deepEqual((await q("prefix=app/&action=secret.read")).map((r) => r.name), ["app/a"]);

  // Paging: limit 2, then after the last seq, gives the same matches as one page.
  const first = await q("action=secret.write&limit=2");
  const rest = await q(`action=secret.write&limit=2&after=${first[first.length - 1]!.seq}`);
  assert.deepEqual([...first, ...rest].map((r) => r.name), writes.map((r) => r.name));
  assert.equal((await q(`action=secret.write&after=${rest[rest.length - 1]!.seq}`)).length, 0);

  // Newest first (the console's audit page): before=SEQ pages backwards through the same matches.
  const newest = await q("action=secret.write&limit=3&before=999999999999999");
  assert.deepEqual(newest.map((r) => r.name), ["app2/x", "app/c", "app/b"]);
  const older = await q(`action=secret.write&limit=3&before=${newest.at(-1)!.seq}`);
  assert.deepEqual(older.map((r) => r.name), ["app/a"]);

  // The read of the log records its filters.
  const reads = await q("action=audit.read&prefix=app/");
  assert.equal(reads.length, 0, "audit.read records have no name");
  const own = (await q("action=audit.read")).at(-1) as unknown as { detail: Record<string, unknown> };
  assert.equal(own.detail.action, "audit.read");
});

test("GET /v1/audit refuses malformed filters (400) and still needs read on sys:audit (403)", async (t) => {
  const s = await startTestServer(t);
  const reader = await s.token(["reader"]);
  for (const query of ["action=", "action=Secret.Read", "prefix=a%20b", "subject=a%20b", "prefix=", "colour=red", "before=0", "before=-1", `prefix=${"a".repeat(257)}`]) {
    const r = await s.call("GET", `/v1/audit?${query}`, { token: s.rootToken });
    assert.equal(r.status, 400, `${query}: ${r.text}`);
  }
  assert.equal((await s.call("GET", "/v1/audit?action=secret.write", { token: reader })).status, 403);
});
