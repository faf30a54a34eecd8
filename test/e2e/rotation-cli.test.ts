/**
 * The rotation CLI against the real server (issue 15; in this process, on a free loopback port):
 * `coffer rotation set|show|list|rm`, `coffer rotate NAME --server`, `coffer list --due --server`
 * and `coffer token revoke ID --rotate`, as the built CLI in a temp HOME, logged in with `coffer
 * login`. Needs `npm run build` and the server's rotation routes (`/v1/rotation…`,
 * `DELETE /v1/tokens/{id}?rotate=true`): it fails until they are merged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { tempDir } from "../helpers.ts";
import { startTestServer, TEST_ROLES } from "../server/harness.ts";
import { cofferAsync } from "./run-cli.ts";

// The server runs in this process: the CLI must not be run with spawnSync.
const cli = (home: string, args: string[], env: Record<string, string> = {}, input = "") => cofferAsync(home, args, { env, input });

test("coffer rotation set/show/list/rm and rotate --server against the real server, with --json and exit codes", async (t) => {
  const s = await startTestServer(t, TEST_ROLES);
  const home = tempDir(t);
  const login = await cli(home, ["login", s.url], { COFFER_TOKEN: s.rootToken });
  assert.equal(login.code, 0, login.err);
  const first = await cli(home, ["set", "app/hmac", "--server", s.url], {}, "initial-value-0001");
  assert.equal(first.code, 0, first.err);

  const set = await cli(home, ["rotation", "set", "app/hmac", "--every", "30d", "--charset", "hex", "--length", "24"]);
  assert.equal(set.code, 0, set.err);
  assert.match(set.err, /rotation of app\/hmac set: every 30d, 24 hex characters, apply: nothing/);

  const shown = await cli(home, ["rotation", "show", "app/hmac", "--json"]);
  assert.equal(shown.code, 0, shown.err);
  const view = JSON.parse(shown.out);
  assert.deepEqual([view.name, view.every, view.generate, view.apply, view.state, view.due], ["app/hmac", "30d", { charset: "hex", length: 24 }, null, "ok", false]);
  const text = await cli(home, ["rotation", "show", "app/hmac"]);
  assert.match(text.out, /^every: +30d$/m);
  assert.match(text.out, /^generate: +24 hex characters$/m);

  const list = await cli(home, ["rotation", "list"]);
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^NAME +EVERY +NEXT +STATE +LAST ROTATED +APPLY/);
  assert.match(list.out, /^app\/hmac +30d +\S+ +ok +never +nothing/m);
  const due = await cli(home, ["rotation", "list", "--due", "--json"]);
  assert.deepEqual(JSON.parse(due.out), []);
  const listDue = await cli(home, ["list", "--due", "--server", s.url]);
  assert.equal(listDue.code, 0, listDue.err);
  assert.match(listDue.err, /no secret's rotation is due/);

  const rotated = await cli(home, ["rotate", "app/hmac", "--server", s.url]);
  assert.equal(rotated.code, 0, rotated.err);
  assert.match(rotated.err, /^rotated app\/hmac to v2$/m);
  const value = await cli(home, ["get", "app/hmac", "--server", s.url]);
  assert.match(value.out, /^[0-9a-f]{24}$/);
  const json = JSON.parse((await cli(home, ["rotate", "app/hmac", "--json", "--server", s.url])).out);
  assert.deepEqual([json.name, json.version], ["app/hmac", 3]);

  // Exit codes: no policy (3), not allowed (5), a bad flag (7), both apply targets (2).
  assert.equal((await cli(home, ["rotate", "app/other", "--server", s.url])).code, 3);
  const reader = await s.token(["reader"]);
  const denied = await cli(home, ["rotation", "set", "app/hmac", "--every", "1d", "--server", s.url], { COFFER_TOKEN: reader });
  assert.equal(denied.code, 5, denied.err);
  assert.equal((await cli(home, ["rotation", "set", "app/hmac", "--every", "soon"])).code, 7);
  assert.equal((await cli(home, ["rotation", "set", "app/hmac", "--apply-runbook", "r", "--apply-postgres", "db/admin:app"])).code, 2);

  const rm = await cli(home, ["rotation", "rm", "app/hmac"]);
  assert.equal(rm.code, 0, rm.err);
  assert.equal((await cli(home, ["rotation", "show", "app/hmac"])).code, 3);
  assert.equal((await cli(home, ["get", "app/hmac", "--server", s.url])).code, 0, "the secret stays");
});

test("coffer token revoke ID --rotate rotates what the token read and lists the rest to rotate by hand", async (t) => {
  const s = await startTestServer(t, TEST_ROLES);
  const home = tempDir(t);
  assert.equal((await cli(home, ["login", s.url], { COFFER_TOKEN: s.rootToken })).code, 0);
  assert.equal((await cli(home, ["set", "app/hmac"], { COFFER_SERVER: s.url }, "initial-value-0001")).code, 0);
  assert.equal((await cli(home, ["set", "app/plain"], { COFFER_SERVER: s.url }, "no-policy-value")).code, 0);
  assert.equal((await cli(home, ["rotation", "set", "app/hmac", "--charset", "alnum", "--length", "32"])).code, 0);

  const leaver = await s.token(["reader"], "leaver");
  for (const name of ["app/hmac", "app/plain"]) assert.equal((await s.call("GET", `/v1/secrets/${name}`, { token: leaver })).status, 200);
  const tokens = JSON.parse((await cli(home, ["token", "list", "--json"])).out) as { id: string; name: string }[];
  const id = tokens.find((x) => x.name === "leaver")!.id;

  const r = await cli(home, ["token", "revoke", id, "--rotate"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, new RegExp(`^revoked token ${id}$`, "m"));
  assert.match(r.out, /^NAME +NEW VERSION\napp\/hmac +2\n/m);
  assert.match(r.out, /^NAME +WHY\napp\/plain +\S/m);
  assert.match((await cli(home, ["get", "app/hmac"], { COFFER_SERVER: s.url })).out, /^[A-Za-z0-9]{32}$/);
  assert.equal((await s.call("GET", "/v1/secrets/app/hmac", { token: leaver })).status, 401, "the token is revoked");

  // --json: {id, revoked, rotated, manual}
  const other = await s.token(["reader"], "other");
  await s.call("GET", "/v1/secrets/app/plain", { token: other });
  const otherId = (JSON.parse((await cli(home, ["token", "list", "--json"])).out) as { id: string; name: string }[]).find((x) => x.name === "other")!.id;
  const json = JSON.parse((await cli(home, ["token", "revoke", otherId, "--rotate", "--json"])).out);
  assert.deepEqual(Object.keys(json).sort(), ["id", "manual", "revoked", "rotated"]);
  assert.deepEqual(json.rotated, []);
  assert.deepEqual(json.manual.map((m: { name: string }) => m.name), ["app/plain"]);
});
