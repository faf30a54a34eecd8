/**
 * Rotation on the team server (docs/design.md §12), SQLite, with fake apply targets: the
 * scheduler rotates on time, a write during a held rotation is refused, a failing target stores
 * nothing and is recorded, policies are checked, and revoking a leaver rotates what it read.
 * Waits are generous deadlines, never tight clocks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "../helpers.ts";
import type { ApplyContext, ApplyTarget } from "../../src/rotation/apply.ts";
import { CofferError } from "../../src/errors.ts";
import { retryAt } from "../../src/rotation/engine.ts";
import { startTestServer, TEST_ROLES, type TestServer } from "./harness.ts";

// polls are many: the rate limits are out of the way
const ROLES = `${TEST_ROLES}  rotator: [ { path: "app/**", capabilities: [read, list, write, rotate] } ]\nrateLimit: { requests: 1000000, window: 1m, ipRequests: 10000000 }\n`;

/** Fake targets, chosen by the postgres apply's role: `ok`, `fail`, `hold` (waits for release()). */
function fakeTargets() {
  const applied: { name: string; value: string; old: string | undefined }[] = [];
  let release: () => void = () => {};
  let entered: () => void = () => {};
  let holding = new Promise<void>((r) => (release = r));
  let inside = new Promise<void>((r) => (entered = r));
  const targets = (apply: NonNullable<unknown>): ApplyTarget => {
    const role = (apply as { postgres: { role: string } }).postgres.role;
    return {
      label: `fake:${role}`,
      idempotent: true,
      async apply(ctx: ApplyContext) {
        if (role === "fail") throw new CofferError("E_ROTATION", "fake target refused the new value");
        if (role === "hold") {
          entered();
          await holding;
        }
        applied.push({ name: ctx.name, value: ctx.newValue.toString("utf8"), old: ctx.oldValue?.toString("utf8") });
      },
    };
  };
  return {
    targets, applied,
    release: () => release(),
    inside: () => inside,
    reset: () => {
      holding = new Promise<void>((r) => (release = r));
      inside = new Promise<void>((r) => (entered = r));
    },
  };
}

async function start(t: Parameters<typeof startTestServer>[0], fake = fakeTargets()): Promise<{ s: TestServer; fake: ReturnType<typeof fakeTargets> }> {
  const s = await startTestServer(t, ROLES, {}, { rotation: { targets: fake.targets, pollMs: 500, leaseMs: 5_000 } });
  return { s, fake };
}

const versionOf = async (s: TestServer, name: string): Promise<number> => {
  const r = await s.call("GET", `/v1/secrets/${name}`, { token: s.rootToken });
  return r.status === 200 ? r.json.version as number : 0;
};

test("rotation: a secret with every: 3s gets a new version within 10 s, and again after; values differ and match the generator", { timeout: 60_000 }, async (t) => {
  const { s } = await start(t);
  const put = await s.call("PUT", "/v1/rotation/app/tick", { token: s.rootToken, body: { every: "3s", generate: { charset: "alnum", length: 24 } } });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.every, "3s");
  assert.equal(put.json.state, "ok");
  await waitFor("version 1", 10_000, async () => ((await versionOf(s, "app/tick")) >= 1 ? true : undefined));
  await waitFor("version 2", 15_000, async () => ((await versionOf(s, "app/tick")) >= 2 ? true : undefined));
  const v1 = await s.call("GET", "/v1/secrets/app/tick?version=1", { token: s.rootToken });
  const v2 = await s.call("GET", "/v1/secrets/app/tick?version=2", { token: s.rootToken });
  assert.match(v1.json.value, /^[A-Za-z0-9]{24}$/);
  assert.match(v2.json.value, /^[A-Za-z0-9]{24}$/);
  assert.notEqual(v1.json.value, v2.json.value);
  const view = await s.call("GET", "/v1/rotation/app/tick", { token: s.rootToken });
  assert.equal(view.json.state, "ok");
  assert.notEqual(view.json.lastRotatedAt, null);
  // audited as secret.rotate, with no value
  const audit = await s.call("GET", "/v1/audit?action=secret.rotate", { token: s.rootToken });
  assert.ok(audit.status === 200, audit.text);
  assert.ok(!audit.text.includes(v1.json.value) && !audit.text.includes(v2.json.value));
  // health says only ok or overdue
  const health = await s.call("GET", "/v1/sys/health");
  assert.equal(health.json.rotation, "ok");
});

