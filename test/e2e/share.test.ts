import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "dotenv";
import { tempDir } from "../helpers.ts";
import { CLI, coffer, onTerminal, cofferOk as ok, initHomes } from "./run-cli.ts";

const IDENTITY = (home: string) => join(home, ".config", "coffer", "identity");

test("three homes: grant, export, trust, import exactly app/*, forged and flipped bundles refused, revoke lists what bob got", (t) => {
  const root = tempDir(t);
  const [alice, bob, mallory] = initHomes(root, ["alice", "bob", "mallory"]) as [string, string, string];
  ok(alice, ["set", "app/one"], "alice-one");
  ok(alice, ["set", "app/two"], "alice-two");
  ok(alice, ["set", "db/prod/password"], "alice-db-password");
  const bobCard = ok(bob, ["card"]).trim();
  const [aliceCard, aliceFp] = ok(alice, ["card", "--fingerprint"]).trim().split("\n") as [string, string];
  assert.match(aliceCard, /^coffer-card:v1:alice:age1[a-z0-9]{58}:[A-Za-z0-9_-]{43}$/);
  assert.match(aliceFp, /^[A-Z2-7]{16}$/);

  ok(alice, ["users", "add", "bob", "--card", bobCard]);
  ok(alice, ["grant", "bob", "app/*"]);
  assert.deepEqual((JSON.parse(ok(alice, ["users", "show", "bob", "--json"])) as { matches: string[] }).matches, ["app/one", "app/two"]);
  assert.match(ok(alice, ["users", "show", "bob"]), /^matches +app\/one app\/two$/m);
  const bundle = join(root, "bob.coffer");
  ok(alice, ["export", "bob", "--out", bundle]);
  assert.equal(statSync(bundle).mode & 0o777, 0o600);
  const denied = coffer(alice, ["export", "bob", "db/prod/password"]);
  assert.equal(denied.code, 5);
  assert.match(denied.err, /not granted to "bob"/);

  // The outer layer is plain age: the age CLI opens it with bob's identity file, and the signed
  // payload inside holds the granted secrets only.
  const envelope = JSON.parse(execFileSync("age", ["-d", "-i", IDENTITY(bob), bundle], { encoding: "utf8" })) as { payload: string };
  const payload = JSON.parse(Buffer.from(envelope.payload, "base64").toString()) as { secrets: { name: string }[] };
  assert.deepEqual(payload.secrets.map((s) => s.name), ["app/one", "app/two"]);
  assert.ok(!readFileSync(bundle, "utf8").includes("alice-db-password"));

  // Untrusted: refused, nothing written.
  const untrusted = coffer(bob, ["import", bundle]);
  assert.equal(untrusted.code, 5);
  assert.match(untrusted.err, new RegExp(`fingerprint ${aliceFp}\\), who is not a trusted sender; .* --trust ${aliceFp}`));
  assert.equal(JSON.parse(ok(bob, ["list", "--json"])).length, 0);

  // A few flipped characters (the library test flips every byte).
  const text = readFileSync(bundle);
  for (const i of [0, 40, Math.floor(text.length / 2), text.length - 40, text.length - 1]) {
    const bad = Buffer.from(text);
    bad[i]! ^= 0x01;
    const path = join(root, `flipped-${i}.coffer`);
    writeFileSync(path, bad);
    const r = coffer(bob, ["import", path, "--trust", aliceFp]);
    assert.equal(r.code, 6, `byte ${i}: ${r.err}`);
  }
  assert.equal(JSON.parse(ok(bob, ["list", "--json"])).length, 0);

  // Mallory's bundle, offered under alice's fingerprint, is refused.
  ok(mallory, ["set", "app/one"], "mallory-evil");
  ok(mallory, ["users", "add", "bob", "--card", bobCard]);
  ok(mallory, ["grant", "bob", "app/*"]);
  const evil = join(root, "evil.coffer");
  ok(mallory, ["export", "bob", "--out", evil]);
  const refused = coffer(bob, ["import", evil, "--trust", aliceFp]);
  assert.equal(refused.code, 5);
  assert.match(refused.err, new RegExp(`--trust ${aliceFp} does not match this bundle's sender "mallory", whose fingerprint is [A-Z2-7]{16}`));

  // With --trust, bob gets exactly app/*; the sender is remembered.
  const imported = JSON.parse(ok(bob, ["import", bundle, "--trust", aliceFp, "--json"])) as { imported: { name: string }[] };
  assert.deepEqual(imported.imported.map((i) => i.name), ["app/one", "app/two"]);
  assert.deepEqual(JSON.parse(ok(bob, ["list", "--json"])).map((i: { name: string }) => i.name), ["app/one", "app/two"]);
  assert.equal(ok(bob, ["get", "app/two"]), "alice-two");
  // alice exports again with a new value: bob needs no --trust any more.
  ok(alice, ["set", "app/one"], "alice-one-v2");
  const second = join(root, "bob2.coffer");
  ok(alice, ["export", "bob", "app/one", "--out", second]);
  ok(bob, ["import", second]);
  assert.equal(ok(bob, ["get", "app/one"]), "alice-one-v2");

  // Revoke: exactly what bob got and is still current (app/one v2 and app/two v1).
  const revoked = JSON.parse(ok(alice, ["revoke", "bob", "--json"])) as { toRotate: { name: string; version: number }[] };
  assert.deepEqual(revoked.toRotate.map((e) => [e.name, e.version]), [["app/one", 2], ["app/two", 1]]);
  ok(alice, ["set", "app/two"], "alice-two-rotated");
  const shown = JSON.parse(ok(alice, ["users", "show", "bob", "--json"])) as {
    exposed: { name: string }[]; revokedAt: string | null; grants: string[]; matches: string[];
  };
  assert.deepEqual(shown.exposed.map((e) => e.name), ["app/one"]);
  assert.notEqual(shown.revokedAt, null);
  assert.deepEqual(shown.grants, []);
  assert.deepEqual(shown.matches, []);
  assert.equal(coffer(alice, ["export", "bob"]).code, 5);

  // Values appear nowhere but `get`: not in listings, audit or the export record.
  for (const out of [ok(alice, ["audit", "--json"]), ok(alice, ["users", "show", "bob"]), ok(alice, ["users", "list", "--json"]), ok(bob, ["audit", "--json"])]) {
    for (const v of ["alice-one", "alice-two", "alice-db-password"]) assert.ok(!out.includes(v));
  }
  assert.equal(coffer(alice, ["audit", "verify"]).code, 0);
  assert.equal(coffer(bob, ["audit", "verify"]).code, 0);
});

