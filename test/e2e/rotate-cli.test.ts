/**
 * Local rotation from the built CLI (issue 15), in temp HOMEs: `set --generate` remembers its
 * generator, `coffer rotate` makes a new version from it (and refuses a value set by hand),
 * `list --due`, `revoke --rotate` with its two lists, and the server-only `rotation` commands'
 * usage error when there is no server. Needs `npm run build`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { tempDir } from "../helpers.ts";
import { coffer, cofferOk as ok, initHomes } from "./run-cli.ts";

test("set --generate remembers its generator; rotate makes a new version from it; a value set by hand cannot be rotated", (t) => {
  const home = tempDir(t);
  ok(home, ["init", "--name", "alice"]);
  const set = coffer(home, ["set", "app/hmac", "--generate", "--charset", "hex", "--length", "20"]);
  assert.equal(set.code, 0, set.err);
  assert.match(set.err, /set app\/hmac v1 \(generated: 20 hex characters; remembered for `coffer rotate`\)/);
  const v1 = ok(home, ["get", "app/hmac"]);

  const rotated = coffer(home, ["rotate", "app/hmac"]);
  assert.equal(rotated.code, 0, rotated.err);
  assert.equal(rotated.out, "");
  assert.match(rotated.err, /^rotated app\/hmac to v2 \(generated: 20 hex characters\)$/m);
  const v2 = ok(home, ["get", "app/hmac"]);
  assert.match(v2, /^[0-9a-f]{20}$/);
  assert.notEqual(v2, v1);
  assert.deepEqual(JSON.parse(ok(home, ["rotate", "app/hmac", "--json"])), { name: "app/hmac", version: 3, generator: { charset: "hex", length: 20 } });
  const audit = JSON.parse(ok(home, ["audit", "--json"])) as { action: string; name: string | null; version: number | null }[];
  assert.deepEqual(audit.filter((r) => r.action === "rotate").map((r) => [r.name, r.version]), [["app/hmac", 2], ["app/hmac", 3]]);
  const listed = JSON.parse(ok(home, ["list", "--json"])) as { name: string; generator: unknown }[];
  assert.deepEqual(listed[0]?.generator, { charset: "hex", length: 20 });
  for (const out of [rotated.err, JSON.stringify(audit), JSON.stringify(listed)]) assert.ok(!out.includes(v2), "no value printed");

  // Set by hand: the generator is forgotten, and rotate says what to do (exit 7).
  ok(home, ["set", "app/hmac"], "typed-by-hand");
  const refused = coffer(home, ["rotate", "app/hmac"]);
  assert.equal(refused.code, 7, refused.err);
  assert.match(refused.err, /has no generator to rotate with.*set it with --generate first/);
  assert.equal(coffer(home, ["rotate", "nope"]).code, 3);
  assert.equal(coffer(home, ["rotate"]).code, 2);
});

test("list --due lists only the secrets whose rotation period has passed; rotate takes one off", async (t) => {
  const home = tempDir(t);
  ok(home, ["init"]);
  ok(home, ["set", "app/b", "--rotate-every", "90d"], "b");
  ok(home, ["set", "app/c"], "c");
  ok(home, ["set", "app/a", "--generate", "--rotate-every", "3s"]);
  const none = coffer(home, ["list", "--due"]);
  assert.equal(none.code, 0, none.err);
  assert.equal(none.out, "");
  assert.match(none.err, /no secret's rotation is due/);
  await sleep(3200);
  const due = ok(home, ["list", "--due"]);
  assert.match(due, /^NAME +VERSION/);
  assert.match(due, /^app\/a \(rotation due\) +1 /m);
  assert.doesNotMatch(due, /app\/b|app\/c/);
  assert.deepEqual((JSON.parse(ok(home, ["list", "--due", "--json"])) as { name: string }[]).map((s) => s.name), ["app/a"]);
  ok(home, ["rotate", "app/a"]);
  assert.deepEqual(JSON.parse(ok(home, ["list", "--due", "--json"])), []);
});

test("revoke --rotate rotates the generated secrets the member saw and lists the rest to rotate by hand", (t) => {
  const root = tempDir(t);
  const [alice, bob] = initHomes(root, ["alice", "bob"]) as [string, string];
  ok(alice, ["set", "app/session", "--generate", "--charset", "alnum", "--length", "24"]);
  ok(alice, ["set", "app/words", "--generate", "--charset", "words", "--length", "4"]);
  ok(alice, ["set", "app/vendor-key"], "from-the-vendor");
  ok(alice, ["set", "db/unseen", "--generate"]);
  ok(alice, ["users", "add", "bob", "--card", ok(bob, ["card"]).trim()]);
  ok(alice, ["grant", "bob", "app/*"]);
  ok(alice, ["export", "bob", "--out", join(root, "bob.coffer")]);
  const before = ok(alice, ["get", "app/session"]);

  const r = coffer(alice, ["revoke", "bob", "--rotate"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /^revoked bob$/m);
  assert.match(r.err, /rotated 2 secrets which bob has seen:/);
  assert.match(r.err, /left to rotate by hand: 1 secret which bob has seen:/);
  assert.match(r.out, /^NAME +NEW VERSION\napp\/session +2\napp\/words +2\n/);
  assert.match(r.out, /^NAME +WHY\napp\/vendor-key +no generator: its value was set by hand/m);
  assert.doesNotMatch(r.out, /db\/unseen/);
  const after = ok(alice, ["get", "app/session"]);
  assert.match(after, /^[A-Za-z0-9]{24}$/);
  assert.notEqual(after, before);
  assert.match(ok(alice, ["get", "app/words"]), /^[a-z]+(-[a-z]+){3}$/);
  assert.equal(JSON.parse(ok(alice, ["list", "db/", "--json"]))[0].version, 1, "a secret bob never received is left alone");
  // What bob still knows is only the vendor key now.
  const shown = JSON.parse(ok(alice, ["users", "show", "bob", "--json"])) as { exposed: { name: string }[] };
  assert.deepEqual(shown.exposed.map((e) => e.name), ["app/vendor-key"]);

  // --json: {member, revokedAt, rotated, manual}; again, only the hand-set one is left.
  const json = JSON.parse(ok(alice, ["revoke", "bob", "--rotate", "--json"])) as Record<string, unknown>;
  assert.deepEqual(Object.keys(json).sort(), ["manual", "member", "revokedAt", "rotated"]);
  assert.deepEqual(json.rotated, []);
  assert.deepEqual((json.manual as { name: string }[]).map((m) => m.name), ["app/vendor-key"]);
  // Without --rotate the output is what it was.
  assert.deepEqual(Object.keys(JSON.parse(ok(alice, ["revoke", "bob", "--json"]))).sort(), ["member", "revokedAt", "toRotate"]);
});

test("rotation set/show/rm/list with no server is a usage error saying scheduling and apply are server features", (t) => {
  const home = tempDir(t);
  ok(home, ["init"]);
  for (const args of [["rotation", "set", "app/x", "--every", "30d"], ["rotation", "show", "app/x"], ["rotation", "rm", "app/x"], ["rotation", "list"]]) {
    const r = coffer(home, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, /needs a coffer server.*scheduling and apply are server features.*coffer rotate NAME/);
  }
  const help = coffer(home, ["rotation", "set", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /--apply-postgres SECRET:ROLE/);
  assert.match(help.out, /Examples:\n {2}coffer rotation set app\/hmac-key --every 30d/);
  assert.match(coffer(home, ["rotate", "--help"]).out, /13 when the rotation failed/);
  assert.match(coffer(home, ["--help"]).out, /13 rotation failed/);
  assert.equal(coffer(home, ["rotation"]).code, 2);
});
