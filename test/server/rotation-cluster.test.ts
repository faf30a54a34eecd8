/**
 * Rotation over several server instances on one PostgreSQL database (docs/design.md §12): the
 * lease is in the database, so of two instances whose schedulers wake together exactly one
 * rotates a due secret; claims racing on the storage seam give one winner; and a write while a
 * rotation holds the secret is refused on PostgreSQL too (row lock in the write's transaction).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "../helpers.ts";
import { openPostgresStorage } from "../../src/storage/postgres.ts";
import { freshDatabase } from "../services.ts";
import { callAt, startTwoInstances, TEST_ROLES } from "./harness.ts";

// polls are many: the rate limits are out of the way
const YAML = `${TEST_ROLES}\nrateLimit: { requests: 1000000, window: 1m, ipRequests: 10000000 }\n`;

test("rotation cluster: two instances on one PostgreSQL database, one secret due: exactly one new version", { timeout: 90_000 }, async (t) => {
  const { a, b, root } = await startTwoInstances(t, { yaml: YAML, rotation: { pollMs: 300 } });
  const put = await callAt(a.url, "PUT", "/v1/rotation/app/shared", root, { every: "4s", generate: { charset: "hex", length: 32 } });
  assert.equal(put.status, 200, put.text);
  await waitFor("version 1", 15_000, async () => {
    const r = await callAt(b.url, "GET", "/v1/secrets/app/shared", root);
    return r.status === 200 ? r.json : undefined;
  });
  // both schedulers were due at the same second; give a loser time to (wrongly) write
  await new Promise((r) => setTimeout(r, 1_500));
  const versions = await callAt(a.url, "GET", "/v1/secrets/app/shared/versions", root);
  assert.equal(versions.json.versions.length, 1, versions.text);
  const audit = await callAt(b.url, "GET", "/v1/audit?action=secret.rotate", root);
  assert.equal(audit.json.records.filter((x: { detail: { result: string } }) => x.detail.result === "ok").length, 1, audit.text);
});

test("rotation cluster: racing claims on one PostgreSQL database give exactly one lease; a write meanwhile gets 409", { timeout: 60_000 }, async (t) => {
  const url = await freshDatabase(t);
  const stores = await Promise.all([openPostgresStorage(url), openPostgresStorage(url)]);
  t.after(() => Promise.all(stores.map((s) => s.close())));
  const [s1, s2] = stores as [typeof stores[0], typeof stores[0]];
  await s1.putRotation({ name: "app/r", every: null, everyMs: null, generate: { charset: "alnum", length: 8 }, apply: null }, "test", null);
  const until = new Date(Date.now() + 30_000).toISOString();
  const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? s1 : s2).claimRotation("app/r", `h${i}`, until, "now")));
  assert.equal(claims.filter((c) => c !== undefined).length, 1);
  const holder = claims.find((c) => c !== undefined)!.leaseHolder!;
  const seal = () => ({ nonce: new Uint8Array(12), ciphertext: new Uint8Array(16) });
  await assert.rejects(s2.write({ name: "app/r", actor: "test", seal, auditDetail: null }), { code: "E_CONFLICT", message: "secret app/r: rotation in progress; retry when it ends" });
  // the holder's own write goes through, and then the secret is free again
  assert.equal(await s1.storeRotationCandidate("app/r", holder, seal), 1);
  const done = await s2.finishRotation("app/r", holder, "test", { result: "ok" });
  assert.equal(done.version, 1);
  assert.equal((await s1.write({ name: "app/r", actor: "test", seal, auditDetail: null })).version, 2);
  assert.equal((await s2.getRotation("app/r"))!.state, "ok");
});
