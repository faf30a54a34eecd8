import { test } from "node:test";
import assert from "node:assert/strict";
import { printable, table } from "../../src/cli/io.ts";

test("printable escapes every character a terminal acts on, and nothing else", () => {
  assert.equal(printable("a\u001b[2Jb\u0007\u007f\u009b\u202e\u2066\u2028"), "a\\x1b[2Jb\\x07\\x7f\\x9b\\u{202e}\\u{2066}\\u{2028}");
  assert.equal(printable("line\nnext\ttab"), "line\\x0anext\\x09tab");
  assert.equal(printable("line\nnext", true), "line\nnext");
  const text = "héllo ✓ 日本 🔑 app/db.password_1 \"quoted\" \\ back";
  assert.equal(printable(text), text);
});

test("a table cell cannot put terminal escape codes into the table", () => {
  const out = table(["A", "B"], [["x\u001b[31m", "y\nz"]]);
  assert.equal(out, "A          B\nx\\x1b[31m  y\\x0az\n");
});
