import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDurationSeconds, parseExpires, parseSince, printable, table } from "../../src/cli/io.ts";

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

test("--rotate-every and --expires take the one duration grammar in whole seconds, at least 1s", () => {
  assert.equal(parseDurationSeconds("2w", "--rotate-every"), 14 * 86_400);
  assert.equal(parseDurationSeconds("90d", "--rotate-every"), 90 * 86_400);
  assert.equal(parseDurationSeconds("1500ms", "--rotate-every"), 1, "rounded down to whole seconds");
  assert.equal(parseDurationSeconds("1000ms", "--rotate-every"), 1);
  assert.throws(() => parseDurationSeconds("999ms", "--rotate-every"), { code: "E_INVALID_VALUE", message: `invalid --rotate-every "999ms": must be at least 1s` });
  assert.throws(() => parseDurationSeconds("0s", "--rotate-every"), { code: "E_INVALID_VALUE", message: `invalid --rotate-every "0s": must be at least 1s` });
  assert.throws(() => parseDurationSeconds("90", "--rotate-every"), { code: "E_INVALID_VALUE", message: /^invalid --rotate-every "90": must be a duration: a whole number with a unit ms, s, m, h, d or w/ });
  assert.equal(parseExpires("never"), null);
  assert.equal(parseExpires("12h"), 12 * 3600);
  assert.equal(parseExpires("2w"), 14 * 86_400);
  assert.throws(() => parseExpires("36601d"), { code: "E_INVALID_VALUE", message: `invalid --expires "36601d": must be between 1s and 36600d` });
});

test("--since takes an ISO date or a duration back from now, ms to w", () => {
  const now = Date.parse("2026-06-15T12:00:00Z");
  assert.equal(parseSince("7d", now).toISOString(), "2026-06-08T12:00:00.000Z");
  assert.equal(parseSince("2w", now).toISOString(), "2026-06-01T12:00:00.000Z");
  assert.equal(parseSince("500ms", now).toISOString(), "2026-06-15T11:59:59.500Z");
  assert.equal(parseSince("2026-01-31", now).toISOString(), "2026-01-31T00:00:00.000Z");
  assert.throws(() => parseSince("0s", now), { code: "E_INVALID_VALUE", message: `invalid --since "0s": must be between 1ms and 36600d` });
  assert.throws(() => parseSince("99999w", now), { code: "E_INVALID_VALUE", message: `invalid --since "99999w": must be between 1ms and 36600d` });
  assert.throws(() => parseSince("9999999999999999w", now), { code: "E_INVALID_VALUE", message: /^invalid --since "9999999999999999w": an ISO date/ });
  assert.throws(() => parseSince("last week", now), { code: "E_INVALID_VALUE", message: /^invalid --since "last week": an ISO date/ });
});
