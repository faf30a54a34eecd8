import { test } from "node:test";
import assert from "node:assert/strict";
import { compilePattern, patternProblem } from "../../src/core/patterns.ts";
import { selectGranted } from "../../src/sharing/grants.ts";
import { matchPath, Policy } from "../../src/server/policy.ts";

const NAMES = ["a", "b", "a/b", "a/x/b", "a/x/y/b", "a/bb", "a/x", "a/x/y", "x/a/b"];

/** pattern → the names it selects (the one language: `*` one segment, `**` zero or more). */
const EXPECTED: Record<string, readonly string[]> = {
  "a/**/b": ["a/b", "a/x/b", "a/x/y/b"],
  "a/*": ["a/b", "a/bb", "a/x"],
  "**": NAMES,
  "a/**": ["a/b", "a/x/b", "a/x/y/b", "a/bb", "a/x", "a/x/y"],
  "**/b": ["b", "a/b", "a/x/b", "a/x/y/b", "x/a/b"],
  "a/*/b": ["a/x/b"],
  "a/b*": ["a/b", "a/bb"],
};

test("a pattern selects the same names as a grant and as a policy", () => {
  for (const [pattern, expected] of Object.entries(EXPECTED)) {
    const policy = new Policy({ r: [{ path: pattern, capabilities: ["read"] }] });
    const asGrant = selectGranted(NAMES, [pattern]);
    const asPolicy = NAMES.filter((n) => policy.allows(["r"], "read", n));
    const asMatchPath = NAMES.filter((n) => matchPath(pattern, n));
    const compiled = NAMES.filter((n) => compilePattern(pattern).matches(n));
    assert.deepEqual(asGrant, expected, `${pattern} as a grant`);
    assert.deepEqual(asPolicy, expected, `${pattern} as a policy`);
    assert.deepEqual(asMatchPath, expected, `${pattern} through matchPath`);
    assert.deepEqual(compiled, expected, `${pattern} compiled`);
  }
});

test("patterns: a compiled pattern is compiled once and reused", () => {
  assert.equal(compilePattern("a/**/b"), compilePattern("a/**/b"));
});

test("patterns: no pattern matches a system path or an invalid name", () => {
  for (const name of ["sys:tokens", "a/../b", "/a", "a/", "", "a b"]) {
    for (const p of ["**", "*", "a/**"]) assert.equal(compilePattern(p).matches(name), false, `${p} vs ${name}`);
  }
});

test("patterns: the reasons a malformed pattern is refused", () => {
  assert.equal(patternProblem("a/**b"), `segment "**b": '**' must be a whole segment`);
  assert.equal(patternProblem("../x"), "'..' is not allowed");
  assert.equal(patternProblem("a//b"), "empty segment (a leading, trailing or double '/')");
  assert.equal(patternProblem(".env"), `segment ".env" must start with a letter or digit`);
  assert.equal(patternProblem("a b"), `segment "a b" has a character outside the rule`);
  assert.equal(patternProblem(""), "empty");
  assert.equal(patternProblem("sys:tokens"), `segment "sys:tokens" has a character outside the rule`, "system paths are the policy's");
  assert.equal(patternProblem("x".repeat(257)), "longer than 256 characters");
  assert.equal(patternProblem("a/**/b"), undefined);
  assert.throws(() => compilePattern("a/**b"), { code: "E_INVALID_NAME" });
});