test("rotation: a write, delete or purge while a rotation holds the secret gets 409; the applied value is stored after", { timeout: 60_000 }, async (t) => {
  const { s, fake } = await start(t);
  assert.equal((await s.call("PUT", "/v1/secrets/app/held", { token: s.rootToken, body: { value: "before" } })).status, 200);
  const policy = { generate: { charset: "hex", length: 40 }, apply: { postgres: { connection: "app/admin", role: "hold" } } };
  assert.equal((await s.call("PUT", "/v1/rotation/app/held", { token: s.rootToken, body: policy })).status, 200);
  const rotating = s.call("POST", "/v1/rotation/app/held", { token: s.rootToken });
  await fake.inside();
  const put = await s.call("PUT", "/v1/secrets/app/held", { token: s.rootToken, body: { value: "overwrite" } });
  assert.equal(put.status, 409);
  assert.equal(put.json.error.code, "E_CONFLICT");
  assert.equal(put.json.error.message, "secret app/held: rotation in progress; retry when it ends");
  assert.equal((await s.call("DELETE", "/v1/secrets/app/held", { token: s.rootToken })).status, 409);
  assert.equal((await s.call("POST", "/v1/rollback/app/held", { token: s.rootToken, body: { version: 1 } })).status, 409);
  assert.equal((await s.call("POST", "/v1/purge/app/held", { token: s.rootToken })).status, 409);
  assert.equal((await s.call("POST", "/v1/rotation/app/held", { token: s.rootToken })).status, 409);
  assert.equal((await s.call("DELETE", "/v1/rotation/app/held", { token: s.rootToken })).status, 409);
  assert.equal((await s.call("GET", "/v1/rotation/app/held", { token: s.rootToken })).json.state, "rotating");
  fake.release();
  const done = await rotating;
  assert.equal(done.status, 200, done.text);
  assert.equal(done.json.version, 2);
  const now = await s.call("GET", "/v1/secrets/app/held", { token: s.rootToken });
  assert.equal(now.json.value, fake.applied[0]!.value);
  assert.equal(fake.applied[0]!.old, "before");
  assert.match(now.json.value, /^[0-9a-f]{40}$/);
  assert.equal((await s.call("PUT", "/v1/secrets/app/held", { token: s.rootToken, body: { value: "after" } })).status, 200);
  // a purge, once the rotation ended, takes the policy with it: no schedule brings the name back
  assert.equal((await s.call("POST", "/v1/purge/app/held", { token: s.rootToken })).status, 200);
  assert.equal((await s.call("GET", "/v1/rotation/app/held", { token: s.rootToken })).status, 404);
});

test("rotation: a failing target leaves the version unchanged, counts the failure, shows lastError; the next success clears it", { timeout: 60_000 }, async (t) => {
  const { s } = await start(t);
  assert.equal((await s.call("PUT", "/v1/secrets/app/db", { token: s.rootToken, body: { value: "v1" } })).status, 200);
  const failing = { generate: { charset: "base64", length: 32 }, apply: { postgres: { connection: "app/admin", role: "fail" } } };
  assert.equal((await s.call("PUT", "/v1/rotation/app/db", { token: s.rootToken, body: failing })).status, 200);
  const r = await s.call("POST", "/v1/rotation/app/db", { token: s.rootToken });
  assert.equal(r.status, 502);
  assert.equal(r.json.error.code, "E_ROTATION");
  assert.match(r.json.error.message, /fake target refused the new value/);
  assert.equal(await versionOf(s, "app/db"), 1);
  const view = await s.call("GET", "/v1/rotation/app/db", { token: s.rootToken });
  assert.equal(view.json.state, "failing");
  assert.equal(view.json.failures, 1);
  assert.match(view.json.lastError, /fake target refused/);
  const metrics = await s.call("GET", "/metrics", { token: s.rootToken });
  assert.match(metrics.text, /coffer_rotation_failures_total\{state="failing"\} 1/);
  const failed = await s.call("GET", "/v1/audit?action=secret.rotate", { token: s.rootToken });
  assert.ok(failed.json.records.some((x: { detail: { result: string } }) => x.detail.result === "failed"), failed.text);
  // the next success clears it
  const ok = { generate: { charset: "base64", length: 32 }, apply: { postgres: { connection: "app/admin", role: "ok" } } };
  assert.equal((await s.call("PUT", "/v1/rotation/app/db", { token: s.rootToken, body: ok })).status, 200);
  const r2 = await s.call("POST", "/v1/rotation/app/db", { token: s.rootToken });
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.json.version, 2);
  const after = await s.call("GET", "/v1/rotation/app/db", { token: s.rootToken });
  assert.equal(after.json.state, "ok");
  assert.equal(after.json.lastError, null);
  assert.equal(after.json.failures, 0);
  assert.match((await s.call("GET", "/metrics", { token: s.rootToken })).text, /coffer_rotations_total 1/);
});

