/** Issue 11 (sizes): `coffer import` reads a bounded amount, so a huge file cannot exhaust memory. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { coffer } from "./run-cli.ts";

test("a bundle over 64 MiB is refused before it is read, with one line", (t) => {
  const home = tempDir(t);
  assert.equal(coffer(home, ["init", "--name", "alice"]).code, 0);
  const huge = join(tempDir(t), "huge.coffer");
  writeFileSync(huge, "");
  truncateSync(huge, 64 * 1024 * 1024 + 1); // sparse: costs no disk
  const r = coffer(home, ["import", huge]);
  assert.equal(r.code, 7);
  assert.equal(r.err, `coffer: invalid value: ${huge} is 67108865 bytes, over the limit of 67108864 bytes (64 MiB)\n`);
});

test("a .env over 1 MiB is refused, from a file or from stdin, and nothing is written", (t) => {
  const home = tempDir(t);
  assert.equal(coffer(home, ["init", "--name", "alice"]).code, 0);
  const big = `A=${"x".repeat(1024 * 1024)}\n`;
  const file = join(tempDir(t), ".env");
  writeFileSync(file, big);
  const r = coffer(home, ["import", "--dotenv", file]);
  assert.equal(r.code, 7);
  assert.match(r.err, /^coffer: invalid value: .* over the limit of 1048576 bytes \(1 MiB\)\n$/);
  const s = coffer(home, ["import", "--dotenv", "-"], { input: big });
  assert.equal(s.code, 7);
  assert.match(s.err, /^coffer: invalid value: stdin \(at most 1 MiB\) is over the limit of 1048576 bytes\n$/);
  assert.equal(coffer(home, ["list", "--json"]).out.trim(), "[]");
});
