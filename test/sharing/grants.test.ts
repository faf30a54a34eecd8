import { test } from "node:test";
import assert from "node:assert/strict";
import { internalsOf } from "../../src/store/internal.ts";
import type { TestContext } from "node:test";
import { initCoffer, openStore } from "../../src/index.ts";
import { cardOf, loadIdentity } from "../../src/identity/identity.ts";
import { resolvePaths } from "../../src/core/paths.ts";
import { assertPattern, matchesAny, selectGranted } from "../../src/sharing/grants.ts";
import { addMember, getMember, grant, grantedNames, ungrant } from "../../src/sharing/members.ts";
import { tempDir } from "../helpers.ts";

const NAMES = ["app", "app/a", "app/b", "app/a/b", "app/a/b/c", "apple/x", "db/prod/password", "db/dev/password", "x.y"];

function matching(pattern: string): string[] {
  return selectGranted(NAMES, [pattern]);
}

test("patterns: * stays within a segment, ** spans whole segments, literals match themselves", () => {
  assert.deepEqual(matching("app/*"), ["app/a", "app/b"]);
  assert.deepEqual(matching("app/**"), ["app/a", "app/b", "app/a/b", "app/a/b/c"]);
  assert.deepEqual(matching("app"), ["app"]);
  assert.deepEqual(matching("db/prod/password"), ["db/prod/password"]);
  assert.deepEqual(matching("db/*/password"), ["db/prod/password", "db/dev/password"]);
  assert.deepEqual(matching("**/password"), ["db/prod/password", "db/dev/password"]);
  assert.deepEqual(matching("app/**/c"), ["app/a/b/c"]);
  assert.deepEqual(matching("**"), NAMES);
  assert.deepEqual(matching("app*"), ["app"]);
  assert.deepEqual(matching("x.y"), ["x.y"]);
  assert.deepEqual(matching("x*y"), ["x.y"]);
  assert.ok(!matchesAny("xzy", ["x.y"]), "a dot is literal");
  assert.ok(matchesAny("app/a", ["db/**", "app/*"]));
  assert.ok(!matchesAny("app/a/b", ["app/*"]));
});

test("patterns: a ** in the middle matches zero segments too, as in server policies (a/**/b matches a/b)", () => {
  assert.deepEqual(selectGranted(["a/b", "a/x/b", "a/x/y/b", "a/bb", "b"], ["a/**/b"]), ["a/b", "a/x/b", "a/x/y/b"]);
  assert.deepEqual(selectGranted(["password", "db/password"], ["**/password"]), ["password", "db/password"]);
});

test("patterns: malformed ones are refused naming the rule", () => {
  for (const bad of ["", "/app", "app/", "app//x", "../x", "app/../x", "a**", "app/**x", "a b", "app/.hidden", "_x", "-", "x".repeat(257)]) {
    assert.throws(() => assertPattern(bad), { code: "E_INVALID_NAME", message: /invalid pattern .*: .*; patterns are/ }, bad);
  }
});

test("a stored grant the rule now refuses matches nothing and can still be ungranted", async (t: TestContext) => {
  const env = { COFFER_HOME: tempDir(t, "coffer-alice-") };
  await initCoffer({ env, name: "alice" });
  const store = await openStore({ env });
  t.after(() => store.close());
  const bobEnv = { COFFER_HOME: tempDir(t, "coffer-bob-") };
  await initCoffer({ env: bobEnv, name: "bob" });
  const bob = await loadIdentity(resolvePaths({ env: bobEnv }).identity);
  store.set("a/b", "v");
  store.set("a/x/b", "v");
  await addMember(store, "bob", cardOf(bob));
  grant(store, "bob", ["a/**/b"]);
  assert.deepEqual(grantedNames(store, "bob"), ["a/b", "a/x/b"], "users show lists what the widened grant matches now");
  // "_x" was a valid grant under the old grant rule (it matched no name); today's rule refuses it.
  internalsOf(store).driver.stmt("INSERT INTO grants (member, pattern, granted_at, granted_by) VALUES (?, ?, ?, ?)").run("bob", "_x", new Date().toISOString(), "test");
  assert.deepEqual(grantedNames(store, "bob"), ["a/b", "a/x/b"]);
  assert.throws(() => grant(store, "bob", ["_y"]), { code: "E_INVALID_NAME" });
  assert.deepEqual(ungrant(store, "bob", ["_x"]), ["_x"]);
  assert.deepEqual(getMember(store, "bob").grants, ["a/**/b"]);
  assert.throws(() => ungrant(store, "bob", ["_y"]), { code: "E_INVALID_NAME" }, "a pattern never stored is still checked");
});