test("rotation: retries back off from 30 s, doubling, capped at the period and at an hour", () => {
  const at = (failures: number, every: number | null): number => Date.parse(retryAt(0, failures, every));
  assert.equal(at(1, null), 30_000);
  assert.equal(at(2, null), 60_000);
  assert.equal(at(10, null), 3_600_000);
  assert.equal(at(3, 3_000), 3_000);
});

test("rotation: policies need rotate (list to read them), and bodies are checked strictly", { timeout: 60_000 }, async (t) => {
  const { s } = await start(t);
  const reader = await s.token(["reader"]);
  const rotator = await s.token(["rotator"]);
  const body = { every: "30d", generate: { charset: "words", length: 6 } };
  const denied = await s.call("PUT", "/v1/rotation/app/x", { token: reader, body });
  assert.equal(denied.status, 403);
  assert.equal((await s.call("PUT", "/v1/rotation/app/x", { token: rotator, body })).status, 200);
  assert.equal((await s.call("GET", "/v1/rotation/app/x", { token: reader })).status, 200);
  assert.equal((await s.call("POST", "/v1/rotation/app/x", { token: reader })).status, 403);
  assert.equal((await s.call("DELETE", "/v1/rotation/app/x", { token: reader })).status, 403);
  assert.equal((await s.call("GET", "/v1/rotation/other/x", { token: reader })).status, 403);
  const list = await s.call("GET", "/v1/rotation", { token: reader });
  assert.deepEqual(list.json.rotations.map((r: { name: string }) => r.name), ["app/x"]);
  assert.equal(list.json.rotations[0].due, false);
  assert.deepEqual((await s.call("GET", "/v1/rotation?due=true", { token: reader })).json.rotations, []);
  const rotated = await s.call("POST", "/v1/rotation/app/x", { token: rotator });
  assert.equal(rotated.status, 200, rotated.text);
  const words = (await s.call("GET", "/v1/secrets/app/x", { token: rotator })).json.value as string;
  assert.equal(words.split("-").length, 6);
  for (const bad of [
    { every: "3x", generate: { charset: "alnum", length: 8 } },
    { every: "0s", generate: { charset: "alnum", length: 8 } },
    { generate: { charset: "emoji", length: 8 } },
    { generate: { charset: "alnum", length: 0 } },
    { generate: { charset: "alnum", length: 5000 } },
    { generate: { charset: "alnum" } },
    { generate: { charset: "alnum", length: 8 }, extra: 1 },
    { generate: { charset: "alnum", length: 8 }, apply: { runbook: "../rotate-db" } },
    { generate: { charset: "alnum", length: 8 }, apply: { postgres: { connection: "../x", role: "r" } } },
    { generate: { charset: "alnum", length: 8 }, apply: { postgres: { connection: "app/y", role: "r", sql: "DROP" } } },
  ]) {
    const r = await s.call("PUT", "/v1/rotation/app/y", { token: rotator, body: bad });
    assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
  }
  assert.equal((await s.call("GET", "/v1/rotation/app/y", { token: rotator })).status, 404);
  assert.equal((await s.call("POST", "/v1/rotation/app/none", { token: rotator })).status, 404);
  assert.equal((await s.call("GET", "/v1/rotation/app%2Fx", { token: rotator })).status, 400);
  assert.equal((await s.call("DELETE", "/v1/rotation/app/x", { token: rotator })).status, 200);
  assert.equal((await s.call("GET", "/v1/rotation/app/x", { token: rotator })).status, 404);
});

