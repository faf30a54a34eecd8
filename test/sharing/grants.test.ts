import { test } from "node:test";
import assert from "node:assert/strict";
import { assertPattern, matchesAny, patternRegExp } from "../../src/sharing/grants.ts";

const NAMES = ["app", "app/a", "app/b", "app/a/b", "app/a/b/c", "apple/x", "db/prod/password", "db/dev/password", "x.y"];

function matching(pattern: string): string[] {
  return NAMES.filter((n) => patternRegExp(pattern).test(n));
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
  assert.ok(!patternRegExp("x.y").test("xzy"), "a dot is literal");
  assert.ok(matchesAny("app/a", ["db/**", "app/*"]));
  assert.ok(!matchesAny("app/a/b", ["app/*"]));
});

test("patterns: malformed ones are refused naming the rule", () => {
  for (const bad of ["", "/app", "app/", "app//x", "../x", "app/../x", "a**", "app/**x", "a b", "app/.hidden", "x".repeat(257)]) {
    assert.throws(() => assertPattern(bad), { code: "E_INVALID_NAME", message: /invalid pattern/ });
  }
});
