import { test } from "node:test";
import assert from "node:assert/strict";
import { checkSize, formatSize, parseSize, SIZE_RULE } from "../../src/core/sizes.ts";

test("parseSize: whole numbers with a binary unit, nothing else", () => {
  assert.equal(parseSize("0B"), 0);
  assert.equal(parseSize("512B"), 512);
  assert.equal(parseSize("1KiB"), 1024);
  assert.equal(parseSize("10MiB"), 10 * 1024 * 1024);
  assert.equal(parseSize("1GiB"), 1024 ** 3);
  for (const bad of ["", "10", "10mib", "10MB", "10 MiB", "1.5MiB", "-1KiB", "MiB", "10MiBs", "99999999999999999GiB", "9999999999GiB"]) {
    assert.equal(parseSize(bad), undefined, bad);
  }
});

test("formatSize round-trips through parseSize", () => {
  for (const b of [0, 1, 1023, 1024, 1536, 10 * 1024 * 1024, 1024 ** 3, 3 * 1024 ** 3]) assert.equal(parseSize(formatSize(b)), b);
  assert.equal(formatSize(10 * 1024 * 1024), "10MiB");
});

test("checkSize: grammar and bounds in words", () => {
  assert.deepEqual(checkSize("2KiB", { min: 1024, max: 1024 ** 3 }), { ok: 2048 });
  assert.deepEqual(checkSize("10", {}), { rule: SIZE_RULE });
  assert.deepEqual(checkSize("1B", { min: 1024, max: 1024 ** 3 }), { rule: "must be between 1KiB and 1GiB" });
  assert.deepEqual(checkSize("2GiB", { max: 1024 ** 3 }), { rule: "must be at most 1GiB" });
  assert.deepEqual(checkSize("1B", { min: 1024 }), { rule: "must be at least 1KiB" });
});
