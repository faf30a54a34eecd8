/**
 * patternContains / segmentContains (src/core/patterns.ts): the containment the server's "never
 * widen" rule stands on (issue 14). Known cases each way, then a randomised soundness check: when
 * containment is claimed, every name the inner pattern matches is matched by the outer one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { compilePattern, patternContains, segmentContains } from "../../src/core/patterns.ts";

const contained: [string, string][] = [
  ["**", "anything"], ["**", "a/b/c"], ["**", "**"], ["**", "app/**"], ["**", "db/api-*"], ["**", "*/x/**"],
  ["app/**", "app/x"], ["app/**", "app/x/y"], ["app/**", "app/**"], ["app/**", "app/*"], ["app/**", "app/*/x/**"], ["app/**", "app/**/x"],
  ["app/*", "app/x"], ["app/*", "app/*"], ["app/*", "app/api-*"],
  ["db/*", "db/api-*"], ["db/**", "db/api-*"], ["db/api-*", "db/api-*"], ["db/api-*", "db/api-key"],
  ["a/**/b", "a/b"], ["a/**/b", "a/x/b"], ["a/**/b", "a/**/b"], ["a/**/b", "a/*/*/b"], ["**/x", "x"], ["**/x", "a/**/x"],
  ["app/x", "app/x"], ["*/db", "app/db"], ["*/*", "a/b"],
];
const notContained: [string, string][] = [
  ["app/*", "app/**"], ["app/*", "app/x/y"], ["app/*", "app"], ["app/x", "app/*"], ["app/x", "app/y"], ["app/**", "app"],
  ["app/**", "other/x"], ["app/**", "**"], ["app/**", "**/x"], ["db/api-*", "db/*"], ["db/api-*", "db/other"], ["db/api-*", "db/api*-x"],
  ["db/*", "db/**"], ["a/**/b", "a/**"], ["a/*/b", "a/**/b"], ["x", "**"], ["*", "**"], ["*", "a/b"], ["app/*", "ap/x"],
  // broken patterns contain nothing and are contained by nothing
  ["**", ""], ["**", "a//b"], ["", "a"], ["a/../b", "a/../b"], ["**", "a/**b"],
];

test("patternContains: what a rule covers segment by segment is contained", () => {
  for (const [outer, inner] of contained) assert.equal(patternContains(outer, inner), true, `${outer} ⊇ ${inner}`);
});

test("patternContains: a wider or unrelated pattern is never reported as contained", () => {
  for (const [outer, inner] of notContained) assert.equal(patternContains(outer, inner), false, `${outer} ⊉ ${inner}`);
});

test("segmentContains: one-segment patterns (runbook names); '**' and '/' are refused", () => {
  assert.equal(segmentContains("*", "cdn-flush"), true);
  assert.equal(segmentContains("*", "cdn-*"), true);
  assert.equal(segmentContains("cdn-*", "cdn-flush"), true);
  assert.equal(segmentContains("cdn-*", "cdn-*"), true);
  assert.equal(segmentContains("cdn-flush", "cdn-flush"), true);
  assert.equal(segmentContains("cdn-*", "*"), false);
  assert.equal(segmentContains("cdn-flush", "cdn-*"), false);
  assert.equal(segmentContains("**", "x"), false);
  assert.equal(segmentContains("*", "**"), false);
  assert.equal(segmentContains("a/b", "a/b"), false);
});

test("patternContains is sound: a claimed containment holds on every name tried", () => {
  // A small alphabet so patterns and names overlap often.
  const segs = ["a", "b", "ab", "a-x", "*", "**", "a-*", "*-x", "*b"];
  const nameSegs = ["a", "b", "ab", "a-x", "b-x", "a-y", "bb"];
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pattern = (): string => Array.from({ length: 1 + rand(4) }, () => segs[rand(segs.length)]!).join("/");
  const names: string[] = [];
  for (let len = 1; len <= 4; len++) {
    for (let k = 0; k < 300; k++) names.push(Array.from({ length: len }, () => nameSegs[rand(nameSegs.length)]!).join("/"));
  }
  let claims = 0;
  for (let k = 0; k < 3000; k++) {
    const outer = pattern();
    const inner = pattern();
    if (!patternContains(outer, inner)) continue;
    claims++;
    const o = compilePattern(outer);
    const i = compilePattern(inner);
    for (const name of names) if (i.matches(name)) assert.ok(o.matches(name), `${outer} ⊇ ${inner} claimed, but ${name} escapes`);
  }
  assert.ok(claims > 100, `enough containments were claimed to mean something (${claims})`);
});