test("users add refuses a malformed card and a second member with the same card", (t) => {
  const home = tempDir(t);
  ok(home, ["init", "--name", "lead"]);
  const other = tempDir(t);
  ok(other, ["init", "--name", "dev"]);
  const card = ok(other, ["card"]).trim();
  const bad = coffer(home, ["users", "add", "dev", "--card", card.replace(/:age1(.)/, (_, c: string) => `:age1${c === "x" ? "y" : "x"}`)]);
  assert.equal(bad.code, 7);
  assert.match(bad.err, /invalid card/);
  ok(home, ["users", "add", "dev", "--card", card]);
  assert.equal(coffer(home, ["users", "add", "dev2", "--card", card]).code, 4);
  assert.equal(coffer(home, ["users", "add", "../x", "--card", card]).code, 7);
  assert.match(ok(home, ["users", "list"]), /^NAME +FINGERPRINT +STATUS +GRANTS\ndev +[A-Z2-7]{16} +active\n$/);
});

test("import --dotenv stores exactly what the dotenv package parses", (t) => {
  const home = tempDir(t);
  ok(home, ["init"]);
  const env = [
    "# a comment",
    "export PLAIN=simple value",
    "SINGLE='single $quoted # not a comment'",
    'DOUBLE="line1\\nline2 with \\"escapes\\""',
    'MULTI="first',
    "second",
    'third"',
    "HASHED=value # trailing comment",
    "EQUALS=a=b=c",
    "EMPTY=",
    "UNI=héllo ✓",
    "",
  ].join("\r\n");
  const file = join(home, ".env");
  writeFileSync(file, env);
  const r = coffer(home, ["import", "--dotenv", file, "--prefix", "app/"]);
  assert.equal(r.code, 0, r.err);
  const expected = parse(Buffer.from(env));
  assert.equal(expected.EMPTY, "");
  for (const [key, value] of Object.entries(expected)) {
    assert.equal(ok(home, ["get", `app/${key}`]), value, key);
  }
  const badName = join(home, "bad.env");
  writeFileSync(badName, "GOOD=1\n_BAD=2\n");
  const refused = coffer(home, ["import", "--dotenv", badName]);
  assert.equal(refused.code, 7);
  assert.match(refused.err, /variable "_BAD" cannot become a secret/);
  assert.equal(coffer(home, ["get", "GOOD"]).code, 3, "nothing written");
});

test("an untrusted sender can be confirmed on the terminal; a 'no' writes nothing", async (t) => {
  const root = tempDir(t);
  const [alice, bob] = initHomes(root, ["alice", "bob"]) as [string, string];
  ok(alice, ["set", "app/one"], "v");
  ok(alice, ["users", "add", "bob", "--card", ok(bob, ["card"]).trim()]);
  ok(alice, ["grant", "bob", "app/**"]);
  const bundle = join(root, "b.coffer");
  ok(alice, ["export", "bob", "--out", bundle]);
  const fp = ok(alice, ["card", "--fingerprint"]).trim().split("\n")[1]!;
  const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} import ${JSON.stringify(bundle)}`;
  const no = await onTerminal(bob, cmd, [[/\[y\/N\] /, "n\r"]]);
  assert.equal(no.code, 5, no.screen);
  assert.match(no.screen, new RegExp(`fingerprint ${fp}\\. Does the sender confirm that fingerprint\\?`));
  assert.equal(JSON.parse(ok(bob, ["list", "--json"])).length, 0);
  const yes = await onTerminal(bob, cmd, [[/\[y\/N\] /, "y\r"]]);
  assert.equal(yes.code, 0, yes.screen);
  assert.equal(ok(bob, ["get", "app/one"]), "v");
  ok(alice, ["set", "app/one"], "v2");
  ok(alice, ["export", "bob", "--out", join(root, "b2.coffer")]);
  ok(bob, ["import", join(root, "b2.coffer")]);
  assert.equal(ok(bob, ["get", "app/one"]), "v2", "the confirmed sender is remembered");
});

test("users show lists what a grant now matches: a/**/b, granted before ** could match zero segments, includes a/b", (t) => {
  const root = tempDir(t);
  const [alice, bob] = initHomes(root, ["alice", "bob"]) as [string, string];
  for (const name of ["a/b", "a/x/b", "a/x/y/b", "a/bb"]) ok(alice, ["set", name], "v");
  ok(alice, ["users", "add", "bob", "--card", ok(bob, ["card"]).trim()]);
  ok(alice, ["grant", "bob", "a/**/b"]);
  assert.match(ok(alice, ["users", "show", "bob"]), /^matches +a\/b a\/x\/b a\/x\/y\/b$/m);
  const exported = JSON.parse(ok(alice, ["export", "bob", "--out", join(root, "b.coffer"), "--json"])) as { secrets: { name: string }[] };
  assert.deepEqual(exported.secrets.map((s) => s.name), ["a/b", "a/x/b", "a/x/y/b"]);
});