test("attack: rotate on one's own secret cannot borrow an admin connection one may not read, nor a runbook one may not run", { timeout: 60_000 }, async (t) => {
  const { s } = await start(t);
  const rotator = await s.token(["rotator"]);
  assert.equal((await s.call("PUT", "/v1/secrets/db/admin-url", { token: s.rootToken, body: { value: "postgres://admin:pw@db/app" } })).status, 200);
  assert.equal((await s.call("PUT", "/v1/secrets/app/mine", { token: rotator, body: { value: "v1" } })).status, 200);
  // Else the rotator could set the superuser's password to a value it reads.
  const borrow = { generate: { charset: "alnum", length: 16 }, apply: { postgres: { connection: "db/admin-url", role: "postgres" } } };
  const r = await s.call("PUT", "/v1/rotation/app/mine", { token: rotator, body: borrow });
  assert.equal(r.status, 403, r.text);
  assert.match(r.json.error.message, /read secret "db\/admin-url"/);
  const run = await s.call("PUT", "/v1/rotation/app/mine", { token: rotator, body: { generate: { charset: "alnum", length: 16 }, apply: { runbook: "deploy-prod" } } });
  assert.equal(run.status, 403, run.text);
  assert.match(run.json.error.message, /run runbook "deploy-prod"/);
  assert.equal((await s.call("GET", "/v1/rotation/app/mine", { token: rotator })).status, 404, "nothing was stored");
  // A connection the rotator may read is fine.
  assert.equal((await s.call("PUT", "/v1/secrets/app/admin-url", { token: rotator, body: { value: "postgres://admin:pw@db/app" } })).status, 200);
  const own = await s.call("PUT", "/v1/rotation/app/mine", { token: rotator, body: { ...borrow, apply: { postgres: { connection: "app/admin-url", role: "app" } } } });
  assert.equal(own.status, 200, own.text);
});

test("rotation: revoking a token with ?rotate=true rotates what it and the tokens it made read, and lists the rest", { timeout: 60_000 }, async (t) => {
  const { s } = await start(t);
  for (const name of ["app/a", "app/b", "app/c", "app/unread"]) {
    assert.equal((await s.call("PUT", `/v1/secrets/${name}`, { token: s.rootToken, body: { value: `old-${name}` } })).status, 200);
  }
  for (const name of ["app/a", "app/c", "app/unread"]) {
    assert.equal((await s.call("PUT", `/v1/rotation/${name}`, { token: s.rootToken, body: { generate: { charset: "alnum", length: 16 } } })).status, 200);
  }
  const made = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "bob", roles: ["minter"] } });
  const bob = made.json as { token: string; id: string };
  assert.equal((await s.call("GET", "/v1/secrets/app/a", { token: bob.token })).status, 200);
  assert.equal((await s.call("GET", "/v1/secrets/app/b", { token: bob.token })).status, 200);
  const child = await s.call("POST", "/v1/tokens", { token: bob.token, body: { name: "bob-ci", roles: ["minter"] } });
  assert.equal(child.status, 201, child.text);
  assert.equal((await s.call("GET", "/v1/secrets/app/c", { token: child.json.token })).status, 200);
  const r = await s.call("DELETE", `/v1/tokens/${bob.id}?rotate=true`, { token: s.rootToken });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.id, bob.id);
  assert.equal(r.json.revoked, true);
  assert.deepEqual(r.json.rotated, [{ name: "app/a", version: 2 }, { name: "app/c", version: 2 }]);
  assert.deepEqual(r.json.manual, [{ name: "app/b", reason: "no rotation policy" }]);
  assert.equal(await versionOf(s, "app/unread"), 1);
  assert.equal((await s.call("GET", "/v1/secrets/app/a", { token: bob.token })).status, 401);
});
