/**
 * Several stateless instances on one PostgreSQL database and one Redis (issue 7): writes on one
 * are read on the other, check-and-set is race-free across them, the rate limit is shared, and
 * an instance whose Redis is down keeps serving with per-instance limits and says so.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { callAt, startTwoInstances, TEST_ROLES } from "./harness.ts";
import { redisUrl } from "../services.ts";

const call = callAt;

test("two instances on one database: a write on one is read on the other; ifVersion races give one 200 and one 409", async (t) => {
  const { a, b, root } = await startTwoInstances(t);
  assert.equal((await call(a.url, "PUT", "/v1/secrets/app/shared", root, { value: "written-on-a" })).status, 200);
  const read = await call(b.url, "GET", "/v1/secrets/app/shared", root);
  assert.equal(read.json.value, "written-on-a");
  assert.equal((await call(b.url, "GET", "/v1/sys/health", root)).json.storage, "postgres");

  for (let round = 0; round < 5; round++) {
    const results = await Promise.all([
      call(a.url, "PUT", "/v1/secrets/app/shared", root, { value: `a-${round}`, ifVersion: round + 1 }),
      call(b.url, "PUT", "/v1/secrets/app/shared", root, { value: `b-${round}`, ifVersion: round + 1 }),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 409], `round ${round}`);
  }
  const versions = await call(a.url, "GET", "/v1/secrets/app/shared/versions", root);
  assert.deepEqual(versions.json.versions.map((v: { version: number }) => v.version), [1, 2, 3, 4, 5, 6]);
  // a token made on one instance works on the other, and its revocation too, at once
  const made = await call(a.url, "POST", "/v1/tokens", root, { name: "ci", roles: ["reader"] });
  assert.equal((await call(b.url, "GET", "/v1/auth/self", made.json.token)).status, 200);
  assert.equal((await call(b.url, "DELETE", `/v1/tokens/${made.json.id}`, root)).status, 200);
  assert.equal((await call(a.url, "GET", "/v1/auth/self", made.json.token)).status, 401);
  const verify = await call(b.url, "GET", "/v1/audit/verify", root);
  assert.equal(verify.json.ok, true, "both instances append to one intact chain");
});

test("a shared Redis limit of 20/min draws 429 within 24 requests spread over both instances", async (t) => {
  const { a, b, root } = await startTwoInstances(t, { redis: await redisUrl(), yaml: `${TEST_ROLES}\nrateLimit: { requests: 20, window: 1m, ipRequests: 1000 }\n` });
  const reader = (await call(a.url, "POST", "/v1/tokens", root, { name: "r", roles: ["reader"] })).json.token as string;
  const health = await call(a.url, "GET", "/v1/sys/health", reader);
  assert.equal(health.json.rateLimit, "shared (redis)");
  const statuses: number[] = [];
  for (let i = 0; i < 24; i++) statuses.push((await call(i % 2 === 0 ? a.url : b.url, "GET", "/v1/secrets", reader)).status);
  assert.deepEqual(statuses.slice(0, 20), Array(20).fill(200));
  assert.deepEqual(statuses.slice(20), [429, 429, 429, 429], "the 21st request, on either instance, is over the shared limit");
  const limited = await call(b.url, "GET", "/v1/secrets", reader);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
});

test("Redis down: the server keeps serving with per-instance limits and says so in health and metrics", async (t) => {
  const { a, root } = await startTwoInstances(t, { redis: "redis://127.0.0.1:1", yaml: `${TEST_ROLES}\nrateLimit: { requests: 5, window: 1m, ipRequests: 1000 }\n` });
  const health = await call(a.url, "GET", "/v1/sys/health", root);
  assert.equal(health.status, 200);
  assert.equal(health.json.status, "degraded");
  assert.equal(health.json.rateLimit, "per instance: redis unreachable");
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await call(a.url, "GET", "/v1/secrets", root)).status);
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429], "limits still hold, counted in memory");
  const metrics = await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${root}` } });
  const text = await metrics.text();
  assert.match(text, /^coffer_rate_limit_shared 0$/m);
  assert.match(text, /^coffer_rate_limit_local_fallbacks_total [1-9]\d*$/m);
});

test("a token revoked on one instance is refused on the other although the other had it cached (the bus event drops it; the 1 s bound is token-cache.test.ts)", async (t) => {
  const { a, b, root } = await startTwoInstances(t);
  const made = await call(a.url, "POST", "/v1/tokens", root, { name: "cached", roles: ["reader"] });
  assert.equal((await call(b.url, "GET", "/v1/auth/self", made.json.token)).status, 200, "b looked the token up (and cached it)");
  assert.equal((await call(b.url, "GET", "/v1/auth/self", made.json.token)).status, 200);
  const revokedAt = Date.now();
  assert.equal((await call(a.url, "DELETE", `/v1/tokens/${made.json.id}`, root)).status, 200);
  assert.equal((await call(a.url, "GET", "/v1/auth/self", made.json.token)).status, 401, "refused at once where it was revoked");
  // b hears of it on the change bus (LISTEN/NOTIFY) or, at the latest, when its entry expires: wait generously.
  let status = 200;
  while (status !== 401 && Date.now() - revokedAt < 20_000) {
    status = (await call(b.url, "GET", "/v1/auth/self", made.json.token)).status;
    if (status !== 401) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(status, 401, "the other instance refuses the revoked token");
});
