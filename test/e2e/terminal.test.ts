import { test } from "node:test";
import assert from "node:assert/strict";
import { tempDir } from "../helpers.ts";
import { coffer } from "./run-cli.ts";

/** Any character that makes a terminal act (C0 but newline, DEL, C1, bidi controls). */
const ACTIVE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

test("a description cannot put terminal escape codes into coffer list", (t) => {
  const home = tempDir(t);
  assert.equal(coffer(home, ["init"]).code, 0);
  const esc = String.fromCharCode(0x1b);
  const description = `ok${esc}[2J${esc}]0;title${String.fromCharCode(7)}${String.fromCharCode(0x9b)}31m\u202eevil\nsecond line`;
  assert.equal(coffer(home, ["set", "app/x", "--description", description], { input: "value-1" }).code, 0);
  const list = coffer(home, ["list"]);
  assert.equal(list.code, 0, list.err);
  assert.doesNotMatch(list.out, ACTIVE);
  assert.equal(list.out.split("\n").length, 3, "header, one row, final newline");
  assert.ok(list.out.includes("ok\\x1b[2J\\x1b]0;title\\x07\\x9b31m\\u{202e}evil\\x0asecond line"), list.out);
  // --json keeps the exact text for programs.
  assert.equal(JSON.parse(coffer(home, ["list", "--json"]).out)[0].description, description);
});

test("a name quoted in an error message cannot put terminal escape codes on stderr", (t) => {
  const home = tempDir(t);
  assert.equal(coffer(home, ["init"]).code, 0);
  for (const args of [["get", `a${String.fromCharCode(0x9b)}2Jb`], ["users", "show", `bob\u202e`], ["get", `x\u001b]0;t\u0007`]]) {
    const r = coffer(home, args);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.err, ACTIVE, r.err);
    assert.equal(r.err.split("\n").length, 2, "one line");
  }
});
