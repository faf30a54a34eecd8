import { test } from "node:test";
import assert from "node:assert/strict";
import { checkFileMode, FILE_MODE_PATTERN, unquotedModeRule } from "../../src/core/file-mode.ts";

test("a file mode: 3-4 octal digits, the owner reads, group and others do not write, no special bits", () => {
  for (const [text, mode] of [["0400", 0o400], ["400", 0o400], ["0440", 0o440], ["0444", 0o444], ["600", 0o600], ["0644", 0o644], ["0755", 0o755], ["0551", 0o551]] as const) {
    assert.deepEqual(checkFileMode(text), { ok: mode }, text);
  }
  assert.deepEqual(checkFileMode("0664"), { rule: `must not let group or others write (e.g. "0400" or "0440")` });
  assert.deepEqual(checkFileMode("0200"), { rule: `must let the owner read (e.g. "0400" or "0440")` });
  assert.deepEqual(checkFileMode("4777"), {
    rule: `must not set setuid, setgid or sticky bits and must not let group or others write (e.g. "0400" or "0440")`,
  });
  for (const text of ["", "40", "04000", "0800", "0x400", "rw", " 0400", "0400 ", "-400", "0o400"]) {
    assert.deepEqual(checkFileMode(text), { rule: `must be 3-4 octal digits, e.g. "0400" or "0440"` }, JSON.stringify(text));
  }
});

test("the JSON Schema pattern accepts exactly the modes the checker accepts (every 3- and 4-digit octal string)", () => {
  const re = new RegExp(FILE_MODE_PATTERN);
  let accepted = 0;
  for (const digits of [3, 4]) {
    for (let n = 0; n < 8 ** digits; n++) {
      const text = n.toString(8).padStart(digits, "0");
      const ok = "ok" in checkFileMode(text);
      assert.equal(re.test(text), ok, text);
      if (ok) accepted++;
    }
  }
  assert.equal(accepted, 2 * 4 * 4 * 4);
});

test("a mode written as a YAML number is refused with the quoted form to write", () => {
  assert.equal(unquotedModeRule("0644"), `must be a quoted string of 3-4 octal digits, e.g. "0400" (unquoted 0644 is a number)`);
});
